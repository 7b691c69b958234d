"""How long a simulation run takes, and how much memory it needs.

    .venv/bin/python -m benchmarks.simulation [--orders 100000] [--sellers 1000] [--days 120]
                                              [--seed 1] [--faults SPEC] [--db URL] [--no-check]

Runs `lifecycle.simulation.run_on` on a fresh SQLite file (or ``--db``), printing progress once
every ten simulated days, then the wall time, transitions per second and peak resident memory
(``resource.getrusage``), with the time the final ledger check took on its own.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import structlog

from lifecycle import simulation
from lifecycle.simulation.report import peak_rss_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--sellers", type=int, default=1_000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--faults", default=None)
    parser.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--no-check", action="store_true", help="skip the final ledger check")
    parser.add_argument("--batch-size", type=int, default=simulation.BATCH_SIZE,
                        help="most transitions per batch, as `lifecycle simulate --batch-size` "
                             "(1: a transaction per step; default %(default)s)")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    with tempfile.TemporaryDirectory() as directory:
        db = args.db or f"sqlite:///{Path(directory) / 'simulation.db'}"
        config = simulation.Config(sellers=args.sellers, orders=args.orders, days=args.days,
                                   seed=args.seed, faults=simulation.Faults.parse(args.faults),
                                   check=not args.no_check)
        started = time.perf_counter()

        def progress(day: int, orders: int, rate: float) -> None:
            if day % 10 == 0:
                print(f"day {day:4d}  orders {orders:>9,}  {rate:8.0f} transitions/s  "
                      f"{time.perf_counter() - started:7.1f} s  peak {peak_rss_mb():7.1f} MB",
                      flush=True)

        report = simulation.run_on(db, config, progress=progress, batch_size=args.batch_size)
        print(json.dumps({
            "orders": args.orders, "sellers": args.sellers, "days": args.days,
            "batch_size": args.batch_size,
            "transitions": report.transitions, "check": report.check["passed"],
            **report.wall,
        }, indent=2))


if __name__ == "__main__":
    main()
