"""`lifecycle verify`: every registered version of every machine checked over its graph, and
the follow-ups between machines and the migrations between versions (SPEC §13)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lifecycle.machines.definition import MachineDefinition, graph_problems
from lifecycle.machines.versions import Machines, Migration


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
    for reaction in definition.reactions:
        other_kind, other = reaction.on
        if other_kind not in machines:
            yield f"reacts to unknown kind {other_kind}"
        elif not any(machines.at(other_kind, v).sources_of(other)
                     or machines.at(other_kind, v).creation.trigger == other
                     for v in machines.versions(other_kind)):
            yield f"reacts to {other_kind} {other}, which no version of {other_kind} defines"
    received = {pair for d in machines.every() for pairs in d.sends.values() for pair in pairs}
    received |= {pair for d in machines.every() for r in d.reactions
                 for pair in getattr(r.effect, "sends", ())}
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
