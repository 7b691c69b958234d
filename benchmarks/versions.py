"""Does ``fire`` cost more on an order pinned to an older version of its machine (issue #18)?

    .venv/bin/python -m benchmarks.versions [--n ORDERS]

One engine runs version 1 of the order machine and version 2 (the worked example,
`lifecycle.machines.examples.customs_hold`, so version 2 is the newest). ``--n`` orders were
placed under version 1 (by a process that ran only version 1) and ``--n`` under version 2;
the same engine fires the order happy path on both (benchmarks/fire.py's, one transaction per
trigger), in interleaved rounds so that load hits both alike. The ratio is transitions/s on the
pinned orders over transitions/s on the newest; the target: no slower, within this machine's
run-to-run noise (>= 0.95).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence

import lifecycle
from benchmarks.fire import HAPPY_PATH, KIND, ROUNDS, Contender, engine_loop, place, race, ratios, table
from lifecycle.logs import configure

EXAMPLE = "lifecycle.machines.examples.customs_hold"
WARMUP = 20


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.versions",
                                     description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--n", type=int, default=300, help="orders per version (default 300)")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    configure("warning")
    print(f"lifecycle {lifecycle.__version__}, fire on a pinned version: {args.n} orders a "
          f"version x {len(HAPPY_PATH)} triggers, {ROUNDS} interleaved rounds, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="lifecycle-bench-") as folder:
        url = f"sqlite:///{os.path.join(folder, 'versions.db')}"
        clock = lifecycle.SimulatedClock()
        with lifecycle.open(url, clock=clock) as only_v1:
            pinned = place(only_v1, WARMUP + args.n)
        with lifecycle.open(url, clock=clock, machines=EXAMPLE) as engine:
            newest = place(engine, WARMUP + args.n)
            assert {engine.get(KIND, pinned[0]).machine_version,
                    engine.get(KIND, newest[0]).machine_version} == {1, 2}
            fire_all = engine_loop(engine)
            fire_all(pinned[:WARMUP])
            fire_all(newest[:WARMUP])
            results = race([
                Contender("fire, order on version 1 (pinned)", fire_all, pinned[WARMUP:]),
                Contender("fire, order on version 2 (newest)", fire_all, newest[WARMUP:]),
            ])
            problems = engine.check()
    old, new = results
    print()
    print(table(results))
    print()
    print(ratios([("pinned version / newest version", old.rate / new.rate, 0.95)]))
    print(f"check after the run: {'ok' if not problems else problems[:3]}")


if __name__ == "__main__":
    main(sys.argv[1:])
