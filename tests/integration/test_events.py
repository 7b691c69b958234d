"""Events out of the database (issue #17, docs/events.md): the event body's schema, the pull API
(`Engine.events`, durable subscriptions) and retention's respect for what readers have not
acknowledged — on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, update

import lifecycle
from lifecycle.store.tables import outbox
from tests.builders import active_seller, buyer, order_payload


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def shop(request: pytest.FixtureRequest) -> lifecycle.Engine:
    engine: lifecycle.Engine = request.getfixturevalue("engine" if request.param == "sqlite"
                                                       else "pg_engine")
    active_seller(engine)
    return engine


def placed(engine: lifecycle.Engine, n: int = 1) -> list[str]:
    return [engine.create("order", buyer(), order_payload()).id for _ in range(n)]


def all_events(engine: lifecycle.Engine, page: int = 7) -> list[lifecycle.Event]:
    seen: list[lifecycle.Event] = []
    while batch := engine.events(after=seen[-1].position if seen else 0, limit=page):
        seen.extend(batch)
    return seen


def test_every_event_has_the_documented_body_and_subscribers_get_the_same(
        shop: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    heard: list[dict[str, object]] = []
    shop.subscribe("order.*", heard.append)
    (id,) = placed(shop)
    shop.fire("order", id, "pay", buyer())

    events = [e for e in all_events(shop) if e.kind == "order"]
    assert [e.body for e in events] == heard
    paid = events[-1].body
    assert set(paid) == {"id", "version", "name", "kind", "aggregate_id", "seq", "occurred_at",
                         "actor", "trigger", "source", "dest", "payload"}
    assert (paid["version"], paid["name"], paid["kind"], paid["aggregate_id"], paid["seq"]) == \
        (lifecycle.EVENT_SCHEMA_VERSION, "order.paid", "order", id, 2)
    assert paid["actor"] == {"role": "buyer", "id": "b-1"}
    assert (paid["trigger"], paid["source"], paid["dest"]) == ("pay", "awaiting_payment", "paid")
    assert datetime.fromisoformat(str(paid["occurred_at"])) == clock.now()
    assert str(uuid.UUID(str(paid["id"]))) == paid["id"]
    assert len({e.id for e in events}) == len(events)


def test_events_page_by_position_without_gaps_and_each_aggregate_in_seq_order(
        shop: lifecycle.Engine) -> None:
    ids = placed(shop, 4)
    for id in ids:
        shop.fire("order", id, "pay", buyer())
    shop.fire("order", ids[0], "request_cancel", buyer(), {"reason": "changed my mind"})

    events = all_events(shop, page=3)
    assert [e.position for e in events] == list(range(1, len(events) + 1))
    for id in ids:
        assert [e.seq for e in events if e.aggregate_id == id] == \
            sorted(e.seq for e in events if e.aggregate_id == id)
    assert shop.events(after=events[-1].position) == []
    assert [e.position for e in shop.events(after=2, limit=2)] == [3, 4]


@pytest.mark.parametrize(("after", "limit"), [(-1, 10), ("3", 10), (0, 0), (0, 10_001), (0, True)])
def test_a_bad_cursor_or_limit_is_refused(shop: lifecycle.Engine, after: object,
                                          limit: object) -> None:
    with pytest.raises(lifecycle.InvalidPayload):
        shop.events(after=after, limit=limit)  # type: ignore[arg-type]


@pytest.mark.pg
def test_an_event_committed_after_a_later_one_is_not_skipped(pg_engine: lifecycle.Engine) -> None:
    """PostgreSQL gives the slow transaction the lower row id; a reader that paged by id would
    have passed it. Positions follow commits instead."""
    active_seller(pg_engine)
    slow_id, fast_id = placed(pg_engine, 2)
    start = all_events(pg_engine)[-1].position
    written, release = threading.Event(), threading.Event()

    def slow() -> None:
        with pg_engine.batch():
            pg_engine.fire("order", slow_id, "pay", buyer())
            written.set()
            release.wait(10)

    thread = threading.Thread(target=slow)
    thread.start()
    assert written.wait(10)
    pg_engine.fire("order", fast_id, "pay", buyer())
    first = pg_engine.events(after=start)
    release.set()
    thread.join()
    second = pg_engine.events(after=first[-1].position)

    assert [e.aggregate_id for e in first] == [fast_id]
    assert [e.aggregate_id for e in second] == [slow_id]
    with pg_engine.database.connect() as conn:  # the row ids are the other way round
        ids = dict(conn.execute(select(outbox.c.aggregate_id, outbox.c.id)
                                .where(outbox.c.event == "order.paid")).all())
    assert ids[slow_id] < ids[fast_id]


def test_a_durable_subscription_goes_on_where_it_acknowledged_from_any_process(
        shop: lifecycle.Engine) -> None:
    placed(shop, 3)
    billing = shop.subscription("billing")
    first = billing.poll(limit=2)
    assert billing.poll(limit=2) == first  # at least once: the same until acknowledged
    billing.ack(first[-1].position)

    url = shop.database.url.render_as_string(hide_password=False)
    with lifecycle.open(url, clock=shop.clock) as restarted:
        again = restarted.subscription("billing")
        assert again.cursor == first[-1].position
        rest = again.poll(limit=100)
    assert [e.position for e in rest] == list(range(first[-1].position + 1, rest[-1].position + 1))
    assert {e.id for e in first}.isdisjoint({e.id for e in rest})


def test_an_ack_never_moves_back_and_cannot_pass_the_last_event(shop: lifecycle.Engine) -> None:
    placed(shop, 2)
    sub = shop.subscription("audit")
    events = sub.poll()
    sub.ack(events[-1].position)
    sub.ack(events[0].position)  # a late ack from a restarted consumer
    assert sub.cursor == events[-1].position
    with pytest.raises(lifecycle.InvalidPayload, match="past the last event"):
        sub.ack(events[-1].position + 1)
    assert sub.cursor == events[-1].position
    sub.seek(0)  # replay, knowingly
    assert sub.poll() == events
    with pytest.raises(lifecycle.InvalidPayload):
        shop.subscription("has space")


def _old(engine: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    clock.advance(engine.policy.outbox_retention + timedelta(seconds=1))


def _count(engine: lifecycle.Engine) -> int:
    with engine.database.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(outbox)).scalar_one())


def test_retention_keeps_what_a_subscription_has_not_acknowledged(
        shop: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    placed(shop, 2)
    sub = shop.subscription("billing")
    events = sub.poll()
    total = _count(shop)
    _old(shop, clock)
    assert shop.prune()["published_events"] == 0  # not acknowledged: held

    sub.ack(events[1].position)
    assert shop.prune()["published_events"] == 2
    assert _count(shop) == total - 2
    assert sub.poll() == events[2:]
    with pytest.raises(lifecycle.EventsExpired) as expired:
        shop.events(after=1)
    assert expired.value.first == events[2].position


def test_with_a_relay_an_unpublished_event_stays_whatever_the_subscriptions_acknowledged(
        shop: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    placed(shop, 1)
    shop.relay_seen("relay-1", "nats://broker:4222")
    sub = shop.subscription("billing")
    sub.ack(sub.poll()[-1].position)
    _old(shop, clock)
    assert shop.prune()["published_events"] == 0


def test_a_database_with_neither_relay_nor_subscription_keeps_every_event(
        shop: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    placed(shop, 2)
    total = _count(shop)
    clock.advance(timedelta(days=400))
    assert shop.prune()["published_events"] == 0
    assert _count(shop) == total


def test_a_new_subscription_starts_at_the_oldest_event_kept(
        shop: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    placed(shop, 1)
    with shop.database.begin() as conn:
        conn.execute(update(outbox).values(published_at=clock.now()))
    shop.events()  # positions given
    _old(shop, clock)
    assert shop.prune()["published_events"] > 0
    (id,) = placed(shop, 1)
    late = shop.subscription("late")
    assert {e.aggregate_id for e in late.poll()} == {id}


def test_relay_status_shows_the_backlog_its_age_relays_and_subscriptions(
        shop: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    placed(shop, 1)
    written = clock.now()
    clock.advance(timedelta(minutes=5))
    shop.subscription("billing")
    status = shop.relay_status()
    assert status.backlog == status.last_position > 0
    assert status.oldest_unpublished_at is not None
    assert status.oldest_unpublished_at <= written
    assert status.lag is not None
    assert status.lag >= timedelta(minutes=5)
    assert [(s.name, s.position, s.behind) for s in status.subscriptions] == \
        [("billing", 0, status.last_position)]

    with shop.claim_unpublished(1000, relay="r-1", target="nats://b:4222") as claim:
        claim.published(claim.events)
    status = shop.relay_status()
    assert (status.backlog, status.oldest_unpublished_at, status.lag) == (0, None, None)
    assert [(r.name, r.target, r.published) for r in status.relays] == \
        [("r-1", "nats://b:4222", status.last_position)]


def test_a_claim_that_raises_marks_nothing(shop: lifecycle.Engine) -> None:
    placed(shop, 2)
    backlog = shop.relay_status().backlog

    def publish_and_die() -> None:
        with shop.claim_unpublished(10, relay="r", target="t") as claim:
            claim.published(claim.events)
            raise RuntimeError("the relay died")

    with pytest.raises(RuntimeError):
        publish_and_die()
    assert shop.relay_status().backlog == backlog


@pytest.fixture
def two_pg(pg_url: str, pg_engine: lifecycle.Engine) -> Iterator[lifecycle.Engine]:
    with lifecycle.open(pg_url, clock=pg_engine.clock) as other:
        yield other


@pytest.mark.pg
def test_two_claims_at_once_share_the_work_and_never_split_an_aggregate(
        pg_engine: lifecycle.Engine, two_pg: lifecycle.Engine) -> None:
    active_seller(pg_engine)
    ids = placed(pg_engine, 6)
    for id in ids:
        pg_engine.fire("order", id, "pay", buyer())  # each order: placed (seq 1), paid (seq 2)
    backlog = pg_engine.relay_status().backlog

    # The first claim holds the oldest 4 rows: the seller's events and the first orders' placing.
    with pg_engine.claim_unpublished(4, relay="a", target="t") as first:
        with two_pg.claim_unpublished(1000, relay="b", target="t") as second:
            held = {(e.body["kind"], e.body["aggregate_id"]) for e in first.events}
            taken = {(e.body["kind"], e.body["aggregate_id"]) for e in second.events}
            assert {e.row_id for e in first.events}.isdisjoint({e.row_id for e in second.events})
            assert held.isdisjoint(taken)  # no later event of an aggregate the first claim holds
            second.published(second.events)
        first.published(first.events)

    rest = pg_engine.relay_status().backlog
    assert rest == backlog - len(first.events) - len(second.events) > 0
    with pg_engine.claim_unpublished(1000, relay="a", target="t") as third:
        assert {(e.body["kind"], e.body["aggregate_id"]) for e in third.events} <= held
        third.published(third.events)
    assert pg_engine.relay_status().backlog == 0


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def test_events_written_before_the_relay_revision_are_upgraded_to_the_schema(
        request: pytest.FixtureRequest, backend: str, clock: lifecycle.SimulatedClock) -> None:
    from alembic import command
    from sqlalchemy import inspect, text

    from lifecycle.store.database import _alembic_config, connect

    url = request.getfixturevalue("db_url" if backend == "sqlite" else "pg_url")
    database = connect(url)
    try:
        with database.begin() as conn:
            if backend == "pg":  # the session's database is at head: down to 0006 again
                command.downgrade(_alembic_config(database, conn), "0006")
                conn.execute(text("TRUNCATE outbox"))
            else:
                command.upgrade(_alembic_config(database, conn), "0006")
            old = {"event": "order.paid", "kind": "order", "id": "o-1", "seq": 2,
                   "trigger": "pay", "source": "awaiting_payment", "dest": "paid",
                   "actor": "buyer:b-1", "payload": {}, "at": "2026-01-01T00:00:00+00:00"}
            conn.execute(outbox.insert().values(event="order.paid", kind="order", aggregate_id="o-1",
                                                seq=2, body=old, created_at=clock.now()))
            assert "position" not in {c["name"] for c in inspect(conn).get_columns("outbox")}
            command.upgrade(_alembic_config(database, conn), "head")
    finally:
        database.dispose()

    with lifecycle.open(url, clock=clock) as engine:
        (event,) = engine.events()
    assert event.body == {"id": event.id, "version": 1, "name": "order.paid", "kind": "order",
                          "aggregate_id": "o-1", "seq": 2,
                          "occurred_at": "2026-01-01T00:00:00+00:00",
                          "actor": {"role": "buyer", "id": "b-1"}, "trigger": "pay",
                          "source": "awaiting_payment", "dest": "paid", "payload": {}}
    assert str(uuid.UUID(event.id)) == event.id
