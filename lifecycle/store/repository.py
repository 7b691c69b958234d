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
from lifecycle.machines.definition import Aggregate, Scan
from lifecycle.store.hot import cursor
from lifecycle.store.tables import (
    aggregates,
    history,
    metadata,
    tracking_events,
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
class TrackingRecord:
    """One carrier scan of an order, as it was recorded; ``moved`` if it moved the order."""

    carrier: str
    waybill: str
    event_id: str | None
    status: str | None
    exception_kind: str | None
    reported_at: datetime | None
    location: str | None
    detail: str | None
    moved: bool
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class Remembered:
    """What an idempotency key was first used for, and where it led: the aggregate, and the
    state and version its first delivery committed (records written before 0.2 hold a copy of
    the whole aggregate in ``result``; only its state and version are read)."""

    request_hash: str
    kind: str
    id: str
    state: str
    version: int


def load(conn: Connection, kind: str, id: str) -> Aggregate | None:
    hot, cur = cursor(conn)
    cur.execute(hot.sql["load"], {"kind": kind, "id": id})
    row = cur.fetchone()
    if row is None:
        return None
    state, version, data = row
    return Aggregate(kind, id, state, version, hot.loads(data))


def load_with_moment(conn: Connection, kind: str, id: str) -> tuple[Aggregate, datetime] | None:
    """The aggregate and when it last moved: a writer stamps its transition no earlier."""
    hot, cur = cursor(conn)
    cur.execute(hot.sql["load_for_write"], {"kind": kind, "id": id})
    row = cur.fetchone()
    if row is None:
        return None
    state, version, data, updated_at = row
    return Aggregate(kind, id, state, version, hot.loads(data)), hot.moment_of(updated_at)


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


def record_scan(conn: Connection, kind: str, id: str, scan: Scan, now: datetime) -> None:
    hot, cur = cursor(conn)
    moment = hot.moment(now)
    cur.execute(hot.sql["insert_scan"], {
        "kind": kind, "aggregate_id": id, "carrier": scan.carrier, "waybill": scan.waybill,
        "event_id": scan.event_id, "status": scan.status, "exception_kind": scan.exception_kind,
        "reported_at": hot.moment(datetime.fromisoformat(scan.reported_at))
        if scan.reported_at else None,
        "location": scan.location, "detail": scan.detail, "moved": scan.moved,
        "recorded_at": moment,
    })


def scan_seen(conn: Connection, kind: str, id: str, event_id: str) -> bool:
    """Whether this scan of the aggregate was recorded already (a carrier's duplicate)."""
    hot, cur = cursor(conn)
    cur.execute(hot.sql["scan_seen"], {"kind": kind, "id": id, "event_id": event_id})
    return cur.fetchone() is not None


def scans_of(conn: Connection, kind: str, id: str) -> list[TrackingRecord]:
    rows = conn.execute(
        select(tracking_events)
        .where(tracking_events.c.kind == kind, tracking_events.c.aggregate_id == id)
        .order_by(tracking_events.c.id)
    )
    return [
        TrackingRecord(
            carrier=row.carrier, waybill=row.waybill, event_id=row.event_id, status=row.status,
            exception_kind=row.exception_kind,
            reported_at=as_utc(row.reported_at) if row.reported_at else None,
            location=row.location, detail=row.detail, moved=bool(row.moved),
            recorded_at=as_utc(row.recorded_at),
        )
        for row in rows
    ]


def remembered(conn: Connection, key: str) -> Remembered | None:
    hot, cur = cursor(conn)
    cur.execute(hot.sql["remembered"], {"key": key})
    row = cur.fetchone()
    if row is None:
        return None
    result = hot.loads(row[3])
    return Remembered(row[0], row[1], row[2], result["state"], result["version"])


def remember(
    conn: Connection, key: str, request_hash: str, aggregate: Aggregate, now: datetime
) -> None:
    hot, cur = cursor(conn)
    cur.execute(hot.sql["remember"], {
        "key": key,
        "request_hash": request_hash,
        "kind": aggregate.kind,
        "aggregate_id": aggregate.id,
        "result": hot.json({"state": aggregate.state, "version": aggregate.version}),
        "created_at": hot.moment(now),
    })


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
