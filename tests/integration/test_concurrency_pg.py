"""Optimistic concurrency on PostgreSQL (SPEC §2): writers racing on one aggregate at the same
moment; exactly one wins each race, the others are told so (`Conflict`, or `InvalidTransition`
when they read after the winner committed); nothing is lost or applied twice.

Every race releases its threads through one `threading.Barrier`, so the triggers really overlap.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from functools import partial
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, select

import lifecycle
from lifecycle.adapters.sandbox import SandboxGateway
from lifecycle.store.tables import history, outbox
from tests.builders import (
    CHECKLIST,
    ORDER_TOTAL,
    PARCEL,
    REGISTRATION,
    SYSTEM,
    buyer,
    order_in,
    order_payload,
    rows,
    seller,
)

pytestmark = pytest.mark.pg

WRITERS = 8
SHIP = {"checklist": CHECKLIST, "carrier": "dhl", "waybill": "1234567891"}

# The order's happy path after `place`: (trigger, actor, payload, state it leads to).
PATH: list[tuple[str, lifecycle.Actor, dict[str, Any], str]] = [
    ("pay", buyer(), {}, "paid"),
    ("ship_offline", seller(), SHIP, "shipped"),
    ("tracking_in_transit", SYSTEM, {}, "in_transit"),
    ("tracking_delivered", SYSTEM, {}, "delivered"),
    ("confirm_receipt", buyer(), {}, "completed"),
    ("release_funds", SYSTEM, {}, "funds_released"),
]

Outcome = lifecycle.Aggregate | Exception


@pytest.fixture
def engines(
    pg_engine: lifecycle.Engine, pg_url: str, clock: lifecycle.SimulatedClock
) -> Iterator[list[lifecycle.Engine]]:
    """One engine per writer, as separate processes would have (pg_engine emptied the tables)."""
    opened = [lifecycle.open(pg_url, clock=clock) for _ in range(WRITERS)]
    for engine in opened:
        engine.find("order", limit=1)  # a pooled connection each, so the first race is not staggered
    yield opened
    for engine in opened:
        engine.close()


def race(calls: Sequence[Callable[[], lifecycle.Aggregate]]) -> list[Outcome]:
    """Run every call on its own thread, all released at once; each call's result or error."""
    barrier = threading.Barrier(len(calls), timeout=10)
    outcomes: list[Outcome | None] = [None] * len(calls)

    def run(n: int, call: Callable[[], lifecycle.Aggregate]) -> None:
        barrier.wait()
        try:
            outcomes[n] = call()
        except Exception as error:  # collected and asserted on by the test
            outcomes[n] = error

    threads = [threading.Thread(target=run, args=(n, call)) for n, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "a writer hung"
    assert all(outcome is not None for outcome in outcomes)
    return [outcome for outcome in outcomes if outcome is not None]


def the_winner(outcomes: Sequence[Outcome]) -> lifecycle.Aggregate:
    """Exactly one success; every loser told Conflict, or InvalidTransition from the new state."""
    winners = [o for o in outcomes if isinstance(o, lifecycle.Aggregate)]
    losers = [o for o in outcomes if not isinstance(o, lifecycle.Aggregate)]
    assert len(winners) == 1, f"{len(winners)} writers won: {outcomes!r}"
    winner = winners[0]
    unexpected = [e for e in losers if not isinstance(e, lifecycle.Conflict | lifecycle.InvalidTransition)]
    assert not unexpected, f"losers must get Conflict or InvalidTransition, got {unexpected!r}"
    for error in losers:
        assert isinstance(error, lifecycle.Conflict | lifecycle.InvalidTransition)
        assert (error.kind, error.id) == (winner.kind, winner.id)
        if isinstance(error, lifecycle.InvalidTransition):
            # It read after the winner committed, so it saw the winner's state.
            assert error.state == winner.state
    return winner


def assert_history_consistent(engine: lifecycle.Engine, kind: str, id: str, state: str) -> None:
    """seq 1..N without gaps or duplicates, one outbox event per history row, replay agrees."""
    entries = engine.history(kind, id)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    with engine.database.connect() as conn:
        seqs = conn.execute(
            select(history.c.seq).where(history.c.kind == kind, history.c.aggregate_id == id)
        ).scalars().all()
        events = conn.execute(
            select(outbox.c.seq).where(outbox.c.kind == kind, outbox.c.aggregate_id == id)
            .order_by(outbox.c.seq)
        ).scalars().all()
    assert sorted(seqs) == list(range(1, len(entries) + 1))
    assert events == list(range(1, len(entries) + 1))
    aggregate = engine.get(kind, id)
    assert (aggregate.state, aggregate.version) == (state, len(entries))
    assert engine.replay(kind, id) == state
    counts = rows(engine)
    assert counts["outbox"] == counts["history"]


# --- many writers, one trigger, one order ---------------------------------------------------


def test_separate_engines_racing_each_step_of_an_order_apply_it_exactly_once(
    pg_engine: lifecycle.Engine, engines: list[lifecycle.Engine], clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(pg_engine, clock, "awaiting_payment")

    for trigger, actor, payload, state in PATH:
        outcomes = race([
            partial(engine.fire, "order", order.id, trigger, actor, payload) for engine in engines
        ])
        winner = the_winner(outcomes)
        assert winner.state == state
        assert pg_engine.get("order", order.id) == winner

    assert [e.trigger for e in pg_engine.history("order", order.id)] == [
        "place", *(trigger for trigger, *_ in PATH)
    ]
    assert_history_consistent(pg_engine, "order", order.id, "funds_released")


def test_threads_sharing_one_engine_racing_each_step_apply_it_exactly_once(
    pg_engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(pg_engine, clock, "awaiting_payment")

    for trigger, actor, payload, state in PATH:
        outcomes = race(
            [partial(pg_engine.fire, "order", order.id, trigger, actor, payload)] * WRITERS
        )
        assert the_winner(outcomes).state == state

    assert len(pg_engine.history("order", order.id)) == 1 + len(PATH)
    assert_history_consistent(pg_engine, "order", order.id, "funds_released")


@pytest.mark.parametrize(
    ("start", "contenders"),
    [
        pytest.param("awaiting_payment", [
            ("pay", buyer(), {}), ("cancel", buyer(), {}), ("payment_timeout", SYSTEM, {}),
        ], id="pay-or-cancel"),
        pytest.param("paid", [
            ("ship_offline", seller(), SHIP),
            ("book_pickup", seller(), {"checklist": CHECKLIST, "parcel": PARCEL}),
            ("request_cancel", buyer(), {"reason": "found it cheaper"}), ("ship_deadline", SYSTEM, {}),
        ], id="ship-or-cancel"),
        pytest.param("delivered", [
            ("confirm_receipt", buyer(), {}), ("auto_confirm", SYSTEM, {}),
        ], id="confirm-or-auto-confirm"),
    ],
)
def test_different_triggers_racing_on_one_order_let_exactly_one_win(
    pg_engine: lifecycle.Engine,
    engines: list[lifecycle.Engine],
    clock: lifecycle.SimulatedClock,
    start: str,
    contenders: list[tuple[str, lifecycle.Actor, dict[str, Any]]],
) -> None:
    # Contenders are chosen so none is valid from another's destination: a loser that reads
    # after the winner committed must be refused, not applied second.
    order = order_in(pg_engine, clock, start)
    calls = [
        partial(engine.fire, "order", order.id, *contenders[n % len(contenders)])
        for n, engine in enumerate(engines)
    ]

    winner = the_winner(race(calls))

    entries = pg_engine.history("order", order.id)
    last = entries[-1]
    assert last.trigger in {trigger for trigger, _, _ in contenders}
    assert (last.source, last.dest, last.seq) == (start, winner.state, winner.version)
    assert winner.version == order.version + 1
    assert_history_consistent(pg_engine, "order", order.id, winner.state)


def test_racing_creates_of_one_id_make_one_seller_and_tell_the_rest_it_exists(
    pg_engine: lifecycle.Engine, engines: list[lifecycle.Engine]
) -> None:
    outcomes = race([
        partial(engine.create, "seller", seller("s-race"), REGISTRATION, id="s-race")
        for engine in engines
    ])

    created = [o for o in outcomes if isinstance(o, lifecycle.Aggregate)]
    refused = [o for o in outcomes if not isinstance(o, lifecycle.Aggregate)]
    assert len(created) == 1
    assert all(isinstance(e, lifecycle.AlreadyExists) for e in refused), refused
    assert rows(pg_engine)["aggregates"] == 1
    assert_history_consistent(pg_engine, "seller", "s-race", "registered")


# --- expected_version: the caller's read is the precondition --------------------------------


def test_two_writers_with_the_same_expected_version_one_wins_the_other_conflicts(
    pg_engine: lifecycle.Engine, engines: list[lifecycle.Engine], clock: lifecycle.SimulatedClock
) -> None:
    # tracking_exception keeps the state, so only the version can tell the writers apart.
    order = order_in(pg_engine, clock, "shipped")
    first, second = engines[:2]
    rounds = 5

    for n in range(rounds):
        read = first.get("order", order.id)
        outcomes = race([
            partial(engine.fire, "order", order.id, "tracking_exception", SYSTEM,
                    {"kind": "delay", "event_id": f"r{n}-w{m}"}, expected_version=read.version)
            for m, engine in enumerate((first, second))
        ])
        winners = [o for o in outcomes if isinstance(o, lifecycle.Aggregate)]
        losers = [o for o in outcomes if not isinstance(o, lifecycle.Aggregate)]
        assert len(winners) == 1, outcomes
        assert len(losers) == 1
        loser = losers[0]
        assert isinstance(loser, lifecycle.Conflict), repr(loser)
        assert loser.expected_version == read.version
        assert (winners[0].state, winners[0].version) == ("shipped", read.version + 1)

    tracking = pg_engine.tracking(order.id)
    assert len(tracking) == rounds
    assert_history_consistent(pg_engine, "order", order.id, "shipped")


# --- the same idempotency key from many threads ---------------------------------------------


def test_concurrent_deliveries_of_one_keyed_fire_all_get_the_first_result(
    pg_engine: lifecycle.Engine, engines: list[lifecycle.Engine], clock: lifecycle.SimulatedClock
) -> None:
    for n in range(3):
        order = order_in(pg_engine, clock, "awaiting_payment")
        key = f"psp-callback-{n}"

        outcomes = race([
            partial(engine.fire, "order", order.id, "pay", SYSTEM, {"payment_ref": key},
                    idempotency_key=key)
            for engine in engines
        ])

        keyed = [e for e in pg_engine.history("order", order.id) if e.idempotency_key == key]
        assert len(keyed) == 1
        assert_history_consistent(pg_engine, "order", order.id, "paid")
        errors = [o for o in outcomes if not isinstance(o, lifecycle.Aggregate)]
        assert not errors, f"every delivery should get the first result, got {errors!r}"
        assert {(o.state, o.version) for o in outcomes if isinstance(o, lifecycle.Aggregate)} == {
            ("paid", 2)
        }
        assert all(o == outcomes[0] for o in outcomes)


def test_concurrent_deliveries_of_one_keyed_create_make_one_order(
    pg_engine: lifecycle.Engine, engines: list[lifecycle.Engine], clock: lifecycle.SimulatedClock
) -> None:
    order_in(pg_engine, clock, "awaiting_payment")  # the active seller, and one other order
    before = rows(pg_engine)

    outcomes = race([
        partial(engine.create, "order", buyer(), order_payload(), idempotency_key="place-1")
        for engine in engines
    ])

    errors = [o for o in outcomes if not isinstance(o, lifecycle.Aggregate)]
    assert not errors, errors
    ids = {o.id for o in outcomes if isinstance(o, lifecycle.Aggregate)}
    assert len(ids) == 1
    assert all(o == outcomes[0] for o in outcomes)
    after = rows(pg_engine)
    assert after["aggregates"] == before["aggregates"] + 1
    assert after["history"] == before["history"] + 1
    assert after["idempotency"] == before["idempotency"] + 1
    assert_history_consistent(pg_engine, "order", ids.pop(), "awaiting_payment")


# --- the same key, one delivery held at a chosen statement while the other commits ----------
#
# Threads racing find these interleavings only sometimes; holding the late delivery's
# connection just before one statement makes each of them happen every time.

LOAD = "SELECT aggregates.state"  # repository.load: the late delivery reads the committed state
UPDATE = "UPDATE aggregates"  # the late delivery read the old version, writes after the commit
INSERT = "INSERT INTO aggregates"  # the late create inserts the id the first one committed
@contextmanager
def held_before(
    engine: lifecycle.Engine, statement: str, release: threading.Event
) -> Iterator[threading.Event]:
    """Hold ``engine``'s first statement that starts with ``statement`` until ``release``;
    yields an event set once it is being held.

    Held at the DBAPI cursor (psycopg's ``cursor_factory``), below SQLAlchemy, so statements
    the engine runs on the raw cursor are held as well as Core's.
    """
    reached = threading.Event()
    prefix = statement.lower()

    class Holding(psycopg.Cursor):  # type: ignore[type-arg]
        def execute(self, query: Any, params: Any = None, **options: Any) -> Any:
            text = query if isinstance(query, str) else str(query)
            if not reached.is_set() and text.lstrip().lower().startswith(prefix):
                reached.set()
                release.wait(10)
            return super().execute(query, params, **options)

    def driver(dbapi_connection: Any) -> Any:
        return getattr(dbapi_connection, "driver_connection", dbapi_connection)

    def on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        driver(dbapi_connection).cursor_factory = Holding

    def on_checkin(dbapi_connection: Any, record: Any) -> None:
        driver(dbapi_connection).cursor_factory = psycopg.Cursor

    event.listen(engine.database, "checkout", on_checkout)
    event.listen(engine.database, "checkin", on_checkin)
    try:
        yield reached
    finally:
        event.remove(engine.database, "checkout", on_checkout)
        event.remove(engine.database, "checkin", on_checkin)


def late_delivery(
    late: lifecycle.Engine, statement: str, call: Callable[[lifecycle.Engine], lifecycle.Aggregate],
    first: Callable[[], lifecycle.Aggregate],
) -> tuple[lifecycle.Aggregate, Outcome]:
    """Start ``call(late)``, hold it before ``statement``, commit ``first()``, then let it go on."""
    first_committed = threading.Event()
    outcome: list[Outcome] = []

    def run() -> None:
        try:
            outcome.append(call(late))
        except Exception as error:  # asserted on by the test
            outcome.append(error)

    with held_before(late, statement, first_committed) as reached:
        thread = threading.Thread(target=run)
        thread.start()
        try:
            if not reached.wait(10):  # a broken harness must not pass as an expected failure
                pytest.fail(f"the late delivery never ran {statement!r}; it ended with {outcome!r}")
            first_result = first()
        finally:
            first_committed.set()
            thread.join(10)
    if not outcome:
        pytest.fail("the late delivery hung")
    return first_result, outcome[0]


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param(LOAD, id="read-after"),
        pytest.param(UPDATE, id="write-after"),
    ],
)
def test_keyed_fire_delivered_again_during_the_first_commit_gets_the_first_result(
    pg_engine: lifecycle.Engine, engines: list[lifecycle.Engine], clock: lifecycle.SimulatedClock,
    statement: str,
) -> None:
    order = order_in(pg_engine, clock, "awaiting_payment")

    def pay(engine: lifecycle.Engine) -> lifecycle.Aggregate:
        return engine.fire("order", order.id, "pay", SYSTEM, {"payment_ref": "psp-1"},
                           idempotency_key="psp-1")

    first, late = late_delivery(engines[1], statement, pay, partial(pay, engines[0]))

    assert [e.idempotency_key for e in pg_engine.history("order", order.id)] == [None, "psp-1"]
    assert_history_consistent(pg_engine, "order", order.id, "paid")
    assert late == first, f"the late delivery got {late!r}"


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param(LOAD, id="read-after"),
        pytest.param(INSERT, id="insert-after"),
    ],
)
def test_keyed_create_with_chosen_id_delivered_again_during_the_first_commit_gets_the_first_result(
    pg_engine: lifecycle.Engine, engines: list[lifecycle.Engine], clock: lifecycle.SimulatedClock,
    statement: str,
) -> None:
    order_in(pg_engine, clock, "awaiting_payment")  # the active seller

    def place(engine: lifecycle.Engine) -> lifecycle.Aggregate:
        return engine.create("order", buyer(), order_payload(), id="o-chosen", idempotency_key="place-1")

    first, late = late_delivery(engines[1], statement, place, partial(place, engines[0]))

    assert first.id == "o-chosen"
    assert_history_consistent(pg_engine, "order", "o-chosen", "awaiting_payment")
    assert late == first, f"the late delivery got {late!r}"


# --- a transition that loses the race must not have moved money ------------------------------


def test_trigger_that_loses_the_race_moves_no_money_at_the_gateway(
    pg_engine: lifecycle.Engine, pg_url: str, clock: lifecycle.SimulatedClock
) -> None:
    # Two services share one gateway; the timer's ship_deadline (a full refund) read the order
    # just before the seller's ship_offline committed.
    gateway = SandboxGateway(clock=clock, secret=b"test-secret")
    with lifecycle.open(pg_url, clock=clock, payments=gateway) as shop, \
            lifecycle.open(pg_url, clock=clock, payments=gateway) as timer:
        order = order_in(shop, clock, "paid")
        assert gateway.total("capture", order.id) == Decimal(ORDER_TOTAL)

        shipped, late = late_delivery(
            timer, UPDATE,
            lambda engine: engine.fire("order", order.id, "ship_deadline", SYSTEM, {}),
            partial(shop.fire, "order", order.id, "ship_offline", seller(), SHIP),
        )

        assert isinstance(late, lifecycle.Conflict), repr(late)
        assert shop.get("order", order.id) == shipped
        assert shipped.state == "shipped"
        assert_history_consistent(shop, "order", order.id, "shipped")
        refunds = [entry for entry in gateway.ledger if entry.operation == "refund"]
        assert refunds == [], f"the losing ship_deadline refunded {refunds!r}"


def test_a_writer_whose_connection_the_server_dropped_connects_afresh(
    pg_engine: lifecycle.Engine, pg_url: str, clock: lifecycle.SimulatedClock
) -> None:
    """A server restart or an idle-connection reaper ends the engine's kept connection: the
    trigger that finds it dead fails as `Unavailable` and writes nothing; the next one works on
    a new one."""
    order = order_in(pg_engine, clock, "awaiting_payment")
    kept = pg_engine.store.writer().driver
    assert kept is not None
    conninfo = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (kept.info.backend_pid,))

    with pytest.raises(lifecycle.Unavailable) as lost:
        pg_engine.fire("order", order.id, "pay", buyer(), {})
    assert isinstance(lost.value.__cause__, psycopg.OperationalError)
    assert pg_engine.get("order", order.id).state == "awaiting_payment"

    paid = pg_engine.fire("order", order.id, "pay", buyer(), {})
    assert (paid.state, paid.version) == ("paid", 2)
    assert [e.trigger for e in pg_engine.history("order", order.id)] == ["place", "pay"]
