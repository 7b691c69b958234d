"""Statements on the deadlines table, run inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from lifecycle.store.hot import cursor
from lifecycle.store.repository import as_utc
from lifecycle.store.tables import deadlines

PENDING, PAUSED, FAILED = "pending", "paused", "failed"


@dataclass(frozen=True, slots=True)
class ScheduledDeadline:
    """One row of the deadlines table, as `Engine.deadlines` and the CLI show it."""

    id: int
    kind: str
    aggregate_id: str
    state: str
    trigger: str
    status: str
    due_at: datetime
    remaining: timedelta | None
    attempts: int
    last_error: str | None


def schedule(conn: Connection, kind: str, id: str, state: str, trigger: str, due_at: datetime,
             now: datetime) -> None:
    hot, cur = cursor(conn)
    cur.execute(hot.sql["schedule"], {
        "kind": kind, "aggregate_id": id, "state": state, "trigger": trigger, "status": PENDING,
        "due_at": hot.moment(due_at), "attempts": 0, "created_at": hot.moment(now),
    })


def cancel(conn: Connection, kind: str, id: str, *, keep_state: str) -> None:
    """The aggregate left the state these deadlines belonged to (pending or parked as failed);
    those carried over into ``keep_state`` stay."""
    hot, cur = cursor(conn)
    cur.execute(hot.sql["cancel"], {"kind": kind, "id": id, "keep": keep_state})


def carry_over(conn: Connection, kind: str, id: str, source: str, dest: str, trigger: str) -> bool:
    """Move a pending deadline from ``source`` to ``dest`` with its due time; False if
    ``source`` had none of ``trigger``."""
    hot, cur = cursor(conn)
    cur.execute(hot.sql["carry_over"], {"kind": kind, "id": id, "source": source, "dest": dest,
                                        "trigger": trigger})
    return bool(cur.rowcount)


def pause(conn: Connection, kind: str, id: str, now: datetime) -> None:
    """Stop the clock on the aggregate's pending deadlines, keeping the time left."""
    hot, cur = cursor(conn)
    cur.execute(hot.sql["to_pause"], {"kind": kind, "id": id})
    for deadline_id, due_at in cur.fetchall():
        left = max(hot.moment_of(due_at) - now, timedelta(0))
        cur.execute(hot.sql["pause"], {"b_id": deadline_id,
                                       "remaining_us": left // timedelta(microseconds=1)})


def resume(conn: Connection, kind: str, id: str, state: str, now: datetime) -> set[str]:
    """Restart the paused deadlines of ``state`` with the time they had left; drop the rest.

    Returns the triggers resumed, so the caller does not schedule them afresh.
    """
    hot, cur = cursor(conn)
    cur.execute(hot.sql["to_resume"], {"kind": kind, "id": id})
    resumed = set()
    for deadline_id, paused_in, trigger, remaining_us in cur.fetchall():
        if paused_in != state:
            cur.execute(hot.sql["remove_deadline"], {"id": deadline_id})
            continue
        due = now + timedelta(microseconds=remaining_us or 0)
        cur.execute(hot.sql["resume"], {"b_id": deadline_id, "due_at": hot.moment(due)})
        resumed.add(trigger)
    return resumed


def next_due(conn: Connection, now: datetime) -> ScheduledDeadline | None:
    """The earliest pending deadline due by ``now``, locked for this transaction.

    On PostgreSQL, ``FOR UPDATE SKIP LOCKED`` lets several workers each take a different one;
    SQLite serialises writers with BEGIN IMMEDIATE and ignores the clause.
    """
    hot, cur = cursor(conn)
    cur.execute(hot.sql["next_due"], {"now": hot.moment(now)})
    row = cur.fetchone()
    if row is None:
        return None
    return _scheduled(row, hot.moment_of(row[6]))


def remove(conn: Connection, deadline_id: int) -> None:
    hot, cur = cursor(conn)
    cur.execute(hot.sql["remove_deadline"], {"id": deadline_id})


def record_failure(conn: Connection, deadline_id: int, attempts: int, error: str,
                   retry_at: datetime | None) -> None:
    """Count a failed attempt: retry at ``retry_at``, or park as failed when it is None."""
    hot, cur = cursor(conn)
    values: dict[str, object] = {"b_id": deadline_id, "attempts": attempts, "last_error": error[:2000]}
    if retry_at is None:
        cur.execute(hot.sql["park"], values)
    else:
        cur.execute(hot.sql["retry_later"], {**values, "due_at": hot.moment(retry_at)})


def listed(conn: Connection, *, due_by: datetime | None = None, failed: bool = False,
           kind: str | None = None, id: str | None = None,
           limit: int = 1000) -> list[ScheduledDeadline]:
    query = select(deadlines).order_by(deadlines.c.due_at, deadlines.c.id).limit(limit)
    if failed:
        query = query.where(deadlines.c.status == FAILED)
    if due_by is not None:
        query = query.where(deadlines.c.status == PENDING, deadlines.c.due_at <= due_by)
    if kind is not None:
        query = query.where(deadlines.c.kind == kind)
    if id is not None:
        query = query.where(deadlines.c.aggregate_id == id)
    return [_scheduled(row, as_utc(row.due_at)) for row in conn.execute(query)]


def _scheduled(row: Sequence[Any], due_at: datetime) -> ScheduledDeadline:
    """A row of ``select(deadlines)``, in the table's column order (a Core row or the hot
    path's tuple); ``due_at`` as the caller read it back."""
    id, kind, aggregate_id, state, trigger, status, _due, remaining, attempts, error, _created = row
    return ScheduledDeadline(
        id=id, kind=kind, aggregate_id=aggregate_id, state=state, trigger=trigger, status=status,
        due_at=due_at, remaining=timedelta(microseconds=remaining) if remaining is not None else None,
        attempts=attempts, last_error=error,
    )
