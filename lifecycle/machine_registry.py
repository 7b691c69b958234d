"""The machine versions a database has run (SPEC §13): each process checks its definitions
against them when it opens the database, and registers the versions it brings that are new.

A definition whose version number the database knows under another fingerprint is refused with
`DefinitionChanged`, naming what changed: an edited machine must get a new version and a
migration, so that orders in flight keep the rules they started under, and replay holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from lifecycle.clock import Clock
from lifecycle.errors import Conflict, DefinitionChanged
from lifecycle.machines.shape import differences, fingerprint_of, shape
from lifecycle.machines.versions import Machines
from lifecycle.store.datastore import Store
from lifecycle.store.machine_versions import RegisteredMachine

log = structlog.get_logger("lifecycle")


def register(store: Store, clock: Clock, machines: Machines) -> None:
    """Check ``machines`` against the versions the database has run and register the new
    ones, in one write transaction when there are any. Raises `DefinitionChanged` (writing
    nothing) for the first version whose shape differs from the registered one."""
    for _attempt in range(5):
        with store.reading() as records:
            registered = {(r.kind, r.version): r for r in records.registered_machines()}
        new = _check(machines, registered)
        if not new:
            return
        try:
            with store.transaction() as records:
                now = clock.now().astimezone(UTC)
                for kind, version, printed, described in new:
                    records.register_machine(kind, version, printed, described, now)
        except store.duplicate:
            continue  # another process registered one first: check against it
        for kind, version, printed, _ in new:
            log.info("machine.registered", kind=kind, version=version, fingerprint=printed[:12])
        return
    raise Conflict("machine_versions", "registration")


def _check(machines: Machines, registered: dict[tuple[str, int], RegisteredMachine],
           ) -> list[tuple[str, int, str, dict[str, Any]]]:
    new = []
    for definition in machines.every():
        described = shape(definition)
        printed = fingerprint_of(described)
        row = registered.get((definition.kind, definition.version))
        if row is None:
            new.append((definition.kind, definition.version, printed, described))
        elif row.fingerprint != printed:
            raise DefinitionChanged(definition.kind, definition.version,
                                    differences(row.shape, described),
                                    row.registered_at.isoformat(timespec="seconds"))
    return new


def registered(store: Store) -> list[RegisteredMachine]:
    """Every (kind, version) the database has run, by kind and version."""
    with store.reading() as records:
        return records.registered_machines()


@dataclass(frozen=True, slots=True)
class MachineVersion:
    """One version of one machine, as `Engine.machine_versions` lists it."""

    kind: str
    version: int
    here: bool  # this process runs it
    registered_at: datetime | None  # when the database first ran it; None if never
    fingerprint: str  # this process's, or the database's when this process lacks it
    aggregates: int  # how many aggregates run it
    newest: bool  # what this process starts new aggregates on

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "version": self.version, "here": self.here,
                "registered_at": None if self.registered_at is None
                else self.registered_at.isoformat(),
                "fingerprint": self.fingerprint, "aggregates": self.aggregates,
                "newest": self.newest}


def versions(store: Store, machines: Machines) -> list[MachineVersion]:
    with store.reading() as records:
        stored = {(r.kind, r.version): r for r in records.registered_machines()}
        counts = records.machine_version_counts()
    here = {(d.kind, d.version): d for d in machines.every()}
    listed = []
    for key in sorted({*stored, *here, *counts}):
        kind, version = key
        row, definition = stored.get(key), here.get(key)
        printed = (fingerprint_of(shape(definition)) if definition is not None
                   else row.fingerprint if row is not None else "")
        listed.append(MachineVersion(
            kind, version, definition is not None,
            row.registered_at if row is not None else None, printed, counts.get(key, 0),
            kind in machines and machines[kind].version == version))
    return listed
