"""The policy table: every version kept, the newest in force (SPEC §2, §13). A part of
`Recorder`.

A write transaction reads the newest version as its first statement: one single-row read of
the primary key's index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select

from lifecycle.store.statements import Statement, Statements
from lifecycle.store.tables import policy


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    """One row: the version, its values as stored (JSON, see `lifecycle.policy`), when set."""

    version: int
    values: dict[str, Any]
    created_at: datetime


class PolicyRecords(Statements):
    """Statements on the policy table."""

    NEWEST_POLICY = Statement(select(func.max(policy.c.version)))

    def newest_policy_version(self) -> int | None:
        """The newest version's number, or None while the table is empty."""
        self.cur.execute(self.NEWEST_POLICY)
        row = self.cur.fetchone()
        return None if row is None or row[0] is None else int(row[0])

    POLICY = Statement(select(policy.c["values"], policy.c.created_at)
                       .where(policy.c.version == bindparam("version")))

    def stored_policy(self, version: int) -> StoredPolicy | None:
        self.cur.execute(self.POLICY, {"version": version})
        row = self.cur.fetchone()
        if row is None:
            return None
        values, created_at = row
        return StoredPolicy(version, self.loads(values), self.moment_of(created_at))

    STORE_POLICY = Statement(insert(policy).values(version=bindparam("version"),
                                                   values=bindparam("values"),
                                                   created_at=bindparam("created_at")))

    def store_policy(self, version: int, values: dict[str, Any], now: datetime) -> None:
        """Add a version; a version taken meanwhile by another process raises the driver's
        IntegrityError (the primary key), which the caller answers by reading again."""
        self.cur.execute(self.STORE_POLICY, {"version": version, "values": self.json(values),
                                             "created_at": self.moment(now)})

    POLICIES = Statement(select(policy.c.version, policy.c["values"], policy.c.created_at)
                         .order_by(policy.c.version))

    def stored_policies(self) -> list[StoredPolicy]:
        """Every version, oldest first."""
        self.cur.execute(self.POLICIES)
        return [StoredPolicy(version, self.loads(values), self.moment_of(created_at))
                for version, values, created_at in self.cur.fetchall()]
