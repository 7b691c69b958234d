"""The machine definitions, as data. Importing this validates every one of them."""

from __future__ import annotations

from lifecycle.machines import capture, coupon, dispute, onboarding, order
from lifecycle.machines import subaccount as _subaccount
from lifecycle.machines.definition import MachineDefinition
from lifecycle.machines.versions import Machines

DEFINITIONS: dict[str, MachineDefinition] = {
    d.kind: d
    for d in (onboarding.DEFINITION, order.DEFINITION, dispute.DEFINITION, coupon.COUPON,
              coupon.VOUCHER, capture.DEFINITION)
}
# Sub-accounts (issue #20, SPEC §12): a store's staff and their permissions.
DEFINITIONS[_subaccount.KIND] = _subaccount.DEFINITION

#: every version of every shipped machine (one each, so far); `lifecycle.open(machines=...)`
#: and ``--machines`` add more (SPEC §13)
MACHINES = Machines(DEFINITIONS.values())

#: other names a person may use for a kind (``lifecycle graph onboarding``)
ALIASES = {"onboarding": "seller"}
