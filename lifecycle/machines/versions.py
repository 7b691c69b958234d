"""Versions of machines (SPEC §13): what a definition is, as data to compare; the migrations
between versions; the registry of every version an engine runs.

An aggregate runs the version of its machine it was created under until `lifecycle migrate`
moves it; new aggregates start on the newest. A database remembers each (kind, version) it ran
by a fingerprint of `shape`: a process whose definition of the same version differs is refused
at start-up, naming what changed (`differences`).

The shape holds what decides where an aggregate can go and when: states, arrows with their
roles, payload models, guards' rules, effects' and conditions' names, deadlines, follow-ups
sent. A deadline's duration is known by its qualified name, the names it reads and the plain
values it closes over, so a duration that reads another policy value is caught. A change inside
an effect's or a guard's body that keeps its name is not caught: that is a fix, not a new
version; a rule that means something else gets a new name.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from lifecycle.errors import DefinitionError, ReplayMismatch
from lifecycle.machines.definition import Aggregate, MachineDefinition, graph_problems

#: the trigger of the history row a migration writes (SPEC §13)
MIGRATED = "migrated"


# --- what a definition is, as data -----------------------------------------------------


def shape(definition: MachineDefinition) -> dict[str, Any]:
    """The definition as plain JSON data: what its fingerprint hashes and `differences`
    compares."""
    return {
        "kind": definition.kind,
        "version": definition.version,
        "states": list(definition.states),
        "initial": definition.initial,
        "terminal": sorted(definition.terminal),
        "pausing": sorted(definition.pausing),
        "public": sorted(definition.public),
        "transitions": [_arrow(t) for t in definition.transitions],
        "deadlines": [{"state": d.state, "trigger": d.trigger, "duration": duration_name(d.duration),
                       "anchor": d.anchor, "continues_from": list(d.continues_from)}
                      for d in definition.deadlines],
        "sends": {trigger: [list(pair) for pair in pairs]
                  for trigger, pairs in sorted(definition.sends.items())},
        "retired": {trigger: list(states) for trigger, states in sorted(definition.retired.items())},
    }


def fingerprint(definition: MachineDefinition) -> str:
    """SHA-256 of the definition's `shape`, hex."""
    return fingerprint_of(shape(definition))


def fingerprint_of(described: Mapping[str, Any]) -> str:
    canonical = json.dumps(described, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _arrow(t: Any) -> dict[str, Any]:
    return {
        "trigger": t.trigger,
        "source": list(t.source),
        "dest": t.dest,
        "roles": sorted(t.roles),
        "payload": None if t.payload is None else f"{t.payload.__module__}.{t.payload.__qualname__}",
        "guards": [g.rule for g in t.guards],
        "effect": _qualified(t.effect),
        "when": _qualified(t.when),
        "internal": t.internal,
    }


def _qualified(fn: Callable[..., Any] | None) -> str | None:
    """An effect or a route's condition by its qualified name: a fix inside its body is no
    new version of the machine."""
    if fn is None:
        return None
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def duration_name(fn: Callable[..., Any] | None) -> str | None:
    """A deadline's duration as the shape knows it: its qualified name, the names its code
    reads and the plain values it closes over (``_days("handling_time_days")``), so a duration
    that reads another policy value is another deadline; stable across Python releases, unlike
    its bytecode."""
    name = _qualified(fn)
    code = getattr(fn, "__code__", None)
    if name is None or code is None:
        return name
    closed = [v for v in map(_contents, getattr(fn, "__closure__", None) or ())
              if isinstance(v, str | int | float | bool)]
    constants = [c for c in code.co_consts if isinstance(c, str | int | float) and
                 not isinstance(c, bool) and c is not None and c != getattr(fn, "__doc__", None)]
    parts = [name, ",".join(code.co_names)]
    if closed or constants:
        parts.append(",".join(repr(v) for v in (*closed, *constants)))
    return "|".join(parts)


def _contents(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell
        return None


def differences(stored: Mapping[str, Any], running: Mapping[str, Any]) -> list[str]:
    """What changed from the ``stored`` shape to the ``running`` one, in words, one item each:
    states, terminal and pausing states, arrows (by trigger and source), deadlines (by state
    and trigger), follow-ups, retired triggers."""
    changes: list[str] = []
    changes += _listed("state", stored.get("states", []), running.get("states", []))
    for name in ("initial", "terminal", "pausing", "public"):
        if stored.get(name) != running.get(name):
            changes.append(f"{name} {_show(stored.get(name))} → {_show(running.get(name))}")
    changes += _keyed("transition", _arrows_by_route(stored), _arrows_by_route(running))
    changes += _keyed("deadline", _deadlines_by_key(stored), _deadlines_by_key(running))
    for name in ("sends", "retired"):
        if stored.get(name, {}) != running.get(name, {}):
            changes.append(f"{name} {_show(stored.get(name))} → {_show(running.get(name))}")
    return changes


def _listed(what: str, before: list[str], after: list[str]) -> list[str]:
    return ([f"{what} {s} added" for s in after if s not in before]
            + [f"{what} {s} removed" for s in before if s not in after])


def _keyed(what: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    changes = [f"{what} {key} added" for key in after if key not in before]
    changes += [f"{what} {key} removed" for key in before if key not in after]
    for key in before:
        if key in after and before[key] != after[key]:
            fields = [f for f in sorted({*before[key], *after[key]})
                      if before[key].get(f) != after[key].get(f)]
            changes.append(f"{what} {key}: {', '.join(fields)} changed")
    return changes


def _arrows_by_route(described: Mapping[str, Any]) -> dict[str, Any]:
    """Each arrow once per state it leaves: a trigger that now also leaves a new state is one
    route added, not an arrow removed and another added."""
    routes: dict[str, Any] = {}
    for arrow in described.get("transitions", []):
        rest = {name: value for name, value in arrow.items() if name != "source"}
        for source in arrow["source"] or ["(creation)"]:
            key = f"{arrow['trigger']} from {source}"
            if arrow.get("when"):
                key += f" when {arrow['when'].rsplit('.', 1)[-1]}"
            routes[key] = rest
    return routes


def _deadlines_by_key(described: Mapping[str, Any]) -> dict[str, Any]:
    return {f"{d['trigger']} on {d['state']}": d for d in described.get("deadlines", [])}


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if not isinstance(value, str) else value


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


# --- lifecycle verify --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    """One check of one version of one machine: passed, or what is wrong."""

    kind: str
    version: int
    check: str  # reachable, ends, deadlines, follow_ups, migrations
    problems: tuple[str, ...]
    detail: str  # what was checked, in words

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "version": self.version, "check": self.check, "ok": self.ok,
                "problems": list(self.problems), "detail": self.detail}


def verify(machines: Machines, kind: str | None = None) -> list[Finding]:
    """Check every registered version of every machine (of ``kind`` only, when given),
    exhaustively over its graph: every state reachable from the initial one; every
    non-terminal state able to reach a terminal one; every deadline's trigger defined from its
    state and firable by the system; every follow-up it sends a trigger every version of the
    receiving kind defines (a creating one for a created aggregate), every internal trigger
    sent by some machine, every state whose only ways out are internal sent to; every declared
    migration's states mapped into its target."""
    findings: list[Finding] = []
    for definition in machines.every():
        if kind is not None and definition.kind != kind:
            continue
        graph = graph_problems(definition)
        findings.append(Finding(definition.kind, definition.version, "reachable",
                                tuple(p for p in graph if p.startswith(("unreachable", "no terminal"))),
                                f"{len(definition.states)} states from {definition.initial}"))
        findings.append(Finding(definition.kind, definition.version, "ends",
                                tuple(p for p in graph if p.startswith("cannot reach")),
                                f"{len(set(definition.states) - definition.terminal)} non-terminal "
                                f"states reach one of {', '.join(sorted(definition.terminal))}"))
        findings.append(Finding(definition.kind, definition.version, "deadlines",
                                tuple(_deadline_problems(definition)),
                                f"{len(definition.deadlines)} deadlines fire from their states"))
        findings.append(Finding(definition.kind, definition.version, "follow_ups",
                                tuple(_follow_up_problems(machines, definition)),
                                f"{sum(len(p) for p in definition.sends.values())} follow-ups "
                                "sent, internal triggers received"))
    for (migration_kind, source, target), migration in sorted(machines.migrations.items()):
        if kind is not None and migration_kind != kind:
            continue
        findings.append(Finding(migration_kind, target, "migrations",
                                tuple(_migration_problems(machines, migration)),
                                f"every state of version {source} has a place in {target}"))
    return findings


def _deadline_problems(definition: MachineDefinition) -> Iterator[str]:
    for d in definition.deadlines:
        step = definition.step(d.state, d.trigger)
        if step is None:
            yield f"deadline {d.trigger} on {d.state}: no such trigger from that state"
        elif "system" not in step.roles:
            yield f"deadline {d.trigger} on {d.state}: the system may not fire it"


def _follow_up_problems(machines: Machines, definition: MachineDefinition) -> Iterator[str]:
    for trigger, pairs in definition.sends.items():
        for other_kind, other in pairs:
            if other_kind not in machines:
                yield f"{trigger} sends to unknown kind {other_kind}"
                continue
            for version in machines.versions(other_kind):
                receiver = machines.at(other_kind, version)
                if other == receiver.creation.trigger:
                    continue
                if not receiver.sources_of(other):
                    yield (f"{trigger} sends {other_kind} {other}, which version {version} of "
                           f"the {other_kind} machine does not define")
    received = {pair for d in machines.every() for pairs in d.sends.values() for pair in pairs}
    internal = {t.trigger for t in definition.transitions if t.internal}
    for trigger in sorted(internal):
        if (definition.kind, trigger) not in received:
            yield f"internal trigger {trigger} is sent by no machine: nothing can fire it"
    for state in definition.states:
        if state in definition.terminal:
            continue
        steps = [definition.steps[(state, t)] for t in definition.triggers_from(state)]
        if (steps and all(step.internal for step in steps)
                and not any((definition.kind, step.trigger) in received for step in steps)):
            yield f"{state} is left only by internal triggers no machine sends"


def _migration_problems(machines: Machines, migration: Migration) -> Iterator[str]:
    source = machines.at(migration.kind, migration.source)
    target = machines.at(migration.kind, migration.target)
    for state in source.states:
        if state in source.terminal:
            continue  # terminal aggregates stay on their version
        for after in migration.possible(state):
            if after not in target.states:
                yield f"{state} of version {source.version} has no state in version {target.version}"
        if not migration.possible(state):
            yield f"{state} splits into nothing listed"


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
