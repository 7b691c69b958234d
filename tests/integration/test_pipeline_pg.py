"""PostgreSQL pipeline mode (issue #15): what a trigger writes after its version check is queued
and sent in one round trip with its COMMIT (`PostgresRecorder`, `QueuingCursor`).

These pin what must not change with it: the version check is read only once its own answer
has arrived; a queued statement's error is raised in the trigger that queued it (inside a
batch, before its savepoint is released: it rolls back alone); everything a trigger writes
commits together, or nothing does; the connection is clean for the next trigger.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy import text, update

import lifecycle
from lifecycle.errors import Conflict
from lifecycle.machines.definition import Aggregate
from lifecycle.store.recorder import PostgresRecorder, QueuingCursor
from lifecycle.store.tables import aggregates, metadata
from tests.builders import SYSTEM, buyer, order_in, order_payload, rows
from tests.outages import conninfo

pytestmark = pytest.mark.pg


@pytest.fixture
def shop(pg_engine: lifecycle.Engine, pg_url: str, clock: lifecycle.SimulatedClock
         ) -> Iterator[tuple[lifecycle.Engine, lifecycle.Engine]]:
    """(engine, another engine on the same database: its own connections, as another process
    has), with an active seller s-1. The rows go at the end, so that no deadline is left for
    a later test's timer worker."""
    order_in(pg_engine, clock, "awaiting_payment")
    with lifecycle.open(pg_url, clock=clock) as other:
        yield pg_engine, other
    with pg_engine.database.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(t.name for t in metadata.sorted_tables)}"))


def placed(engine: lifecycle.Engine, n: int) -> list[str]:
    return [engine.create("order", buyer(), order_payload()).id for _ in range(n)]


def plant_history(pg_url: str, id: str, seq: int) -> None:
    """A history row of order ``id`` at ``seq``, written behind the engine's back: the engine's
    own INSERT of that row, queued after the version check, then fails (a unique violation)."""
    with psycopg.connect(conninfo(pg_url)) as conn:
        conn.execute(
            "INSERT INTO history (kind, aggregate_id, seq, trigger, source, dest, actor_role,"
            " actor_id, payload, idempotency_key, at) VALUES ('order', %s, %s, 'planted', 'x',"
            " 'y', 'system', 'test', '{}', NULL, now())", (id, seq))


def idle(engine: lifecycle.Engine) -> bool:
    """The thread's writing connection has no transaction open and is out of pipeline mode."""
    driver = engine.store.writer().driver
    return bool(driver.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
                and driver.info.pipeline_status == psycopg.pq.PipelineStatus.OFF)


def test_the_version_check_reads_its_own_answer_after_queued_writes(
        shop: tuple[lifecycle.Engine, lifecycle.Engine]) -> None:
    """`update_aggregate` behind queued statements: their answers (one row each) arrive on the
    same cursor first; a ``rowcount`` read before the sync would be theirs and pass a version
    check that fails."""
    engine, _ = shop
    (id,) = placed(engine, 1)
    current = engine.get("order", id)
    now = datetime.now(UTC)
    moved = Aggregate("order", id, "paid", current.version + 1, dict(current.data))
    with pytest.raises(RuntimeError, match="rolled back"), engine.store.transaction() as records:  # noqa: PT012
        assert isinstance(records, PostgresRecorder)
        assert isinstance(records.cur, QueuingCursor)
        records.cur.queuing = True  # as after a version check passed
        for n in range(3):
            records.append_outbox({"name": "test.queued", "kind": "order", "aggregate_id": id,
                                   "seq": 100 + n}, now)
        assert records.cur.pending
        time.sleep(0.2)  # their answers arrive meanwhile, for the next `execute` to pick up
        assert not records.update_aggregate(moved, current.version + 7, now)  # a stale version
        assert records.update_aggregate(moved, current.version, now)
        raise RuntimeError("rolled back")
    assert engine.get("order", id).version == current.version
    assert idle(engine)


def test_a_claimed_rows_write_is_queued_and_still_refused_by_the_database_if_it_moves_nothing(
        shop: tuple[lifecycle.Engine, lifecycle.Engine]) -> None:
    """After `claim_version` the write is queued unread (the row is held); should it change no
    row after all, the database refuses it, so nothing behind it commits: `Conflict`."""
    engine, other = shop
    (id,) = placed(engine, 1)
    current = engine.get("order", id)
    now = datetime.now(UTC)
    before = rows(other)
    moved = Aggregate("order", id, "paid", current.version + 1, dict(current.data))
    with pytest.raises(Conflict), engine.store.transaction() as records:  # noqa: PT012
        claimed = records.claim_version("order", id, current.version)
        assert claimed == current.version + 1
        # What nothing does between a claim and its write: move the held row on.
        records.execute_core(update(aggregates).where(aggregates.c.id == id)
                             .values(version=current.version + 5))
        assert records.update_aggregate(moved, claimed, now)  # queued: answered at the sync
        assert records.cur.pending
        records.append_outbox({"name": "test.queued", "kind": "order", "aggregate_id": id,
                               "seq": moved.version}, now)
    assert rows(other) == before
    assert other.get("order", id).version == current.version
    assert idle(engine)
    assert engine.fire("order", id, "pay", buyer()).version == current.version + 1


def test_two_engines_racing_one_order_one_wins_the_other_conflicts_and_writes_nothing(
        shop: tuple[lifecycle.Engine, lifecycle.Engine], monkeypatch: pytest.MonkeyPatch,
        clock: lifecycle.SimulatedClock) -> None:
    engine, other = shop
    order = order_in(engine, clock, "shipped")
    original = PostgresRecorder.load_for_write
    raced: list[lifecycle.Aggregate] = []
    settled: dict[str, int] = {}

    def load_then_lose(self: PostgresRecorder, kind: str, id: str) -> Any:
        found = original(self, kind, id)
        if self is engine.store.writer() and not raced:
            # Between our read and our write, another process moves the order and commits.
            raced.append(other.fire("order", order.id, "tracking_in_transit", SYSTEM))
            settled.update(rows(other))  # what the winner committed
        return found

    monkeypatch.setattr(PostgresRecorder, "load_for_write", load_then_lose)
    with pytest.raises(Conflict):
        engine.fire("order", order.id, "tracking_in_transit", SYSTEM)
    monkeypatch.undo()

    assert [r.version for r in raced] == [order.version + 1]
    assert rows(other) == settled  # the loser wrote nothing: no history, outbox, deadline, scan
    assert [h.trigger for h in other.history("order", order.id)][-1] == "tracking_in_transit"
    assert len(other.history("order", order.id)) == order.version + 1
    assert idle(engine)
    assert engine.fire("order", order.id, "tracking_delivered", SYSTEM).version == order.version + 2
    assert engine.check() == []


def test_a_queued_writes_error_rolls_the_trigger_back_whole_and_the_connection_goes_on(
        shop: tuple[lifecycle.Engine, lifecycle.Engine], pg_url: str) -> None:
    engine, other = shop
    a, b = placed(engine, 2)
    plant_history(pg_url, a, 2)  # the history row `pay` writes after its version check
    before = rows(other)
    heard: list[str] = []
    engine.subscribe("*", lambda event: heard.append(event["aggregate_id"]))

    with pytest.raises(Conflict):  # the unique violation, as when it was not queued
        engine.fire("order", a, "pay", buyer())

    assert rows(other) == before  # the aggregate, outbox, deadlines, ledger: none written
    assert other.get("order", a).state == "awaiting_payment"
    assert heard == []
    assert idle(engine)
    assert engine.fire("order", b, "pay", buyer()).state == "paid"  # the same connection
    assert heard == [b]


def test_a_queued_writes_error_in_a_batch_rolls_back_its_trigger_alone(
        shop: tuple[lifecycle.Engine, lifecycle.Engine], pg_url: str) -> None:
    engine, other = shop
    a, b, c = placed(engine, 3)
    plant_history(pg_url, b, 2)
    before = rows(other)
    heard: list[str] = []
    engine.subscribe("*", lambda event: heard.append(event["aggregate_id"]))

    with engine.batch():
        assert engine.fire("order", a, "pay", buyer()).state == "paid"
        with pytest.raises(Conflict):  # raised by b's own savepoint, before its release
            engine.fire("order", b, "pay", buyer())
        assert engine.fire("order", c, "pay", buyer()).state == "paid"
        assert heard == []
        assert [other.get("order", id).state for id in (a, c)] == ["awaiting_payment"] * 2

    assert [other.get("order", id).state for id in (a, b, c)] == ["paid", "awaiting_payment", "paid"]
    assert heard == [a, c]
    after = rows(other)
    assert after["history"] - before["history"] == 2
    assert after["outbox"] - before["outbox"] == 2
    assert after["aggregates"] == before["aggregates"]
    assert len(other.postings("order", b)) == 0
    assert len(other.postings("order", a)) == len(other.postings("order", c)) > 0
    assert idle(engine)


def test_a_trigger_commits_state_history_outbox_deadlines_and_ledger_together(
        shop: tuple[lifecycle.Engine, lifecycle.Engine]) -> None:
    engine, other = shop
    (id,) = placed(engine, 1)
    before = rows(other)
    paid = engine.fire("order", id, "pay", buyer())
    after = rows(other)
    assert other.get("order", id) == paid
    assert [h.trigger for h in other.history("order", id)] == ["place", "pay"]
    assert after["outbox"] - before["outbox"] == 1
    assert after["ledger"] - before["ledger"] == len(other.postings("order", id)) > 0
    assert [d.trigger for d in other.deadlines(id=id)] != []
    assert idle(engine)
