"""The timer worker behind ``lifecycle timers run``: fire due deadlines until told to stop, and
keep running through a database outage, trying again with backoff.

An outage is logged twice, whatever the number of tries: ``timers.database_unavailable`` when
it starts, ``timers.database_back`` when the database answers again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import structlog

from lifecycle.errors import Unavailable

log = structlog.get_logger(__name__)

FIRST_WAIT = 0.5  # seconds before the first try again
LONGEST_WAIT = 30.0
# Expired idempotency records and published outbox rows (SPEC §2 retention) are pruned when
# the worker has caught up, at most this often (seconds of the worker's own running time).
PRUNE_EVERY = 60.0


class Stop(Protocol):
    """What tells the worker to stop: a `threading.Event` a signal handler sets. Waiting on it
    ends as soon as it is set, so a worker backing off stops at once."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class DueTimers(Protocol):
    """The part of `lifecycle.Engine` the worker drives."""

    def run_due_timers(self, limit: int | None = None,
                       stop: Callable[[], bool] | None = None) -> int: ...

    def prune(self, limit: int = ...) -> dict[str, int]: ...


class Backoff:
    """Seconds to wait between tries while the database is unavailable: ``first``, doubling
    up to ``longest``; from ``first`` again after a `reset` (a try that worked)."""

    def __init__(self, first: float = FIRST_WAIT, longest: float = LONGEST_WAIT):
        self.first, self.longest = first, longest
        self._next = first

    def next(self) -> float:
        wait, self._next = self._next, min(self._next * 2, self.longest)
        return wait

    def reset(self) -> None:
        self._next = self.first


class TimerWorker:
    """Fires due deadlines as the ``system`` actor, up to ``batch`` before looking again,
    waiting ``interval`` seconds when nothing is due."""

    def __init__(self, engine: DueTimers, *, interval: float = 1.0, batch: int = 500,
                 backoff: Backoff | None = None):
        self.engine, self.interval, self.batch = engine, interval, batch
        self.backoff = backoff or Backoff()
        self._fired = 0
        self._down_since: float | None = None  # time.monotonic() when the outage began
        self._tries = 0
        self._pruned_at: float | None = None  # time.monotonic() of the last prune

    def run(self, stop: Stop, *, once: bool = False) -> int:
        """Fire until ``stop`` is set; return how many deadlines fired.

        `Unavailable` is waited out with `backoff`. With ``once``, fire what is due now and
        return; an outage is then the caller's to handle (it raises `Unavailable`).
        """
        self._fired = 0
        while not stop.is_set():
            try:
                fired = self._fire_batch(stop)
                if fired < self.batch:
                    self._prune_if_due()  # inside the try: an outage here is one like any
            except Unavailable as error:
                if once:
                    raise
                stop.wait(self._unavailable(error))
                continue
            self._available()
            if once and fired < self.batch:
                break
            if fired == 0:
                stop.wait(self.interval)
        return self._fired

    def _fire_batch(self, stop: Stop) -> int:
        """Up to `batch` deadlines, one call each, so every deadline that commits is counted
        even when the database goes away in the middle of the batch."""
        for fired in range(self.batch):
            if not self.engine.run_due_timers(limit=1, stop=stop.is_set):
                return fired
            self._fired += 1
        return self.batch

    def _prune_if_due(self) -> None:
        """Retention work, once the due deadlines are done and at most every `PRUNE_EVERY`
        seconds; an outage while pruning is waited out like one while firing."""
        now = time.monotonic()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self.engine.prune()
        self._pruned_at = now

    def _unavailable(self, error: Unavailable) -> float:
        """Seconds to wait before the next try; the first failed try of an outage logs it."""
        wait = self.backoff.next()
        if self._down_since is None:
            self._down_since, self._tries = time.monotonic(), 0
            log.warning("timers.database_unavailable", database=error.database,
                        reason=error.reason, retry_in=wait)
        self._tries += 1
        return wait

    def _available(self) -> None:
        """A try worked: the backoff starts over, and an outage in progress is over."""
        self.backoff.reset()
        if self._down_since is None:
            return
        log.warning("timers.database_back", down_seconds=round(time.monotonic() - self._down_since, 1),
                    tries=self._tries)
        self._down_since = None
