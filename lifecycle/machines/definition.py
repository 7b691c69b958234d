"""Machines as data: states, transitions with their roles, payloads, guards and effects, deadlines.

A `MachineDefinition` is validated when it is built, and compiled into one shared
`transitions.Machine` that drives every aggregate of its kind: aggregates are never registered
with ``add_model`` (the slow, leaking path); each trigger is fired with
``machine.events[trigger].trigger(context)`` on a short-lived `Context`.
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from pydantic import BaseModel
from transitions import EventData, Machine

from lifecycle.actor import ROLES, Actor
from lifecycle.errors import DefinitionError, ReplayMismatch
from lifecycle.machines.follow_ups import (
    Call,
    Claim,
    Create,
    Fire,
    FollowUp,
    Index,
    Notify,
    Post,
    Scan,
    sends,
)
from lifecycle.policy import Policy

# The follow-ups live in their own module; they are part of what a definition is written with.
__all__ = [
    "Aggregate", "Call", "Check", "Claim", "Context", "Create", "Deadline", "DurationOf",
    "Effect", "Fire", "FollowUp", "Guard", "Index", "MachineDefinition", "Notify", "Owner",
    "Post", "Reaction", "Scan", "Step", "Transition", "sends",
]

# transitions logs every trigger through stdlib logging at INFO; that is our job, not its.
logging.getLogger("transitions").setLevel(logging.WARNING)


@dataclass(frozen=True, slots=True)
class Aggregate:
    """One persisted instance of a machine: a seller account, an order, a dispute."""

    kind: str
    id: str
    state: str
    version: int
    data: Mapping[str, Any]
    machine_version: int = 1  # the version of its kind's machine it runs (SPEC §13)


@dataclass(slots=True)
class Context:
    """What guards and effects see of one trigger; also the model `transitions` moves.

    ``data`` is a private copy: effects change it freely, and it is written only if the
    whole trigger succeeds.
    """

    kind: str
    id: str
    state: str
    data: dict[str, Any]
    payload: Any
    actor: Actor
    now: datetime
    policy: Policy
    load: Callable[[str, str], Aggregate | None]
    follow_ups: list[FollowUp] = field(default_factory=list)
    trigger: str = ""
    source: str = ""  # the state before the trigger (``state`` moves with it); "" on creation

    def elapsed_since(self, data_field: str) -> timedelta:
        """Time from the ISO timestamp stored in ``data[data_field]`` to now."""
        return self.now - datetime.fromisoformat(self.data[data_field])


Check = Callable[[Context], bool]
Effect = Callable[[Context], None]
Owner = Callable[[str, Mapping[str, Any]], "str | None"]


@dataclass(frozen=True, slots=True)
class Guard:
    """A named rule. ``check`` returns True when the trigger may go on.

    ``uses_payload=False`` marks rules that depend only on the aggregate and the clock; those
    are also evaluated by ``Engine.allowed``. A check that finds the payload malformed against
    the policy in force (a bound no static model can hold) raises `InvalidPayload` naming the
    field instead of returning False: the caller's input is wrong, not the moment.
    """

    rule: str
    check: Check
    message: str | Callable[[Context], str]
    uses_payload: bool = True

    def explain(self, context: Context) -> str:
        """The refusal in words; a callable message may name what the aggregate holds (the
        carrier the buyer chose), which a fixed text cannot."""
        return self.message(context) if callable(self.message) else self.message


@dataclass(frozen=True, slots=True)
class Transition:
    """One arrow. Several arrows may share a trigger and source; ``when`` picks the one taken.

    ``source=()`` marks the creating transition. ``dest=None`` keeps the state (a recorded event
    such as a tracking exception). ``internal`` triggers are fired only as follow-ups of another
    aggregate's transition, never directly.
    """

    trigger: str
    source: tuple[str, ...]
    dest: str | None
    roles: frozenset[str]
    payload: type[BaseModel] | None = None
    guards: tuple[Guard, ...] = ()
    effect: Effect | None = None
    when: Check | None = None
    internal: bool = False


DurationOf = Callable[[Policy, Mapping[str, Any]], timedelta]


@dataclass(frozen=True, slots=True)
class Deadline:
    """Entering ``state`` schedules ``trigger`` at ``data[anchor]`` (or entry) + ``duration``.

    ``continues_from``: states whose pending deadline of the same trigger this one carries on
    with its due time (an order's ``auto_confirm`` from ``shipped`` into ``in_transit``), so
    time a dispute paused is not given back or taken away (SPEC §4).
    """

    state: str
    trigger: str
    duration: DurationOf
    anchor: str | None = None
    continues_from: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Reaction:
    """A machine's answer to another machine's transition, in the same transaction: when the
    trigger ``on`` = (kind, trigger) has moved an aggregate, ``effect`` reads that transition's
    `Context` and returns the follow-ups (`Create`, `Fire`) it asks of this machine's own
    aggregates, declared with `sends` like an effect's.

    The other machine knows nothing of it, so the rule lives with the machine it is about (the
    points a seller earns for a paid order live in the points machine, not in the order's) and
    adding one changes no other machine's version. The follow-ups run as the system actor
    ``system:KIND.TRIGGER`` (``system:order.pay``), so history says why they happened.
    """

    on: tuple[str, str]
    effect: Callable[[Context], Sequence[FollowUp]]


@dataclass(frozen=True, slots=True)
class Step:
    """What a (state, trigger) pair permits: the shared checks of its routes."""

    trigger: str
    roles: frozenset[str]
    payload: type[BaseModel] | None
    guards: tuple[Guard, ...]
    internal: bool
    dests: tuple[str, ...]


class MachineDefinition:
    """A kind of aggregate: its states, arrows, owners and deadlines, validated and compiled."""

    def __init__(
        self,
        kind: str,
        *,
        states: tuple[str, ...],
        terminal: frozenset[str],
        transitions: tuple[Transition, ...],
        owners: Mapping[str, Owner],
        new_id: Callable[[Actor], str],
        public: frozenset[str] = frozenset(),
        deadlines: tuple[Deadline, ...] = (),
        pausing: frozenset[str] = frozenset(),
        retired: Mapping[str, tuple[str, ...]] | None = None,
        version: int = 1,
        reactions: tuple[Reaction, ...] = (),
    ):
        self.kind = kind
        self.version = version  # SPEC §13: bumped, with a migration, whenever the shape changes
        self.states = states
        self.terminal = terminal
        self.transitions = transitions
        self.owners = dict(owners)
        self.new_id = new_id
        self.public = public  # roles that act on any aggregate of the kind (buyers claim coupons)
        self.deadlines = deadlines
        self.pausing = pausing  # states that stop the clocks of the state they were entered from
        # Triggers an older version defined as self-loops of these states and this one does
        # not: their history rows replay as steps that changed nothing (`replay`).
        self.retired = dict(retired or {})
        # The follow-ups each trigger may fire or create on other kinds, as its effects declare
        # them (`follow_ups.sends`): ``trigger → ((kind, trigger), ...)``, the creating trigger
        # for a `Create`. Checked by `lifecycle verify`, and when they run: a follow-up its
        # effect did not declare is refused.
        self.sends = _sends_of(transitions)
        self.reactions = reactions  # to other machines' transitions (`Reaction`)
        self._deadlines_by_state: dict[str, tuple[Deadline, ...]] = {
            state: tuple(d for d in deadlines if d.state == state) for state in states
        }
        creating = [t for t in transitions if not t.source]
        if len(creating) != 1:
            raise DefinitionError(f"{kind}: needs exactly one creating transition, has {len(creating)}")
        self.creation = creating[0]
        if self.creation.dest is None:
            raise DefinitionError(f"{kind}: the creating transition needs a destination")
        self.initial: str = self.creation.dest
        self.steps = self._group_steps()
        _validate(self)
        self.machine = self._compile()

    def step(self, state: str, trigger: str) -> Step | None:
        """The checks for firing ``trigger`` in ``state``, or None when it is not defined there."""
        return self.steps.get((state, trigger))

    def triggers_from(self, state: str) -> tuple[str, ...]:
        """Every trigger defined from ``state``, internal ones included."""
        return tuple(t for (s, t) in self.steps if s == state)

    def external_triggers_from(self, state: str) -> tuple[str, ...]:
        """The triggers a caller may fire from ``state`` (internal ones left out)."""
        return tuple(t for (s, t), step in self.steps.items() if s == state and not step.internal)

    def roles_of(self, trigger: str) -> frozenset[str]:
        """The roles that may fire ``trigger`` from some state (none: the kind has no such
        trigger). What help texts and ``--as`` defaults are built from."""
        return frozenset().union(*(t.roles for t in self.transitions if t.trigger == trigger))

    def sources_of(self, trigger: str) -> tuple[str, ...]:
        """The states ``trigger`` is defined from, in the order the arrows list them (none:
        the kind has no such trigger, or it is the creating one)."""
        return tuple(dict.fromkeys(s for t in self.transitions if t.trigger == trigger
                                   for s in t.source))

    def owns(self, actor: Actor, id: str, data: Mapping[str, Any]) -> bool:
        """Operators and system act on anything; buyers and sellers on what is theirs, or on
        anything of a kind that is public to their role."""
        if actor.role in ("operator", "system") or actor.role in self.public:
            return True
        return self.owner_of(actor.role, id, data) == actor.id

    def owner_of(self, role: str, id: str, data: Mapping[str, Any]) -> str | None:
        """The id of the ``role`` who owns this aggregate, or None if that role owns nothing."""
        owner = self.owners.get(role)
        return owner(id, data) if owner else None

    def replay(self, entries: Iterable[tuple[str, str | None, str]]) -> str:
        """The state a history of (trigger, source, dest) leads to, checked arrow by arrow.

        Raises `ReplayMismatch` at the first entry the definition does not allow.
        """
        state: str | None = None
        for n, (trigger, source, dest) in enumerate(entries, start=1):
            if state is None:
                if (trigger, source, dest) != (self.creation.trigger, None, self.initial):
                    raise ReplayMismatch(self.kind, n, f"starts with {trigger}, not {self.creation.trigger}")
            elif not self.follows(state, trigger, source, dest):
                raise ReplayMismatch(
                    self.kind, n, f"{trigger} from {source} to {dest} does not follow {state}"
                )
            state = dest
        if state is None:
            raise ReplayMismatch(self.kind, 0, "no history")
        return state

    def follows(self, state: str, trigger: str, source: str | None, dest: str) -> bool:
        """Whether a history row (trigger, source, dest) may come after ``state``: an arrow
        of this definition, or a retired trigger's self-loop (kept in the count of steps, the
        version, and changing nothing)."""
        if self._retired_loop(state, trigger, source, dest):
            return True
        step = self.step(state, trigger)
        return source == state and step is not None and dest in step.dests

    def sends_to(self, trigger: str, kind: str, other: str) -> bool:
        """Whether ``trigger`` of this machine declares the follow-up ``other`` on ``kind``."""
        return (kind, other) in self.sends.get(trigger, ())

    def _retired_loop(self, state: str, trigger: str, source: str | None, dest: str) -> bool:
        """Whether a history row is a retired trigger's self-loop where it was defined."""
        return source == dest == state and state in self.retired.get(trigger, ())

    def deadlines_for(self, state: str) -> tuple[Deadline, ...]:
        return self._deadlines_by_state.get(state, ())

    def _group_steps(self) -> dict[tuple[str, str], Step]:
        routes: dict[tuple[str, str], list[Transition]] = defaultdict(list)
        for t in self.transitions:
            for source in t.source:
                routes[(source, t.trigger)].append(t)
        steps = {}
        for (source, trigger), group in routes.items():
            first = group[0]
            for other in group[1:]:
                if (other.roles, other.payload, other.guards, other.internal) != (
                    first.roles, first.payload, first.guards, first.internal
                ):
                    raise DefinitionError(
                        f"{self.kind}: routes of {trigger} from {source} differ in roles, "
                        "payload, guards or internal; they must share them"
                    )
            for route in group[:-1]:
                if route.when is None:
                    raise DefinitionError(
                        f"{self.kind}: {trigger} from {source} has an unconditional route "
                        "before another; only the last route may omit `when`"
                    )
            dests = tuple(dict.fromkeys(t.dest or source for t in group))
            steps[(source, trigger)] = Step(
                trigger, first.roles, first.payload, first.guards, first.internal, dests
            )
        return steps

    def _compile(self) -> Machine:
        """One `transitions.Machine` for the kind, with no model registered."""
        arrows = []
        for t in self.transitions:
            if not t.source:
                continue
            arrow: dict[str, Any] = {
                "trigger": t.trigger,
                "source": list(t.source),
                "dest": t.dest,
            }
            if t.when is not None:
                arrow["conditions"] = [_on_context(t.when)]
            if t.effect is not None:
                arrow["before"] = [_on_context(t.effect)]
            arrows.append(arrow)
        return Machine(
            model=None,
            states=list(self.states),
            transitions=arrows,
            initial=self.initial,
            auto_transitions=False,
            send_event=True,
        )


def _sends_of(transitions: tuple[Transition, ...]) -> dict[str, tuple[tuple[str, str], ...]]:
    sends: dict[str, dict[tuple[str, str], None]] = defaultdict(dict)
    for t in transitions:
        for pair in getattr(t.effect, "sends", ()):
            sends[t.trigger][pair] = None
    return {trigger: tuple(pairs) for trigger, pairs in sends.items()}


def _on_context(fn: Callable[[Context], Any]) -> Callable[[EventData], Any]:
    """Adapt a function of the Context to a transitions callback (which gets EventData)."""

    def callback(event: EventData) -> Any:
        return fn(cast(Context, event.model))

    callback.__name__ = getattr(fn, "__name__", "callback")
    return callback


def _validate(definition: MachineDefinition) -> None:
    """Refuse a definition that could strand an aggregate or name things that do not exist."""
    kind, states = definition.kind, set(definition.states)
    problems: list[str] = []
    if len(states) != len(definition.states):
        problems.append("a state is listed twice")
    for t in definition.transitions:
        for state in (*t.source, *([t.dest] if t.dest else [])):
            if state not in states:
                problems.append(f"{t.trigger} names unknown state {state!r}")
        if not t.roles:
            problems.append(f"{t.trigger} has no role that may fire it")
        for role in t.roles - set(ROLES):
            problems.append(f"{t.trigger} names unknown role {role!r}")
        if t.internal and t.roles != frozenset({"system"}):
            problems.append(f"internal trigger {t.trigger} must be fired by system only")
        if t.dest is None and not t.source:
            problems.append(f"{t.trigger} creates with no destination")
        for terminal in definition.terminal & set(t.source):
            problems.append(f"{t.trigger} leaves terminal state {terminal}")
    for state in definition.pausing - states:
        problems.append(f"pausing state {state!r} is unknown")
    for trigger, sources in definition.retired.items():
        if definition.sources_of(trigger):
            problems.append(f"retired trigger {trigger} is still defined")
        for state in set(sources) - states:
            problems.append(f"retired trigger {trigger} names unknown state {state!r}")
    for role in definition.owners:
        if role not in ROLES:
            problems.append(f"owner role {role!r} is unknown")
    for reaction in definition.reactions:
        if reaction.on[0] == kind:
            problems.append(f"a reaction to its own {reaction.on[1]}: an effect does that")
        for other_kind, _trigger in getattr(reaction.effect, "sends", ()):
            if other_kind != kind:
                problems.append(f"its reaction to {' '.join(reaction.on)} sends to {other_kind}: "
                                "a reaction acts on its own machine only")
    for d in definition.deadlines:
        step = definition.step(d.state, d.trigger)
        if d.state not in states:
            problems.append(f"deadline {d.trigger} on unknown state {d.state!r}")
        elif step is None:
            problems.append(f"deadline {d.trigger} on {d.state}: no such trigger from that state")
        elif "system" not in step.roles:
            problems.append(f"deadline {d.trigger} on {d.state}: system may not fire it")
        for earlier in d.continues_from:
            if not any(o.trigger == d.trigger for o in definition.deadlines_for(earlier)):
                problems.append(f"deadline {d.trigger} on {d.state} continues from {earlier!r}, "
                                f"which schedules no {d.trigger}")
    if problems:
        raise DefinitionError(f"{kind} machine: " + "; ".join(problems))
    _validate_graph(definition)


def _validate_graph(definition: MachineDefinition) -> None:
    """Every state reachable from the initial one; every non-terminal one able to end."""
    problems = graph_problems(definition)
    if problems:
        raise DefinitionError(f"{definition.kind} machine: " + "; ".join(problems))


def graph_problems(definition: MachineDefinition) -> list[str]:
    """What is wrong with the definition's graph: no terminal state, states unreachable from
    the initial one, states with no way to a terminal one. Empty when nothing is."""
    forward: dict[str, set[str]] = defaultdict(set)
    backward: dict[str, set[str]] = defaultdict(set)
    for (source, _trigger), step in definition.steps.items():
        for dest in step.dests:
            forward[source].add(dest)
            backward[dest].add(source)
    reachable = _closure({definition.initial}, forward)
    unreachable = [s for s in definition.states if s not in reachable]
    ending = _closure(set(definition.terminal), backward)
    stuck = [s for s in definition.states if s not in ending]
    problems = []
    if not definition.terminal:
        problems.append("no terminal state")
    if unreachable:
        problems.append(f"unreachable from {definition.initial}: {', '.join(unreachable)}")
    if stuck:
        problems.append(f"cannot reach a terminal state: {', '.join(stuck)}")
    return problems


def _closure(start: set[str], edges: Mapping[str, set[str]]) -> set[str]:
    seen, queue = set(start), deque(start)
    while queue:
        for nxt in edges.get(queue.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen
