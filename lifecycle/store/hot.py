"""The statements every trigger runs, compiled once per database and run on the DBAPI cursor.

`fire` is the product's hot path. SQLAlchemy Core builds these statements from the same table
definitions as everything else; executing them through Core's per-call machinery (events,
parameter processing, result objects) cost several times what the database itself spends, so
here they run on the transaction's own DBAPI connection, with values converted as SQLAlchemy's
types would store them (JSON text; SQLite's timestamp text). Everything else uses Core.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Dialect,
    bindparam,
    delete,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects import sqlite

from lifecycle.store.tables import (
    aggregates,
    deadlines,
    history,
    idempotency,
    ledger,
    lookups,
    outbox,
    tracking_events,
    unique_claims,
)


def _values(table: Any, *skip: str) -> dict[str, Any]:
    return {c.name: bindparam(c.name) for c in table.c if c.name not in skip}


_STATEMENTS = {
    "load": select(aggregates.c.state, aggregates.c.version, aggregates.c.data).where(
        aggregates.c.kind == bindparam("kind"), aggregates.c.id == bindparam("id")
    ),
    "load_for_write": select(aggregates.c.state, aggregates.c.version, aggregates.c.data,
                             aggregates.c.updated_at).where(
        aggregates.c.kind == bindparam("kind"), aggregates.c.id == bindparam("id")
    ),
    "insert_aggregate": insert(aggregates).values(_values(aggregates)),
    "update_aggregate": update(aggregates)
    .where(
        aggregates.c.kind == bindparam("b_kind"),
        aggregates.c.id == bindparam("b_id"),
        aggregates.c.version == bindparam("b_version"),
    )
    .values(state=bindparam("state"), version=bindparam("version"), data=bindparam("data"),
            updated_at=bindparam("updated_at")),
    "claim_version": update(aggregates)
    .where(
        aggregates.c.kind == bindparam("b_kind"),
        aggregates.c.id == bindparam("b_id"),
        aggregates.c.version == bindparam("b_version"),
    )
    .values(version=bindparam("version")),
    "insert_history": insert(history).values(_values(history)),
    "insert_outbox": insert(outbox).values(_values(outbox, "id", "published_at")),
    "remembered": select(idempotency.c.request_hash, idempotency.c.kind,
                         idempotency.c.aggregate_id, idempotency.c.result).where(
        idempotency.c.key == bindparam("key")
    ),
    "remember": insert(idempotency).values(_values(idempotency)),
    "insert_scan": insert(tracking_events).values(_values(tracking_events, "id")),
    "scan_seen": select(tracking_events.c.id).where(
        tracking_events.c.kind == bindparam("kind"),
        tracking_events.c.aggregate_id == bindparam("id"),
        tracking_events.c.event_id == bindparam("event_id"),
    ),
    "post": insert(ledger).values(_values(ledger, "id")),
    "schedule": insert(deadlines).values(_values(deadlines, "id", "remaining_us", "last_error")),
    "index": insert(lookups).values(_values(lookups)),
    "found_by": select(lookups.c.kind, lookups.c.aggregate_id)
    .where(lookups.c.name == bindparam("name"), lookups.c.value == bindparam("value"))
    .order_by(lookups.c.kind, lookups.c.aggregate_id),
    # The timer worker's query, once per deadline fired: SKIP LOCKED lets several PostgreSQL
    # workers each take a different row (SQLite has no such clause; BEGIN IMMEDIATE serialises).
    "next_due": select(deadlines)
    .where(deadlines.c.status == literal_column("'pending'"), deadlines.c.due_at <= bindparam("now"))
    .order_by(deadlines.c.due_at)
    # Literals: the hot path passes only named parameters (SQLite's compiler adds an OFFSET).
    .limit(literal_column("1"))
    .offset(literal_column("0"))
    .with_for_update(skip_locked=True),
    "remove_deadline": delete(deadlines).where(deadlines.c.id == bindparam("id")),
    # Entering and leaving a dispute: the order's deadlines stop and restart.
    "to_pause": select(deadlines.c.id, deadlines.c.due_at).where(
        deadlines.c.kind == bindparam("kind"), deadlines.c.aggregate_id == bindparam("id"),
        deadlines.c.status == literal_column("'pending'"),
    ),
    "pause": update(deadlines).where(deadlines.c.id == bindparam("b_id"))
    .values(status=literal_column("'paused'"), remaining_us=bindparam("remaining_us")),
    "to_resume": select(deadlines.c.id, deadlines.c.state, deadlines.c.trigger,
                          deadlines.c.remaining_us).where(
        deadlines.c.kind == bindparam("kind"), deadlines.c.aggregate_id == bindparam("id"),
        deadlines.c.status == literal_column("'paused'"),
    ),
    "resume": update(deadlines).where(deadlines.c.id == bindparam("b_id"))
    .values(status=literal_column("'pending'"), due_at=bindparam("due_at"),
            remaining_us=literal_column("NULL")),
    "retry_later": update(deadlines).where(deadlines.c.id == bindparam("b_id"))
    .values(attempts=bindparam("attempts"), last_error=bindparam("last_error"),
            due_at=bindparam("due_at")),
    "park": update(deadlines).where(deadlines.c.id == bindparam("b_id"))
    .values(attempts=bindparam("attempts"), last_error=bindparam("last_error"),
            status=literal_column("'failed'")),
    "claimed_by": select(unique_claims.c.kind, unique_claims.c.aggregate_id).where(
        unique_claims.c.name == bindparam("name"), unique_claims.c.value == bindparam("value")
    ),
    "claim": insert(unique_claims).values(_values(unique_claims)),
    "cancel": delete(deadlines).where(
        deadlines.c.kind == bindparam("kind"),
        deadlines.c.aggregate_id == bindparam("id"),
        deadlines.c.status != literal_column("'paused'"),  # pending or parked as failed
        deadlines.c.state != bindparam("keep"),  # carried over into the state entered
    ),
    # A deadline that continues into the next state keeps its due time (auto_confirm).
    "carry_over": update(deadlines).where(
        deadlines.c.kind == bindparam("kind"),
        deadlines.c.aggregate_id == bindparam("id"),
        deadlines.c.state == bindparam("source"),
        deadlines.c.trigger == bindparam("trigger"),
        deadlines.c.status == literal_column("'pending'"),
    ).values(state=bindparam("dest")),
}


class HotPath:
    """The compiled statements and value conversions of one kind of database."""

    def __init__(self, dialect: Dialect):
        self.sqlite = dialect.name == "sqlite"
        # SQLite takes :name parameters; psycopg's pyformat %(name)s is what it compiles to.
        compile_with = sqlite.dialect(paramstyle="named") if self.sqlite else dialect
        self.sql = {name: str(stmt.compile(dialect=compile_with))
                    for name, stmt in _STATEMENTS.items()}
        # One statement instead of SELECT-then-INSERT; SQLite (3.24+) and PostgreSQL spell it alike.
        self.sql["index"] += " ON CONFLICT DO NOTHING"
        self.moment: Callable[[datetime], Any] = _sqlite_moment if self.sqlite else _same
        self.moment_of: Callable[[Any], datetime] = _sqlite_read if self.sqlite else _same

    def json(self, value: Any) -> str:
        # orjson: aggregate data is serialised on every trigger, several times faster than json
        return orjson.dumps(value, default=_jsonable).decode()

    def loads(self, value: Any) -> Any:
        return orjson.loads(value) if isinstance(value, str | bytes) else value


@lru_cache(maxsize=256)  # one trigger stamps the same moment on several rows
def _sqlite_moment(moment: datetime) -> str:
    # How SQLAlchemy's DateTime stores a UTC timestamp in SQLite, so both read it alike.
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _sqlite_read(text: str) -> datetime:
    """A timestamp as `_sqlite_moment` wrote it, back as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _same(moment: datetime) -> datetime:
    return moment


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-able")


@cache
def _hot_path(dialect: Dialect) -> HotPath:
    return HotPath(dialect)


def cursor(conn: Connection) -> tuple[HotPath, Any]:
    """The hot path for ``conn``'s database and a DBAPI cursor in its transaction.

    One cursor per DBAPI connection, kept in the pool entry's ``info``: a psycopg cursor costs
    ~10-20 us of Python to create (it copies the connection's adapters), about as much as the
    statement it runs. Callers fetch what they need before the next statement. A trigger asks
    for it several times on one connection, so the last answer is remembered per thread.
    """
    proxied = conn.connection
    last = getattr(_last, "answer", None)
    if last is not None and last[0] is proxied:
        return last[1], last[2]
    raw = proxied.driver_connection
    assert raw is not None, "a connection inside a transaction has a DBAPI connection"
    kept = conn.info.get("lifecycle.cursor")
    if kept is None or kept[0] is not raw:
        kept = conn.info["lifecycle.cursor"] = (raw, raw.cursor())
    hot = _hot_path(conn.dialect)
    # Holding the pool's proxy keeps it alive, so a later checkout cannot be mistaken for it.
    _last.answer = (proxied, hot, kept[1])
    return hot, kept[1]


_last = threading.local()
