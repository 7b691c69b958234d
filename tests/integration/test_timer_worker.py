"""The timer worker keeps running through a database outage: it reconnects with backoff, logs
each outage once when it starts and once when it ends, and fires what fell due meanwhile.
SIGTERM stops it promptly, also while it waits to reconnect."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import pytest
from structlog.testing import capture_logs

import lifecycle
from lifecycle.store.recorder import Recorder
from tests.builders import buyer, console_script, order_in, order_payload, seller_in
from tests.outages import connected, database_down, named_url, new_name

# --- in process, on SQLite: the engine's own errors through the worker's loop -----------------


class RecordingStop:
    """A `threading.Event` that records the waits instead of sleeping; set once nothing is due
    any more (the worker then waits its interval)."""

    def __init__(self, interval: float):
        self.interval, self.waits, self._set = interval, list[float](), False

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.waits.append(timeout)
        self._set = timeout == self.interval
        return self._set


def test_the_worker_rides_out_a_lost_database_and_fires_what_is_due(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    orders = [order_in(engine, clock, "awaiting_payment") for _ in range(3)]
    clock.advance(timedelta(hours=24))
    real_next_due = Recorder.next_due
    lost = [sqlite3.OperationalError("disk I/O error") for _ in range(3)]

    def flaky_next_due(*args: Any) -> Any:
        if lost:
            raise lost.pop()
        return real_next_due(*args)

    monkeypatch.setattr(Recorder, "next_due", flaky_next_due)
    stop = RecordingStop(interval=7.0)
    with capture_logs() as logs:
        fired = lifecycle.TimerWorker(engine, interval=7.0).run(stop)

    assert fired == 3
    assert stop.waits == [0.5, 1.0, 2.0, 7.0]
    assert {engine.get("order", o.id).state for o in orders} == {"cancelled"}
    assert [d for d in engine.deadlines() if d.kind == "order"] == []
    (down,) = [e for e in logs if e["event"] == "timers.database_unavailable"]
    assert down["reason"] == "disk I/O error"
    assert down["database"] == engine.database.url.render_as_string(hide_password=True)
    (back,) = [e for e in logs if e["event"] == "timers.database_back"]
    assert back["tries"] == 3
    assert [e for e in logs if e["event"] == "timer.failed"] == []


# --- the installed command on PostgreSQL, through outages made by the test ---------------------


class Lines:
    """A subprocess's output, read on a thread as it comes (its pipe never fills)."""

    def __init__(self, stream: IO[str]):
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in list(self.lines):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == name:
                found.append(event)
        return found

    def finish(self) -> None:
        self._thread.join(timeout=10)


def eventually(what: str, condition: Callable[[], bool], worker: subprocess.Popen[str],
               patience: float = 60.0) -> None:
    """Wait for ``condition`` (the worker's pace is its own); fail if the worker dies."""
    give_up = time.monotonic() + patience
    while not condition():
        if worker.poll() is not None:
            pytest.fail(f"the worker exited with {worker.returncode} while waiting for {what}")
        if time.monotonic() > give_up:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def test_the_worker_command_keeps_running_through_outages_and_fires_what_fell_due(
    pg_engine: lifecycle.Engine, pg_url: str, clock: lifecycle.SimulatedClock
) -> None:
    # The worker runs on the system clock: place the orders two days ago, so each one's
    # 24-hour payment_timeout is due as soon as it is placed.
    clock.set(max(clock.now(), datetime.now(UTC) - timedelta(days=2)))
    if clock.now() > datetime.now(UTC) - timedelta(days=1):
        pytest.skip("the system clock is behind the simulated one")
    seller_in(pg_engine, "active")
    app = new_name("h2-worker")
    env = {key: value for key, value in os.environ.items() if key != "LIFECYCLE_DB"}
    command = [console_script(), "--db", named_url(pg_url, app), "timers", "run", "--interval", "0.05"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env) as worker:
        assert worker.stdout is not None
        assert worker.stderr is not None
        out, err = Lines(worker.stdout), Lines(worker.stderr)
        try:
            placed = _through_two_outages(pg_engine, pg_url, app, worker, err)
        finally:
            if worker.poll() is None:
                worker.kill()
            worker.wait()
            out.finish()
            err.finish()

    assert len(placed) == 5
    assert out.lines == ["fired 5 deadlines"]
    assert len(err.events("timers.database_unavailable")) == 2
    assert len(err.events("timers.database_back")) == 1
    assert err.events("timer.failed") == []
    assert not [line for line in err.lines if "Traceback" in line or line.startswith("error:")]
    for order in placed:
        assert [e.trigger for e in pg_engine.history("order", order.id)] == ["place", "payment_timeout"]


def _through_two_outages(pg_engine: lifecycle.Engine, pg_url: str, app: str,
                         worker: subprocess.Popen[str], err: Lines) -> list[lifecycle.Aggregate]:
    """Orders due before an outage, orders that fall due during it, then a second outage that
    SIGTERM cuts short; the orders placed."""

    def state(order: lifecycle.Aggregate) -> str:
        return pg_engine.get("order", order.id).state

    def place(n: int) -> list[lifecycle.Aggregate]:
        return [pg_engine.create("order", buyer(), order_payload()) for _ in range(n)]

    eventually("the worker to connect", lambda: connected(pg_url, app) > 0, worker)
    before = place(2)
    eventually("the deadlines due before the outage",
               lambda: {state(o) for o in before} == {"cancelled"}, worker)

    with database_down(pg_url, app):
        during = place(3)  # the test's own connection is still up
        eventually("the outage to be logged",
                   lambda: len(err.events("timers.database_unavailable")) == 1, worker)
        assert worker.poll() is None
        assert {state(o) for o in during} == {"awaiting_payment"}

    eventually("the deadlines that fell due during the outage",
               lambda: {state(o) for o in during} == {"cancelled"}, worker)
    eventually("the recovery to be logged",
               lambda: len(err.events("timers.database_back")) == 1, worker)

    with database_down(pg_url, app):
        eventually("the second outage to be logged",
                   lambda: len(err.events("timers.database_unavailable")) == 2, worker)
        worker.send_signal(signal.SIGTERM)  # while it waits to reconnect
        assert worker.wait(timeout=20) == 0
    return before + during
