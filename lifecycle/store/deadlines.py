"""The deadlines table: scheduling, cancelling, carrying over, pausing and resuming a
transition's deadlines, and taking the next due one for the timer worker. A part of `Recorder`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, delete, func, insert, literal_column, select, update

from lifecycle.store.repository import values_of
from lifecycle.store.statements import Statement, Statements
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

    def time_left(self, now: datetime) -> timedelta:
        """A paused deadline keeps the time it had left; a running one counts down to
        ``due_at`` (what the CLI and the console show)."""
        return self.remaining if self.remaining is not None else self.due_at - now


_of_aggregate = (deadlines.c.kind == bindparam("kind")) & (deadlines.c.aggregate_id == bindparam("id"))
_pending = deadlines.c.status == literal_column("'pending'")
# What str.startswith does, on both databases (LIKE is case-blind on SQLite and treats "_" as
# a wildcard), as `store.reports` reads a prefix.
_starts_with_prefix = (func.substr(deadlines.c.aggregate_id, literal_column("1"), bindparam("prefix_length"))
                       == bindparam("prefix"))


def _prefix_values(prefix: str) -> dict[str, object]:
    return {"prefix": prefix, "prefix_length": len(prefix)}


def _next_due(within: ColumnElement[bool] | None) -> Select[Any]:
    query = select(deadlines).where(_pending, deadlines.c.due_at <= bindparam("now"))
    if within is not None:
        query = query.where(within)
    return (query.order_by(deadlines.c.due_at)
            # Literals: only named parameters are passed (SQLite's compiler adds an OFFSET).
            .limit(literal_column("1"))
            .offset(literal_column("0"))
            .with_for_update(skip_locked=True))


def _first_of_status(within: ColumnElement[bool] | None) -> Select[Any]:
    query = select(deadlines.c.due_at, deadlines.c.id).where(
        deadlines.c.status == bindparam("status"))
    if within is not None:
        query = query.where(within)
    return (query.order_by(deadlines.c.due_at, deadlines.c.id)
            .limit(bindparam("limit")).offset(literal_column("0")))


class DeadlineRecords(Statements):
    """Statements on the deadlines table, inside the recorder's transaction."""

    SCHEDULE = Statement(insert(deadlines).values(
        values_of(deadlines, "id", "remaining_us", "last_error")))

    def schedule(self, kind: str, id: str, state: str, trigger: str, due_at: datetime,
                 now: datetime) -> None:
        self.cur.execute(self.SCHEDULE, {
            "kind": kind, "aggregate_id": id, "state": state, "trigger": trigger, "status": PENDING,
            "due_at": self.moment(due_at), "attempts": 0, "created_at": self.moment(now),
        })

    CANCEL = Statement(delete(deadlines).where(
        _of_aggregate,
        deadlines.c.status != literal_column("'paused'"),  # pending or parked as failed
        deadlines.c.state != bindparam("keep"),  # carried over into the state entered
    ))

    def cancel_deadlines(self, kind: str, id: str, *, keep_state: str) -> None:
        """The aggregate left the state these deadlines belonged to (pending or parked as
        failed); those carried over into ``keep_state`` stay."""
        self.cur.execute(self.CANCEL, {"kind": kind, "id": id, "keep": keep_state})

    # A deadline that continues into the next state keeps its due time (auto_confirm).
    CARRY_OVER = Statement(update(deadlines).where(
        _of_aggregate,
        deadlines.c.state == bindparam("source"),
        deadlines.c.trigger == bindparam("trigger"),
        _pending,
    ).values(state=bindparam("dest")))

    def carry_over(self, kind: str, id: str, source: str, dest: str, trigger: str) -> bool:
        """Move a pending deadline from ``source`` to ``dest`` with its due time; False if
        ``source`` had none of ``trigger``."""
        self.cur.execute(self.CARRY_OVER, {"kind": kind, "id": id, "source": source, "dest": dest,
                                           "trigger": trigger})
        return bool(self.cur.rowcount)

    # Entering and leaving a dispute: the order's deadlines stop and restart.
    TO_PAUSE = Statement(select(deadlines.c.id, deadlines.c.due_at).where(_of_aggregate, _pending))
    PAUSE = Statement(update(deadlines).where(deadlines.c.id == bindparam("b_id"))
                      .values(status=literal_column("'paused'"),
                              remaining_us=bindparam("remaining_us")))

    def pause_deadlines(self, kind: str, id: str, now: datetime) -> None:
        """Stop the clock on the aggregate's pending deadlines, keeping the time left."""
        self.cur.execute(self.TO_PAUSE, {"kind": kind, "id": id})
        for deadline_id, due_at in self.cur.fetchall():
            left = max(self.moment_of(due_at) - now, timedelta(0))
            self.cur.execute(self.PAUSE, {"b_id": deadline_id,
                                          "remaining_us": left // timedelta(microseconds=1)})

    TO_RESUME = Statement(select(deadlines.c.id, deadlines.c.state, deadlines.c.trigger,
                                 deadlines.c.remaining_us).where(
        _of_aggregate, deadlines.c.status == literal_column("'paused'")))
    RESUME = Statement(update(deadlines).where(deadlines.c.id == bindparam("b_id"))
                       .values(status=literal_column("'pending'"), due_at=bindparam("due_at"),
                               remaining_us=literal_column("NULL")))

    def resume_deadlines(self, kind: str, id: str, state: str, now: datetime) -> set[str]:
        """Restart the paused deadlines of ``state`` with the time they had left; drop the rest.

        Returns the triggers resumed, so the caller does not schedule them afresh.
        """
        self.cur.execute(self.TO_RESUME, {"kind": kind, "id": id})
        resumed = set()
        for deadline_id, paused_in, trigger, remaining_us in self.cur.fetchall():
            if paused_in != state:
                self.cur.execute(self.REMOVE_DEADLINE, {"id": deadline_id})
                continue
            due = now + timedelta(microseconds=remaining_us or 0)
            self.cur.execute(self.RESUME, {"b_id": deadline_id, "due_at": self.moment(due)})
            resumed.add(trigger)
        return resumed

    # The timer worker's query, once per deadline fired: SKIP LOCKED lets several PostgreSQL
    # workers each take a different row (SQLite has no such clause; BEGIN IMMEDIATE serialises).
    # The ``_IN`` forms keep to the aggregates whose id starts with a prefix (a simulation
    # shard's, issue #15): the same scan of the ``(status, due_at)`` index, other rows skipped.
    NEXT_DUE = Statement(_next_due(None))
    NEXT_DUE_IN = Statement(_next_due(_starts_with_prefix))

    def next_due(self, now: datetime, prefix: str = "") -> ScheduledDeadline | None:
        """The earliest pending deadline due by ``now`` (of an aggregate whose id starts with
        ``prefix``), locked for this transaction.

        On PostgreSQL, ``FOR UPDATE SKIP LOCKED`` lets several workers each take a different
        one; SQLite serialises writers with BEGIN IMMEDIATE and ignores the clause.
        """
        if prefix:
            self.cur.execute(self.NEXT_DUE_IN, {"now": self.moment(now), **_prefix_values(prefix)})
        else:
            self.cur.execute(self.NEXT_DUE, {"now": self.moment(now)})
        row = self.cur.fetchone()
        return None if row is None else self._scheduled(row)

    REMOVE_DEADLINE = Statement(delete(deadlines).where(deadlines.c.id == bindparam("id")))

    def remove_deadline(self, deadline_id: int) -> None:
        self.cur.execute(self.REMOVE_DEADLINE, {"id": deadline_id})

    RETRY_LATER = Statement(update(deadlines).where(deadlines.c.id == bindparam("b_id"))
                            .values(attempts=bindparam("attempts"),
                                    last_error=bindparam("last_error"),
                                    due_at=bindparam("due_at")))
    PARK = Statement(update(deadlines).where(deadlines.c.id == bindparam("b_id"))
                     .values(attempts=bindparam("attempts"), last_error=bindparam("last_error"),
                             status=literal_column("'failed'")))

    def record_failure(self, deadline_id: int, attempts: int, error: str,
                       retry_at: datetime | None) -> None:
        """Count a failed attempt: retry at ``retry_at``, or park as failed when it is None."""
        values: dict[str, object] = {"b_id": deadline_id, "attempts": attempts,
                                     "last_error": error[:2000]}
        if retry_at is None:
            self.cur.execute(self.PARK, values)
        else:
            self.cur.execute(self.RETRY_LATER, {**values, "due_at": self.moment(retry_at)})

    REQUEUE = Statement(update(deadlines).where(
        deadlines.c.id == bindparam("b_id"), deadlines.c.status == literal_column("'failed'"),
    ).values(status=literal_column("'pending'"), due_at=bindparam("due_at")))

    def requeue(self, deadline_id: int, now: datetime) -> bool:
        """Put a deadline parked as failed back in the queue, due ``now``, its attempts kept
        (so one more failure parks it again); False if no parked deadline has that id."""
        self.cur.execute(self.REQUEUE, {"b_id": deadline_id, "due_at": self.moment(now)})
        return bool(self.cur.rowcount)

    def scheduled_deadlines(self, *, due_by: datetime | None = None, failed: bool = False,
                  kind: str | None = None, id: str | None = None,
                  limit: int = 1000) -> list[ScheduledDeadline]:
        """Scheduled deadlines, by due time: all, those due by ``due_by``, the failed ones, of
        one kind or one aggregate."""
        shape = (due_by is not None, failed, kind is not None, id is not None)
        sql = self.variant(("deadlines", *shape), lambda: _listing(*shape))
        self.cur.execute(sql, {"due_by": self.moment(due_by) if due_by is not None else None,
                               "kind": kind, "id": id, "limit": limit})
        return [self._scheduled(row) for row in self.cur.fetchall()]

    FIRST_OF_STATUS = Statement(_first_of_status(None))
    FIRST_OF_STATUS_IN = Statement(_first_of_status(_starts_with_prefix))

    def first_deadlines(self, n: int, prefix: str = "") -> list[tuple[str, datetime]]:
        """(status, due time) of the first ``n`` deadlines by (due time, id), every status, of
        the aggregates whose id starts with ``prefix``: the first ``n`` of each status, which
        the ``(status, due_at)`` index hands over without reading the rest, merged."""
        firsts: list[tuple[datetime, int, str]] = []
        for status in (PENDING, PAUSED, FAILED):
            if prefix:
                self.cur.execute(self.FIRST_OF_STATUS_IN,
                                 {"status": status, "limit": n, **_prefix_values(prefix)})
            else:
                self.cur.execute(self.FIRST_OF_STATUS, {"status": status, "limit": n})
            firsts += [(self.moment_of(due), id, status) for due, id in self.cur.fetchall()]
        firsts.sort(key=lambda row: (row[0], row[1]))
        return [(status, due) for due, _, status in firsts[:n]]

    def _scheduled(self, row: Sequence[Any]) -> ScheduledDeadline:
        """A row of ``select(deadlines)``, in the table's column order."""
        id, kind, aggregate_id, state, trigger, status, due, remaining, attempts, error, _created = row
        return ScheduledDeadline(
            id=id, kind=kind, aggregate_id=aggregate_id, state=state, trigger=trigger,
            status=status, due_at=self.moment_of(due),
            remaining=timedelta(microseconds=remaining) if remaining is not None else None,
            attempts=attempts, last_error=error,
        )


def _listing(due: bool, failed: bool, kind: bool, id: bool) -> Any:
    query = (select(deadlines).order_by(deadlines.c.due_at, deadlines.c.id)
             .limit(bindparam("limit")).offset(literal_column("0")))
    if failed:
        query = query.where(deadlines.c.status == literal_column("'failed'"))
    if due:
        query = query.where(_pending, deadlines.c.due_at <= bindparam("due_by"))
    if kind:
        query = query.where(deadlines.c.kind == bindparam("kind"))
    if id:
        query = query.where(deadlines.c.aggregate_id == bindparam("id"))
    return query
