"""Which carrier scan moves an order has one source: `SCAN_TRIGGERS` over the transitions' sources
(issue #14). The table the engine ingests scans with follows the machine, never a copy of it. A
scan that moves nothing is no trigger (issue #15, decision 2)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from lifecycle.adapter_calls import tracking_trigger
from lifecycle.adapters.ports import TRACKING_STATUSES, TrackingEvent, TrackingStatus
from lifecycle.errors import ReplayMismatch
from lifecycle.machines.definition import MachineDefinition
from lifecycle.machines.order import (
    DEFINITION,
    RECORDED_SCAN_STATES,
    SCAN_MOVES,
    SCAN_TRIGGERS,
    STATES,
    scan_moves,
    trigger_for_scan,
)

# The table as it was written out by hand before it had one source (main 455592f).
WRITTEN_OUT = {
    ("awaiting_pickup", "in_transit"): "confirm_pickup",
    ("awaiting_pickup", "out_for_delivery"): "confirm_pickup",
    ("shipped", "in_transit"): "tracking_in_transit",
    ("shipped", "out_for_delivery"): "tracking_in_transit",
    ("shipped", "delivered"): "tracking_delivered",
    ("in_transit", "delivered"): "tracking_delivered",
    ("shipped", "exception"): "tracking_exception",
    ("in_transit", "exception"): "tracking_exception",
    ("shipped", "returned_to_sender"): "tracking_exception",
    ("in_transit", "returned_to_sender"): "tracking_exception",
}


def test_the_derived_table_is_the_one_written_out_before() -> None:
    assert dict(SCAN_MOVES) == WRITTEN_OUT
    assert RECORDED_SCAN_STATES == ("shipped", "in_transit", "delivered", "completed", "in_dispute")


def test_a_scan_that_moves_nothing_is_no_trigger_of_the_machine() -> None:
    """SPEC §4: a late, duplicate or intermediate scan is recorded, not a transition; the
    self-loop older versions had is retired, so old histories holding it still replay."""
    assert DEFINITION.sources_of("record_tracking") == ()
    assert DEFINITION.retired == {"record_tracking": RECORDED_SCAN_STATES}
    assert all(DEFINITION.step(state, "record_tracking") is None for state in STATES)


def test_a_retired_self_loop_replays_as_a_step_that_changes_nothing() -> None:
    history = [("place", None, "awaiting_payment"), ("pay", "awaiting_payment", "paid"),
               ("ship_offline", "paid", "shipped"), ("record_tracking", "shipped", "shipped"),
               ("tracking_delivered", "shipped", "delivered"),
               ("record_tracking", "delivered", "delivered")]

    assert DEFINITION.replay(history) == "delivered"


@pytest.mark.parametrize("loop", [("record_tracking", "paid", "paid"),  # never defined there
                                  ("record_tracking", "paid", "shipped")])  # not a self-loop
def test_a_retired_trigger_replays_only_as_the_self_loop_it_was(
        loop: tuple[str, str, str]) -> None:
    history = [("place", None, "awaiting_payment"), ("pay", "awaiting_payment", "paid"), loop]

    with pytest.raises(ReplayMismatch):
        DEFINITION.replay(history)


def test_every_status_in_the_table_is_one_a_carrier_reports() -> None:
    for trigger, statuses in SCAN_TRIGGERS.items():
        assert set(statuses) <= set(TRACKING_STATUSES), trigger


@pytest.mark.parametrize(("state", "status"), sorted(SCAN_MOVES))
def test_a_scan_fires_a_trigger_the_system_may_fire_there_and_never_moves_back(
        state: str, status: str) -> None:
    trigger = SCAN_MOVES[state, status]
    step = DEFINITION.step(state, trigger)

    assert step is not None
    assert "system" in step.roles
    assert all(STATES.index(dest) >= STATES.index(state) for dest in step.dests)


def test_the_table_follows_the_transitions_when_they_change() -> None:
    """A machine whose tracking_delivered also left ``delivered`` would move on a delivered
    scan there: the table reads the arrows, it does not restate them."""
    arrows = tuple(
        replace(t, source=(*t.source, "delivered")) if t.trigger == "tracking_delivered" else t
        for t in DEFINITION.transitions
    )
    changed = MachineDefinition(
        "order", states=DEFINITION.states, terminal=DEFINITION.terminal, transitions=arrows,
        owners=DEFINITION.owners, new_id=DEFINITION.new_id, deadlines=DEFINITION.deadlines,
        pausing=DEFINITION.pausing,
    )

    moves = scan_moves(changed)

    assert moves[("delivered", "delivered")] == "tracking_delivered"
    assert ("delivered", "delivered") not in SCAN_MOVES


def _scan(status: TrackingStatus) -> TrackingEvent:
    return TrackingEvent(waybill="1234567891", event_id=f"e-{status}", status=status,
                         at=datetime(2026, 1, 1, tzinfo=UTC),
                         exception_kind="lost" if status == "exception" else None)


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("status", TRACKING_STATUSES)
def test_ingestion_fires_what_the_table_says_and_nothing_else(
        state: str, status: TrackingStatus) -> None:
    trigger, _payload = tracking_trigger(state, _scan(status))

    assert trigger == trigger_for_scan(state, status)
    if trigger is not None:
        step = DEFINITION.step(state, trigger)
        assert step is not None
        assert "system" in step.roles
