"""How fast is a persisted ``engine.fire`` against the peers a team would pick instead (issue #15).

    .venv/bin/pip install -e '.[peers]'      # eventsourcing, django-fsm-2, django-fsm-log, Django
    .venv/bin/python -m benchmarks.peers [--n ORDERS]

Every contender walks ``--n`` orders of its own (plus a warm-up), created beforehand and not timed,
through the order happy path after ``place`` (pay, ship_offline, tracking_in_transit,
tracking_delivered, confirm_receipt, release_funds): six transitions an order, one transaction
each, each loading the order from its database first. All three are SQLite files in WAL with
``synchronous=NORMAL`` and a checkpoint every 10,000 WAL pages (the engine's own settings, given to
the peers too), in one process, warmed up, then timed in interleaved rounds as in
``benchmarks.fire``. "rows each" counts rows inserted, updated or deleted per transition.

lifecycle      ``Engine.fire`` through ``lifecycle.open`` (structlog at WARNING), as in
               ``benchmarks.fire``. Per trigger it validates the actor's role, ownership, the
               payload (pydantic) and guards, moves the ``transitions`` machine, calls the sandbox
               adapters (payment capture, payout), and writes in one BEGIN IMMEDIATE..COMMIT: the
               aggregate row (state, version-checked, its JSON data rewritten), a history row
               (actor, payload), an outbox row (the event for subscribers and the relay), the
               order's deadlines (pending ones deleted, the next state's scheduled), ledger entries
               (pay, release_funds) and a waybill lookup (ship_offline): about 6 rows a transition.
eventsourcing  ``eventsourcing`` (9.x) ``Application`` on its SQLite recorder (WAL by its own
               default; ``synchronous=NORMAL`` and the checkpoint setting added to each connection it
               opens, which it has no setting for). An ``Aggregate`` per order; a command method
               checks the order's state against the same arrows and triggers one ``Moved`` event
               (trigger, source, dest, actor, payload), then ``app.save(order)``: one INSERT into
               ``stored_events``, 1 row a transition. Loading is ``app.repository.get(id)``: the
               order's events read back and replayed (2 to 7; no snapshots, no cache). No
               validation beyond the state check, no outbox (its event table is the notification
               log), no deadlines, no ledger, no adapters.
django-fsm-2   Django (in-script settings, no project files) with a model of ``FSMField`` state and a
               JSON ``data`` field, ``ConcurrentTransitionMixin`` (the UPDATE is filtered on the state
               it was loaded in), one ``@transition`` method per trigger with the same arrows, and
               django-fsm-log's ``StateLog`` (its default ``SimpleBackend``: one row per transition,
               source, target, transition name; no actor, which needs a user row). Per trigger, in
               its own ``transaction.atomic()`` (``transaction_mode`` IMMEDIATE): ``objects.get``,
               the transition method (merges the payload into ``data``), ``save()``: an UPDATE of the
               order row and an INSERT of the log row, 2 rows a transition. No payload validation,
               no outbox, no deadlines, no ledger, no adapters.

The targets (issue #15): lifecycle >= 2x eventsourcing's transitions/s and >= 5x django-fsm-2's.
The peers write a third or less of lifecycle's rows and check less: the ratios say what
lifecycle's extra guarantees cost, or do not, against them.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from importlib.metadata import version
from typing import Any
from uuid import UUID

import lifecycle
from benchmarks.fire import (
    HAPPY_PATH,
    ORDER_ARROWS,
    ROUNDS,
    TRIGGERS,
    WARMUP,
    Contender,
    FireAll,
    engine_changes,
    engine_loop,
    place,
    race,
    ratios,
    table,
)
from lifecycle.logs import configure
from lifecycle.store.database import WAL_AUTOCHECKPOINT_PAGES
from tests.builders import order_payload

PEERS = ("eventsourcing", "django-fsm-2", "django-fsm-log", "django")
# The arrows of the happy path's triggers, as each peer declares them: trigger -> (sources, dest).
ARROWS: dict[str, tuple[tuple[str, ...], str]] = {
    str(a["trigger"]): (tuple(a["source"] or ()), str(a["dest"]))
    for a in ORDER_ARROWS if a["trigger"] in TRIGGERS
}
PRAGMAS = ("PRAGMA synchronous=NORMAL", f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
INITIAL, FINAL = "awaiting_payment", "funds_released"

Changes = Callable[[], int | None]


def halves(ids: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    return list(ids[:WARMUP]), list(ids[WARMUP:])


# --- lifecycle ----------------------------------------------------------------------------


@contextmanager
def lifecycle_contender(folder: str, n: int) -> Iterator[tuple[FireAll, list[str], list[str], Changes]]:
    engine = lifecycle.open(f"sqlite:///{os.path.join(folder, 'lifecycle.db')}",
                            clock=lifecycle.SimulatedClock())
    try:
        warm, timed = halves(place(engine, WARMUP + n))
        yield engine_loop(engine), warm, timed, engine_changes(engine)
        assert engine.get("order", timed[-1]).state == FINAL
    finally:
        engine.close()


# --- eventsourcing ------------------------------------------------------------------------


def sqlite_rows(path: str, table: str) -> Changes:
    """Rows in ``table``: what an append-only store has changed (it never updates or deletes)."""

    def changes() -> int:
        conn = sqlite3.connect(path)
        try:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        finally:
            conn.close()

    return changes


@contextmanager
def eventsourcing_contender(folder: str, n: int) -> Iterator[tuple[FireAll, list[UUID], list[UUID], Changes]]:
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event
    from eventsourcing.sqlite import SQLiteConnectionPool

    # eventsourcing's pool sets WAL itself and has no setting for synchronous: add it (and the
    # checkpoint interval) to every connection the pool creates.
    create = SQLiteConnectionPool._create_connection

    def create_connection(self: Any) -> Any:
        connection = create(self)
        for pragma in PRAGMAS:
            connection._sqlite_conn.execute(pragma)
        return connection

    class Order(Aggregate):
        @event("Placed")
        def __init__(self, seller_id: str, buyer_id: str, data: dict[str, Any]) -> None:
            self.seller_id, self.buyer_id, self.data = seller_id, buyer_id, dict(data)
            self.state = INITIAL

        def fire(self, trigger: str, actor: str, payload: dict[str, Any]) -> None:
            sources, dest = ARROWS[trigger]
            if self.state not in sources:
                raise RuntimeError(f"{trigger} refused in {self.state}")
            self.moved(trigger, self.state, dest, actor, payload)

        @event("Moved")
        def moved(self, trigger: str, source: str, dest: str, actor: str, payload: dict[str, Any]) -> None:
            self.state = dest
            self.data.update(payload)

    class Orders(Application[UUID]):
        def place(self, seller_id: str, buyer_id: str, data: dict[str, Any]) -> UUID:
            order = Order(seller_id, buyer_id, data)
            self.save(order)
            return order.id

        def fire(self, id: UUID, trigger: str, actor: str, payload: dict[str, Any]) -> None:
            order: Order = self.repository.get(id)
            order.fire(trigger, actor, payload)
            self.save(order)

        def state(self, id: UUID) -> str:
            order: Order = self.repository.get(id)
            return order.state

    path = os.path.join(folder, "eventsourcing.db")
    SQLiteConnectionPool._create_connection = create_connection  # type: ignore[method-assign]
    app = Orders(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path})
    try:
        data = order_payload()
        warm, timed = halves([app.place("s-1", "b-1", data) for _ in range(WARMUP + n)])
        with app.factory.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
            cursor.execute("PRAGMA journal_mode")
            journal = cursor.fetchone()[0]
            cursor.execute("PRAGMA synchronous")
            synchronous = cursor.fetchone()[0]
        assert (journal.lower(), synchronous) == ("wal", 1), (journal, synchronous)
        fire = app.fire

        def fire_all(ids: Sequence[UUID]) -> None:
            for id in ids:
                for trigger, actor, payload in HAPPY_PATH:
                    fire(id, trigger, str(actor), payload)

        yield fire_all, warm, timed, sqlite_rows(path, "stored_events")
        assert app.state(timed[-1]) == FINAL
    finally:
        app.close()
        SQLiteConnectionPool._create_connection = create  # type: ignore[method-assign]


# --- django-fsm-2 with django-fsm-log ------------------------------------------------------


@contextmanager
def django_contender(folder: str, n: int) -> Iterator[tuple[FireAll, list[int], list[int], Changes]]:
    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_fsm_log"],
        DATABASES={"default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.join(folder, "django.db"),
            "OPTIONS": {"init_command": "; ".join(("PRAGMA journal_mode=WAL", *PRAGMAS)),
                        "transaction_mode": "IMMEDIATE"},
        }},
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    django.setup()
    from django.core.management import call_command
    from django.db import connection, models, transaction
    from django_fsm import ConcurrentTransitionMixin, FSMField, transition

    def method(trigger: str) -> Callable[..., None]:
        def move(self: Any, payload: dict[str, Any]) -> None:
            self.data = {**self.data, **payload}

        move.__name__ = trigger
        sources, dest = ARROWS[trigger]
        return transition(field="state", source=list(sources), target=dest)(move)  # type: ignore[no-any-return]

    attrs: dict[str, Any] = {
        "__module__": __name__,
        "Meta": type("Meta", (), {"app_label": "peers"}),
        "state": FSMField(default=INITIAL),
        "seller_id": models.CharField(max_length=64),
        "buyer_id": models.CharField(max_length=64),
        "data": models.JSONField(default=dict),
        **{trigger: method(trigger) for trigger in TRIGGERS},
    }
    order_model: Any = type("PeerOrder", (ConcurrentTransitionMixin, models.Model), attrs)

    call_command("migrate", verbosity=0)
    with connection.schema_editor() as editor:
        editor.create_model(order_model)
    cursor = connection.cursor()
    journal = cursor.execute("PRAGMA journal_mode").fetchone()[0]
    synchronous = cursor.execute("PRAGMA synchronous").fetchone()[0]
    assert (journal.lower(), synchronous) == ("wal", 1), (journal, synchronous)

    data = order_payload()
    warm, timed = halves([order_model.objects.create(seller_id="s-1", buyer_id="b-1", data=data).pk
                          for _ in range(WARMUP + n)])
    get, atomic = order_model.objects.get, transaction.atomic

    def fire_all(ids: Sequence[int]) -> None:
        for id in ids:
            for trigger, _, payload in HAPPY_PATH:
                with atomic():
                    order = get(pk=id)
                    getattr(order, trigger)(payload)
                    order.save()

    try:
        yield fire_all, warm, timed, lambda: int(connection.connection.total_changes)
        assert get(pk=timed[-1]).state == FINAL
    finally:
        connection.close()


# --- the run --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers",
                                     description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--n", type=int, default=300, help="orders per contender (default 300)")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    try:
        peers = ", ".join(f"{name} {version(name)}" for name in PEERS)
    except ImportError as missing:
        raise SystemExit(f"the peers are an optional extra: pip install -e '.[peers]' ({missing})") from None
    configure("warning")

    print(f"lifecycle {lifecycle.__version__}, peer benchmark: {args.n} orders x {len(TRIGGERS)} "
          f"triggers ({', '.join(TRIGGERS)}), {ROUNDS} interleaved rounds")
    print(f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {peers}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lifecycle-peers-") as folder, ExitStack() as stack:
        built: list[tuple[str, tuple[FireAll, Sequence[Any], Sequence[Any], Changes]]] = [
            ("lifecycle: engine.fire", stack.enter_context(lifecycle_contender(folder, args.n))),
            ("eventsourcing: Aggregate + save", stack.enter_context(eventsourcing_contender(folder, args.n))),
            ("django-fsm-2 + fsm-log, atomic", stack.enter_context(django_contender(folder, args.n))),
        ]
        for _, (fire_all, warm, _, _) in built:
            fire_all(warm)
        results = race([Contender(name, fire_all, timed, changes)
                        for name, (fire_all, _, timed, changes) in built])
    ours, eventsourcing, django_fsm = results
    print()
    print(table(results))
    print()
    print(ratios([
        ("lifecycle / eventsourcing", ours.rate / eventsourcing.rate, 2),
        ("lifecycle / django-fsm-2", ours.rate / django_fsm.rate, 5),
    ]))
    print()
    print(f"{time.perf_counter() - started:.1f} s in all, load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
