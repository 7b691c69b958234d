"""`Engine.check` (and `lifecycle check`) finds histories that no longer lead to their aggregate:
a row lost from the middle, an aggregate whose history is gone, history whose aggregate is gone,
a state changed behind the engine's back. Each is planted with SQL on an otherwise clean file."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import delete, update

import lifecycle
from lifecycle.store.tables import aggregates, history
from tests.builders import order_in

REPLAYS = "history.replays_to_state"


def replay_violations(engine: lifecycle.Engine) -> dict[tuple[str, str], str]:
    return {(v.kind, v.id): v.detail for v in engine.check() if v.rule == REPLAYS}


def test_a_clean_file_has_no_replay_violations(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order_in(engine, clock, "funds_released")
    order_in(engine, clock, "in_dispute", buyer_id="b-2")
    assert engine.check() == []


@pytest.mark.parametrize(("plant", "expected"), [
    (lambda id: delete(history).where(history.c.aggregate_id == id, history.c.seq == 3),
     "history sequence has a gap or a duplicate"),
    (lambda id: delete(history).where(history.c.aggregate_id == id),
     "no history"),
    (lambda id: delete(aggregates).where(aggregates.c.id == id),
     "history of an aggregate that does not exist"),
    (lambda id: update(aggregates).where(aggregates.c.id == id).values(state="completed"),
     "stored completed"),
], ids=["row lost", "history gone", "aggregate gone", "state changed"])
def test_a_broken_history_is_reported_on_its_aggregate_alone(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock,
    plant: Callable[[str], object], expected: str,
) -> None:
    broken = order_in(engine, clock, "delivered")
    order_in(engine, clock, "funds_released", buyer_id="b-2")
    with engine.database.begin() as conn:
        conn.execute(plant(broken.id))  # type: ignore[call-overload]

    found = replay_violations(engine)

    assert list(found) == [("order", broken.id)]
    assert expected in found["order", broken.id]
