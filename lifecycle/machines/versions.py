"""Versions of machines (SPEC §13): the migrations between versions, the registry of every
version an engine runs, replay across versions, and the modules that bring more versions.

An aggregate runs the version of its machine it was created under until `lifecycle migrate`
moves it; new aggregates start on the newest. A database remembers each (kind, version) it ran
by a fingerprint of `shape`: a process whose definition of the same version differs is refused
at start-up, naming what changed (`differences`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from lifecycle.errors import DefinitionError, ReplayMismatch
from lifecycle.machines.definition import Aggregate, MachineDefinition, Reaction

#: the trigger of the history row a migration writes (SPEC §13)
MIGRATED = "migrated"


# --- migrations -------------------------------------------------------------------------

StateMap = Mapping[str, "str | Callable[[Aggregate], str]"]


@dataclass(frozen=True, slots=True)
class Migration:
    """How aggregates of ``kind`` move from version ``source`` to version ``target``.

    ``states`` maps a state of the source version to its state in the target: a name, or a
    function of the aggregate for a state the target splits in two (it must return one of
    ``splits_into``). A state both versions have and the map leaves out keeps its name.
    """

    kind: str
    source: int
    target: int
    states: StateMap = field(default_factory=dict)
    splits_into: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    note: str = ""

    def state_for(self, aggregate: Aggregate) -> str:
        mapped = self.states.get(aggregate.state, aggregate.state)
        return mapped(aggregate) if callable(mapped) else mapped

    def possible(self, state: str) -> tuple[str, ...]:
        """The states ``state`` may become (more than one for a split state): what a replay
        of a ``migrated`` row accepts."""
        mapped = self.states.get(state, state)
        if callable(mapped):
            return self.splits_into.get(state, ())
        return (mapped,)


# --- the registry -----------------------------------------------------------------------


class UnknownMachineVersion(DefinitionError):
    """An aggregate runs, or a command names, a version of its machine this process lacks."""

    def __init__(self, kind: str, version: int, known: Iterable[int]):
        self.kind, self.version = kind, version
        listed = ", ".join(str(v) for v in sorted(known)) or "none"
        super().__init__(f"version {version} of the {kind} machine is not registered in this "
                         f"process (it has {listed}); start it with the definitions that "
                         "database runs (`--machines`, `lifecycle.open(machines=...)`)")


class Machines(Mapping[str, MachineDefinition]):
    """Every version of every machine an engine runs. As a mapping, kind → newest version
    (what new aggregates start on); `at` gives any registered version."""

    def __init__(self, definitions: Iterable[MachineDefinition],
                 migrations: Iterable[Migration] = ()):
        self._versions: dict[str, dict[int, MachineDefinition]] = {}
        for definition in definitions:
            versions = self._versions.setdefault(definition.kind, {})
            if definition.version in versions and versions[definition.version] is not definition:
                raise DefinitionError(f"{definition.kind}: version {definition.version} is "
                                      "registered twice")
            if definition.version < 1:
                raise DefinitionError(f"{definition.kind}: versions start at 1, "
                                      f"not {definition.version}")
            versions[definition.version] = definition
        self._newest = {kind: versions[max(versions)] for kind, versions in self._versions.items()}
        self.migrations: dict[tuple[str, int, int], Migration] = {}
        for migration in migrations:
            self._add_migration(migration)
        # Every trigger any version defines, per kind: what telemetry labels a trigger with.
        self.triggers = {kind: frozenset(t for d in versions.values() for t in d.machine.events)
                         for kind, versions in self._versions.items()}
        # The newest versions' reactions, by the (kind, trigger) they answer.
        reactions: dict[tuple[str, str], list[tuple[MachineDefinition, Reaction]]] = {}
        for definition in self._newest.values():
            for reaction in definition.reactions:
                reactions.setdefault(reaction.on, []).append((definition, reaction))
        self.reactions = {on: tuple(found) for on, found in reactions.items()}

    def _add_migration(self, migration: Migration) -> None:
        source = self.at(migration.kind, migration.source)
        target = self.at(migration.kind, migration.target)
        problems = []
        for state, mapped in migration.states.items():
            if state not in source.states:
                problems.append(f"maps {state!r}, which version {source.version} does not have")
            if callable(mapped):
                unknown = [s for s in migration.splits_into.get(state, ()) if s not in target.states]
                if not migration.splits_into.get(state):
                    problems.append(f"splits {state!r} without listing splits_into")
                if unknown:
                    problems.append(f"splits {state!r} into unknown {', '.join(unknown)}")
            elif mapped not in target.states:
                problems.append(f"maps {state!r} to {mapped!r}, which version "
                                f"{target.version} does not have")
        if problems:
            raise DefinitionError(f"{migration.kind} migration {migration.source}→"
                                  f"{migration.target}: " + "; ".join(problems))
        self.migrations[(migration.kind, migration.source, migration.target)] = migration

    def __getitem__(self, kind: str) -> MachineDefinition:
        return self._newest[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._newest)

    def __len__(self) -> int:
        return len(self._newest)

    def at(self, kind: str, version: int) -> MachineDefinition:
        """Version ``version`` of ``kind``'s machine; `UnknownMachineVersion` if not registered."""
        try:
            return self._versions[kind][version]
        except KeyError:
            raise UnknownMachineVersion(kind, version, self._versions.get(kind, {})) from None

    def versions(self, kind: str) -> tuple[int, ...]:
        return tuple(sorted(self._versions.get(kind, {})))

    def every(self) -> Iterator[MachineDefinition]:
        """Every registered definition, by kind, oldest version first."""
        for kind in self._versions:
            for version in self.versions(kind):
                yield self._versions[kind][version]

    def path(self, kind: str, source: int, target: int) -> list[Migration]:
        """The migrations that take ``kind`` from ``source`` to ``target``, shortest first;
        `DefinitionError` when none do."""
        if source == target:
            return []
        queue: deque[tuple[int, list[Migration]]] = deque([(source, [])])
        seen = {source}
        while queue:
            at, steps = queue.popleft()
            for (k, s, t), migration in self.migrations.items():
                if k != kind or s != at or t in seen:
                    continue
                if t == target:
                    return [*steps, migration]
                seen.add(t)
                queue.append((t, [*steps, migration]))
        raise DefinitionError(f"no migration takes the {kind} machine from version {source} to "
                              f"{target} (declared: {self._declared(kind)})")

    def _declared(self, kind: str) -> str:
        pairs = [f"{s}→{t}" for (k, s, t) in self.migrations if k == kind]
        return ", ".join(pairs) or "none"

    def with_more(self, more: Iterable[MachineDefinition | Migration]) -> Machines:
        """These machines and ``more`` (definitions and migrations), as a new registry. A
        definition of a (kind, version) these already hold takes its place: a company's own
        edit of a shipped machine (which, unless it is a new version, a database that ran the
        original refuses: `DefinitionChanged`)."""
        extra = list(more)
        added = [d for d in extra if isinstance(d, MachineDefinition)]
        replaced = {(d.kind, d.version) for d in added}
        definitions = [*(d for d in self.every() if (d.kind, d.version) not in replaced), *added]
        migrations = [*self.migrations.values(), *(m for m in extra if isinstance(m, Migration))]
        for item in extra:
            if not isinstance(item, MachineDefinition | Migration):
                raise DefinitionError(f"not a MachineDefinition or Migration: {item!r}")
        return Machines(definitions, migrations)


# --- replay across versions --------------------------------------------------------------

ReplayStep = tuple[str, "str | None", str, int]  # trigger, source, dest, machine version


def replay(machines: Machines, kind: str, steps: Iterable[ReplayStep]) -> tuple[str, int]:
    """The state and machine version a history leads to, each row checked against the version
    it ran under; a ``migrated`` row against the declared migrations. Raises `ReplayMismatch`
    at the first row that does not follow."""
    state: str | None = None
    version = 0
    for n, (trigger, source, dest, row_version) in enumerate(steps, start=1):
        try:
            definition = machines.at(kind, row_version)
        except UnknownMachineVersion as error:
            raise ReplayMismatch(kind, n, str(error)) from None
        if state is None:
            definition.replay([(trigger, source, dest)])
        elif trigger == MIGRATED:
            _check_migrated(machines, kind, n, state, version, source, dest, row_version)
        elif row_version != version:
            raise ReplayMismatch(kind, n, f"runs version {row_version} after version {version} "
                                 "without a migrated row")
        elif not definition.follows(state, trigger, source, dest):
            raise ReplayMismatch(kind, n, f"{trigger} from {source} to {dest} does not follow "
                                 f"{state} (version {row_version})")
        state, version = dest, row_version
    if state is None:
        raise ReplayMismatch(kind, 0, "no history")
    return state, version


def _check_migrated(machines: Machines, kind: str, n: int, state: str, version: int,
                    source: str | None, dest: str, target: int) -> None:
    if source != state:
        raise ReplayMismatch(kind, n, f"migrated from {source}, but the aggregate was in {state}")
    try:
        path = machines.path(kind, version, target)
    except DefinitionError as error:
        raise ReplayMismatch(kind, n, str(error)) from None
    possible = {state}
    for migration in path:
        possible = {after for before in possible for after in migration.possible(before)}
    if dest not in possible:
        raise ReplayMismatch(kind, n, f"migrated {state} to {dest}; the migrations from version "
                             f"{version} to {target} allow {', '.join(sorted(possible))}")


def load(spec: str) -> list[MachineDefinition | Migration]:
    """The definitions and migrations a module offers as ``MACHINES``: ``spec`` is a module
    name (``mycompany.machines``), ``module:ATTRIBUTE``, or the path of a ``.py`` file. What
    ``--machines`` and ``LIFECYCLE_MACHINES`` name."""
    import importlib
    import importlib.util
    from pathlib import Path

    where, _, attribute = spec.partition(":")
    attribute = attribute or "MACHINES"
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():
                raise DefinitionError(f"--machines {spec}: no such file {where}")
            found = importlib.util.spec_from_file_location(f"lifecycle_machines_{path.stem}", path)
            if found is None or found.loader is None:
                raise DefinitionError(f"--machines {spec}: {where} is not a Python module")
            module = importlib.util.module_from_spec(found)
            found.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except ModuleNotFoundError as error:
        raise DefinitionError(f"--machines {spec}: no module named {error.name}") from None
    offered = getattr(module, attribute, None)
    if offered is None:
        raise DefinitionError(f"--machines {spec}: {where} has no {attribute}")
    items = list(offered)
    for item in items:
        if not isinstance(item, MachineDefinition | Migration):
            raise DefinitionError(f"--machines {spec}: {attribute} holds {item!r}, not a "
                                  "MachineDefinition or Migration")
    return items
