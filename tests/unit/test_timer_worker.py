"""The timer worker's loop, on a scripted engine: it rides out `Unavailable` with a backoff of
0.5 s doubling to 30 s, logs each outage once when it starts and once when it ends, starts the
backoff over after a success, counts every deadline fired, and stops at once when told to."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

import lifecycle
from lifecycle import Backoff, TimerWorker, Unavailable

DOWN = Unavailable("postgresql+psycopg://app:***@db:5432/shop", "connection refused")


class ScriptedEngine:
    """``run_due_timers`` answers from a script: a number fired, or an error to raise. When
    the script runs out it sets the worker's stop and reports nothing due."""

    def __init__(self, script: list[int | Exception], stop: FakeStop,
                 prune_fails: list[Exception] | None = None):
        self.script, self.stop, self.calls = list(script), stop, 0
        self.prunes = 0
        self.prune_fails = list(prune_fails or [])  # what the next prunes raise, in turn

    def prune(self, limit: int = 5000) -> dict[str, int]:
        self.prunes += 1
        if self.prune_fails:
            raise self.prune_fails.pop(0)
        return {"idempotency_keys": 0, "published_events": 0}

    def run_due_timers(self, limit: int | None = None,
                       stop: Callable[[], bool] | None = None) -> int:
        self.calls += 1
        assert limit == 1, "one deadline per call, so each is counted as it commits"
        if not self.script:
            self.stop.set()
            return 0
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


class FakeStop:
    """A `threading.Event` that never sleeps: it records each wait; ``stop_after`` waits it
    sets itself, as a signal arriving during that wait would."""

    def __init__(self, stop_after: int | None = None):
        self.waits: list[float] = []
        self.stop_after = stop_after
        self._set = False

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.waits.append(timeout)
        if self.stop_after is not None and len(self.waits) >= self.stop_after:
            self._set = True
        return self._set


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == name]


def test_backoff_doubles_from_half_a_second_to_thirty_and_starts_over_after_a_reset() -> None:
    backoff = Backoff()

    waits = [backoff.next() for _ in range(9)]
    backoff.reset()

    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert backoff.next() == 0.5


def test_the_worker_rides_out_an_outage_logging_it_once_then_fires() -> None:
    stop = FakeStop()
    engine = ScriptedEngine([DOWN, DOWN, DOWN, DOWN, 1, 1, 0], stop)

    with capture_logs() as logs:
        fired = TimerWorker(engine, interval=1.0, batch=500).run(stop)

    assert fired == 2
    assert stop.waits == [0.5, 1.0, 2.0, 4.0, 1.0]  # backoff while down, then the interval
    (down,) = events(logs, "timers.database_unavailable")
    assert down["log_level"] == "warning"
    assert (down["database"], down["reason"], down["retry_in"]) == (DOWN.database, DOWN.reason, 0.5)
    (back,) = events(logs, "timers.database_back")
    assert back["log_level"] == "warning"
    assert back["tries"] == 4


def test_each_outage_is_logged_once_and_the_backoff_starts_over_after_a_success() -> None:
    stop = FakeStop()
    engine = ScriptedEngine([DOWN, DOWN, 1, 0, DOWN, DOWN, DOWN, 1, 0], stop)

    with capture_logs() as logs:
        fired = TimerWorker(engine, interval=5.0).run(stop)

    assert fired == 2
    assert stop.waits == [0.5, 1.0, 0.5, 1.0, 2.0, 5.0]  # no interval: deadlines were due
    assert len(events(logs, "timers.database_unavailable")) == 2
    assert [e["tries"] for e in events(logs, "timers.database_back")] == [2, 3]


def test_a_stop_during_the_backoff_ends_the_worker_without_another_try() -> None:
    stop = FakeStop(stop_after=3)
    engine = ScriptedEngine([DOWN] * 10, stop)

    with capture_logs() as logs:
        fired = TimerWorker(engine).run(stop)

    assert fired == 0
    assert engine.calls == 3
    assert stop.waits == [0.5, 1.0, 2.0]
    assert events(logs, "timers.database_back") == []


def test_deadlines_fired_before_an_outage_in_the_middle_of_a_batch_are_counted() -> None:
    stop = FakeStop()
    engine = ScriptedEngine([1, 1, DOWN, 1, 0], stop)

    assert TimerWorker(engine, batch=10).run(stop) == 3


def test_once_fires_what_is_due_and_leaves_an_outage_to_the_caller() -> None:
    stop = FakeStop()

    assert TimerWorker(ScriptedEngine([1, 1, 0], stop), batch=2).run(stop, once=True) == 2
    with pytest.raises(Unavailable):
        TimerWorker(ScriptedEngine([1, DOWN], stop)).run(stop, once=True)
    assert stop.waits == []


def test_the_worker_is_public() -> None:
    assert {"Backoff", "TimerWorker", "Unavailable"} <= set(lifecycle.__all__)


def test_the_worker_prunes_once_it_has_caught_up_and_not_on_every_round() -> None:
    stop = FakeStop()
    engine = ScriptedEngine([1, 1, 0, 0, 0], stop)

    TimerWorker(engine, batch=2).run(stop)

    assert engine.prunes == 1  # caught up three times within PRUNE_EVERY: pruned once


def test_an_outage_while_pruning_is_ridden_out_like_one_while_firing() -> None:
    stop = FakeStop()
    engine = ScriptedEngine([1, 0, 1, 0], stop, prune_fails=[DOWN])

    with capture_logs() as logs:
        fired = TimerWorker(engine, batch=500).run(stop)

    assert fired == 2  # the worker went on after the failed prune, and fired the next one
    assert engine.prunes == 2  # tried again once the database was back
    assert stop.waits[0] == 0.5
    assert len(events(logs, "timers.database_unavailable")) == 1
    assert len(events(logs, "timers.database_back")) == 1
