"""Time you can move (issue #19): a sandbox database's clock, advanced on purpose.

    engine = lifecycle.open("sqlite:///sandbox.db")     # made with `lifecycle db init --sandbox`
    lifecycle.sandbox_clock(engine).now()               # the stored time every process reads
    moved = lifecycle.advance_clock(engine, "10d")      # move it, fire what fell due on the way
    moved.fired                                          # how many deadlines this call fired

Moving the clock steps from one due deadline to the next, firing each at its own due time, so a
deadline a fired one schedules (``auto_confirm`` → ``completed`` schedules ``release_funds``)
fires too when it falls inside the move, and history shows the times the deadlines were due.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from lifecycle.engine import Engine
from lifecycle.errors import InvalidPayload, NotASandbox
from lifecycle.policy import _parse_duration
from lifecycle.store.database import where
from lifecycle.store.sandbox import SandboxClock

__all__ = ["ClockMove", "SandboxClock", "advance_clock", "duration_of", "sandbox_clock"]

# More steps than any sandbox needs; a bound so that contention can never loop for ever.
MOST_STEPS = 100_000


@dataclass(frozen=True)
class ClockMove:
    """What `advance_clock` did: the time before and after, and the deadlines it fired."""

    before: datetime
    after: datetime
    fired: int


def sandbox_clock(engine: Engine) -> SandboxClock:
    """The engine's sandbox clock; `NotASandbox` for a production database."""
    clock = engine.clock
    if not isinstance(clock, SandboxClock):
        raise NotASandbox(where(engine.database))
    return clock


def duration_of(by: timedelta | str) -> timedelta:
    """``by`` as a positive duration: a `timedelta` or text like ``30m``, ``6h``, ``10d``,
    ``1d12h`` (an ISO 8601 ``P10D`` too). Zero and negative are `InvalidPayload`: a sandbox's
    time only moves forward."""
    if isinstance(by, str):
        text = by.strip()
        if text.startswith("-"):
            raise InvalidPayload("duration", f"{by!r} is negative; a sandbox's time only moves "
                                             "forward: give a duration like 30m, 6h, 10d or 1d12h")
        delta = _parse_duration("duration", text)
    elif isinstance(by, timedelta):
        delta = by
    else:
        raise InvalidPayload("duration", f"must be a duration like 10d, got {type(by).__name__}")
    if delta <= timedelta(0):
        raise InvalidPayload("duration", f"{by!r} does not move the clock; a sandbox's time only "
                                         "moves forward: give a duration like 30m, 6h, 10d or 1d12h")
    return delta


def advance_clock(engine: Engine, by: timedelta | str) -> ClockMove:
    """Move a sandbox's clock forward by ``by`` and fire every deadline that falls due on the
    way, each at its due time, as the timer worker would (one transaction each). Refuses a
    production database (`NotASandbox`) and a duration that is not positive (`InvalidPayload`),
    writing nothing. Raises `Unavailable` when the database is lost; what fired stays fired."""
    clock = sandbox_clock(engine)
    delta = duration_of(by)
    before = clock.now()
    target = before + delta
    fired, stuck_at = 0, None
    for _ in range(MOST_STEPS):
        due = clock.next_due(target)
        if due is None:
            break
        now = clock.move_to(due)
        fired_now = engine.run_due_timers()
        fired += fired_now
        if fired_now == 0 and stuck_at == now:
            break  # pending but not firing (held by another worker): the worker will
        stuck_at = now if fired_now == 0 else None
    after = clock.move_to(target)
    return ClockMove(before, after, fired)
