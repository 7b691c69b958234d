"""Fire over HTTP against the library's ``fire``, on one PostgreSQL database (issue #16).

    .venv/bin/python -m benchmarks.http [--n ORDERS] [--clients 4] [--pg postgresql://postgres@127.0.0.1/test]

Every contender fires the order happy path after ``place`` (pay, ship_offline,
tracking_in_transit, tracking_delivered, confirm_receipt, release_funds) on orders of its own,
placed beforehand through the library (not timed), in a scratch database this run creates,
upgrades and drops:

library        ``Engine.fire`` in this process, one loop, one transaction per trigger.
http 1 worker  ``lifecycle serve --workers 1``; one client process, one keep-alive connection,
               requests one after another (what the library loop does, plus HTTP).
http 1w, C     the same server, ``--clients`` client processes at once, one connection each.
http 4w, C     ``lifecycle serve --workers 4``, the same ``--clients`` client processes.

Each request authenticates with an API key (a bound buyer, seller or system key: one indexed
read per request, as in production). Both servers run for the whole race and contenders are
timed in interleaved rounds, a slice each in rotating order, so load from elsewhere hits all
alike. Latencies are per request, measured by the clients; p50 and p99 over every request of
the contender. The clients are Python (httpx) on the same machine: their CPU is taken from the
server's, so the ratios are a floor of what a server with its own cores does.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from statistics import quantiles
from typing import IO, Any

import lifecycle
from benchmarks.fire import HAPPY_PATH, KIND, TRIGGERS, place, ratios, scratch_database

ROUNDS = 5
WARMUP = 10  # orders each contender fires untimed first: connections, statement caches
PLURAL = "orders"


@dataclass(frozen=True)
class Run:
    """What one client process saw: when it started and ended (monotonic, machine-wide on
    Linux) and each request's latency in seconds."""

    started: float
    ended: float
    latencies: list[float]


@dataclass
class Tally:
    name: str
    seconds: float = 0.0
    latencies: list[float] | None = None

    def add(self, seconds: float, latencies: list[float]) -> None:
        self.seconds += seconds
        self.latencies = (self.latencies or []) + latencies

    @property
    def transitions(self) -> int:
        return len(self.latencies or [])

    @property
    def rate(self) -> float:
        return self.transitions / self.seconds

    def percentile(self, p: int) -> float:
        cuts = quantiles(self.latencies or [0.0, 0.0], n=100, method="inclusive")
        return cuts[p - 1]


# --- the clients (separate processes) --------------------------------------------------------


def client(base: str, tokens: dict[str, str], ids: Sequence[str]) -> Run:
    """Fire the happy path on ``ids`` over one keep-alive connection, one request at a time."""
    import httpx

    latencies = []
    with httpx.Client(base_url=base, timeout=30) as http:
        started = time.monotonic()
        for id in ids:
            for trigger, actor, payload in HAPPY_PATH:
                sent = time.monotonic()
                response = http.post(f"/v1/{PLURAL}/{id}/{trigger}", json=payload,
                                     headers={"Authorization": f"Bearer {tokens[actor.role]}"})
                latencies.append(time.monotonic() - sent)
                if response.status_code != 200:
                    raise RuntimeError(f"{trigger} on {id}: {response.status_code} {response.text}")
        ended = time.monotonic()
    return Run(started, ended, latencies)


def over_http(pool: ProcessPoolExecutor, base: str, tokens: dict[str, str], ids: Sequence[str],
              clients: int) -> tuple[float, list[float]]:
    """The ids split between ``clients`` processes at once; (wall seconds, latencies)."""
    slices = [list(ids[k::clients]) for k in range(clients)]
    runs = list(pool.map(client, [base] * clients, [tokens] * clients, slices))
    seconds = max(r.ended for r in runs) - min(r.started for r in runs)
    return seconds, [latency for r in runs for latency in r.latencies]


# --- the servers -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(url: str, workers: int) -> Iterator[str]:
    """``lifecycle serve`` on a free loopback port; yields its base URL once /healthz answers."""
    port = free_port()
    command = [str(Path(sys.executable).with_name("lifecycle")), "--db", url, "serve", "--host",
               "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    # stderr to a file, not a pipe nobody reads: a full pipe would stall the server.
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors,
                                   env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
        try:
            yield wait_until_up(f"http://127.0.0.1:{port}", process, errors)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_until_up(base: str, process: subprocess.Popen[bytes], errors: IO[bytes]) -> str:
    import httpx

    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            errors.seek(0)
            raise RuntimeError(f"lifecycle serve exited: {errors.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return base
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("lifecycle serve did not answer /healthz within 60 s")
        time.sleep(0.2)


# --- the run ---------------------------------------------------------------------------------


def keys(engine: lifecycle.Engine) -> dict[str, str]:
    """A bound key per role the happy path acts as: role -> token."""
    tokens = {}
    for _, actor, _ in HAPPY_PATH:
        if actor.role not in tokens:
            _, tokens[actor.role] = engine.create_key(actor.role, actor_id=actor.id,
                                                      label="benchmarks.http")
    return tokens


def race(url: str, n: int, clients: int) -> list[Tally]:
    with ExitStack() as stack:
        engine = stack.enter_context(lifecycle.open(url))
        tokens = keys(engine)
        parts = 4
        ids = place(engine, parts * (WARMUP + n))
        warm = [ids[p * (WARMUP + n):p * (WARMUP + n) + WARMUP] for p in range(parts)]
        timed = [ids[p * (WARMUP + n) + WARMUP:(p + 1) * (WARMUP + n)] for p in range(parts)]
        one = stack.enter_context(server(url, 1))
        four = stack.enter_context(server(url, 4))
        pool = stack.enter_context(ProcessPoolExecutor(clients))

        def library(chunk: Sequence[str]) -> tuple[float, list[float]]:
            latencies = []
            started = time.monotonic()
            for id in chunk:
                for trigger, actor, payload in HAPPY_PATH:
                    sent = time.monotonic()
                    engine.fire(KIND, id, trigger, actor, payload)
                    latencies.append(time.monotonic() - sent)
            return time.monotonic() - started, latencies

        contenders: list[tuple[Tally, Any]] = [
            (Tally("library: engine.fire"), library),
            (Tally("http, 1 worker, 1 client"), lambda chunk: over_http(pool, one, tokens, chunk, 1)),
            (Tally(f"http, 1 worker, {clients} clients"),
             lambda chunk: over_http(pool, one, tokens, chunk, clients)),
            (Tally(f"http, 4 workers, {clients} clients"),
             lambda chunk: over_http(pool, four, tokens, chunk, clients)),
        ]
        for (_, run), ids_warm in zip(contenders, warm, strict=True):
            run(ids_warm)
        rounds = max(1, min(ROUNDS, n))
        for r in range(rounds):
            for k in range(len(contenders)):
                i = (r + k) % len(contenders)
                tally, run = contenders[i]
                chunk = timed[i][n * r // rounds:n * (r + 1) // rounds]
                tally.add(*run(chunk))
        for id in (timed[0][-1], timed[1][-1], timed[3][-1]):
            if engine.get(KIND, id).state != "funds_released":
                raise RuntimeError(f"order {id} did not complete: {engine.get(KIND, id).state}")
        return [tally for tally, _ in contenders]


def table(tallies: Sequence[Tally]) -> str:
    lines = [f"{'':34} {'requests':>9} {'seconds':>8} {'per s':>8} {'p50 ms':>7} {'p99 ms':>7}"]
    for t in tallies:
        lines.append(f"{t.name:34} {t.transitions:9d} {t.seconds:8.2f} {t.rate:8.0f} "
                     f"{1e3 * t.percentile(50):7.2f} {1e3 * t.percentile(99):7.2f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="orders per contender (x6 transitions)")
    parser.add_argument("--clients", type=int, default=4, help="client processes for the concurrent runs")
    parser.add_argument("--pg", default=os.environ.get("LIFECYCLE_TEST_PG",
                                                       "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args(argv)
    if args.n < 1 or args.clients < 1:
        parser.error("--n and --clients must be at least 1")
    lifecycle.configure_logs("warning")
    with scratch_database(args.pg) as (url, _):
        tallies = race(url, args.n, args.clients)
    library, one, one_many, four_many = tallies
    print(f"lifecycle {lifecycle.__version__}; {len(TRIGGERS)} triggers per order; "
          f"{os.cpu_count()} CPUs; PostgreSQL on loopback")
    print(table(tallies))
    print()
    print(ratios([
        ("http 1 worker / library", one.rate / library.rate, 0.5),
        (f"http 4 workers / 1 worker ({args.clients} clients)", four_many.rate / one_many.rate, 2),
    ]))


if __name__ == "__main__":
    main()
