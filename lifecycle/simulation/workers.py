"""A run's shards on several processes (issue #15): ``lifecycle simulate --workers N``.

Worker ``w`` of ``N`` runs shards ``w, w+N, w+2N, …`` (`assign`) in a process of its own
(``spawn``: nothing of the parent's engine, connections or threads crosses), each shard on an
engine of its own (`shard_run.drive`), and tells the parent of each shard's days and ending
on a queue; the parent adds up the progress (`shards.Combined`) and, once every worker is
done, reads the report from the database. Only PostgreSQL takes several writers at once: a
run on SQLite has one worker.

A worker that dies (killed, out of memory, its database lost) fails the run: the parent stops
the others (each saves its shards as stopped after the day in hand) and raises `WorkerFailed`
naming the worker and its shards. Every shard's last committed batch is in the database, its
progress with it, so ``--resume`` continues the run. A worker whose parent died stops too,
after the day in hand.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import time
from collections.abc import Sequence
from multiprocessing.process import BaseProcess
from typing import Any

import lifecycle
from lifecycle import LifecycleError
from lifecycle.simulation.config import Config
from lifecycle.simulation.report import peak_rss_mb
from lifecycle.simulation.shard_run import Effort, Options, drive
from lifecycle.simulation.shards import Combined

POLL_SECONDS = 0.5  # how often the parent looks for a dead worker while none speaks
STOP_SECONDS = 120.0  # how long stopped workers get to save their shards before being killed


class WorkerFailed(LifecycleError):
    """A simulation worker process ended before its shards did; the run can be resumed."""

    def __init__(self, worker: int, shards: Sequence[int], reason: str):
        self.worker, self.shards, self.reason = worker, tuple(shards), reason
        names = ", ".join(map(str, shards))
        super().__init__(f"simulation worker {worker} (shards {names}) {reason}; the other "
                         f"workers were stopped: resume the run (lifecycle simulate --resume) "
                         f"to finish it")


class _Stopped(BaseException):
    """The parent asked a worker to stop: raised from its progress callback, between ticks."""


def assign(shards: int, workers: int) -> list[list[int]]:
    """Which shards each worker runs: worker ``w`` takes ``w, w+N, …``."""
    return [list(range(w, shards, workers)) for w in range(workers)]


def run_workers(options: Options, config: Config, workers: int, combined: Combined) -> Effort:
    """Run every shard of the run on ``workers`` processes; returns what they spent."""
    context = multiprocessing.get_context("spawn")
    messages: Any = context.Queue()
    stop = context.Event()
    jobs = assign(config.shards, workers)
    processes = [context.Process(target=_work, args=(w, options, config, shards, messages, stop),
                                 name=f"lifecycle-simulate-{w}", daemon=True)
                 for w, shards in enumerate(jobs)]
    for process in processes:
        process.start()
    done: dict[int, Effort] = {}
    try:
        failure = _listen(processes, jobs, messages, combined, done)
    except BaseException:
        _stop(processes, messages, stop)
        raise
    if failure is not None:
        _stop(processes, messages, stop)
        raise failure
    for process in processes:
        process.join()
    return Effort(sum(e.session_transitions for e in done.values()),
                  sum(e.cpu_seconds for e in done.values()),
                  max(e.peak_rss_mb for e in done.values()))


def _listen(processes: Sequence[BaseProcess], jobs: Sequence[Sequence[int]], messages: Any,
            combined: Combined, done: dict[int, Effort]) -> WorkerFailed | None:
    """Hand the workers' news to ``combined`` until all are done, or one fails (returned)."""
    while len(done) < len(processes):
        try:
            message = messages.get(timeout=POLL_SECONDS)
        except queue.Empty:
            for w, process in enumerate(processes):
                if w not in done and process.exitcode is not None:
                    return WorkerFailed(w, jobs[w], f"exited with code {process.exitcode} "
                                                    f"before its shards ended")
            continue
        kind, w, *rest = message
        if kind == "day":
            combined.day(*rest)
        elif kind == "ended":
            combined.finished(*rest)
        elif kind == "done":
            done[w] = Effort(*rest)
        elif kind == "failed":
            return WorkerFailed(w, jobs[w], f"failed: {rest[0]}")
        else:  # "stopped", asked by nobody here: interrupted
            return WorkerFailed(w, jobs[w], "stopped")
    return None


def _stop(processes: Sequence[BaseProcess], messages: Any, stop: Any) -> None:
    """Ask every worker to stop, reading what they still send (a worker does not exit with
    messages unsent), and kill those that do not stop in time."""
    stop.set()
    deadline = time.monotonic() + STOP_SECONDS
    while any(p.is_alive() for p in processes) and time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            messages.get(timeout=POLL_SECONDS)
    for process in processes:
        if process.is_alive():
            process.kill()
        process.join()


def _work(worker: int, options: Options, config: Config, shards: Sequence[int], messages: Any,
          stop: Any) -> None:
    """A worker process: run its shards, say how it went."""
    lifecycle.configure_logs(options.log or "warning")
    parent = multiprocessing.parent_process()

    def on_day(shard: int, day: int, orders: int, rate: float) -> None:
        # A parent that died (killed with the run) cannot read the report: stop with it.
        if stop.is_set() or (parent is not None and not parent.is_alive()):
            raise _Stopped
        messages.put(("day", worker, shard, day, orders, rate))

    def on_done(shard: int) -> None:
        messages.put(("ended", worker, shard))

    try:
        effort = drive(options, config, shards, on_day, on_done)
    except _Stopped:
        messages.put(("stopped", worker))
        return
    except BaseException as error:
        messages.put(("failed", worker, f"{type(error).__name__}: {error}"))
        raise SystemExit(1) from None
    messages.put(("done", worker, effort.session_transitions, effort.cpu_seconds, peak_rss_mb()))
