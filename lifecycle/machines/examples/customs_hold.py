"""Version 2 of the order machine, the README's worked example (SPEC §13, docs/versions.md):

- a new state, ``customs_hold``, between ``in_transit`` and ``delivered``: a carrier's
  ``exception`` scan of kind ``customs_hold`` on an order in transit holds it there; a
  ``delivered`` scan delivers it, an ``in_transit`` scan releases it back in transit. The
  buyer may confirm receipt or open a dispute there, and the buyer's confirmation window
  (``auto_confirm``) runs on through it, as it does through ``in_transit``;
- a shorter ``ship_deadline``: the seller's handling time, but at most 5 days.

Load it in every process on the database: ``lifecycle --machines
lifecycle.machines.examples.customs_hold ...`` (or ``LIFECYCLE_MACHINES``), or
``lifecycle.open(url, machines="lifecycle.machines.examples.customs_hold")``. Then
``lifecycle migrate order --to 2 --dry-run`` says what would happen to each order in flight, and
``lifecycle migrate order --to 2`` moves them: every state keeps its name (version 2 only adds
one), and each paid order's ship deadline comes forward by the 2 days (or more) it lost.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from lifecycle.machines import order
from lifecycle.machines.definition import Context, Deadline, MachineDefinition, Transition
from lifecycle.machines.order import (
    AFTER_SHIPPING,
    OPERATOR,
    STATES,
    SYSTEM,
    days_of,
    paused_in,
    promised_delivery,
    tracking,
)
from lifecycle.machines.order_effects import close_dispute
from lifecycle.machines.order_payloads import CloseDispute, TrackingException
from lifecycle.machines.versions import Migration

HOLD = "customs_hold"
SHIP_WITHIN = timedelta(days=5)  # version 2's longest handling time, whatever the seller says

# The triggers that now also leave customs_hold, as they leave in_transit.
_ALSO_FROM_HOLD = ("tracking_delivered", "confirm_receipt", "auto_confirm", "open_dispute")


def _customs(ctx: Context) -> bool:
    return bool(ctx.payload.kind == "customs_hold")


def shorter_handling(policy: Any, data: Mapping[str, Any]) -> timedelta:
    """Version 2's ship deadline: the seller's handling time, at most `SHIP_WITHIN`."""
    handling: timedelta = days_of("handling_time_days")(policy, data)
    return min(handling, SHIP_WITHIN)


def _transitions() -> tuple[Transition, ...]:
    kept = []
    for t in order.DEFINITION.transitions:
        if t.trigger == "tracking_exception":
            continue  # rebuilt below, with its route into customs_hold first
        if t.trigger in _ALSO_FROM_HOLD:
            t = dataclasses.replace(t, source=(*t.source, HOLD))
        kept.append(t)
    held = dataclasses.replace(
        tracking("tracking_exception", ("in_transit",), HOLD, TrackingException,
                 status="exception"), when=_customs)
    return (
        *kept,
        held,  # in transit, a customs hold holds the order; any other exception is recorded
        tracking("tracking_exception", ("shipped", "in_transit", HOLD), None, TrackingException,
                 status="exception"),
        tracking("tracking_in_transit", (HOLD,), "in_transit"),  # released by customs
        Transition("close_dispute", ("in_dispute",), HOLD, SYSTEM, CloseDispute, (),
                   close_dispute, when=paused_in(HOLD), internal=True),
    )


def _deadlines() -> tuple[Deadline, ...]:
    deadlines = []
    for d in order.DEFINITION.deadlines:
        if d.trigger == "ship_deadline":
            d = dataclasses.replace(d, duration=shorter_handling)
        elif d.state == "in_transit":
            d = dataclasses.replace(d, continues_from=("shipped", HOLD))
        deadlines.append(d)
    deadlines.append(Deadline(HOLD, "auto_confirm", promised_delivery, "shipped_at",
                              continues_from=("in_transit",)))
    return tuple(deadlines)


_v1 = order.DEFINITION
_at = STATES.index("in_transit") + 1

DEFINITION = MachineDefinition(
    "order",
    version=2,
    states=(*STATES[:_at], HOLD, *STATES[_at:]),
    terminal=_v1.terminal,
    pausing=_v1.pausing,
    owners=_v1.owners,
    new_id=_v1.new_id,
    public=_v1.public,
    transitions=_transitions(),
    retired={"record_tracking": (*AFTER_SHIPPING, HOLD)},
    deadlines=_deadlines(),
)

#: every state of version 1 keeps its name in version 2, so the map is empty
MIGRATION = Migration("order", 1, 2, note="customs_hold added; ship deadline at most 5 days")

MACHINES = (DEFINITION, MIGRATION)

__all__ = ["DEFINITION", "HOLD", "MACHINES", "MIGRATION", "OPERATOR", "SHIP_WITHIN"]
