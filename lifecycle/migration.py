"""`lifecycle migrate`: move in-flight aggregates to another version of their machine (SPEC §13).

For each aggregate of the kind that is not in a terminal state and not on the target version
yet, a plan: the state it gets (the declared migrations' state maps, in order), what happens to
each of its deadlines, and why it would be stranded, if it would. A dry run returns the plans;
a real run refuses the whole migration (`MigrationRefused`, nothing written) when any plan is
stranded, and otherwise carries each one out in a transaction of its own: the aggregate on the
new version and state, its deadlines moved, a ``migrated`` history row and an ``*.migrated``
outbox event. Aggregates in terminal states stay on their version: nothing fires on them again,
and their histories replay through the version they ran.

Deadlines, one row at a time: its state is renamed by the same map; if the target version
schedules no such deadline in that state it is dropped; if the target's deadline reads the
same duration from the same anchor it keeps its due time (a policy change applies to deadlines
scheduled after it, SPEC §13); otherwise its due time (or, while paused, its time left) moves by
the difference between the two durations for this aggregate under the policy in force. A
deadline the target schedules on the new state that the aggregate lacks is scheduled from its
anchor, as on entering the state.

Stranded, and refused: a state the target version does not have; a state with no way to a
terminal one; a deadline left waiting in a state the target does not have; money held in
escrow by an aggregate the migration would put in a terminal state (nothing would pay it out or
refund it), or a negative escrow.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog

from lifecycle.actor import Actor
from lifecycle.errors import Conflict, InvalidPayload, MigrationRefused
from lifecycle.events import migrated_body
from lifecycle.machines.definition import Aggregate, Deadline, MachineDefinition
from lifecycle.machines.shape import duration_name
from lifecycle.machines.versions import MIGRATED, Machines, Migration
from lifecycle.policy import Policy
from lifecycle.store.datastore import Store
from lifecycle.store.deadlines import PAUSED, PENDING, ScheduledDeadline
from lifecycle.store.recorder import Recorder
from lifecycle.store.repository import HistoryEntry
from lifecycle.timers import due_at

log = structlog.get_logger("lifecycle")

PAGE = 500


@dataclass(frozen=True, slots=True)
class DeadlineChange:
    """What a migration does to one deadline of one aggregate."""

    trigger: str
    state: str  # its state in the target version
    status: str  # pending, paused or failed
    action: str  # kept, moved, dropped, scheduled
    due_before: datetime | None
    due_after: datetime | None
    remaining_before: timedelta | None = None  # while paused
    remaining_after: timedelta | None = None
    id: int | None = None  # the row, None for one to schedule

    def to_json(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger, "state": self.state, "status": self.status,
            "action": self.action,
            "due_before": _iso(self.due_before), "due_after": _iso(self.due_after),
            "remaining_before": _seconds(self.remaining_before),
            "remaining_after": _seconds(self.remaining_after),
        }


@dataclass(frozen=True, slots=True)
class AggregatePlan:
    """What a migration does, or would do, to one aggregate."""

    kind: str
    id: str
    version: int  # the aggregate's row version the plan was made from
    from_version: int
    to_version: int
    state: str
    new_state: str
    deadlines: tuple[DeadlineChange, ...]
    escrow: dict[str, Decimal]  # held, per currency (none for kinds that hold no money)
    problems: tuple[str, ...]  # why it would be stranded; empty when it is not
    ends_by_timers: bool  # left alone, its deadlines alone take it to a terminal state

    @property
    def stranded(self) -> bool:
        return bool(self.problems)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "id": self.id, "from_version": self.from_version,
            "to_version": self.to_version, "state": self.state, "new_state": self.new_state,
            "deadlines": [d.to_json() for d in self.deadlines],
            "escrow": {currency: str(amount) for currency, amount in self.escrow.items()},
            "stranded": self.stranded, "problems": list(self.problems),
            "ends_by_timers": self.ends_by_timers,
        }


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """What `Engine.migrate` did (or, in a dry run, would do)."""

    kind: str
    to_version: int
    dry_run: bool
    plans: tuple[AggregatePlan, ...]
    terminal_left: int  # aggregates in terminal states, left on their version
    already: int  # aggregates already on the target version
    migrated: int  # 0 in a dry run

    @property
    def stranded(self) -> tuple[AggregatePlan, ...]:
        return tuple(p for p in self.plans if p.stranded)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "to_version": self.to_version, "dry_run": self.dry_run,
            "in_flight": len(self.plans), "stranded": len(self.stranded),
            "migrated": self.migrated, "terminal_left": self.terminal_left,
            "already": self.already, "money_ok": not any(_money_problem(p) for p in self.plans),
            "aggregates": [p.to_json() for p in self.plans],
        }


def migrate(store: Store, machines: Machines, kind: str, target: int, *, now: Callable[[], datetime],
            policy: Callable[[Recorder], Policy], actor: Actor, dry_run: bool,
            state: str | None = None) -> MigrationReport:
    """Plan the migration of every in-flight ``kind`` aggregate (of ``state`` only, when
    given) to version ``target``; carry it out unless ``dry_run``. See the module's doc."""
    definition = machines.at(kind, target)  # an unknown target is refused before any read
    if state is not None and not any(state in machines.at(kind, v).states
                                     for v in machines.versions(kind)):
        raise InvalidPayload("where", f"no version of the {kind} machine has a state {state!r}")
    plans, terminal_left, already = [], 0, 0
    with store.reading() as records:
        at, in_force = now(), policy(records)
        for aggregate in _aggregates(records, kind, state):
            if aggregate.machine_version == target:
                already += 1
                continue
            source = machines.at(kind, aggregate.machine_version)
            if aggregate.state in source.terminal:
                terminal_left += 1
                continue
            plans.append(plan(records, machines, aggregate, definition, at, in_force))
    stranded = [f"{p.id} ({p.state}): {'; '.join(p.problems)}" for p in plans if p.stranded]
    if dry_run:
        return MigrationReport(kind, target, True, tuple(plans), terminal_left, already, 0)
    if stranded:
        raise MigrationRefused(kind, target, stranded)
    done = [_carry_out(store, machines, p, definition, now, policy, actor) for p in plans]
    return MigrationReport(kind, target, False, tuple(done), terminal_left, already, len(done))


def _aggregates(records: Recorder, kind: str, state: str | None) -> Iterator[Aggregate]:
    after: str | None = None
    while True:
        page = records.find(kind, state=state, limit=PAGE, after_id=after)
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1].id


# --- planning one aggregate ------------------------------------------------------------


def plan(records: Recorder, machines: Machines, aggregate: Aggregate, target: MachineDefinition,
         now: datetime, policy: Policy) -> AggregatePlan:
    """What migrating ``aggregate`` to ``target`` does: read-only."""
    source = machines.at(aggregate.kind, aggregate.machine_version)
    path = machines.path(aggregate.kind, source.version, target.version)
    new_state = _mapped(path, aggregate, aggregate.state)
    problems: list[str] = []
    if new_state not in target.states:
        problems.append(f"version {target.version} has no state {new_state!r} and the "
                        "migration does not map it")
    elif not _can_end(target, new_state):
        problems.append(f"{new_state} has no way to a terminal state in version {target.version}")
    moved = dataclasses.replace(aggregate, state=new_state)
    changes = _deadline_changes(records, path, source, target, aggregate, moved, now, policy,
                                problems)
    balances = records.balances(aggregate.kind, aggregate.id)
    held = {currency: accounts["escrow"] for currency, accounts in balances.items()
            if accounts.get("escrow")}
    for currency, amount in held.items():
        if amount < 0:
            problems.append(f"escrow is negative ({amount} {currency})")
        elif new_state in target.terminal:
            problems.append(f"{amount} {currency} held in escrow, but {new_state} is terminal in "
                            f"version {target.version}: nothing would pay it out or refund it")
    ends = new_state in target.states and _ends_by_timers(target, new_state, changes)
    return AggregatePlan(aggregate.kind, aggregate.id, aggregate.version, source.version,
                         target.version, aggregate.state, new_state, tuple(changes), held,
                         tuple(problems), ends)


def _mapped(path: list[Migration], aggregate: Aggregate, state: str) -> str:
    for migration in path:
        state = migration.state_for(dataclasses.replace(aggregate, state=state))
    return state


def _deadline_changes(records: Recorder, path: list[Migration], source: MachineDefinition,
                      target: MachineDefinition, aggregate: Aggregate, moved: Aggregate,
                      now: datetime, policy: Policy, problems: list[str]) -> list[DeadlineChange]:
    rows = records.scheduled_deadlines(kind=aggregate.kind, id=aggregate.id)
    changes = [_row_change(path, source, target, aggregate, row, policy, problems) for row in rows]
    if moved.state in target.states and moved.state not in target.pausing:
        have = {c.trigger for c in changes if c.state == moved.state and c.action != "dropped"}
        for deadline in target.deadlines_for(moved.state):
            if deadline.trigger not in have:
                changes.append(DeadlineChange(deadline.trigger, moved.state, PENDING, "scheduled",
                                              None, due_at(deadline, moved, now, policy)))
    return changes


def _row_change(path: list[Migration], source: MachineDefinition, target: MachineDefinition,
                aggregate: Aggregate, row: ScheduledDeadline, policy: Policy,
                problems: list[str]) -> DeadlineChange:
    state = _mapped(path, aggregate, row.state)
    remaining = row.remaining
    if state not in target.states:
        problems.append(f"its {row.trigger} deadline waits in {row.state}, which version "
                        f"{target.version} does not have")
        return DeadlineChange(row.trigger, state, row.status, "dropped", row.due_at, None,
                              remaining, None, row.id)
    new = _deadline(target, state, row.trigger)
    if new is None:
        return DeadlineChange(row.trigger, state, row.status, "dropped", row.due_at, None,
                              remaining, None, row.id)
    old = _deadline(source, row.state, row.trigger)
    shift = _shift(old, new, aggregate, policy)
    if not shift:
        return DeadlineChange(row.trigger, state, row.status, "kept", row.due_at, row.due_at,
                              remaining, remaining, row.id)
    if row.status == PAUSED and remaining is not None:
        left = max(remaining + shift, timedelta(0))
        return DeadlineChange(row.trigger, state, row.status, "moved", row.due_at,
                              row.due_at + shift, remaining, left, row.id)
    return DeadlineChange(row.trigger, state, row.status, "moved", row.due_at, row.due_at + shift,
                          remaining, remaining, row.id)


def _deadline(definition: MachineDefinition, state: str, trigger: str) -> Deadline | None:
    return next((d for d in definition.deadlines_for(state) if d.trigger == trigger), None)


def _shift(old: Deadline | None, new: Deadline, aggregate: Aggregate, policy: Policy) -> timedelta:
    """How far the target's deadline moves the row: the difference of the two durations for
    this aggregate, nothing when the target reads the same duration from the same anchor."""
    if old is None or (old.anchor == new.anchor
                       and duration_name(old.duration) == duration_name(new.duration)):
        return timedelta(0)
    return new.duration(policy, aggregate.data) - old.duration(policy, aggregate.data)


def _can_end(definition: MachineDefinition, state: str) -> bool:
    forward: dict[str, set[str]] = {}
    for (source, _trigger), step in definition.steps.items():
        forward.setdefault(source, set()).update(step.dests)
    seen, queue = {state}, deque([state])
    while queue:
        at = queue.popleft()
        if at in definition.terminal:
            return True
        for nxt in forward.get(at, ()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return False


def _ends_by_timers(definition: MachineDefinition, state: str,
                    changes: list[DeadlineChange]) -> bool:
    """Whether deadlines alone take the aggregate from ``state`` to a terminal state: each
    state's pending deadline fired as the system (its unconditional route, the last one)."""
    seen = set()
    pending = {c.trigger for c in changes if c.state == state and c.status == PENDING
               and c.action != "dropped"}
    while state not in definition.terminal:
        if state in seen:
            return False
        seen.add(state)
        triggers = pending or {d.trigger for d in definition.deadlines_for(state)}
        pending = set()
        nxt = None
        for trigger in sorted(triggers):
            step = definition.step(state, trigger)
            if step is not None and "system" in step.roles:
                nxt = step.dests[-1]
                break
        if nxt is None:
            return False
        state = nxt
    return True


def _money_problem(plan: AggregatePlan) -> bool:
    return any("escrow" in problem for problem in plan.problems)


# --- carrying it out -------------------------------------------------------------------


def _carry_out(store: Store, machines: Machines, planned: AggregatePlan,
               target: MachineDefinition, now: Callable[[], datetime],
               policy: Callable[[Recorder], Policy], actor: Actor) -> AggregatePlan:
    """Migrate one aggregate in a transaction of its own, planned again on its locked row (it
    may have moved since the dry read); retried when another writer wins the row."""
    for _attempt in range(5):
        with store.transaction() as records:
            found = records.lock_for_write(planned.kind, planned.id)
            if found is None:
                return planned  # gone meanwhile (a test truncating tables): nothing to move
            aggregate, last_moved = found
            at = max(now(), last_moved)
            in_force = policy(records)
            again = plan(records, machines, aggregate, target, at, in_force)
            if again.stranded:
                raise MigrationRefused(planned.kind, target.version,
                                       [f"{again.id} ({again.state}): {'; '.join(again.problems)}"])
            if not records.migrate_aggregate(aggregate.kind, aggregate.id, aggregate.version,
                                             again.new_state, target.version, at):
                continue
            _move_deadlines(records, aggregate, again, at)
            _record(records, aggregate, again, actor, at, in_force)
            log.info("aggregate.migrated", kind=aggregate.kind, id=aggregate.id,
                     src=again.state, dst=again.new_state, from_version=again.from_version,
                     to_version=again.to_version)
            return again
    raise Conflict(planned.kind, planned.id)


def _move_deadlines(records: Recorder, aggregate: Aggregate, planned: AggregatePlan,
                    at: datetime) -> None:
    for change in planned.deadlines:
        if change.action == "dropped" and change.id is not None:
            records.remove_deadline(change.id)
        elif change.action == "scheduled" and change.due_after is not None:
            records.schedule(aggregate.kind, aggregate.id, change.state, change.trigger,
                             change.due_after, at)
        elif change.id is not None and change.due_after is not None:
            records.move_deadline(change.id, change.state, change.due_after,
                                  change.remaining_after)


def _record(records: Recorder, aggregate: Aggregate, planned: AggregatePlan, actor: Actor,
            at: datetime, policy: Policy) -> None:
    """The ``migrated`` history row and its event, one version on."""
    payload = {"from_version": planned.from_version, "to_version": planned.to_version,
               "deadlines": [d.to_json() for d in planned.deadlines]}
    seq = aggregate.version + 1
    records.append_history(aggregate, HistoryEntry(
        seq, MIGRATED, planned.state, planned.new_state, actor, payload, None, at,
        planned.to_version, records.newest_policy_version()))
    records.append_outbox(migrated_body(aggregate.kind, aggregate.id, seq, planned.state,
                                        planned.new_state, actor, payload, at), at)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _seconds(span: timedelta | None) -> int | None:
    return None if span is None else int(span.total_seconds())
