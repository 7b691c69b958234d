"""A deadline whose trigger runs into another transaction (a lock held, a deadlock, a
serialization failure, SQLite's "database is locked") is retried, never counted as one of its
failed attempts: it stays pending with no attempts and no error, and fires once the way is clear.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import psycopg
import pytest
from structlog.testing import capture_logs

import lifecycle
from lifecycle import timers
from lifecycle.store.recorder import Recorder
from tests.builders import order_in
from tests.outages import conninfo

MakeError = Callable[[], Exception]


@contextmanager
def updates_raising(monkeypatch: pytest.MonkeyPatch, error: MakeError) -> Iterator[list[int]]:
    """Every aggregate update raises ``error()`` until the block ends; yields the tries."""
    tries: list[int] = []

    def in_the_way(*args: object, **kwargs: object) -> bool:
        tries.append(1)
        raise error()

    with monkeypatch.context() as patched:
        patched.setattr(Recorder, "update_aggregate", in_the_way)
        yield tries


def assert_untouched(engine: lifecycle.Engine, order: lifecycle.Aggregate,
                     before: lifecycle.ScheduledDeadline) -> None:
    (deadline,) = engine.deadlines(kind="order", id=order.id)
    assert (deadline.status, deadline.attempts, deadline.last_error) == ("pending", 0, None)
    assert deadline.due_at == before.due_at
    assert engine.deadlines(failed=True) == []
    assert engine.get("order", order.id).state == "awaiting_payment"
    assert [e.trigger for e in engine.history("order", order.id)] == ["place"]


def due_order(engine: lifecycle.Engine,
              clock: lifecycle.SimulatedClock) -> tuple[lifecycle.Aggregate, lifecycle.ScheduledDeadline]:
    order = order_in(engine, clock, "awaiting_payment")
    clock.advance(timedelta(hours=24))
    (deadline,) = engine.deadlines(due=True)
    return order, deadline


def fires_after_contention(engine: lifecycle.Engine, clock: lifecycle.SimulatedClock,
                           monkeypatch: pytest.MonkeyPatch, error: MakeError) -> None:
    order, before = due_order(engine, clock)

    with capture_logs() as logs:
        for _round in range(3):  # a worker's rounds: more tries than MAX_ATTEMPTS would allow
            with updates_raising(monkeypatch, error) as tries:
                assert engine.run_due_timers() == 0
            assert len(tries) > timers.MAX_ATTEMPTS
            assert_untouched(engine, order, before)

    assert [e for e in logs if e["event"] == "timer.failed"] == []
    assert engine.run_due_timers() == 1
    assert engine.get("order", order.id).state == "cancelled"
    assert engine.deadlines(kind="order", id=order.id) == []


@pytest.mark.parametrize("message", ["database is locked", "database table is locked"])
def test_sqlite_busy_on_the_timer_side_is_retried_not_counted(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, monkeypatch: pytest.MonkeyPatch,
    message: str,
) -> None:
    fires_after_contention(engine, clock, monkeypatch, lambda: sqlite3.OperationalError(message))


PG_CONTENTION: dict[str, MakeError] = {
    "serialization_failure": lambda: psycopg.errors.SerializationFailure(
        "could not serialize access due to concurrent update"),
    "deadlock_detected": lambda: psycopg.errors.DeadlockDetected("deadlock detected"),
    "lock_not_available": lambda: psycopg.errors.LockNotAvailable(
        "canceling statement due to lock timeout"),
}


@pytest.mark.parametrize("kind", PG_CONTENTION)
def test_postgresql_contention_on_the_timer_side_is_retried_not_counted(
    pg_engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    fires_after_contention(pg_engine, clock, monkeypatch, PG_CONTENTION[kind])


def test_a_row_lock_held_past_the_lock_timeout_leaves_the_deadline_pending(
    pg_engine: lifecycle.Engine, pg_url: str, clock: lifecycle.SimulatedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Real contention: another transaction holds the order's row while the timer, whose
    sessions give up on a lock after 20 ms (a DBA's lock_timeout), tries to move it."""
    order, before = due_order(pg_engine, clock)
    monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=20")  # libpq's, for connections made now

    with lifecycle.open(pg_url, clock=clock) as timer, \
            psycopg.connect(conninfo(pg_url)) as holder, capture_logs() as logs:
        holder.execute("SELECT 1 FROM aggregates WHERE kind = 'order' AND id = %s FOR UPDATE",
                       (order.id,))
        assert timer.run_due_timers() == 0
        assert_untouched(pg_engine, order, before)
        holder.rollback()

        assert timer.run_due_timers() == 1

    assert [e for e in logs if e["event"] == "timer.failed"] == []
    assert pg_engine.get("order", order.id).state == "cancelled"
    assert [e.trigger for e in pg_engine.history("order", order.id)] == ["place", "payment_timeout"]


def test_an_outage_in_the_middle_of_a_deadlines_trigger_is_unavailable_not_a_failed_attempt(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    order, before = due_order(engine, clock)

    with updates_raising(monkeypatch, lambda: sqlite3.OperationalError("disk I/O error")) as tries, \
            pytest.raises(lifecycle.Unavailable) as down:
        engine.run_due_timers()

    assert tries == [1]
    assert down.value.reason == "disk I/O error"
    assert_untouched(engine, order, before)
    assert engine.run_due_timers() == 1
    assert engine.get("order", order.id).state == "cancelled"
