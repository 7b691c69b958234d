"""Statements on the policy table: every version kept, the newest in force (SPEC §2, §13).

They run on the transaction's DBAPI cursor (`store.hot`), so a write transaction can read the
newest version as its first statement: one single-row read of the primary key's index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Dialect, bindparam, func, insert, select
from sqlalchemy.dialects import sqlite

from lifecycle.store.hot import cursor
from lifecycle.store.repository import as_utc
from lifecycle.store.tables import policy

_STATEMENTS = {
    "newest": select(func.max(policy.c.version)),
    "one": select(policy.c["values"], policy.c.created_at)
    .where(policy.c.version == bindparam("version")),
    "store": insert(policy).values(version=bindparam("version"), values=bindparam("values"),
                                   created_at=bindparam("created_at")),
}


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    """One row: the version, its values as stored (JSON, see `lifecycle.policy`), when set."""

    version: int
    values: dict[str, Any]
    created_at: datetime


@cache
def _sql(dialect: Dialect) -> dict[str, str]:
    compile_with = sqlite.dialect(paramstyle="named") if dialect.name == "sqlite" else dialect
    return {name: str(stmt.compile(dialect=compile_with)) for name, stmt in _STATEMENTS.items()}


def newest_version(conn: Connection) -> int | None:
    """The newest version's number, or None while the table is empty."""
    _hot, cur = cursor(conn)
    cur.execute(_sql(conn.dialect)["newest"])
    row = cur.fetchone()
    return None if row is None or row[0] is None else int(row[0])


def read(conn: Connection, version: int) -> StoredPolicy | None:
    hot, cur = cursor(conn)
    cur.execute(_sql(conn.dialect)["one"], {"version": version})
    row = cur.fetchone()
    if row is None:
        return None
    values, created_at = row
    return StoredPolicy(version, hot.loads(values), hot.moment_of(created_at))


def store(conn: Connection, version: int, values: dict[str, Any], now: datetime) -> None:
    """Add a version; a version taken meanwhile by another process raises the driver's
    IntegrityError (the primary key), which the caller answers by reading again."""
    hot, cur = cursor(conn)
    cur.execute(_sql(conn.dialect)["store"], {"version": version, "values": hot.json(values),
                                              "created_at": hot.moment(now)})


def every(conn: Connection) -> list[StoredPolicy]:
    """Every version, oldest first (through Core: a read outside any trigger)."""
    rows = conn.execute(select(policy).order_by(policy.c.version))
    return [StoredPolicy(row.version, row._mapping["values"], as_utc(row.created_at))
            for row in rows]
