"""The machine definitions a database has run (SPEC §13), and the writes of a migration: an
aggregate moved to another version of its machine, its deadlines moved. A part of `Recorder`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update

from lifecycle.store.statements import Statement, Statements
from lifecycle.store.tables import aggregates, deadlines, machine_versions


@dataclass(frozen=True, slots=True)
class RegisteredMachine:
    """One (kind, version) a process opened the database with: its fingerprint and shape."""

    kind: str
    version: int
    fingerprint: str
    shape: dict[str, Any]
    registered_at: datetime


class MachineVersionRecords(Statements):
    """Statements on the machine_versions table, and a migration's writes."""

    REGISTERED = Statement(select(machine_versions.c.kind, machine_versions.c.version,
                                  machine_versions.c.fingerprint, machine_versions.c.shape,
                                  machine_versions.c.registered_at)
                           .order_by(machine_versions.c.kind, machine_versions.c.version))

    def registered_machines(self) -> list[RegisteredMachine]:
        self.cur.execute(self.REGISTERED)
        return [RegisteredMachine(kind, version, fingerprint, self.loads(shape),
                                  self.moment_of(at))
                for kind, version, fingerprint, shape, at in self.cur.fetchall()]

    VERSION_COUNTS = Statement(
        select(aggregates.c.kind, aggregates.c.machine_version, func.count())
        .group_by(aggregates.c.kind, aggregates.c.machine_version))

    def machine_version_counts(self) -> dict[tuple[str, int], int]:
        """How many aggregates run each (kind, version)."""
        self.cur.execute(self.VERSION_COUNTS)
        return {(kind, version): count for kind, version, count in self.cur.fetchall()}

    REGISTER = Statement(insert(machine_versions).values(
        kind=bindparam("kind"), version=bindparam("version"), fingerprint=bindparam("fingerprint"),
        shape=bindparam("shape"), registered_at=bindparam("registered_at")))

    def register_machine(self, kind: str, version: int, fingerprint: str, shape: dict[str, Any],
                         now: datetime) -> None:
        """Remember a (kind, version); one another process registered meanwhile raises the
        driver's IntegrityError (the primary key), which the caller answers by reading again."""
        self.cur.execute(self.REGISTER, {"kind": kind, "version": version,
                                         "fingerprint": fingerprint, "shape": self.json(shape),
                                         "registered_at": self.moment(now)})

    MIGRATE_AGGREGATE = Statement(
        update(aggregates)
        .where(aggregates.c.kind == bindparam("b_kind"), aggregates.c.id == bindparam("b_id"),
               aggregates.c.version == bindparam("b_version"))
        .values(state=bindparam("state"), version=bindparam("version"),
                machine_version=bindparam("machine_version"), updated_at=bindparam("updated_at")))

    def migrate_aggregate(self, kind: str, id: str, read_version: int, state: str,
                          machine_version: int, now: datetime) -> bool:
        """Move the aggregate to ``state`` on version ``machine_version`` of its machine, one
        version on, if nobody moved it since ``read_version``; False if somebody did."""
        self.cur.execute(self.MIGRATE_AGGREGATE, {
            "b_kind": kind, "b_id": id, "b_version": read_version, "state": state,
            "version": read_version + 1, "machine_version": machine_version,
            "updated_at": self.moment(now)})
        return bool(self.cur.rowcount == 1)

    MOVE_DEADLINE = Statement(
        update(deadlines).where(deadlines.c.id == bindparam("b_id"))
        .values(state=bindparam("state"), due_at=bindparam("due_at"),
                remaining_us=bindparam("remaining_us")))

    def move_deadline(self, deadline_id: int, state: str, due_at: datetime,
                      remaining: timedelta | None) -> None:
        """A migration's change to one deadline: its state's new name, its due time (and the
        time left, while paused)."""
        self.cur.execute(self.MOVE_DEADLINE, {
            "b_id": deadline_id, "state": state, "due_at": self.moment(due_at),
            "remaining_us": None if remaining is None else remaining // timedelta(microseconds=1)})
