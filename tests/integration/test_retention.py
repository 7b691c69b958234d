"""Retention [SPEC §2]: idempotency records and published outbox rows expire after the
policy's retention periods; unpublished events never do."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

import lifecycle
from lifecycle.store.tables import idempotency, outbox
from tests.builders import buyer, order_in


def count(engine: lifecycle.Engine, table: object) -> int:
    with engine.database.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_idempotency_records_are_forgotten_after_their_retention_period(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    engine.fire("order", order.id, "pay", buyer(), idempotency_key="pay-1")
    clock.advance(timedelta(days=29))
    engine.fire("order", order.id, "request_cancel", buyer(), {"reason": "late"},
                idempotency_key="cancel-1")

    assert engine.prune() == {"idempotency_keys": 0, "published_events": 0}
    clock.advance(timedelta(days=1, seconds=1))
    assert engine.prune() == {"idempotency_keys": 1, "published_events": 0}

    with engine.database.connect() as conn:
        assert [row.key for row in conn.execute(select(idempotency.c.key))] == ["cancel-1"]


def test_published_events_are_dropped_after_their_retention_and_unpublished_ones_stay(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order_in(engine, clock, "paid")
    total = count(engine, outbox)
    with engine.database.begin() as conn:
        first = conn.execute(select(func.min(outbox.c.id))).scalar_one()
        conn.execute(update(outbox).where(outbox.c.id == first).values(published_at=clock.now()))

    clock.advance(timedelta(days=7))
    assert engine.prune()["published_events"] == 0
    clock.advance(timedelta(seconds=1))
    assert engine.prune()["published_events"] == 1
    assert count(engine, outbox) == total - 1
    clock.advance(timedelta(days=365))
    assert engine.prune()["published_events"] == 0  # never published: kept for the relay
