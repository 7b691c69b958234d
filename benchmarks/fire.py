"""How fast is a persisted ``engine.fire``, against what it must cost and what a team would write.

    .venv/bin/python -m benchmarks.fire [--n ORDERS] [--pg postgresql://postgres@127.0.0.1/test]

Every persisted contender fires the order happy path after ``place`` (pay, ship_offline,
tracking_in_transit, tracking_delivered, confirm_receipt, release_funds) on ``--n`` orders of its
own, placed beforehand through the engine (not timed), one transaction per trigger:

engine        ``Engine.fire`` through ``lifecycle.open`` (SQLite file in WAL), structlog at WARNING.
floor         bare ``sqlite3``: BEGIN IMMEDIATE, SELECT by key, UPDATE with the version check,
              INSERT history, INSERT outbox, and whatever else one fire writes (deadlines
              deleted and scheduled, ledger entries, a waybill lookup, the early version claim
              before adapter calls), COMMIT. What to write is learnt from one order walked by
              the engine (its rows, and its statements through SQLite's trace callback), and
              checked after the run: same statement shapes, same rows changed per transition,
              same JSON sizes. A WARNING line says when the engine has moved on from the floor.
batched       ``Engine.fire`` inside ``engine.batch()`` blocks of 100 triggers (group commit, issue
              #15), on an engine of its own over the same file, against the floor's same rows
              grouped 100 to a COMMIT on a connection of its own (``engine batched / floor
              grouped``; issue #15's goal: >= 0.25, i.e. at most 4x the time).
hand-rolled   what a team writes without lifecycle: a SQLAlchemy ORM class, a ``Session`` per
              trigger, a ``transitions.Machine`` (default options) built per loaded order, the
              aggregate's version checked by the ORM, a history row (no outbox).
bare          one shared ``transitions.Machine`` in memory, ``machine.events[t].trigger(obj)``.
validation    the engine's own in-memory checks (definition lookup, ownership, role, payload,
              guards) by calling the functions ``Pipeline.fire_in`` calls, without I/O.
PostgreSQL    with ``--pg``: engine versus a bare psycopg 3 loop writing the same rows, in a
              scratch database created, upgraded and dropped by this run (issue #15's goal:
              >= 0.9). For information, the same loop pipelined: what it writes after the
              version check, and its COMMIT, in pipeline mode, one round trip, as the engine.

Contenders are warmed up, then timed in interleaved rounds (each round runs a slice of every
contender, in rotating order), so load from other processes hits all of them alike and the
ratios stay meaningful on a shared machine; "cpu us" is this process's CPU time per transition
(the PostgreSQL server's is not in it), steadier than wall time when the machine is busy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sqlite3
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy
import transitions
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session
from transitions import Machine

import lifecycle
from lifecycle import Actor, Aggregate
from lifecycle.logs import configure
from lifecycle.machines import DEFINITIONS
from lifecycle.machines.definition import Context
from lifecycle.machines.order import STATES
from lifecycle.pipeline import _check_guards, _owns, validate_payload
from lifecycle.store.database import WAL_AUTOCHECKPOINT_PAGES, connect
from lifecycle.store.tables import aggregates, deadlines, history, metadata
from tests.builders import SHIPMENT, SYSTEM, buyer, order_payload, seller, seller_in

KIND = "order"
SELLER_ID, BUYER_ID = "s-1", "b-1"
WARMUP = 20  # orders each persisted contender fires untimed first: statement caches, pools
ROUNDS = 10
GROUP = 100  # triggers per commit of the batched contenders (issue #15)

HAPPY_PATH: tuple[tuple[str, Actor, dict[str, Any]], ...] = (
    ("pay", buyer(BUYER_ID), {}),
    ("ship_offline", seller(SELLER_ID), SHIPMENT),
    ("tracking_in_transit", SYSTEM, {}),
    ("tracking_delivered", SYSTEM, {}),
    ("confirm_receipt", buyer(BUYER_ID), {}),
    ("release_funds", SYSTEM, {}),
)
TRIGGERS = tuple(trigger for trigger, _, _ in HAPPY_PATH)

FireAll = Callable[[Sequence[Any]], None]  # fires the happy path on each order given


@dataclass(frozen=True)
class Result:
    name: str
    transitions: int
    seconds: float
    cpu: float = 0.0  # this process's CPU seconds (the PostgreSQL server's are not counted)
    rows: float | None = None  # rows inserted, updated or deleted per transition (SQLite)

    @property
    def rate(self) -> float:
        return self.transitions / self.seconds


@dataclass(frozen=True)
class Contender:
    name: str
    fire_all: FireAll
    orders: Sequence[Any]  # ids (or, in memory, just a range)
    changes: Callable[[], int | None] = lambda: None  # rows its SQLite connection changed so far


@dataclass(frozen=True)
class Step:
    """One transition of the sample order, as the engine wrote it: what the other loops replay."""

    trigger: str
    actor: Actor
    payload: dict[str, Any]  # the request
    source: str
    dest: str
    before: Aggregate
    delta: dict[str, Any]  # the keys of data the transition set
    body: dict[str, Any]  # the validated payload as history and outbox store it
    cancels: bool  # the order had pending deadlines, which the move deletes
    schedules: tuple[tuple[str, str, datetime], ...]  # deadlines (state, trigger, due_at) it adds
    postings: tuple[tuple[str, str, int, str], ...]  # ledger (posting, account, amount_minor, currency)
    lookups: tuple[tuple[str, str], ...]  # lookup rows (name, value) it adds: a waybill
    claims: bool  # the engine took the version first (UPDATE ... SET version), before adapter calls
    statements: Counter[str]  # what the engine ran, by shape (SQLite only; empty elsewhere)

    @property
    def event(self) -> str:
        return f"{KIND}.{self.dest if self.dest != self.source else self.trigger}"


def race(contenders: Sequence[Contender], rounds: int = ROUNDS) -> list[Result]:
    """Time each contender on its orders, a slice per round, the order rotating each round."""
    rounds = max(1, min(rounds, *(len(c.orders) for c in contenders)))
    seconds, cpu = [0.0] * len(contenders), [0.0] * len(contenders)
    changed = [c.changes() for c in contenders]
    for r in range(rounds):
        for k in range(len(contenders)):
            i = (r + k) % len(contenders)
            c = contenders[i]
            chunk = c.orders[len(c.orders) * r // rounds:len(c.orders) * (r + 1) // rounds]
            started, started_cpu = time.perf_counter(), time.process_time()
            c.fire_all(chunk)
            seconds[i] += time.perf_counter() - started
            cpu[i] += time.process_time() - started_cpu
    results = []
    for c, s, used, before in zip(contenders, seconds, cpu, changed, strict=True):
        count = len(c.orders) * len(TRIGGERS)
        after = c.changes()
        rows = (after - before) / count if after is not None and before is not None else None
        results.append(Result(c.name, count, s, used, rows))
    return results


def engine_changes(engine: lifecycle.Engine) -> Callable[[], int | None]:
    """Rows changed so far by the connection this thread's fires write through."""

    def changes() -> int | None:
        if engine.database.dialect.name != "sqlite":
            return None
        # The engine keeps one writing connection per thread (see Store.writer).
        return int(engine.store.writer().driver.total_changes)

    return changes


def pooled_changes(database: sqlalchemy.Engine) -> Callable[[], int | None]:
    """Rows changed so far by the one pooled SQLite connection of ``database`` (None if unsure)."""

    def changes() -> int | None:
        if database.dialect.name != "sqlite" or database.pool.checkedin() != 1:  # type: ignore[attr-defined]
            return None
        raw = database.raw_connection()
        try:
            return int(raw.driver_connection.total_changes)  # type: ignore[union-attr]
        finally:
            raw.close()

    return changes


# --- setup: a seller, orders placed, one order walked to learn the rows -------------------


def place(engine: lifecycle.Engine, count: int) -> list[str]:
    try:
        engine.get("seller", SELLER_ID)
    except lifecycle.NotFound:
        seller_in(engine, "active", SELLER_ID)
    payload = order_payload(SELLER_ID)
    return [engine.create(KIND, buyer(BUYER_ID), payload).id for _ in range(count)]


def pending_deadlines(engine: lifecycle.Engine, id: str) -> tuple[tuple[str, str, datetime], ...]:
    query = select(deadlines.c.state, deadlines.c.trigger, deadlines.c.due_at).where(
        deadlines.c.kind == KIND, deadlines.c.aggregate_id == id, deadlines.c.status == "pending",
    ).order_by(deadlines.c.id)
    with engine.database.connect() as conn:
        # Core hands SQLite's timestamps back without their zone; everything stored is UTC.
        return tuple((r.state, r.trigger, r.due_at if r.due_at.tzinfo else r.due_at.replace(tzinfo=UTC))
                     for r in conn.execute(query))


def postings(engine: lifecycle.Engine, id: str, seq: int) -> tuple[tuple[str, str, int, str], ...]:
    ledger = metadata.tables.get("ledger")
    if ledger is None:
        return ()
    query = select(ledger.c.posting, ledger.c.account, ledger.c.amount_minor, ledger.c.currency).where(
        ledger.c.kind == KIND, ledger.c.aggregate_id == id, ledger.c.seq == seq,
    ).order_by(ledger.c.id)
    with engine.database.connect() as conn:
        return tuple((r.posting, r.account, r.amount_minor, r.currency) for r in conn.execute(query))


def lookup_rows(engine: lifecycle.Engine, id: str) -> tuple[tuple[str, str], ...]:
    lookups = metadata.tables.get("lookups")
    if lookups is None:
        return ()
    query = select(lookups.c.name, lookups.c.value).where(
        lookups.c.kind == KIND, lookups.c.aggregate_id == id,
    ).order_by(lookups.c.name, lookups.c.value)
    with engine.database.connect() as conn:
        return tuple((r.name, r.value) for r in conn.execute(query))


def shape(sql: str) -> str | None:
    """``UPDATE aggregates(version)``, ``INSERT history``...: a statement's kind, not its values."""
    text = " ".join(sql.split())
    if match := re.match(r'(?i)UPDATE "?(\w+)"? SET (.*?) WHERE', text):
        columns = sorted(re.findall(r'"?(\w+)"?\s*=', match.group(2)))
        return f"UPDATE {match.group(1)}({','.join(columns)})"
    if match := re.match(r'(?i)(INSERT INTO|DELETE FROM) "?(\w+)"?', text):
        return f"{match.group(1).split()[0].upper()} {match.group(2)}"
    if match := re.match(r'(?i)SELECT .*? FROM "?(\w+)"?', text):
        return f"SELECT {match.group(1)}"
    return None  # BEGIN, COMMIT, PRAGMA


@contextmanager
def statements_of(conn: sqlite3.Connection | None) -> Iterator[list[str]]:
    """The shapes of the statements ``conn`` runs inside the block (nothing off SQLite)."""
    seen: list[str] = []
    if conn is None:
        yield seen
        return
    conn.set_trace_callback(lambda sql: seen.append(found) if (found := shape(sql)) else None)
    try:
        yield seen
    finally:
        conn.set_trace_callback(None)


def driver_connection(engine: lifecycle.Engine) -> sqlite3.Connection | None:
    """The SQLite connection ``engine`` will use next (its pool holds one), or None."""
    database = engine.database
    if database.dialect.name != "sqlite" or database.pool.checkedin() != 1:  # type: ignore[attr-defined]
        return None
    raw = database.raw_connection()
    try:
        driver = raw.driver_connection
        return driver if isinstance(driver, sqlite3.Connection) else None
    finally:
        raw.close()


Codec = tuple[Callable[[Any], str], Callable[[Any], Any]]  # (dumps, loads)


def json_codec(engine: lifecycle.Engine, id: str) -> Codec:
    """The floor's JSON: the text the engine stores (compact or spaced), written by the fastest
    encoder that writes it (orjson, when installed, writes compact JSON only)."""
    compact = True  # JSONB keeps no text: sizes compare alike whatever the client sends
    if engine.database.dialect.name == "sqlite":
        with engine.database.connect() as conn:
            raw = conn.exec_driver_sql("SELECT data FROM aggregates WHERE kind = ? AND id = ?",
                                       (KIND, id)).scalar_one()
        compact = raw == json.dumps(json.loads(raw), separators=(",", ":"))
    if not compact:
        return json.dumps, json.loads
    try:
        import orjson
    except ImportError:
        return (lambda value: json.dumps(value, separators=(",", ":"))), json.loads
    return (lambda value: orjson.dumps(value).decode()), orjson.loads


def walk(engine: lifecycle.Engine, id: str) -> list[Step]:
    """Fire the happy path on one order and record each transition's rows."""
    steps = []
    for trigger, actor, payload in HAPPY_PATH:
        before, pending, found = engine.get(KIND, id), pending_deadlines(engine, id), lookup_rows(engine, id)
        with statements_of(driver_connection(engine)) as ran:
            after = engine.fire(KIND, id, trigger, actor, payload)
        delta = {k: v for k, v in after.data.items() if before.data.get(k, object()) != v}
        assert set(before.data) <= set(after.data), "the happy path only adds or changes keys"
        body = dict(engine.history(KIND, id)[-1].payload)
        steps.append(Step(trigger, actor, payload, before.state, after.state, before, delta, body,
                          bool(pending), pending_deadlines(engine, id),
                          postings(engine, id, after.version),
                          tuple(row for row in lookup_rows(engine, id) if row not in found),
                          "UPDATE aggregates(version)" in ran, Counter(ran)))
    return steps


def split(ids: Sequence[str], n: int, parts: int) -> list[tuple[list[str], list[str]]]:
    """``parts`` disjoint (warm-up ids, timed ids) pairs."""
    size = WARMUP + n
    return [(list(ids[p * size:p * size + WARMUP]), list(ids[p * size + WARMUP:(p + 1) * size]))
            for p in range(parts)]


def _event(step: Step, id: str, seq: int, at: str) -> dict[str, Any]:
    """The outbox body, built the way `Pipeline._record` builds it."""
    return {
        "id": str(uuid.uuid4()),
        "version": 1,
        "name": step.event,
        "kind": KIND,
        "aggregate_id": id,
        "seq": seq,
        "occurred_at": at,
        "actor": {"role": step.actor.role, "id": step.actor.id},
        "trigger": step.trigger,
        "source": step.source,
        "dest": step.dest,
        "payload": step.body,
    }


# --- 1. the engine ------------------------------------------------------------------------


def engine_loop(engine: lifecycle.Engine) -> FireAll:
    fire = engine.fire

    def fire_all(ids: Sequence[str]) -> None:
        for id in ids:
            for trigger, actor, payload in HAPPY_PATH:
                fire(KIND, id, trigger, actor, payload)

    return fire_all


def engine_batched(engine: lifecycle.Engine) -> FireAll:
    """``engine.fire`` in ``with engine.batch():`` blocks of ``GROUP`` triggers (the last block
    of a slice fewer: a slice never leaves a batch open, and the write lock with it)."""
    fire, batch = engine.fire, engine.batch

    def fire_all(ids: Sequence[str]) -> None:
        calls = [(id, *step) for id in ids for step in HAPPY_PATH]
        for start in range(0, len(calls), GROUP):
            with batch():
                for id, trigger, actor, payload in calls[start:start + GROUP]:
                    fire(KIND, id, trigger, actor, payload)

    return fire_all


# --- 2. the SQLite floor ----------------------------------------------------------------

SQL_LOAD = "SELECT state, version, data FROM aggregates WHERE kind = ? AND id = ?"
SQL_CLAIM = "UPDATE aggregates SET version = ? WHERE kind = ? AND id = ? AND version = ?"
SQL_UPDATE = (
    "UPDATE aggregates SET state = ?, version = ?, data = ?, updated_at = ? "
    "WHERE kind = ? AND id = ? AND version = ?"
)
SQL_HISTORY = (
    'INSERT INTO history (kind, aggregate_id, seq, "trigger", source, dest, actor_role, actor_id, '
    "payload, idempotency_key, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SQL_OUTBOX = (
    "INSERT INTO outbox (event, kind, aggregate_id, seq, body, created_at) VALUES (?, ?, ?, ?, ?, ?)"
)
SQL_CANCEL = "DELETE FROM deadlines WHERE kind = ? AND aggregate_id = ? AND status IN ('pending', 'failed')"
SQL_SCHEDULE = (
    'INSERT INTO deadlines (kind, aggregate_id, state, "trigger", status, due_at, attempts, created_at) '
    "VALUES (?, ?, ?, ?, 'pending', ?, 0, ?)"
)
SQL_POST = (
    "INSERT INTO ledger (kind, aggregate_id, seq, posting, account, amount_minor, currency, at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
SQL_FIND = "SELECT kind FROM lookups WHERE name = ? AND value = ? AND kind = ? AND aggregate_id = ?"
SQL_LOOKUP = "INSERT INTO lookups (name, value, kind, aggregate_id) VALUES (?, ?, ?, ?)"
SQL_LOOKUP_ONCE = SQL_LOOKUP + " ON CONFLICT DO NOTHING"  # when the engine does not SELECT first
SQLITE_MOMENT = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores a DateTime in SQLite


@dataclass(frozen=True)
class Floor:
    fire_all: FireAll  # one transaction per trigger
    fire_grouped: FireAll  # ``GROUP`` triggers per transaction
    changes: Callable[[], int]
    conn: sqlite3.Connection


@contextmanager
def sqlite_floor(path: str, trace: Sequence[Step], now: datetime, codec: Codec) -> Iterator[Floor]:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")  # as the engine's
    stamp = now.strftime(SQLITE_MOMENT)
    at = now.isoformat()
    dumps, loads = codec
    schedules = {s.trigger: [(state, trigger, due.strftime(SQLITE_MOMENT))
                             for state, trigger, due in s.schedules] for s in trace}

    execute = conn.execute

    def write(id: str, step: Step) -> None:
        state, version, raw = execute(SQL_LOAD, (KIND, id)).fetchone()
        data = loads(raw)
        data.update(step.delta)
        seq = version + 1
        if step.claims:
            if execute(SQL_CLAIM, (seq, KIND, id, version)).rowcount != 1:
                raise RuntimeError("lost the version check")
            version = seq
        if execute(SQL_UPDATE, (step.dest, seq, dumps(data), stamp, KIND, id, version)).rowcount != 1:
            raise RuntimeError("lost the version check")
        execute(SQL_HISTORY, (KIND, id, seq, step.trigger, state, step.dest, step.actor.role,
                              step.actor.id, dumps(step.body), None, stamp))
        execute(SQL_OUTBOX, (step.event, KIND, id, seq, dumps(_event(step, id, seq, at)), stamp))
        if step.cancels:
            execute(SQL_CANCEL, (KIND, id))
        for state, trigger, due in schedules[step.trigger]:
            execute(SQL_SCHEDULE, (KIND, id, state, trigger, due, stamp))
        if step.postings:
            conn.executemany(SQL_POST, [(KIND, id, seq, *entry, stamp) for entry in step.postings])
        for name, value in step.lookups:
            if not step.statements["SELECT lookups"]:
                execute(SQL_LOOKUP_ONCE, (name, value, KIND, id))
            elif execute(SQL_FIND, (name, value, KIND, id)).fetchone() is None:
                execute(SQL_LOOKUP, (name, value, KIND, id))

    def fire_all(ids: Sequence[str]) -> None:
        for id in ids:
            for step in trace:
                execute("BEGIN IMMEDIATE")
                write(id, step)
                execute("COMMIT")

    def fire_grouped(ids: Sequence[str]) -> None:
        """The same rows, ``GROUP`` triggers to a commit (the last group of a slice fewer)."""
        written = 0
        for id in ids:
            for step in trace:
                if written % GROUP == 0:
                    execute("BEGIN IMMEDIATE")
                write(id, step)
                written += 1
                if written % GROUP == 0:
                    execute("COMMIT")
        if written % GROUP:
            execute("COMMIT")

    try:
        yield Floor(fire_all, fire_grouped, lambda: conn.total_changes, conn)
    finally:
        conn.close()


def sizes_sqlite(path: str, id: str) -> list[int]:
    """Byte sizes of one order's JSON: aggregate data, history payloads, outbox bodies."""
    conn = sqlite3.connect(path)
    try:
        sizes = [conn.execute("SELECT length(data) FROM aggregates WHERE kind = ? AND id = ?",
                              (KIND, id)).fetchone()[0]]
        sizes += [r[0] for r in conn.execute(
            "SELECT length(payload) FROM history WHERE kind = ? AND aggregate_id = ? ORDER BY seq",
            (KIND, id))]
        sizes += [r[0] for r in conn.execute(
            "SELECT length(body) FROM outbox WHERE kind = ? AND aggregate_id = ? ORDER BY id", (KIND, id))]
        return sizes
    finally:
        conn.close()


# --- 3. hand-rolled: ORM + Session + a Machine per loaded order ---------------------------


class _Base(DeclarativeBase):
    pass


class OrderRow(_Base):
    __table__ = aggregates
    __mapper_args__ = {"version_id_col": aggregates.c.version}  # noqa: RUF012


class HistoryRow(_Base):
    __table__ = history


# The order's arrows, as a team would hand them to `transitions`.
ORDER_ARROWS = [
    {"trigger": t.trigger, "source": list(t.source), "dest": t.dest}
    for t in DEFINITIONS[KIND].transitions
    if t.source
]


@contextmanager
def hand_rolled(url: str, trace: Sequence[Step], now: datetime
                ) -> Iterator[tuple[FireAll, Callable[[], int | None]]]:
    database = connect(url)  # the engine's connection settings (WAL, synchronous=NORMAL)

    def fire_all(ids: Sequence[str]) -> None:
        for id in ids:
            for step in trace:
                with Session(database) as session, session.begin():
                    order: Any = session.get(OrderRow, (KIND, id))
                    Machine(model=order, states=list(STATES), transitions=ORDER_ARROWS,
                            initial=order.state)
                    source = order.state
                    if not order.trigger(step.trigger):
                        raise RuntimeError(f"{step.trigger} refused")
                    order.data = {**order.data, **step.delta}
                    order.updated_at = now
                    session.add(HistoryRow(
                        kind=KIND, aggregate_id=id, seq=order.version + 1, trigger=step.trigger,
                        source=source, dest=order.state, actor_role=step.actor.role,
                        actor_id=step.actor.id, payload=step.body, idempotency_key=None, at=now,
                    ))

    try:
        yield fire_all, pooled_changes(database)
    finally:
        database.dispose()


# --- 4. bare transitions and 5. the engine's checks, in memory -------------------------


class _Plain:
    def __init__(self, state: str):
        self.state = state


def bare_transitions() -> FireAll:
    machine = Machine(model=None, states=list(STATES), transitions=ORDER_ARROWS,
                      initial="awaiting_payment", auto_transitions=False)
    events = [machine.events[t] for t in TRIGGERS]

    def fire_all(orders: Sequence[int]) -> None:
        for _ in orders:
            model = _Plain("awaiting_payment")
            for event in events:
                event.trigger(model)
            assert model.state == "funds_released"

    return fire_all


def validation_only(trace: Sequence[Step], now: datetime) -> FireAll:
    """The checks `Pipeline.fire_in` makes before it moves the machine, on the sample's rows."""
    definition = DEFINITIONS[KIND]
    policy = lifecycle.Policy()
    cases = [(s.before, s.actor, s.trigger, s.payload) for s in trace]

    def load(kind: str, id: str) -> Aggregate | None:
        raise AssertionError("no guard of the happy path loads another aggregate")

    def fire_all(orders: Sequence[int]) -> None:
        for _ in orders:
            for current, actor, trigger, payload in cases:
                if not _owns(definition, current, actor):
                    raise RuntimeError("not theirs")
                step = definition.step(current.state, trigger)
                if step is None or step.internal:
                    raise RuntimeError("undefined")
                if actor.role not in step.roles:
                    raise RuntimeError("role")
                validated = validate_payload(step.payload, payload, current.data)
                # as Pipeline._context builds it
                context = Context(current.kind, current.id, current.state, dict(current.data),
                                  validated, actor, now, policy, load, trigger=trigger,
                                  source=current.state)
                _check_guards(step.guards, context, trigger)

    return fire_all


# --- 6. PostgreSQL ------------------------------------------------------------------------

PG_LOAD = SQL_LOAD.replace("?", "%s")
PG_UPDATE = SQL_UPDATE.replace("?", "%s")
PG_CLAIM = SQL_CLAIM.replace("?", "%s")
PG_HISTORY = SQL_HISTORY.replace("?", "%s")
PG_OUTBOX = SQL_OUTBOX.replace("?", "%s")
PG_CANCEL = SQL_CANCEL.replace("?", "%s")
PG_SCHEDULE = SQL_SCHEDULE.replace("?", "%s")
PG_POST = SQL_POST.replace("?", "%s")
PG_FIND = SQL_FIND.replace("?", "%s")
PG_LOOKUP = SQL_LOOKUP.replace("?", "%s")
PG_LOOKUP_ONCE = SQL_LOOKUP_ONCE.replace("?", "%s")


@contextmanager
def pg_floor(conninfo: str, trace: Sequence[Step], now: datetime, codec: Codec, *,
             pipelined: bool = False) -> Iterator[FireAll]:
    """The bare psycopg loop: a round trip per statement. ``pipelined``: for information, the
    same statements with those after the version check (and the COMMIT) sent in pipeline mode,
    one round trip for all of them, as the engine sends them (`PostgresRecorder`)."""
    import psycopg
    from psycopg.types.json import Jsonb

    def jsonb(value: Any) -> Jsonb:
        return Jsonb(value, dumps=codec[0])

    at = now.isoformat()
    with psycopg.connect(conninfo) as conn:

        def fire_all(ids: Sequence[str]) -> None:
            execute, commit, cursor = conn.execute, conn.commit, conn.cursor()
            for id in ids:
                for step in trace:
                    row = execute(PG_LOAD, (KIND, id)).fetchone()
                    assert row is not None
                    state, version, data = row
                    data.update(step.delta)
                    seq = version + 1
                    if step.claims:
                        if execute(PG_CLAIM, (seq, KIND, id, version)).rowcount != 1:
                            raise RuntimeError("lost the version check")
                        version = seq
                    moved = execute(PG_UPDATE, (step.dest, seq, jsonb(data), now, KIND, id, version))
                    if moved.rowcount != 1:
                        raise RuntimeError("lost the version check")
                    with conn.pipeline() if pipelined else _nothing():
                        execute(PG_HISTORY, (KIND, id, seq, step.trigger, state, step.dest,
                                             step.actor.role, step.actor.id, jsonb(step.body), None,
                                             now))
                        execute(PG_OUTBOX, (step.event, KIND, id, seq,
                                            jsonb(_event(step, id, seq, at)), now))
                        if step.cancels:
                            execute(PG_CANCEL, (KIND, id))
                        for state, trigger, due in step.schedules:
                            execute(PG_SCHEDULE, (KIND, id, state, trigger, due, now))
                        if step.postings:
                            cursor.executemany(PG_POST, [(KIND, id, seq, *entry, now)
                                                         for entry in step.postings])
                        for name, value in step.lookups:
                            if not step.statements["SELECT lookups"]:
                                execute(PG_LOOKUP_ONCE, (name, value, KIND, id))
                            elif execute(PG_FIND, (name, value, KIND, id)).fetchone() is None:
                                execute(PG_LOOKUP, (name, value, KIND, id))
                        if pipelined:
                            execute("COMMIT", prepare=False)  # queued: one sync for all
                        else:
                            commit()

        yield fire_all


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def sizes_pg(conninfo: str, id: str) -> list[int]:
    import psycopg

    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT length(data::text) FROM aggregates WHERE kind = %s AND id = %s",
                           (KIND, id)).fetchone()
        sizes = [row[0] if row else -1]
        sizes += [r[0] for r in conn.execute(
            "SELECT length(payload::text) FROM history WHERE kind = %s AND aggregate_id = %s ORDER BY seq",
            (KIND, id))]
        sizes += [r[0] for r in conn.execute(
            "SELECT length(body::text) FROM outbox WHERE kind = %s AND aggregate_id = %s ORDER BY id",
            (KIND, id))]
        return sizes


@contextmanager
def scratch_database(url: str) -> Iterator[tuple[str, str]]:
    """A new database on the server of ``url``, upgraded; yields (SQLAlchemy URL, libpq URL)."""
    import psycopg
    from psycopg import sql

    server = make_url(url)
    if server.get_backend_name() != "postgresql":
        raise SystemExit(f"--pg wants a postgresql:// URL, got {url!r}")
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"lifecycle_bench_{uuid.uuid4().hex[:10]}"
    scratch = server.set(database=name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        sa_url = scratch.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        lifecycle.open(sa_url, upgrade=True).close()
        yield sa_url, scratch.set(drivername="postgresql").render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def postgres(url: str, n: int, sqlite_trace: Sequence[Step]) -> list[Result]:
    # Which statements a transition runs is the engine's logic: SQLite's statement trace showed
    # them (whether it claims the version first, SELECTs a lookup first). psycopg has no trace
    # hook, so a statement the engine would run only on PostgreSQL is not mirrored here.
    shapes = {step.trigger: step for step in sqlite_trace}
    with scratch_database(url) as (sa_url, conninfo), ExitStack() as stack:
        engine = stack.enter_context(lifecycle.open(sa_url, clock=lifecycle.SimulatedClock()))
        ids = place(engine, 1 + 3 * (WARMUP + n))
        trace = [replace(step, claims=shapes[step.trigger].claims,
                         statements=shapes[step.trigger].statements)
                 for step in walk(engine, ids[0])]
        now = engine.clock.now()
        ((engine_warm, engine_ids), (floor_warm, floor_ids),
         (piped_warm, piped_ids)) = split(ids[1:], n, 3)
        fire_engine = engine_loop(engine)
        codec = json_codec(engine, ids[0])
        fire_floor = stack.enter_context(pg_floor(conninfo, trace, now, codec))
        fire_piped = stack.enter_context(pg_floor(conninfo, trace, now, codec, pipelined=True))
        fire_engine(engine_warm)
        fire_floor(floor_warm)
        fire_piped(piped_warm)
        results = race([
            Contender("engine.fire, PostgreSQL", fire_engine, engine_ids),
            Contender("floor: psycopg 3, same rows", fire_floor, floor_ids),
            Contender("floor: psycopg 3 pipelined", fire_piped, piped_ids),
        ])
        check_same_rows(sizes_pg(conninfo, engine_ids[-1]), sizes_pg(conninfo, floor_ids[-1]))
        check_same_rows(sizes_pg(conninfo, engine_ids[-1]), sizes_pg(conninfo, piped_ids[-1]))
        return results


WARNINGS: list[str] = []


def check_same_rows(engine: list[int], floor: list[int]) -> None:
    if engine != floor:
        WARNINGS.append(f"the floor's JSON differs from the engine's: sizes {engine} != {floor}")


# --- the run --------------------------------------------------------------------------------


def check_same_statements(trace: Sequence[Step], floor: Sequence[str]) -> None:
    engine = sum((step.statements for step in trace), Counter())
    if engine and engine != Counter(floor):
        missing, extra = engine - Counter(floor), Counter(floor) - engine
        WARNINGS.append(f"the floor's statements differ from the engine's for one order: it lacks "
                        f"{dict(missing) or 'nothing'}, it adds {dict(extra) or 'nothing'}")


def sqlite(path: str, n: int, memory_orders: int) -> tuple[list[Result], list[Step]]:
    url = f"sqlite:///{path}"
    with ExitStack() as stack:
        engine = stack.enter_context(lifecycle.open(url, clock=lifecycle.SimulatedClock()))
        # The batched engine is an engine of its own: its own connection, its rows counted apart.
        batching = stack.enter_context(lifecycle.open(url, clock=engine.clock))
        ids = place(engine, 1 + 5 * (WARMUP + n))
        trace = walk(engine, ids[0])
        now = engine.clock.now()
        ((engine_warm, engine_ids), (floor_warm, floor_ids), (hand_warm, hand_ids),
         (batched_warm, batched_ids), (grouped_warm, grouped_ids)) = split(ids[1:], n, 5)
        fire_engine, fire_batched = engine_loop(engine), engine_batched(batching)
        codec = json_codec(engine, ids[0])
        floor = stack.enter_context(sqlite_floor(path, trace, now, codec))
        fire_floor, floor_changes, floor_conn = floor.fire_all, floor.changes, floor.conn
        grouped = stack.enter_context(sqlite_floor(path, trace, now, codec))  # its rows apart
        fire_hand, hand_changes = stack.enter_context(hand_rolled(url, trace, now))
        fire_bare, fire_checks = bare_transitions(), validation_only(trace, now)
        fire_engine(engine_warm)
        with statements_of(floor_conn) as ran:
            fire_floor(floor_warm[:1])
        check_same_statements(trace, ran)
        fire_floor(floor_warm[1:])
        fire_hand(hand_warm)
        fire_batched(batched_warm)
        grouped.fire_grouped(grouped_warm)
        fire_bare(range(WARMUP))
        fire_checks(range(WARMUP))
        results = race([
            Contender("engine.fire, SQLite WAL", fire_engine, engine_ids, engine_changes(engine)),
            Contender("floor: sqlite3, same rows", fire_floor, floor_ids, floor_changes),
            Contender("hand-rolled: ORM + Machine per order", fire_hand, hand_ids, hand_changes),
            Contender("bare transitions, memory", fire_bare, range(memory_orders)),
            Contender("validation only, memory", fire_checks, range(memory_orders)),
            Contender(f"engine.fire, batches of {GROUP}", fire_batched, batched_ids,
                      engine_changes(batching)),
            Contender(f"floor grouped {GROUP} to a commit", grouped.fire_grouped, grouped_ids,
                      grouped.changes),
        ])
        check_same_rows(sizes_sqlite(path, engine_ids[-1]), sizes_sqlite(path, floor_ids[-1]))
        check_same_rows(sizes_sqlite(path, batched_ids[-1]), sizes_sqlite(path, grouped_ids[-1]))
        if results[0].rows is not None and results[0].rows != results[1].rows:
            WARNINGS.append(f"the engine changes {results[0].rows:.2f} rows per transition, the floor "
                            f"{results[1].rows:.2f}: the floor no longer writes what fire writes")
        if results[5].rows is not None and results[5].rows != results[0].rows:
            WARNINGS.append(f"the batched engine changes {results[5].rows:.2f} rows per transition, "
                            f"one trigger a transaction {results[0].rows:.2f}")
        return results, trace


def table(results: Sequence[Result]) -> str:
    lines = [f"{'':38} {'transitions':>11} {'seconds':>8} {'per s':>10} {'us each':>9} "
             f"{'cpu us':>8} {'rows each':>9}"]
    for r in results:
        rows = f"{r.rows:9.2f}" if r.rows is not None else ""
        lines.append(f"{r.name:38} {r.transitions:11d} {r.seconds:8.3f} {r.rate:10,.0f} "
                     f"{1e6 / r.rate:9.1f} {1e6 * r.cpu / r.transitions:8.1f} {rows}".rstrip())
    return "\n".join(lines)


def ratios(rows: Sequence[tuple[str, float, float]]) -> str:
    lines = [f"{'ratio (transitions/s over transitions/s)':42} {'measured':>9} {'target':>8}"]
    for name, value, target in rows:
        verdict = "ok" if value >= target else "BELOW"
        lines.append(f"{name:42} {value:9.2f} {'>= ' + format(target, 'g'):>8}  {verdict}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fire",
                                     description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--n", type=int, default=300, help="orders per persisted contender (default 300)")
    parser.add_argument("--pg", metavar="URL", help="also measure PostgreSQL, in a scratch database on URL")
    args = parser.parse_args(argv)
    n = args.n
    if n < 1:
        parser.error("--n must be at least 1")
    configure("warning")  # what production pays per trigger at WARNING
    memory_orders = max(10 * n, 10_000)

    print(f"lifecycle {lifecycle.__version__}, fire benchmark: {n} orders x {len(TRIGGERS)} triggers "
          f"({', '.join(TRIGGERS)}), {ROUNDS} interleaved rounds")
    print(f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, SQLAlchemy "
          f"{sqlalchemy.__version__}, transitions {transitions.__version__}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lifecycle-bench-") as folder:
        results, trace = sqlite(os.path.join(folder, "fire.db"), n, memory_orders)
    engine, floor, hand, bare, checks, batched, grouped = results
    wanted = [
        ("engine / floor, SQLite", engine.rate / floor.rate, 0.5),
        ("engine batched / floor grouped, SQLite", batched.rate / grouped.rate, 0.25),
        ("engine / hand-rolled, SQLite", engine.rate / hand.rate, 10),
        ("validation / bare transitions", checks.rate / bare.rate, 1),
    ]
    if args.pg:
        pg_engine, pg_floor_result, pg_piped = postgres(args.pg, n, trace)
        results += [pg_engine, pg_floor_result, pg_piped]
        wanted.append(("engine / floor, PostgreSQL", pg_engine.rate / pg_floor_result.rate, 0.9))
        wanted.append(("engine / floor pipelined, PostgreSQL", pg_engine.rate / pg_piped.rate, 0.5))
    print()
    print(table(results))
    print()
    print(ratios(wanted))
    print()
    for warning in WARNINGS:
        print(f"WARNING: {warning}")
    if not WARNINGS:
        print("The floors run the engine's statements and write its rows: statement shapes, "
              "row counts and JSON sizes checked.")
    print(f"{time.perf_counter() - started:.1f} s in all, load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
