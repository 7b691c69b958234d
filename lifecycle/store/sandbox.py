"""The sandbox clock (issue #19) on disk: one row of ``sandbox_clock`` holds a sandbox's time.

A database made with ``lifecycle db init --sandbox`` has the row; a production database has
none. Every process that opens a sandbox reads its time from the row (`SandboxClock`), so the
CLI, the timer worker and the service agree on "now", and a move made by one is seen by all.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, func, insert, select, update

from lifecycle.store.failures import reachable
from lifecycle.store.tables import deadlines, sandbox_clock

ROW = 1


def _aware(value: datetime) -> datetime:
    """SQLite hands the stored UTC moment back naive; PostgreSQL aware."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class SandboxClock:
    """The clock of a sandbox database: ``now()`` reads the stored time (one primary-key
    read), so a move by any process shows in every other at once. Raises `Unavailable`
    when the database cannot be reached."""

    def __init__(self, database: Engine):
        self.database = database

    def now(self) -> datetime:
        return self.read()[0]

    @property
    def started_at(self) -> datetime:
        """When the sandbox's time began (``db init --sandbox --start``)."""
        return self.read()[1]

    def read(self) -> tuple[datetime, datetime]:
        """(now, started at), as stored."""
        with reachable(self.database), self.database.connect() as conn:
            row = conn.execute(select(sandbox_clock.c.now, sandbox_clock.c.started_at)
                               .where(sandbox_clock.c.id == ROW)).one()
        return _aware(row.now), _aware(row.started_at)

    def move_to(self, when: datetime) -> datetime:
        """Move the stored time forward to ``when`` (never back: a time already passed, by
        this process or another, leaves it where it is); return the time now stored."""
        with reachable(self.database), self.database.begin() as conn:
            when = when.astimezone(UTC)  # SQLite keeps the UTC wall time, not the zone
            conn.execute(update(sandbox_clock)
                         .where(sandbox_clock.c.id == ROW, sandbox_clock.c.now < when)
                         .values(now=when))
        return self.now()

    def next_due(self, until: datetime | None = None) -> datetime | None:
        """The earliest pending deadline (due at or before ``until``, when given); None when
        there is none. A paused or parked deadline is not pending."""
        query = select(func.min(deadlines.c.due_at)).where(deadlines.c.status == "pending")
        if until is not None:
            query = query.where(deadlines.c.due_at <= until.astimezone(UTC))
        with reachable(self.database), self.database.connect() as conn:
            due = conn.execute(query).scalar()
        return _aware(due) if due is not None else None


def is_sandbox(database: Engine) -> bool:
    """Whether the database (at the newest schema) keeps a sandbox clock."""
    with reachable(database), database.connect() as conn:
        return conn.execute(select(sandbox_clock.c.id).where(sandbox_clock.c.id == ROW)).first() is not None


def make_sandbox(database: Engine, start: datetime) -> None:
    """Mark a new database as a sandbox whose time starts at ``start``."""
    with reachable(database), database.begin() as conn:
        conn.execute(insert(sandbox_clock).values(id=ROW, now=start, started_at=start))
