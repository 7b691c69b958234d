"""The machine definitions, as data. Importing this validates every one of them."""

from __future__ import annotations

from lifecycle.machines import (
    avatar,
    capture,
    contact,
    coupon,
    dispute,
    onboarding,
    order,
    points,
    profile,
    standing,
    violation,
)
from lifecycle.machines import message as order_message
from lifecycle.machines import subaccount as _subaccount
from lifecycle.machines.definition import MachineDefinition
from lifecycle.machines.versions import Machines

DEFINITIONS: dict[str, MachineDefinition] = {
    d.kind: d
    for d in (onboarding.DEFINITION, order.DEFINITION, dispute.DEFINITION, coupon.COUPON,
              coupon.VOUCHER, capture.DEFINITION)
}
# Violations and penalties (SPEC §12)
DEFINITIONS.update({d.kind: d for d in (violation.DEFINITION, standing.DEFINITION)})
# The points centre (SPEC §12)
DEFINITIONS.update({d.kind: d for d in (points.ACCOUNT, points.EARNING_RECORD)})
DEFINITIONS[order_message.DEFINITION.kind] = order_message.DEFINITION  # issue #20: order messages

# Sub-accounts (issue #20, SPEC §12): a store's staff and their permissions.
DEFINITIONS[_subaccount.KIND] = _subaccount.DEFINITION
# The seller's profile and avatar (issue #20).
DEFINITIONS.update({d.kind: d for d in (profile.DEFINITION, contact.DEFINITION, avatar.DEFINITION)})

#: every version of every shipped machine (one each, so far); `lifecycle.open(machines=...)`
#: and ``--machines`` add more (SPEC §13)
MACHINES = Machines(DEFINITIONS.values())

#: other names a person may use for a kind (``lifecycle graph onboarding``)
ALIASES = {"onboarding": "seller"}
ALIASES["points"] = points.KIND
