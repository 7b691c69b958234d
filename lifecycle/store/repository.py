"""The statements the engine runs, on a connection inside the caller's transaction.

Core statements, not ORM sessions: ``fire`` is the product's hot path, and an ORM unit of work
per trigger costs several times the rows it writes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, func, select

from lifecycle.actor import Actor
from lifecycle.machines.definition import Aggregate
from lifecycle.store.hot import cursor
from lifecycle.store.tables import (
    aggregates,
    history,
    metadata,
)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One committed transition of one aggregate."""

    seq: int
    trigger: str
    source: str | None
    dest: str
    actor: Actor
    payload: Mapping[str, Any]
    idempotency_key: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class Remembered:
    """What an idempotency key was first used for, and what it returned."""

    request_hash: str
    result: Mapping[str, Any]


def load(conn: Connection, kind: str, id: str) -> Aggregate | None:
    hot, cur = cursor(conn)
    cur.execute(hot.sql["load"], {"kind": kind, "id": id})
    row = cur.fetchone()
    if row is None:
        return None
    state, version, data = row
    return Aggregate(kind, id, state, version, hot.loads(data))


def insert_aggregate(conn: Connection, aggregate: Aggregate, now: datetime) -> None:
    hot, cur = cursor(conn)
    moment = hot.moment(now)
    cur.execute(hot.sql["insert_aggregate"], {
        "kind": aggregate.kind,
        "id": aggregate.id,
        "state": aggregate.state,
        "version": aggregate.version,
        "data": hot.json(aggregate.data),
        "created_at": moment,
        "updated_at": moment,
    })


def update_aggregate(conn: Connection, aggregate: Aggregate, read_version: int,
                     now: datetime) -> bool:
    """Write the new state if nobody else did since ``read_version``; False if somebody did."""
    hot, cur = cursor(conn)
    cur.execute(hot.sql["update_aggregate"], {
        "b_kind": aggregate.kind,
        "b_id": aggregate.id,
        "b_version": read_version,
        "state": aggregate.state,
        "version": aggregate.version,
        "data": hot.json(aggregate.data),
        "updated_at": hot.moment(now),
    })
    return bool(cur.rowcount == 1)


def claim_version(conn: Connection, kind: str, id: str, read_version: int) -> int | None:
    """Make sure nobody else moves the aggregate on from ``read_version`` before this
    transaction commits. Returns the version the row now has, or None if somebody already did.

    SQLite: the writer took the database's write lock with BEGIN IMMEDIATE before it read, so
    the version it read is still current and nothing needs writing. PostgreSQL: move the
    version on now, which also holds the row until commit.
    """
    hot, cur = cursor(conn)
    if hot.sqlite:
        return read_version
    cur.execute(hot.sql["claim_version"], {"b_kind": kind, "b_id": id, "b_version": read_version,
                                           "version": read_version + 1})
    return read_version + 1 if cur.rowcount == 1 else None


def append_history(conn: Connection, aggregate: Aggregate, entry: HistoryEntry) -> None:
    hot, cur = cursor(conn)
    cur.execute(hot.sql["insert_history"], {
        "kind": aggregate.kind,
        "aggregate_id": aggregate.id,
        "seq": entry.seq,
        "trigger": entry.trigger,
        "source": entry.source,
        "dest": entry.dest,
        "actor_role": entry.actor.role,
        "actor_id": entry.actor.id,
        "payload": hot.json(entry.payload),
        "idempotency_key": entry.idempotency_key,
        "at": hot.moment(entry.at),
    })


def append_outbox(conn: Connection, event: str, body: Mapping[str, Any], now: datetime) -> None:
    hot, cur = cursor(conn)
    cur.execute(hot.sql["insert_outbox"], {
        "event": event,
        "kind": body["kind"],
        "aggregate_id": body["id"],
        "seq": body["seq"],
        "body": hot.json(body),
        "created_at": hot.moment(now),
    })


def remembered(conn: Connection, key: str) -> Remembered | None:
    hot, cur = cursor(conn)
    cur.execute(hot.sql["remembered"], {"key": key})
    row = cur.fetchone()
    return Remembered(row[0], hot.loads(row[1])) if row else None


def remember(
    conn: Connection, key: str, request_hash: str, aggregate: Aggregate, now: datetime
) -> None:
    hot, cur = cursor(conn)
    cur.execute(hot.sql["remember"], {
        "key": key,
        "request_hash": request_hash,
        "kind": aggregate.kind,
        "aggregate_id": aggregate.id,
        "result": hot.json(as_result(aggregate)),
        "created_at": hot.moment(now),
    })


def as_result(aggregate: Aggregate) -> dict[str, Any]:
    return {
        "kind": aggregate.kind,
        "id": aggregate.id,
        "state": aggregate.state,
        "version": aggregate.version,
        "data": aggregate.data,
    }


def claimed_by(conn: Connection, name: str, value: str) -> tuple[str, str] | None:
    hot, cur = cursor(conn)
    cur.execute(hot.sql["claimed_by"], {"name": name, "value": value})
    row = cur.fetchone()
    return (row[0], row[1]) if row else None


def claim(conn: Connection, name: str, value: str, kind: str, id: str) -> None:
    hot, cur = cursor(conn)
    cur.execute(hot.sql["claim"], {"name": name, "value": value, "kind": kind, "aggregate_id": id})


def index(conn: Connection, name: str, value: str, kind: str, id: str) -> None:
    """Make (kind, id) findable by ``value``; indexing the same pair twice is harmless."""
    hot, cur = cursor(conn)
    cur.execute(hot.sql["index"], {"name": name, "value": value, "kind": kind, "aggregate_id": id})


def found_by(conn: Connection, name: str, value: str) -> list[tuple[str, str]]:
    """The (kind, id) pairs indexed under ``value``: every carrier scan asks this."""
    hot, cur = cursor(conn)
    cur.execute(hot.sql["found_by"], {"name": name, "value": value})
    return [(kind, id) for kind, id in cur.fetchall()]


def history_of(conn: Connection, kind: str, id: str) -> list[HistoryEntry]:
    rows = conn.execute(
        select(history)
        .where(history.c.kind == kind, history.c.aggregate_id == id)
        .order_by(history.c.seq)
    )
    return [
        HistoryEntry(
            seq=row.seq,
            trigger=row.trigger,
            source=row.source,
            dest=row.dest,
            actor=Actor(row.actor_role, row.actor_id),
            payload=row.payload,
            idempotency_key=row.idempotency_key,
            at=as_utc(row.at),
        )
        for row in rows
    ]


def find(
    conn: Connection,
    kind: str,
    *,
    state: str | None = None,
    limit: int = 100,
    after_id: str | None = None,
) -> Iterator[Aggregate]:
    """Aggregates of a kind in id order, a page at a time."""
    query = select(aggregates.c.id, aggregates.c.state, aggregates.c.version, aggregates.c.data)
    conditions = [aggregates.c.kind == kind]
    if state is not None:
        conditions.append(aggregates.c.state == state)
    if after_id is not None:
        conditions.append(aggregates.c.id > after_id)
    query = query.where(and_(*conditions)).order_by(aggregates.c.id).limit(limit)
    for row in conn.execute(query):
        yield Aggregate(kind, row.id, row.state, row.version, row.data)


def count_rows(conn: Connection) -> dict[str, int]:
    """Rows in each table: what tests compare to prove a refusal wrote nothing."""
    return {
        table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
        for table in metadata.sorted_tables
    }


def as_utc(moment: datetime) -> datetime:
    """SQLite hands timestamps back without their zone; everything we store is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
