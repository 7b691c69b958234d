"""Read-only statements for reports, in bulk: each reads one table once, streamed where it may be
long, for every aggregate whose id starts with a prefix (a simulation run's, a tenant's).

Through `Engine.get`, `Engine.postings` and `Engine.history` a report reads one aggregate at a
time: a query per order, most of the time a 100,000-order report took. These return only the
columns and JSON fields a report uses, as plain values. The engine's ``# --- bulk reads for
reports ---`` methods run them; nothing here writes.

Unlike the engine's own statements (`store.recorder`), these are built per call by SQLAlchemy
Core and run on a pooled Core connection (`Store.through_core`): they read JSON paths, IN lists
of any length and stream on a server-side cursor, all of which Core spells per dialect, and each
runs once per report, where Core's per-call cost does not count. None returns a timestamp.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from itertools import groupby
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Connection, Select, func, select

from lifecycle.ledger import from_units
from lifecycle.store.deadlines import FAILED, PENDING
from lifecycle.store.tables import aggregates, deadlines, history, ledger, outbox

# Rows come in batches, not all at once (a server-side cursor on PostgreSQL).
STREAM: dict[str, Any] = {"stream_results": True, "yield_per": 5000}


class StateCount(NamedTuple):
    """How many aggregates of ``kind`` are in ``state``, and their versions summed: each
    version is one transition in their history."""

    kind: str
    state: str
    aggregates: int
    transitions: int


class LedgerSum(NamedTuple):
    """Ledger entries of one (kind, posting, account, currency) summed, those above zero
    (``positive``) apart from the others."""

    kind: str
    posting: str
    account: str
    currency: str
    positive: bool
    amount: Decimal


class ParkedDeadline(NamedTuple):
    """A deadline parked as failed after its retries: the aggregate and the trigger it holds."""

    kind: str
    aggregate_id: str
    trigger: str


class Backlog(NamedTuple):
    """What waits in the database, for the metrics' gauges (`lifecycle.telemetry`): deadlines
    parked as failed, outbox rows not yet published, and pending deadlines already due."""

    parked_deadlines: int
    outbox_backlog: int
    deadlines_due: int


Step = tuple[str, str | None]  # (trigger, one field of its payload)


def _of(query: Select[Any], column: Any, prefix: str) -> Select[Any]:
    """``query`` restricted to ids that start with ``prefix`` (all when it is empty)."""
    return query.where(_starts_with(column, prefix)) if prefix else query


def _starts_with(column: Any, prefix: str) -> ColumnElement[bool]:
    # What str.startswith does, on both databases: LIKE is case-blind on SQLite and treats
    # "_" as a wildcard.
    return func.substr(column, 1, len(prefix)) == prefix


def state_counts(conn: Connection, kinds: Iterable[str], prefix: str) -> list[StateCount]:
    a = aggregates.c
    query = select(a.kind, a.state, func.count(), func.sum(a.version)).where(a.kind.in_(list(kinds)))
    rows = conn.execute(_of(query, a.id, prefix).group_by(a.kind, a.state))
    return [StateCount(kind, state, int(n), int(versions)) for kind, state, n, versions in rows]


def fields(conn: Connection, kind: str, prefix: str, text: Sequence[str],
           integer: Sequence[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    a = aggregates.c
    columns = [a.data[name].as_string() for name in text]
    columns += [a.data[name].as_integer() for name in integer]
    names = (*text, *integer)
    query = _of(select(a.state, *columns).where(a.kind == kind), a.id, prefix)
    for state, *values in conn.execution_options(**STREAM).execute(query):
        yield state, {name: value for name, value in zip(names, values, strict=True)
                      if value is not None}


def counts_by_field(conn: Connection, kind: str, field: str,
                    prefix: str) -> list[tuple[str | None, str, int]]:
    a = aggregates.c
    value = a.data[field].as_string()
    query = _of(select(value, a.state, func.count()).where(a.kind == kind), a.id, prefix)
    return [(found, state, int(n)) for found, state, n in conn.execute(query.group_by(value, a.state))]


def history_steps(conn: Connection, kind: str, states: Iterable[str], prefix: str, label: str,
                  detail: str) -> Iterator[tuple[str | None, list[Step]]]:
    a, h = aggregates.c, history.c
    query = (
        select(h.aggregate_id, a.data[label].as_string(), h.trigger, h.payload[detail].as_string())
        .join_from(history, aggregates, (a.kind == h.kind) & (a.id == h.aggregate_id))
        .where(h.kind == kind, a.state.in_(list(states)))
    )
    rows = conn.execution_options(**STREAM).execute(
        _of(query, h.aggregate_id, prefix).order_by(h.aggregate_id, h.seq))
    for _id, group in groupby(rows, key=lambda row: row[0]):
        entries = list(group)
        yield entries[0][1], [(trigger, value) for _, _, trigger, value in entries]


def ledger_sums(conn: Connection, kinds: Iterable[str], prefix: str) -> list[LedgerSum]:
    entry = ledger.c
    above = entry.amount_minor > 0
    query = select(entry.kind, entry.posting, entry.account, entry.currency, above,
                   func.sum(entry.amount_minor)).where(entry.kind.in_(list(kinds)))
    rows = conn.execute(_of(query, entry.aggregate_id, prefix)
                        .group_by(entry.kind, entry.posting, entry.account, entry.currency, above))
    return [LedgerSum(kind, posting, account, currency, bool(positive),
                      from_units(int(total), currency))
            for kind, posting, account, currency, positive, total in rows]


def parked(conn: Connection, prefix: str) -> list[ParkedDeadline]:
    d = deadlines.c
    query = _of(select(d.kind, d.aggregate_id, d.trigger).where(d.status == FAILED),
                d.aggregate_id, prefix)
    return [ParkedDeadline(kind, id, trigger)
            for kind, id, trigger in conn.execute(query.order_by(d.due_at, d.id))]


def backlog(conn: Connection, now: datetime) -> Backlog:
    """Three counts, each through an index: ``(status, due_at)`` and ``(published_at, id)``."""
    d, o = deadlines.c, outbox.c
    # UTC: SQLite's DATETIME stores the wall-clock fields it is given, as the recorder does.
    due = now.astimezone(UTC)
    parked_n = conn.execute(select(func.count()).where(d.status == FAILED)).scalar_one()
    unpublished = conn.execute(select(func.count()).where(o.published_at.is_(None))).scalar_one()
    due_n = conn.execute(select(func.count()).where(d.status == PENDING, d.due_at <= due)).scalar_one()
    return Backlog(int(parked_n), int(unpublished), int(due_n))
