"""The happy path end to end: one seller, one order from placing to funds released."""

from __future__ import annotations

import lifecycle
from tests.builders import order_in, rows


def test_order_walks_from_place_to_funds_released(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "funds_released")

    assert engine.get("order", order.id).state == "funds_released"
    assert [e.trigger for e in engine.history("order", order.id)] == [
        "place", "pay", "ship_offline", "tracking_in_transit", "tracking_delivered",
        "confirm_receipt", "release_funds",
    ]
    assert engine.replay("order", order.id) == "funds_released"
    assert rows(engine)["outbox"] == rows(engine)["history"]


def test_pg_engine_runs_the_same_path(
    pg_engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(pg_engine, clock, "completed")

    assert pg_engine.replay("order", order.id) == "completed"
