"""Deadlines: scheduled as states change, fired when due.

They follow states: entering a state schedules its deadlines, leaving it cancels them, and
entering a pausing state (an order in dispute) stops their clocks until it is left again; all of
it inside the transition's own transaction (`follow_state`, which the pipeline calls).

`Timers` fires the due ones, each in a unit of work of its own, through the trigger path it is
given (the pipeline, which this module does not import: the pipeline imports it). A deadline
whose trigger the machine now refuses is discarded; one that fails otherwise is retried with
backoff and parked after `MAX_ATTEMPTS`; contention leaves it pending, untouched. Each one
taken is counted, timed and traced as a trigger of the ``system`` actor (`lifecycle.telemetry`),
its outcome the refusal's or the error's class when it did not fire, and its lag observed when
it did.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from lifecycle import telemetry
from lifecycle.actor import Actor
from lifecycle.adapters.errors import AdapterError
from lifecycle.errors import Conflict, Forbidden, GuardFailed, InvalidPayload, InvalidTransition, NotFound
from lifecycle.machines.definition import Aggregate, Deadline, MachineDefinition
from lifecycle.policy import Policy
from lifecycle.request import Request
from lifecycle.store.deadlines import ScheduledDeadline
from lifecycle.store.recorder import Recorder
from lifecycle.unit import Unit, Units

log = structlog.get_logger("lifecycle")

TIMER = Actor("system", "timer")

# A failing deadline (an adapter error) is retried this many times, waiting longer each time,
# then parked as failed for an operator (`lifecycle timers list --failed`).
MAX_ATTEMPTS = 5
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=1)


def follow_state(records: Recorder, definition: MachineDefinition, aggregate: Aggregate,
                 source: str | None, now: datetime, policy: Policy) -> None:
    """Bring the aggregate's deadlines in line with its move from ``source``."""
    dest = aggregate.state
    if source == dest:
        return  # a recorded event or a self-transition: the clocks keep running
    if dest in definition.pausing:
        records.pause_deadlines(aggregate.kind, aggregate.id, now)
        return
    kept: set[str] = set()
    if source in definition.pausing:
        kept = records.resume_deadlines(aggregate.kind, aggregate.id, dest, now)
    elif source is not None and definition.deadlines_for(source):
        for deadline in definition.deadlines_for(dest):
            if source in deadline.continues_from and records.carry_over(
                    aggregate.kind, aggregate.id, source, dest, deadline.trigger):
                kept.add(deadline.trigger)
        records.cancel_deadlines(aggregate.kind, aggregate.id, keep_state=dest)
    for deadline in definition.deadlines_for(dest):
        if deadline.trigger not in kept:
            records.schedule(aggregate.kind, aggregate.id, dest, deadline.trigger,
                             due_at(deadline, aggregate, now, policy), now)


def due_at(deadline: Deadline, aggregate: Aggregate, now: datetime, policy: Policy) -> datetime:
    """The anchor (a timestamp in the aggregate's data, or now) plus the policy's duration."""
    anchor = now
    if deadline.anchor is not None and deadline.anchor in aggregate.data:
        anchor = datetime.fromisoformat(aggregate.data[deadline.anchor])
    return anchor + deadline.duration(policy, aggregate.data)


def retry_at(attempts: int, now: datetime) -> datetime | None:
    """When to try a failed deadline again, or None once it has failed too often."""
    if attempts >= MAX_ATTEMPTS:
        return None
    wait: timedelta = min(FIRST_RETRY * 2 ** (attempts - 1), LONGEST_RETRY)
    return now + wait


class Triggers(Protocol):
    """The trigger path a deadline fires through (`lifecycle.pipeline.Pipeline`)."""

    def definition(self, kind: str) -> MachineDefinition: ...

    def triggers_of(self, kind: str) -> frozenset[str]: ...

    def fire_in(self, unit: Unit, definition: MachineDefinition, request: Request,
                expected_version: int | None) -> Aggregate: ...


class Timers:
    """Fires due deadlines as the ``system`` actor."""

    def __init__(self, units: Units, triggers: Triggers):
        self.units = units
        self.triggers = triggers

    def run_due(self, limit: int | None = None, stop: Callable[[], bool] | None = None,
                prefix: str = "") -> int:
        """`Engine.run_due_timers`: fire what is due, one unit of work each; how many fired."""
        fired = conflicts = 0
        while limit is None or fired < limit:
            if stop is not None and stop():
                break
            outcome = self._fire_next_due(prefix)
            if outcome is None:
                break
            if outcome == "conflict":
                conflicts += 1
                if conflicts > 100:  # another writer keeps winning; leave it for the next round
                    break
                continue
            fired += outcome == "fired"
        return fired

    def _fire_next_due(self, prefix: str) -> str | None:
        """Take the earliest due deadline and fire it; "fired", "discarded", "failed",
        "conflict", or None when nothing is due."""
        seen: telemetry.Observed | None = None
        try:
            with self.units.open() as unit:
                deadline = unit.records.next_due(unit.now, prefix)
                if deadline is None:
                    return None
                now = unit.now  # before the trigger moves it to the aggregate's last move
                seen = telemetry.observe(deadline.kind, deadline.trigger,
                                         self.triggers.triggers_of(deadline.kind),
                                         TIMER.role, deadline.aggregate_id)
                outcome = self._fire(unit, deadline, seen)
        except BaseException as error:
            if seen is not None:
                seen.finish(type(error).__name__, error)
            if isinstance(error, Conflict):
                return "conflict"
            raise
        seen.finish()
        if outcome == "fired":
            telemetry.deadline_fired((now - deadline.due_at).total_seconds())
        self.units.publish(unit.events, 0.0)
        return outcome

    def _fire(self, unit: Unit, deadline: ScheduledDeadline, seen: telemetry.Observed) -> str:
        """Fire one deadline under a savepoint: a refusal discards it, any other failure counts
        an attempt (and parks it after the last); either way the rest of the unit commits."""
        definition = self.triggers.definition(deadline.kind)
        request = Request(deadline.kind, deadline.aggregate_id, deadline.trigger, TIMER, {}, None)
        written = len(unit.events)
        try:
            with unit.records.savepoint():
                # Gone before the trigger runs: the deadline the transition schedules may get
                # this row's id again (SQLite reuses the highest rowid).
                unit.records.remove_deadline(deadline.id)
                self.triggers.fire_in(unit, definition, request, None)
        except Conflict:
            raise
        except self.units.store.errors:
            # Contention or an outage: not this deadline's fault, so never one of its attempts.
            # The whole transaction rolls back and `Store.transaction` says which it was.
            raise
        except (InvalidTransition, GuardFailed, Forbidden, InvalidPayload, NotFound) as refusal:
            del unit.events[written:]  # rolled back with the savepoint
            seen.outcome, seen.error = type(refusal).__name__, refusal
            unit.records.remove_deadline(deadline.id)
            log.warning("timer.discarded", kind=deadline.kind, id=deadline.aggregate_id,
                        trigger=deadline.trigger, reason=str(refusal))
            return "discarded"
        except Exception as error:
            del unit.events[written:]
            seen.outcome, seen.error = type(error).__name__, error
            attempts = deadline.attempts + 1
            # A declined payout is declined again for the same request: park it for an operator
            # at once. Timeouts and other errors may pass; retry those with backoff.
            final = isinstance(error, AdapterError) and not error.retryable
            retry = None if final else retry_at(attempts, unit.now)
            unit.records.record_failure(deadline.id, attempts, f"{type(error).__name__}: {error}",
                                        retry)
            log.warning("timer.failed", kind=deadline.kind, id=deadline.aggregate_id,
                        trigger=deadline.trigger, attempts=attempts, error=str(error),
                        parked=retry is None)
            return "failed"
        return "fired"
