"""What a database error means to a caller: another writer in the way (retry at once, as a
`Conflict`), or the database out of reach (retry once it is back, as `Unavailable`).

Both arrive as an ``OperationalError`` or an ``InterfaceError``: SQLAlchemy's wrapper from Core
statements and connects, the driver's own (psycopg, sqlite3) from the hot path's cursor.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from lifecycle.errors import Unavailable

# serialization_failure, deadlock_detected, lock_not_available (NOWAIT, lock_timeout)
CONTENTION_SQLSTATES = frozenset({"40001", "40P01", "55P03"})


def database_errors(database: Engine) -> tuple[type[Exception], ...]:
    """The exception types that are contention or an outage, wrapped or straight from the driver."""
    dbapi: Any = database.dialect.dbapi
    return (OperationalError, InterfaceError, dbapi.OperationalError, dbapi.InterfaceError)


def is_contention(error: BaseException) -> bool:
    """Another transaction is in the way: a lock held too long, a deadlock, a serialization
    failure, SQLite's "database is locked". Retrying soon succeeds."""
    cause = getattr(error, "orig", None) or error
    if getattr(cause, "sqlstate", None) in CONTENTION_SQLSTATES:
        return True
    text = str(cause).lower()
    return "locked" in text or "busy" in text or "deadlock" in text or "serializ" in text


def unavailable(database: Engine, error: BaseException) -> Unavailable:
    """`Unavailable` for ``error``: the database's URL without its password, and the driver's
    own first line (SQLAlchemy's wrapper adds its class name and a link)."""
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    reason = lines[0].strip() if lines else type(cause).__name__
    return Unavailable(database.url.render_as_string(hide_password=True), reason)


@contextmanager
def reachable(database: Engine) -> Iterator[None]:
    """Run the block; a database error in it that is not contention becomes `Unavailable`."""
    try:
        yield
    except database_errors(database) as error:
        if is_contention(error):
            raise
        raise unavailable(database, error) from error
