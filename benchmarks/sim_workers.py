"""PostgreSQL: one simulation run on one worker process and on two, interleaved (issue #15).

    .venv/bin/python -m benchmarks.sim_workers --pg postgresql+psycopg://postgres@127.0.0.1:5432/test
        [--orders 3000] [--sellers 100] [--days 60] [--shards S] [--rounds 2] [--workers 1,2]

Runs the same seeded simulation (`lifecycle.simulation.run_on`, the CLI's ``--workers``) on a
scratch database of its own for each run, one worker then two, ``--rounds`` times in turn, so
that a slower stretch of a shared machine falls on both alike. Prints each run's wall time and
transitions per second, checks that every run's report is the same (minus its wall clock),
and prints the median speed-up of two workers over one against the goal (≥ 1.6).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

import structlog

from benchmarks.fire import scratch_database
from lifecycle import simulation

GOAL = 1.6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pg", required=True, help="a PostgreSQL server URL (scratch databases)")
    parser.add_argument("--orders", type=int, default=3_000)
    parser.add_argument("--sellers", type=int, default=100)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shards", type=int, default=None,
                        help="the run's shards (default: one per 8 sellers, 2 to 16)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", default="1,2", help="worker counts to compare, first is the base")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    counts = [int(n) for n in args.workers.split(",")]
    shards = args.shards or max(2, min(16, args.sellers // 8))
    config = simulation.Config(sellers=args.sellers, orders=args.orders, days=args.days,
                               seed=args.seed, shards=shards)
    print(f"{args.orders:,} orders, {args.sellers} sellers, {args.days} days, "
          f"{config.shards} shards, seed {args.seed}", flush=True)

    seconds: dict[int, list[float]] = {n: [] for n in counts}
    reports: set[str] = set()
    for round_ in range(args.rounds):
        for workers in counts:
            with scratch_database(args.pg) as (url, _):
                started = time.perf_counter()
                report = simulation.run_on(url, config, workers=workers)
                took = time.perf_counter() - started
            seconds[workers].append(took)
            reports.add(report.to_json(deterministic=True))
            print(f"round {round_ + 1}  {workers} worker(s)  {took:7.1f} s  "
                  f"{report.transitions / took:7.0f} transitions/s  "
                  f"cpu {report.wall['cpu_seconds']:6.1f} s  {report.status}  "
                  f"check {'passed' if report.check['passed'] else 'FAILED'}", flush=True)

    base = statistics.median(seconds[counts[0]])
    print(f"reports identical across runs: {len(reports) == 1}")
    for workers in counts[1:]:
        ratio = base / statistics.median(seconds[workers])
        verdict = "meets" if ratio >= GOAL else "misses"
        print(f"{workers} workers / {counts[0]} worker: {ratio:.2f}x (median wall time; "
              f"goal >= {GOAL}x: {verdict})")
    if len(reports) != 1:
        raise SystemExit("the reports differ between runs of one seed")


if __name__ == "__main__":
    main()
