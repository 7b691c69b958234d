"""Deadlines follow states: entering a state schedules its deadlines, leaving it cancels them,
and entering a pausing state (an order in dispute) stops their clocks until it is left again.

All of it runs inside the transition's own transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection

from lifecycle.machines.definition import Aggregate, Deadline, MachineDefinition
from lifecycle.policy import Policy
from lifecycle.store import deadlines as store

# A failing deadline (an adapter error) is retried this many times, waiting longer each time,
# then parked as failed for an operator (`lifecycle timers list --failed`).
MAX_ATTEMPTS = 5
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=1)


def follow_state(conn: Connection, definition: MachineDefinition, aggregate: Aggregate,
                 source: str | None, now: datetime, policy: Policy) -> None:
    """Bring the aggregate's deadlines in line with its move from ``source``."""
    dest = aggregate.state
    if source == dest:
        return  # a recorded event or a self-transition: the clocks keep running
    if dest in definition.pausing:
        store.pause(conn, aggregate.kind, aggregate.id, now)
        return
    kept: set[str] = set()
    if source in definition.pausing:
        kept = store.resume(conn, aggregate.kind, aggregate.id, dest, now)
    elif source is not None and definition.deadlines_for(source):
        for deadline in definition.deadlines_for(dest):
            if source in deadline.continues_from and store.carry_over(
                    conn, aggregate.kind, aggregate.id, source, dest, deadline.trigger):
                kept.add(deadline.trigger)
        store.cancel(conn, aggregate.kind, aggregate.id, keep_state=dest)
    for deadline in definition.deadlines_for(dest):
        if deadline.trigger not in kept:
            store.schedule(conn, aggregate.kind, aggregate.id, dest, deadline.trigger,
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
