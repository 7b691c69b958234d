"""Read-only statements the simulation runs on the engine's tables, in bulk.

Through the engine's API a report reads one aggregate at a time (its postings, its history): a
query per order, most of the time a 100,000-order report took. These read each table once,
streamed, for every aggregate whose id carries the run's prefix, and return only the columns and
JSON fields the report uses. The driver asks its two questions of the deadlines table here too,
through the table's ``(status, due_at)`` index. Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, select

from lifecycle.store.deadlines import FAILED, PAUSED, PENDING
from lifecycle.store.tables import aggregates, deadlines, history, ledger

# Rows come in batches, not all at once (a server-side cursor on PostgreSQL).
STREAM: dict[str, Any] = {"stream_results": True, "yield_per": 5000}

Step = tuple[str, str | None]  # (trigger, the payload's "decision")


def _of_run(column: Any, prefix: str) -> ColumnElement[bool]:
    # What str.startswith does, on both databases: LIKE is case-blind on SQLite and treats
    # "_" as a wildcard.
    return func.substr(column, 1, len(prefix)) == prefix


def state_counts(conn: Connection, prefix: str,
                 kinds: Iterable[str]) -> list[tuple[str, str, int, int]]:
    """(kind, state, how many of the run's aggregates are in it, their versions summed)."""
    a = aggregates.c
    rows = conn.execute(
        select(a.kind, a.state, func.count(), func.sum(a.version))
        .where(a.kind.in_(list(kinds)), _of_run(a.id, prefix))
        .group_by(a.kind, a.state)
    )
    return [(kind, state, int(n), int(versions)) for kind, state, n, versions in rows]


def fields(conn: Connection, kind: str, prefix: str, text: Sequence[str],
           integer: Sequence[str] = ()) -> Iterator[tuple[str, dict[str, Any]]]:
    """(state, the named fields of its data) of each of the run's aggregates of ``kind``; a
    field the data lacks (or holds as null) is left out, as ``name in data`` would say."""
    a = aggregates.c
    columns = [a.data[name].as_string() for name in text]
    columns += [a.data[name].as_integer() for name in integer]
    names = (*text, *integer)
    rows = conn.execution_options(**STREAM).execute(
        select(a.state, *columns).where(a.kind == kind, _of_run(a.id, prefix))
    )
    for state, *values in rows:
        yield state, {name: value for name, value in zip(names, values, strict=True)
                      if value is not None}


def dispute_counts(conn: Connection, prefix: str) -> list[tuple[str, str, int]]:
    """(type, state, how many) of the run's disputes."""
    a = aggregates.c
    kind = a.data["type"].as_string()
    rows = conn.execute(
        select(kind, a.state, func.count())
        .where(a.kind == "dispute", _of_run(a.id, prefix))
        .group_by(kind, a.state)
    )
    return [(type_, state, int(n)) for type_, state, n in rows]


def dispute_steps(conn: Connection, prefix: str,
                  states: Iterable[str]) -> Iterator[tuple[str, list[Step]]]:
    """(type, its history as (trigger, decision), creation first) of each of the run's disputes
    in one of ``states``: one streamed pass over their history."""
    a, h = aggregates.c, history.c
    rows = conn.execution_options(**STREAM).execute(
        select(h.aggregate_id, a.data["type"].as_string(), h.trigger,
               h.payload["decision"].as_string())
        .join_from(history, aggregates, (a.kind == h.kind) & (a.id == h.aggregate_id))
        .where(h.kind == "dispute", a.state.in_(list(states)), _of_run(h.aggregate_id, prefix))
        .order_by(h.aggregate_id, h.seq)
    )
    for _id, group in groupby(rows, key=lambda row: row[0]):
        entries = list(group)
        yield entries[0][1], [(trigger, decision) for _, _, trigger, decision in entries]


def ledger_sums(conn: Connection, prefix: str,
                kinds: Iterable[str]) -> list[tuple[str, str, str, str, bool, int]]:
    """The run's ledger entries of ``kinds`` summed by (kind, posting, account, currency,
    amount above zero): (kind, posting, account, currency, above zero, sum in minor units)."""
    entry = ledger.c
    above = entry.amount_minor > 0
    rows = conn.execute(
        select(entry.kind, entry.posting, entry.account, entry.currency, above,
               func.sum(entry.amount_minor))
        .where(entry.kind.in_(list(kinds)), _of_run(entry.aggregate_id, prefix))
        .group_by(entry.kind, entry.posting, entry.account, entry.currency, above)
    )
    return [(kind, posting, account, currency, bool(positive), int(total))
            for kind, posting, account, currency, positive, total in rows]


def parked(conn: Connection, prefix: str) -> list[tuple[str, str, str]]:
    """(kind, aggregate id, trigger) of the run's deadlines parked as failed."""
    d = deadlines.c
    rows = conn.execute(
        select(d.kind, d.aggregate_id, d.trigger)
        .where(d.status == FAILED, _of_run(d.aggregate_id, prefix))
        .order_by(d.due_at, d.id)
    )
    return [(kind, id, trigger) for kind, id, trigger in rows]


def first_deadlines(conn: Connection, n: int) -> list[tuple[str, datetime]]:
    """(status, due) of the first ``n`` deadlines of any run by (due time, id), as a listing of
    the whole table would give them; from the first ``n`` of each status, which the index hands
    over without reading the rest."""
    d = deadlines.c
    firsts: list[tuple[datetime, int, str]] = []
    for status in (PENDING, PAUSED, FAILED):
        rows = conn.execute(
            select(d.due_at, d.id).where(d.status == status).order_by(d.due_at, d.id).limit(n)
        )
        firsts += [(due, id, status) for due, id in rows]
    firsts.sort(key=lambda row: (row[0], row[1]))
    return [(status, _utc(due)) for due, _, status in firsts[:n]]


def _utc(moment: datetime) -> datetime:
    # SQLite hands timestamps back without their zone; the engine stores UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
