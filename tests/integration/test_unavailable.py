"""A database out of reach is `lifecycle.Unavailable` from every public call (never a raw
SQLAlchemy or driver exception), names the database without its password, keeps the driver's
error as its cause, writes nothing, and the same call works once the database is back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy.exc
from click.testing import CliRunner
from sqlalchemy.engine import make_url

import lifecycle
from lifecycle.adapters.sandbox import SandboxCarrier, SandboxGateway
from lifecycle.adapters.webhooks import SignedMessage
from lifecycle.cli import cli
from tests.builders import buyer, order_in, order_payload, rows, seller_in
from tests.outages import PASSWORD, database_down, named_url, new_name, terminate

SECRET = b"test-secret"
DRIVER_ERRORS = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError,
                 psycopg.OperationalError, psycopg.InterfaceError)


def assert_unavailable(error: lifecycle.Unavailable, url: str) -> None:
    """Names the database as its URL with the password hidden; the driver's error is the cause."""
    hidden = make_url(url).render_as_string(hide_password=True)
    assert error.database == hidden
    assert hidden in str(error)
    assert PASSWORD not in str(error)
    assert "\n" not in str(error)
    assert isinstance(error, lifecycle.LifecycleError)
    assert error.exit_code == 3
    assert isinstance(error.__cause__, DRIVER_ERRORS), repr(error.__cause__)


# --- PostgreSQL: every public call, through an outage ------------------------------------------


@dataclass
class World:
    """What the calls act on: an unpaid order with a due payment deadline, a shipped one with
    carrier scans waiting, a capture callback for the unpaid one."""

    engine: lifecycle.Engine
    unpaid: lifecycle.Aggregate
    shipped: lifecycle.Aggregate
    callback: SignedMessage
    push: SignedMessage


@dataclass(frozen=True)
class Call:
    name: str
    run: Callable[[World], Any]
    worked: Callable[[World, Any], bool]


CALLS = [
    Call("create", lambda w: w.engine.create("order", buyer("b-2"), order_payload()),
         lambda w, r: r.state == "awaiting_payment"),
    Call("fire", lambda w: w.engine.fire("order", w.unpaid.id, "pay", buyer()),
         lambda w, r: r.state == "paid"),
    Call("get", lambda w: w.engine.get("order", w.unpaid.id),
         lambda w, r: (r.state, r.version) == ("awaiting_payment", 1)),
    Call("history", lambda w: w.engine.history("order", w.unpaid.id),
         lambda w, r: [e.trigger for e in r] == ["place"]),
    Call("replay", lambda w: w.engine.replay("order", w.shipped.id), lambda w, r: r == "shipped"),
    Call("allowed", lambda w: w.engine.allowed("order", w.unpaid.id, buyer()),
         lambda w, r: "pay" in r),
    Call("find", lambda w: w.engine.find("order", state="awaiting_payment"),
         lambda w, r: [a.id for a in r] == [w.unpaid.id]),
    Call("balances", lambda w: w.engine.balances("order", w.shipped.id),
         lambda w, r: r["USD"]["escrow"] == Decimal("52.48")),
    Call("postings", lambda w: w.engine.postings("order", w.shipped.id),
         lambda w, r: sum(amount for *_, amount, _currency in r) == 0 and len(r) >= 2),
    Call("check", lambda w: w.engine.check(), lambda w, r: r == []),
    Call("deadlines", lambda w: w.engine.deadlines(due=True),
         lambda w, r: [(d.aggregate_id, d.trigger) for d in r] == [(w.unpaid.id, "payment_timeout")]),
    Call("run_due_timers", lambda w: w.engine.run_due_timers(),
         lambda w, r: r == 1 and w.engine.get("order", w.unpaid.id).state == "cancelled"),
    Call("ingest_payment_callback",
         lambda w: w.engine.ingest_payment_callback("sandbox", w.callback.body, w.callback.headers),
         lambda w, r: r.state == "paid"),
    Call("ingest_tracking", lambda w: w.engine.ingest_tracking("dhl", w.push.body, w.push.headers),
         lambda w, r: [o.id for o in r] == [w.shipped.id]),
    Call("track", lambda w: w.engine.track(w.shipped.id),
         lambda w, r: r.id == w.shipped.id and len(w.engine.tracking(r.id)) > 0),
]


@pytest.fixture
def app_name() -> str:
    return new_name("h2-unavailable")


@pytest.fixture
def world(pg_engine: lifecycle.Engine, pg_url: str, clock: lifecycle.SimulatedClock,
          app_name: str) -> Iterator[World]:
    gateway = SandboxGateway(clock=clock, secret=SECRET)
    dhl = SandboxCarrier("dhl", clock=clock, secret=SECRET)
    url = named_url(pg_url, app_name, password=PASSWORD)
    with lifecycle.open(url, clock=clock, payments=gateway, carriers={"dhl": dhl}) as engine:
        seller_in(engine, "active")
        unpaid = engine.create("order", buyer(), order_payload())
        clock.advance(timedelta(days=1))  # its payment_timeout is due
        shipped = order_in(engine, clock, "shipped")
        dhl.register_shipment(shipped.data["waybill"], origin="CN", destination="PT")
        clock.advance(timedelta(hours=12))
        push = dhl.take_pushes()[0]
        # Taken last: a delivery is signed when taken, and must be within the tolerance.
        callback = _capture_callback(gateway, unpaid.id)
        yield World(engine, unpaid, shipped, callback, push)


def _capture_callback(gateway: SandboxGateway, order_id: str) -> SignedMessage:
    from lifecycle.adapters.ports import Money

    gateway.take_callbacks()  # the ones of captures the engine made
    gateway.capture(order_id, Money(Decimal("52.48"), "USD"), key=f"hosted-{order_id}")
    (callback,) = gateway.take_callbacks()
    return callback


@pytest.mark.parametrize("call", CALLS, ids=[c.name for c in CALLS])
def test_every_public_call_is_unavailable_while_the_database_is_down_then_works(
    world: World, pg_engine: lifecycle.Engine, pg_url: str, app_name: str, call: Call
) -> None:
    url = world.engine.database.url.render_as_string(hide_password=False)
    before = rows(pg_engine)  # pg_engine's own connections are not the ones taken down

    with database_down(pg_url, app_name), pytest.raises(lifecycle.Unavailable) as down:
        call.run(world)

    assert_unavailable(down.value, url)
    assert rows(pg_engine) == before
    result = call.run(world)
    assert call.worked(world, result), result


FIRST_CALLS = {
    "fire": lambda w: w.engine.fire("order", w.unpaid.id, "cancel", buyer()),
    "get": lambda w: w.engine.get("order", w.unpaid.id),
    "history": lambda w: w.engine.history("order", w.unpaid.id),
}


@pytest.mark.parametrize("first", FIRST_CALLS)
def test_after_the_kept_connections_were_dropped_one_call_fails_and_the_next_ones_connect_afresh(
    world: World, pg_engine: lifecycle.Engine, pg_url: str, app_name: str, first: str
) -> None:
    """No refusal of new connections this time: only the kept ones are cut (a server restart,
    an idle-connection reaper). The first call to find out replaces all of them."""
    engine = world.engine
    url = engine.database.url.render_as_string(hide_password=False)
    assert terminate(pg_url, app_name) >= 2  # the writing connection and the pool's reader

    with pytest.raises(lifecycle.Unavailable) as down:
        FIRST_CALLS[first](world)

    assert_unavailable(down.value, url)
    assert pg_engine.get("order", world.unpaid.id).state == "awaiting_payment"
    assert engine.get("order", world.unpaid.id).state == "awaiting_payment"
    paid = engine.fire("order", world.unpaid.id, "pay", buyer())
    assert (paid.state, paid.version) == ("paid", 2)
    assert [e.trigger for e in engine.history("order", world.unpaid.id)] == ["place", "pay"]


def test_contention_stays_a_conflict_not_unavailable(
    world: World, pg_url: str, app_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PostgreSQL's own recorder: its `update_aggregate` (queued after a claim) is the one run.
    from lifecycle.store.recorder import PostgresRecorder

    def serialization_failure(*args: object, **kwargs: object) -> None:
        raise psycopg.errors.SerializationFailure("could not serialize access due to concurrent update")

    monkeypatch.setattr(PostgresRecorder, "update_aggregate", serialization_failure)
    with pytest.raises(lifecycle.Conflict) as conflict:
        world.engine.fire("order", world.unpaid.id, "pay", buyer())

    assert not isinstance(conflict.value, lifecycle.Unavailable)
    monkeypatch.undo()
    assert world.engine.fire("order", world.unpaid.id, "pay", buyer()).state == "paid"


def test_the_command_line_says_unavailable_in_one_line_with_exit_code_3(
    pg_engine: lifecycle.Engine, pg_url: str, app_name: str
) -> None:
    url = named_url(pg_url, app_name, password=PASSWORD)

    with database_down(pg_url, app_name):
        result = CliRunner().invoke(cli, ["--db", url, "order", "list"])

    assert result.exit_code == 3, result.output
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    hidden = make_url(url).render_as_string(hide_password=True)
    assert line.startswith(f"error: database {hidden} is unavailable (")
    assert line.endswith("try again when it is back")
    assert PASSWORD not in line
    assert "Traceback" not in result.stderr


# --- SQLite: the database file's directory goes away ------------------------------------------


def test_sqlite_whose_directory_went_away_is_unavailable_until_it_is_back(
    tmp_path: Path, clock: lifecycle.SimulatedClock
) -> None:
    """A connection SQLite already has keeps the file open, so a call on a new connection (a
    new thread, the pool's readers) is what finds the file gone."""
    home, away = tmp_path / "data", tmp_path / "moved"
    home.mkdir()
    url = f"sqlite:///{home}/lifecycle.db"
    with lifecycle.open(url, clock=clock) as engine:
        seller_in(engine, "active")
        order = engine.create("order", buyer(), order_payload())
        home.rename(away)
        with ThreadPoolExecutor(1) as elsewhere:  # a thread that has no connection yet
            try:
                for call in (lambda: engine.fire("order", order.id, "pay", buyer()),
                             lambda: engine.get("order", order.id),
                             lambda: engine.history("order", order.id),
                             lambda: engine.deadlines(),
                             lambda: engine.run_due_timers()):
                    with pytest.raises(lifecycle.Unavailable) as down:
                        elsewhere.submit(call).result()
                    assert_unavailable(down.value, url)
                    assert "unable to open database file" in down.value.reason
            finally:
                away.rename(home)

            paid = elsewhere.submit(lambda: engine.fire("order", order.id, "pay", buyer())).result()
            assert (paid.state, paid.version) == ("paid", 2)
            assert [e.trigger for e in engine.history("order", order.id)] == ["place", "pay"]


def test_opening_a_sqlite_file_in_a_missing_directory_names_the_file_and_the_folder(
    tmp_path: Path,
) -> None:
    # Issue #19: not `Unavailable` ("try again when it is back"), which a missing folder is not.
    path = tmp_path / "nowhere" / "lifecycle.db"
    url = f"sqlite:///{path}"

    with pytest.raises(lifecycle.DatabaseMissing) as missing:
        lifecycle.open(url)

    assert str(missing.value) == (f"cannot create the database file {path}: the folder "
                                  f"{path.parent} does not exist")
    result = CliRunner().invoke(cli, ["--db", url, "order", "list"])
    assert result.exit_code == 2, result.output
    assert result.stderr == (f"error: no database file {path}: check --db (or LIFECYCLE_DB) for "
                             "a typo, or create it with `lifecycle db init`\n")
    assert not (tmp_path / "nowhere").exists()


def test_unavailable_is_public_and_retryable() -> None:
    error = lifecycle.Unavailable("postgresql+psycopg://app:***@db:5432/shop", "connection refused")

    assert "Unavailable" in lifecycle.__all__
    assert str(error) == ("database postgresql+psycopg://app:***@db:5432/shop is unavailable "
                          "(connection refused); try again when it is back")
    assert (error.database, error.reason, error.exit_code) == (
        "postgresql+psycopg://app:***@db:5432/shop", "connection refused", 3)
