"""Where "now" comes from. Domain code asks the injected clock, never ``datetime.now()``."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


def time_left_text(delta: timedelta) -> str:
    """A span as people read a deadline's time left: ``6d 23h59m``, ``3h05m``; ``due`` once it
    has passed. The CLI and the console print it alike."""
    if delta <= timedelta(0):
        return "due"
    days, seconds = delta.days, delta.seconds
    if days:
        return f"{days}d {seconds // 3600:02d}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Clock(Protocol):
    """Anything with a ``now()`` that returns an aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class SimulatedClock:
    """A clock that moves only when told to, so a 60-day window passes in microseconds."""

    def __init__(self, start: datetime | None = None):
        start = start or datetime(2026, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("SimulatedClock needs an aware datetime (tzinfo=UTC)")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by ``delta`` and return the new time."""
        if delta < timedelta(0):
            raise ValueError("a clock does not run backwards")
        with self._lock:
            self._now += delta
            return self._now

    def set(self, when: datetime) -> datetime:
        """Jump forward to ``when``."""
        return self.advance(when.astimezone(UTC) - self._now)
