"""Group commit (issue #15): ``with engine.batch():`` runs a thread's triggers in one database
transaction, each under a savepoint, committed when the block ends.

Each test runs on SQLite and, with LIFECYCLE_TEST_PG, on PostgreSQL; "another engine" is a
second `lifecycle.open` on the same database: its own connections, as another process has.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
import structlog
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text, update
from structlog.testing import capture_logs

import lifecycle
from lifecycle.errors import Conflict, GuardFailed, IdempotencyMismatch, InvalidTransition, NotFound
from lifecycle.machines.definition import Aggregate, Context
from lifecycle.pipeline import Pipeline
from lifecycle.store.recorder import SQLiteRecorder
from lifecycle.store.tables import metadata
from tests.builders import (
    SHIPMENT,
    SYSTEM,
    buyer,
    order_in,
    order_payload,
    outbox_of,
    rows,
    seller,
    signed,
)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def shop(request: pytest.FixtureRequest, clock: lifecycle.SimulatedClock
         ) -> Iterator[tuple[lifecycle.Engine, lifecycle.Engine]]:
    """(engine, another engine on the same database), with an active seller s-1.

    The PostgreSQL database is shared by the session: its rows go at the end, so no deadline
    is left for a later test's timer worker to fire."""
    engine: lifecycle.Engine = request.getfixturevalue(
        "engine" if request.param == "sqlite" else "pg_engine")
    order_in(engine, clock, "awaiting_payment")  # the seller, and a first order
    with lifecycle.open(engine.database.url.render_as_string(hide_password=False),
                        clock=clock) as other:
        yield engine, other
    if request.param == "postgresql":
        with engine.database.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(t.name for t in metadata.sorted_tables)}"))


def placed(engine: lifecycle.Engine, n: int = 1) -> list[str]:
    return [engine.create("order", buyer(), order_payload()).id for _ in range(n)]


def state_of(engine: lifecycle.Engine, id: str) -> str | None:
    try:
        return engine.get("order", id).state
    except NotFound:
        return None


def minus(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {table: after[table] - before[table] for table in after}


def refusing_after_writes(victim: str) -> Any:
    """`Pipeline._follow` that, for the order ``victim``, carries out the follow-ups (ledger
    postings, lookups) and then refuses: by then the aggregate, its history, outbox and
    deadlines are written, so only a rollback of the trigger's savepoint undoes them."""
    original = Pipeline._follow

    def follow(self: Pipeline, unit: Any, sender: Any, context: Context, seq: int, depth: int,
               before: Aggregate | None = None) -> None:
        original(self, unit, sender, context, seq, depth, before)
        if context.id == victim:
            raise GuardFailed("test.refused", "refused after writing", trigger=context.trigger)

    return follow


def test_a_refused_trigger_in_a_batch_rolls_back_alone(
        shop: tuple[lifecycle.Engine, lifecycle.Engine], monkeypatch: pytest.MonkeyPatch) -> None:
    engine, other = shop
    first, victim, last, control = placed(engine, 4)
    before = rows(engine)
    victim_before = (engine.history("order", victim), outbox_of(engine, "order", victim),
                     engine.postings("order", victim), engine.deadlines(kind="order", id=victim))
    monkeypatch.setattr(Pipeline, "_follow", refusing_after_writes(victim))

    with engine.batch():
        engine.fire("order", first, "pay", buyer(), idempotency_key="k-first")
        with pytest.raises(GuardFailed, match="refused after writing"):
            engine.fire("order", victim, "pay", buyer(), idempotency_key="k-victim")
        engine.fire("order", last, "pay", buyer(), idempotency_key="k-last")

    monkeypatch.undo()
    batched = minus(rows(engine), before)
    assert [state_of(other, id) for id in (first, victim, last)] == ["paid", "awaiting_payment",
                                                                     "paid"]
    assert (other.history("order", victim), outbox_of(other, "order", victim),
            other.postings("order", victim),
            other.deadlines(kind="order", id=victim)) == victim_before
    # Exactly two pays' rows, each what one pay writes on its own, idempotency record included.
    between = rows(engine)
    engine.fire("order", control, "pay", buyer(), idempotency_key="k-control")
    one = minus(rows(engine), between)
    assert one["history"] == 1
    assert batched == {table: 2 * n for table, n in one.items()}
    # The victim's key was never recorded: firing it now pays the order, not a replay.
    assert engine.fire("order", victim, "pay", buyer(), idempotency_key="k-victim").version == 2
    assert engine.check() == []


def test_another_connection_sees_nothing_before_the_batch_commits_and_all_after(
        shop: tuple[lifecycle.Engine, lifecycle.Engine]) -> None:
    engine, other = shop
    (paid,) = placed(engine)
    before = rows(other)

    with engine.batch():
        created = engine.create("order", buyer(), order_payload())
        engine.fire("order", paid, "pay", buyer())
        # This thread's reads run on the batch's connection: they see its writes so far.
        assert engine.get("order", paid).state == "paid"
        assert [e.trigger for e in engine.history("order", paid)] == ["place", "pay"]
        assert "ship_offline" in engine.allowed("order", paid, seller())
        assert state_of(engine, created.id) == "awaiting_payment"
        # Another engine's connections see none of it.
        assert state_of(other, created.id) is None
        assert state_of(other, paid) == "awaiting_payment"
        assert rows(other) == before

    assert state_of(other, created.id) == "awaiting_payment"
    assert state_of(other, paid) == "paid"
    assert minus(rows(other), before)["history"] == 2


def test_an_exception_out_of_the_body_loses_the_whole_batch(
        shop: tuple[lifecycle.Engine, lifecycle.Engine]) -> None:
    engine, other = shop
    (id,) = placed(engine)
    seen: list[Any] = []
    engine.subscribe("*", seen.append)
    before = rows(engine)

    with pytest.raises(ZeroDivisionError), engine.batch():  # noqa: PT012
        engine.fire("order", id, "pay", buyer(), idempotency_key="k-lost")
        engine.fire("order", id, "ship_offline", seller(), SHIPMENT)
        engine.create("order", buyer(), order_payload())
        _ = 1 / 0

    assert rows(engine) == before
    assert rows(other) == before
    assert state_of(other, id) == "awaiting_payment"
    assert seen == []
    assert engine.check() == []
    # Nothing of it remains, not even its idempotency record: the key pays the order now.
    assert engine.fire("order", id, "pay", buyer(), idempotency_key="k-lost").version == 2


def test_subscribers_and_logs_hear_of_a_batch_after_it_commits_and_never_of_a_refusal(
        shop: tuple[lifecycle.Engine, lifecycle.Engine], monkeypatch: pytest.MonkeyPatch) -> None:
    engine, other = shop
    first, victim, last = placed(engine, 3)
    heard: list[tuple[str, str, str | None]] = []
    # What another connection sees when the subscriber is called: it has committed.
    engine.subscribe("order.*", lambda e: heard.append((e["name"], e["aggregate_id"],
                                                         state_of(other, e["aggregate_id"]))))
    monkeypatch.setattr(Pipeline, "_follow", refusing_after_writes(victim))
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))

    with capture_logs() as logs, engine.batch():
        engine.fire("order", first, "pay", buyer())
        with pytest.raises(GuardFailed):
            engine.fire("order", victim, "pay", buyer())
        engine.fire("order", last, "pay", buyer())
        engine.fire("order", first, "ship_offline", seller(), SHIPMENT)
        assert heard == []
        assert [entry for entry in logs if entry["event"] == "transition"] == []

    assert heard == [("order.paid", first, "shipped"), ("order.paid", last, "paid"),
                     ("order.shipped", first, "shipped")]
    assert [(entry["id"], entry["trigger"]) for entry in logs if entry["event"] == "transition"] \
        == [(first, "pay"), (last, "pay"), (first, "ship_offline")]


def test_a_retry_inside_the_batch_gets_the_first_result_of_its_key(
        shop: tuple[lifecycle.Engine, lifecycle.Engine]) -> None:
    engine, _ = shop
    (id,) = placed(engine)

    with engine.batch():
        first = engine.fire("order", id, "pay", buyer(), idempotency_key="k-pay")
        engine.fire("order", id, "ship_offline", seller(), SHIPMENT)
        again = engine.fire("order", id, "pay", buyer(), idempotency_key="k-pay")
        with pytest.raises(IdempotencyMismatch):
            engine.fire("order", id, "cancel", buyer(), idempotency_key="k-pay")

    assert (again.state, again.version) == (first.state, first.version) == ("paid", 2)
    assert [e.trigger for e in engine.history("order", id)] == ["place", "pay", "ship_offline"]
    after = engine.fire("order", id, "pay", buyer(), idempotency_key="k-pay")
    assert (after.state, after.version) == ("paid", 2)


def test_a_key_raced_by_another_process_answers_with_the_batchs_result(
        shop: tuple[lifecycle.Engine, lifecycle.Engine]) -> None:
    engine, other = shop
    (id,) = placed(engine)
    answers: list[Aggregate] = []

    def race() -> None:
        answers.append(other.fire("order", id, "pay", buyer(), idempotency_key="k-race"))

    racer = threading.Thread(target=race)
    with engine.batch():
        mine = engine.fire("order", id, "pay", buyer(), idempotency_key="k-race")
        racer.start()
        racer.join(timeout=0.5)
        # SQLite: waiting for the write lock the batch holds; PostgreSQL: for the order's row.
        assert racer.is_alive()
    racer.join(timeout=20)

    assert [(a.state, a.version) for a in answers] == [(mine.state, mine.version)] == [("paid", 2)]
    assert [e.trigger for e in other.history("order", id)] == ["place", "pay"]


def test_expected_version_is_checked_against_the_batchs_own_writes(
        shop: tuple[lifecycle.Engine, lifecycle.Engine]) -> None:
    engine, _ = shop
    (id,) = placed(engine)

    with engine.batch():
        engine.fire("order", id, "pay", buyer(), expected_version=1)
        with pytest.raises(Conflict):
            engine.fire("order", id, "ship_offline", seller(), SHIPMENT, expected_version=1)
        engine.fire("order", id, "ship_offline", seller(), SHIPMENT, expected_version=2)

    assert engine.get("order", id).version == 3


def test_due_deadlines_fire_inside_the_batch_and_commit_with_it(
        shop: tuple[lifecycle.Engine, lifecycle.Engine], clock: lifecycle.SimulatedClock) -> None:
    engine, other = shop
    (late,) = placed(engine)
    clock.advance(engine.policy.payment_timeout + timedelta(seconds=1))
    due = len(engine.deadlines(due=True))  # late's, and the fixture's first order's
    fresh, refused = placed(engine, 2)

    with engine.batch():
        assert engine.run_due_timers() == due == 2
        with pytest.raises(InvalidTransition):
            engine.fire("order", refused, "ship_offline", seller(), SHIPMENT)
        engine.fire("order", fresh, "pay", buyer())
        assert engine.get("order", late).state == "cancelled"
        assert state_of(other, late) == "awaiting_payment"
        assert len(other.deadlines(due=True)) == due

    assert (state_of(other, late), state_of(other, fresh)) == ("cancelled", "paid")
    assert other.history("order", late)[-1].actor == SYSTEM
    assert other.deadlines(due=True) == []
    assert engine.check() == []


def test_a_deadline_the_batch_scheduled_fires_in_it_when_due(
        shop: tuple[lifecycle.Engine, lifecycle.Engine], clock: lifecycle.SimulatedClock) -> None:
    engine, other = shop
    with engine.batch():
        (id,) = placed(engine)
        clock.advance(engine.policy.payment_timeout + timedelta(seconds=1))
        assert engine.run_due_timers() == 2  # this order's, and the fixture's first order's
        assert engine.get("order", id).state == "cancelled"
        assert state_of(other, id) is None
    assert state_of(other, id) == "cancelled"
    assert other.check() == []


def test_a_carrier_push_inside_the_batch_finds_the_waybill_the_batch_wrote(
        shop: tuple[lifecycle.Engine, lifecycle.Engine], clock: lifecycle.SimulatedClock) -> None:
    engine, other = shop
    (id,) = placed(engine)
    body = json.dumps({"carrier": "dhl", "events": [{
        "event_id": "scan-1", "waybill": SHIPMENT["waybill"], "status": "in_transit",
        "at": clock.now().isoformat(), "location": "Leipzig hub", "detail": "processed"}]}).encode()

    with engine.batch():
        engine.fire("order", id, "pay", buyer())
        engine.fire("order", id, "ship_offline", seller(), SHIPMENT)  # indexes the waybill
        moved = engine.ingest_tracking("dhl", body, signed(body, clock))
        assert [(o.id, o.state) for o in moved] == [(id, "in_transit")]
        assert state_of(other, id) == "awaiting_payment"

    assert state_of(other, id) == "in_transit"
    assert [e.trigger for e in other.history("order", id)][-1] == "tracking_in_transit"


def test_a_nested_batch_joins_the_outer_one(
        shop: tuple[lifecycle.Engine, lifecycle.Engine]) -> None:
    engine, other = shop
    a, b, c = placed(engine, 3)
    heard: list[str] = []
    engine.subscribe("order.paid", lambda e: heard.append(e["aggregate_id"]))

    with engine.batch():
        engine.fire("order", a, "pay", buyer())
        with engine.batch():
            engine.fire("order", b, "pay", buyer())
        assert state_of(other, b) == "awaiting_payment"  # the inner block committed nothing
        with pytest.raises(ZeroDivisionError), engine.batch():  # noqa: PT012
            engine.fire("order", c, "pay", buyer())
            _ = 1 / 0
        assert engine.get("order", c).state == "awaiting_payment"  # undone alone

    assert [state_of(other, id) for id in (a, b, c)] == ["paid", "paid", "awaiting_payment"]
    assert heard == [a, b]


def test_a_whole_happy_path_in_one_batch_leaves_the_database_consistent(
        shop: tuple[lifecycle.Engine, lifecycle.Engine]) -> None:
    engine, other = shop
    with engine.batch():
        id = engine.create("order", buyer(), order_payload()).id
        for trigger, actor, payload in (
            ("pay", buyer(), {}),
            ("ship_offline", seller(), SHIPMENT),
            ("tracking_in_transit", SYSTEM, {}),
            ("tracking_delivered", SYSTEM, {}),
            ("confirm_receipt", buyer(), {}),
            ("release_funds", SYSTEM, {}),
        ):
            engine.fire("order", id, trigger, actor, payload)

    assert state_of(other, id) == "funds_released"
    assert other.replay("order", id) == "funds_released"
    assert len(other.history("order", id)) == 7
    assert other.check() == []


def test_a_batch_belongs_to_the_thread_that_opened_it(
        shop: tuple[lifecycle.Engine, lifecycle.Engine]) -> None:
    engine, _ = shop
    seen: list[str | None] = []
    with engine.batch():
        (id,) = placed(engine)
        reader = threading.Thread(target=lambda: seen.append(state_of(engine, id)))
        reader.start()
        reader.join()
    assert seen == [None]  # the other thread read outside the batch: not committed yet
    assert state_of(engine, id) == "awaiting_payment"


def test_a_database_error_loses_the_whole_batch_and_its_end_says_so(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    order_in(engine, clock, "awaiting_payment")
    a, b, c = placed(engine, 3)
    before = rows(engine)
    original = SQLiteRecorder.append_history

    def failing(self: SQLiteRecorder, aggregate: Aggregate, entry: Any) -> None:
        if aggregate.id == b:
            raise sqlite3.OperationalError("disk I/O error")
        original(self, aggregate, entry)

    monkeypatch.setattr(SQLiteRecorder, "append_history", failing)
    with pytest.raises(lifecycle.Unavailable), engine.batch():  # noqa: PT012
        engine.fire("order", a, "pay", buyer())
        with pytest.raises(lifecycle.Unavailable):
            engine.fire("order", b, "pay", buyer())
        with pytest.raises(lifecycle.Unavailable):  # the batch is gone: so is every later trigger
            engine.fire("order", c, "pay", buyer())
        # the body carries on as if nothing happened; the batch's end raises it again

    monkeypatch.undo()
    assert rows(engine) == before
    assert [state_of(engine, id) for id in (a, b, c)] == ["awaiting_payment"] * 3
    assert engine.fire("order", a, "pay", buyer()).state == "paid"  # a new connection, working
    assert engine.check() == []


CRASHING = """
import sys, time
import lifecycle
from lifecycle import Actor
from lifecycle.logs import configure
configure("warning")
url, first, *batched = sys.argv[1:]
engine = lifecycle.open(url, clock=lifecycle.SimulatedClock())
engine.fire("order", first, "pay", Actor("buyer", "b-1"))
with engine.batch():
    for id in batched:
        engine.fire("order", id, "pay", Actor("buyer", "b-1"))
    print("batched", flush=True)
    time.sleep(120)
"""


def test_a_process_killed_in_a_batch_loses_the_open_batch_whole(
        shop: tuple[lifecycle.Engine, lifecycle.Engine]) -> None:
    engine, other = shop
    first, *batched = placed(engine, 4)
    url = engine.database.url.render_as_string(hide_password=False)
    with subprocess.Popen([sys.executable, "-c", CRASHING, url, first, *batched],
                          stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "batched"
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    assert [state_of(other, id) for id in (first, *batched)] == ["paid"] + ["awaiting_payment"] * 3
    assert [len(other.history("order", id)) for id in batched] == [1, 1, 1]
    assert other.check() == []
    assert engine.fire("order", batched[0], "pay", buyer()).version == 2  # no lock left behind


def test_a_batch_that_only_read_leaves_no_transaction_open(
        shop: tuple[lifecycle.Engine, lifecycle.Engine]) -> None:
    engine, _ = shop
    (id,) = placed(engine)
    with engine.batch():
        assert engine.get("order", id).state == "awaiting_payment"
        assert engine.history("order", id)
    # On PostgreSQL the reads began a transaction: left open, it would hold their table locks.
    writer = engine.store.writer()
    try:
        if isinstance(writer.driver, sqlite3.Connection):
            assert not writer.driver.in_transaction
        else:
            assert writer.driver.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    finally:
        writer.rollback()  # a failure here must not leave the fixture's TRUNCATE waiting


def test_a_failed_commit_loses_the_batch_and_publishes_nothing(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    order_in(engine, clock, "awaiting_payment")
    a, b = placed(engine, 2)
    heard: list[str] = []
    engine.subscribe("*", lambda e: heard.append(e["aggregate_id"]))
    before = rows(engine)

    def failing(self: SQLiteRecorder) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(lifecycle.Unavailable), engine.batch():  # noqa: PT012
        engine.fire("order", a, "pay", buyer())
        engine.fire("order", b, "pay", buyer())
        monkeypatch.setattr(SQLiteRecorder, "commit", failing)  # the batch's commit fails

    monkeypatch.undo()
    assert heard == []
    assert rows(engine) == before
    assert [state_of(engine, id) for id in (a, b)] == ["awaiting_payment"] * 2
    assert engine.check() == []


def test_the_batchs_own_code_reads_the_events_it_wrote_before_the_commit(
        shop: tuple[lifecycle.Engine, lifecycle.Engine], monkeypatch: pytest.MonkeyPatch) -> None:
    engine, _ = shop
    a, victim, b, c = placed(engine, 4)
    heard: list[str] = []
    engine.subscribe("order.paid", lambda e: heard.append(e["aggregate_id"]))
    assert engine.batch_events() == []  # outside a batch
    monkeypatch.setattr(Pipeline, "_follow", refusing_after_writes(victim))

    with engine.batch():
        engine.fire("order", a, "pay", buyer())
        assert [(e["aggregate_id"], e["trigger"]) for e in engine.batch_events()] == [(a, "pay")]
        with pytest.raises(GuardFailed):
            engine.fire("order", victim, "pay", buyer())
        engine.fire("order", b, "pay", buyer())
        with pytest.raises(ZeroDivisionError), engine.batch():  # noqa: PT012
            engine.fire("order", c, "pay", buyer())
            _ = 1 / 0
        # The refused trigger and the inner block that raised wrote no events.
        assert [e["aggregate_id"] for e in engine.batch_events()] == [a, b]
        assert [e["aggregate_id"] for e in engine.batch_events(1)] == [b]
        assert heard == []

    assert heard == [a, b]
    assert engine.batch_events() == []


@contextlib.contextmanager
def notes_table(engine: lifecycle.Engine, name: str) -> Iterator[Table]:
    """An application's own table (id, note) beside the engine's, dropped afterwards."""
    notes = Table(name, MetaData(), Column("id", Integer, primary_key=True),
                  Column("note", String(40)))
    notes.drop(engine.database, checkfirst=True)
    notes.create(engine.database)
    try:
        yield notes
    finally:
        notes.drop(engine.database)


def noted(on: lifecycle.Engine, notes: Table) -> list[str]:
    with on.database.connect() as conn:
        return [row.note for row in conn.execute(select(notes.c.note).order_by(notes.c.id))]


def test_an_applications_row_written_in_a_batch_commits_or_is_lost_with_it(
        shop: tuple[lifecycle.Engine, lifecycle.Engine]) -> None:
    engine, other = shop
    with notes_table(engine, "batch_test_notes") as notes:
        engine.execute(insert(notes).values(id=1, note="alone"))  # a transaction of its own
        assert noted(other, notes) == ["alone"]
        a, b = placed(engine, 2)
        with engine.batch():
            engine.fire("order", a, "pay", buyer())
            engine.execute(insert(notes).values(id=2, note="with the batch"))
            assert noted(other, notes) == ["alone"]
        assert noted(other, notes) == ["alone", "with the batch"]
        with pytest.raises(ZeroDivisionError), engine.batch():  # noqa: PT012
            engine.fire("order", b, "pay", buyer())
            engine.execute(insert(notes).values(id=3, note="lost"))
            _ = 1 / 0
        assert noted(other, notes) == ["alone", "with the batch"]
        assert state_of(other, b) == "awaiting_payment"


def payment_due(engine: lifecycle.Engine, id: str) -> timedelta:
    """How long after its placing the order's payment_timeout deadline falls due."""
    (deadline,) = engine.deadlines(kind="order", id=id)
    placed_at = engine.history("order", id)[0].at
    return deadline.due_at - placed_at


def test_a_batch_holds_the_policy_its_first_trigger_read(
        shop: tuple[lifecycle.Engine, lifecycle.Engine]) -> None:
    engine, other = shop
    old = engine.policy.payment_timeout
    new = old + timedelta(hours=1)
    with engine.batch():
        (first,) = placed(engine)
        if engine.database.dialect.name == "postgresql":
            # Another process stores a new version while the batch is open (on SQLite the
            # batch holds the write lock: nobody can).
            other.set_policy(other.policy.with_overrides(payment_timeout=new))
        (second,) = placed(engine)
    (after,) = placed(engine)
    assert [payment_due(engine, id) for id in (first, second)] == [old, old]
    expected = new if engine.database.dialect.name == "postgresql" else old
    assert payment_due(engine, after) == expected


def test_a_policy_stored_inside_a_batch_holds_from_the_batchs_next_trigger(
        shop: tuple[lifecycle.Engine, lifecycle.Engine]) -> None:
    engine, _ = shop
    old = engine.policy.payment_timeout
    new = old + timedelta(hours=2)
    with engine.batch():
        (first,) = placed(engine)
        engine.set_policy(engine.policy.with_overrides(payment_timeout=new))
        (second,) = placed(engine)
    assert [payment_due(engine, id) for id in (first, second)] == [old, new]


def test_an_applications_statements_of_one_shape_each_run_with_their_own_values(
        shop: tuple[lifecycle.Engine, lifecycle.Engine]) -> None:
    """`Engine.execute` compiles a statement's shape once: the values of each run still count."""
    engine, other = shop
    with notes_table(engine, "batch_test_shapes") as notes:
        with engine.batch():
            for n in range(1, 4):
                engine.execute(insert(notes).values(id=n, note=f"note {n}"))
            engine.execute(update(notes).where(notes.c.id == 2).values(note="changed"))
            engine.execute(update(notes).where(notes.c.id == 3).values(note="changed too"))
        assert noted(other, notes) == ["note 1", "changed", "changed too"]
