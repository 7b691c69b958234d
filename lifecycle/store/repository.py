"""The aggregates and what each transition writes beside them: history, outbox, idempotency
records, unique claims, lookups and carrier scans; the reads of them. A part of `Recorder`.

Core statements, not ORM sessions: ``fire`` is the product's hot path, and an ORM unit of work
per trigger costs several times the rows it writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Table, bindparam, func, insert, literal_column, select, update

from lifecycle.actor import Actor
from lifecycle.machines.definition import Aggregate, Scan
from lifecycle.store.statements import Statement, Statements
from lifecycle.store.tables import (
    aggregates,
    history,
    idempotency,
    lookups,
    metadata,
    outbox,
    tracking_events,
    unique_claims,
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
    machine_version: int = 1  # the version of the kind's machine the transition ran under
    policy_version: int | None = None  # the policy's; None for rows written before issue #18


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


def values_of(table: Table, *skip: str) -> dict[str, Any]:
    """Every column of ``table`` but ``skip`` as a parameter of its own name: an INSERT's values."""
    return {c.name: bindparam(c.name) for c in table.c if c.name not in skip}


def _find(by_state: bool, after: bool) -> Any:
    """A page of aggregates of one kind, in id order: of one state, after an id."""
    query = (select(aggregates.c.id, aggregates.c.state, aggregates.c.version, aggregates.c.data,
                    aggregates.c.machine_version)
             .where(aggregates.c.kind == bindparam("kind")))
    if by_state:
        query = query.where(aggregates.c.state == bindparam("state"))
    if after:
        query = query.where(aggregates.c.id > bindparam("after_id"))
    return query.order_by(aggregates.c.id).limit(bindparam("limit")).offset(literal_column("0"))


# An aggregate as a writer reads it: with the moment it last moved.
_FOR_WRITE = select(aggregates.c.state, aggregates.c.version, aggregates.c.data,
                    aggregates.c.updated_at, aggregates.c.machine_version).where(
    aggregates.c.kind == bindparam("kind"), aggregates.c.id == bindparam("id"))


def _count(table: Table) -> Any:
    return select(func.count()).select_from(table)


def _by_key(table: Table) -> Any:
    return (table.c.kind == bindparam("b_kind")) & (table.c.id == bindparam("b_id")) & (
        table.c.version == bindparam("b_version"))


class AggregateRecords(Statements):
    """Aggregates, their history and outbox, idempotency records, claims, lookups and scans."""

    # --- aggregates ------------------------------------------------------------------------

    LOAD = Statement(select(aggregates.c.state, aggregates.c.version, aggregates.c.data,
                            aggregates.c.machine_version).where(
        aggregates.c.kind == bindparam("kind"), aggregates.c.id == bindparam("id")))

    def load(self, kind: str, id: str) -> Aggregate | None:
        self.cur.execute(self.LOAD, {"kind": kind, "id": id})
        row = self.cur.fetchone()
        if row is None:
            return None
        state, version, data, machine_version = row
        return Aggregate(kind, id, state, version, self.loads(data), machine_version)

    LOAD_FOR_WRITE = Statement(_FOR_WRITE)
    # FOR UPDATE on PostgreSQL; SQLite has no row locks (its writer began IMMEDIATE, holding
    # the database) and compiles it away.
    LOCK_FOR_WRITE = Statement(_FOR_WRITE.with_for_update())

    def load_for_write(self, kind: str, id: str) -> tuple[Aggregate, datetime] | None:
        """The aggregate and when it last moved: a writer stamps its transition no earlier."""
        return self._for_write(self.LOAD_FOR_WRITE, kind, id)

    def lock_for_write(self, kind: str, id: str) -> tuple[Aggregate, datetime] | None:
        """`load_for_write`, holding the row until the transaction ends: nobody moves the
        aggregate meanwhile, though this transaction writes nothing to it (a recorded scan)."""
        return self._for_write(self.LOCK_FOR_WRITE, kind, id)

    def _for_write(self, sql: str, kind: str, id: str) -> tuple[Aggregate, datetime] | None:
        self.cur.execute(sql, {"kind": kind, "id": id})
        row = self.cur.fetchone()
        if row is None:
            return None
        state, version, data, updated_at, machine_version = row
        return (Aggregate(kind, id, state, version, self.loads(data), machine_version),
                self.moment_of(updated_at))

    INSERT_AGGREGATE = Statement(insert(aggregates).values(values_of(aggregates)))

    def insert_aggregate(self, aggregate: Aggregate, now: datetime) -> None:
        moment = self.moment(now)
        self.cur.execute(self.INSERT_AGGREGATE, {
            "kind": aggregate.kind,
            "id": aggregate.id,
            "state": aggregate.state,
            "version": aggregate.version,
            "data": self.json(aggregate.data),
            "machine_version": aggregate.machine_version,
            "created_at": moment,
            "updated_at": moment,
        })

    UPDATE_AGGREGATE = Statement(update(aggregates).where(_by_key(aggregates)).values(
        state=bindparam("state"), version=bindparam("version"), data=bindparam("data"),
        updated_at=bindparam("updated_at")))

    def update_aggregate(self, aggregate: Aggregate, read_version: int, now: datetime) -> bool:
        """Write the new state if nobody else did since ``read_version``; False if somebody did."""
        self.cur.execute(self.UPDATE_AGGREGATE, self.update_values(aggregate, read_version, now))
        return bool(self.cur.rowcount == 1)

    def update_values(self, aggregate: Aggregate, read_version: int, now: datetime) -> dict[str, Any]:
        """The parameters of `UPDATE_AGGREGATE`."""
        return {
            "b_kind": aggregate.kind,
            "b_id": aggregate.id,
            "b_version": read_version,
            "state": aggregate.state,
            "version": aggregate.version,
            "data": self.json(aggregate.data),
            "updated_at": self.moment(now),
        }

    CLAIM_VERSION = Statement(update(aggregates).where(_by_key(aggregates)).values(
        version=bindparam("version")))

    def claim_version(self, kind: str, id: str, read_version: int) -> int | None:
        """Make sure nobody else moves the aggregate on from ``read_version`` before this
        transaction commits. Returns the version the row now has, or None if somebody already
        did. Here: move the version on now, which also holds the row until commit (a dialect
        whose transactions lock the whole database from their start needs nothing written)."""
        self.cur.execute(self.CLAIM_VERSION, {"b_kind": kind, "b_id": id, "b_version": read_version,
                                              "version": read_version + 1})
        return read_version + 1 if self.cur.rowcount == 1 else None

    def find(self, kind: str, *, state: str | None = None, limit: int = 100,
             after_id: str | None = None) -> list[Aggregate]:
        """Aggregates of a kind in id order, a page at a time."""
        shape = (state is not None, after_id is not None)
        sql = self.variant(("find", *shape), lambda: _find(*shape))
        self.cur.execute(sql, {"kind": kind, "state": state, "after_id": after_id, "limit": limit})
        return [Aggregate(kind, id, found, version, self.loads(data), machine_version)
                for id, found, version, data, machine_version in self.cur.fetchall()]

    # --- what a transition writes beside its aggregate -----------------------------------

    INSERT_HISTORY = Statement(insert(history).values(values_of(history)))

    def append_history(self, aggregate: Aggregate, entry: HistoryEntry) -> None:
        self.cur.execute(self.INSERT_HISTORY, {
            "kind": aggregate.kind,
            "aggregate_id": aggregate.id,
            "seq": entry.seq,
            "trigger": entry.trigger,
            "source": entry.source,
            "dest": entry.dest,
            "actor_role": entry.actor.role,
            "actor_id": entry.actor.acting_id,
            "payload": self.json(entry.payload),
            "idempotency_key": entry.idempotency_key,
            "at": self.moment(entry.at),
            "machine_version": entry.machine_version,
            "policy_version": entry.policy_version,
        })

    HISTORY = Statement(select(history.c.seq, history.c.trigger, history.c.source, history.c.dest,
                               history.c.actor_role, history.c.actor_id, history.c.payload,
                               history.c.idempotency_key, history.c.at,
                               history.c.machine_version, history.c.policy_version)
                        .where(history.c.kind == bindparam("kind"),
                               history.c.aggregate_id == bindparam("id"))
                        .order_by(history.c.seq))

    def history(self, kind: str, id: str) -> list[HistoryEntry]:
        self.cur.execute(self.HISTORY, {"kind": kind, "id": id})
        return [HistoryEntry(seq, trigger, source, dest, Actor(role, actor_id), self.loads(payload),
                             key, self.moment_of(at), machine_version, policy_version)
                for seq, trigger, source, dest, role, actor_id, payload, key, at, machine_version,
                policy_version in self.cur.fetchall()]

    INSERT_OUTBOX = Statement(insert(outbox).values(values_of(outbox, "id", "published_at", "position")))

    def append_outbox(self, body: Mapping[str, Any], now: datetime) -> None:
        """One event (`lifecycle.events.event_body`), unpublished and without a position."""
        self.cur.execute(self.INSERT_OUTBOX, {
            "event": body["name"],
            "kind": body["kind"],
            "aggregate_id": body["aggregate_id"],
            "seq": body["seq"],
            "body": self.json(body),
            "created_at": self.moment(now),
        })

    # --- idempotency ---------------------------------------------------------------------

    REMEMBERED = Statement(select(idempotency.c.request_hash, idempotency.c.kind,
                                  idempotency.c.aggregate_id, idempotency.c.result)
                           .where(idempotency.c.key == bindparam("key")))

    def remembered(self, key: str) -> Remembered | None:
        self.cur.execute(self.REMEMBERED, {"key": key})
        row = self.cur.fetchone()
        if row is None:
            return None
        result = self.loads(row[3])
        return Remembered(row[0], row[1], row[2], result["state"], result["version"])

    REMEMBER = Statement(insert(idempotency).values(values_of(idempotency)))

    def remember(self, key: str, request_hash: str, aggregate: Aggregate, now: datetime) -> None:
        self.cur.execute(self.REMEMBER, {
            "key": key,
            "request_hash": request_hash,
            "kind": aggregate.kind,
            "aggregate_id": aggregate.id,
            "result": self.json({"state": aggregate.state, "version": aggregate.version}),
            "created_at": self.moment(now),
        })

    # --- unique claims and lookups -------------------------------------------------------

    CLAIMED_BY = Statement(select(unique_claims.c.kind, unique_claims.c.aggregate_id).where(
        unique_claims.c.name == bindparam("name"), unique_claims.c.value == bindparam("value")))

    def claimed_by(self, name: str, value: str) -> tuple[str, str] | None:
        self.cur.execute(self.CLAIMED_BY, {"name": name, "value": value})
        row = self.cur.fetchone()
        return (row[0], row[1]) if row else None

    CLAIM = Statement(insert(unique_claims).values(values_of(unique_claims)))

    def claim(self, name: str, value: str, kind: str, id: str) -> None:
        self.cur.execute(self.CLAIM, {"name": name, "value": value, "kind": kind, "aggregate_id": id})

    # One statement instead of SELECT-then-INSERT; SQLite (3.24+) and PostgreSQL spell it alike.
    INDEX = Statement(insert(lookups).values(values_of(lookups)), suffix=" ON CONFLICT DO NOTHING")

    def index(self, name: str, value: str, kind: str, id: str) -> None:
        """Make (kind, id) findable by ``value``; indexing the same pair twice is harmless."""
        self.cur.execute(self.INDEX, {"name": name, "value": value, "kind": kind, "aggregate_id": id})

    FOUND_BY = Statement(select(lookups.c.kind, lookups.c.aggregate_id)
                         .where(lookups.c.name == bindparam("name"),
                                lookups.c.value == bindparam("value"))
                         .order_by(lookups.c.kind, lookups.c.aggregate_id))

    def found_by(self, name: str, value: str) -> list[tuple[str, str]]:
        """The (kind, id) pairs indexed under ``value``: every carrier scan asks this."""
        self.cur.execute(self.FOUND_BY, {"name": name, "value": value})
        return [(kind, id) for kind, id in self.cur.fetchall()]

    # --- carrier scans -------------------------------------------------------------------

    INSERT_SCAN = Statement(insert(tracking_events).values(values_of(tracking_events, "id")))
    # A scan recorded without a transition has no idempotency record: its unique
    # (kind, aggregate_id, event_id) row is what keeps a second delivery from counting twice.
    # Inline: no RETURNING of the row id, which PostgreSQL would want after the conflict clause.
    INSERT_SCAN_ONCE = Statement(insert(tracking_events).values(values_of(tracking_events, "id"))
                                 .inline(), suffix=" ON CONFLICT DO NOTHING")

    def record_scan(self, kind: str, id: str, scan: Scan, now: datetime, *,
                    once: bool = False) -> bool:
        """Keep one scan of the aggregate; ``once``: unless the aggregate has a scan of the same
        event id (a duplicate is no error, nothing is written). Whether a row was written."""
        self.cur.execute(self.INSERT_SCAN_ONCE if once else self.INSERT_SCAN, {
            "kind": kind, "aggregate_id": id, "carrier": scan.carrier, "waybill": scan.waybill,
            "event_id": scan.event_id, "status": scan.status, "exception_kind": scan.exception_kind,
            "reported_at": self.moment(datetime.fromisoformat(scan.reported_at))
            if scan.reported_at else None,
            "location": scan.location, "detail": scan.detail, "moved": scan.moved,
            "recorded_at": self.moment(now),
        })
        return bool(self.cur.rowcount == 1)

    SCAN_SEEN = Statement(select(tracking_events.c.id).where(
        tracking_events.c.kind == bindparam("kind"),
        tracking_events.c.aggregate_id == bindparam("id"),
        tracking_events.c.event_id == bindparam("event_id")))

    def scan_seen(self, kind: str, id: str, event_id: str) -> bool:
        """Whether this scan of the aggregate was recorded already (a carrier's duplicate)."""
        self.cur.execute(self.SCAN_SEEN, {"kind": kind, "id": id, "event_id": event_id})
        return self.cur.fetchone() is not None

    SCANS = Statement(select(tracking_events.c.carrier, tracking_events.c.waybill,
                             tracking_events.c.event_id, tracking_events.c.status,
                             tracking_events.c.exception_kind, tracking_events.c.reported_at,
                             tracking_events.c.location, tracking_events.c.detail,
                             tracking_events.c.moved, tracking_events.c.recorded_at)
                      .where(tracking_events.c.kind == bindparam("kind"),
                             tracking_events.c.aggregate_id == bindparam("id"))
                      .order_by(tracking_events.c.id))

    def scans(self, kind: str, id: str) -> list[TrackingRecord]:
        self.cur.execute(self.SCANS, {"kind": kind, "id": id})
        return [
            TrackingRecord(
                carrier=carrier, waybill=waybill, event_id=event_id, status=status,
                exception_kind=exception_kind,
                reported_at=self.moment_of(reported_at) if reported_at else None,
                location=location, detail=detail, moved=bool(moved),
                recorded_at=self.moment_of(recorded_at),
            )
            for carrier, waybill, event_id, status, exception_kind, reported_at, location, detail,
            moved, recorded_at in self.cur.fetchall()
        ]

    # --- for tests ------------------------------------------------------------------------

    def row_counts(self) -> dict[str, int]:
        """Rows in each table: what tests compare to prove a refusal wrote nothing."""
        counts = {}
        for table in metadata.sorted_tables:
            self.cur.execute(self.variant(("count", table.name), partial(_count, table)))
            counts[table.name] = int(self.cur.fetchone()[0])
        return counts
