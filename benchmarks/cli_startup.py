"""How long does a ``lifecycle`` command take to start (issue #19, item 7)?

    .venv/bin/python -m benchmarks.cli_startup [--runs N]

Each command runs ``--runs`` times as its own process, in interleaved rounds so that load hits
all alike; the figure is the median wall time. The floor is the same interpreter starting and
doing nothing (``python -c pass``); ``import sqlalchemy`` is shown beside it, because every
command that opens a database imports it. The commands:

- ``lifecycle --version``: needs no database; the target is under 0.3 s;
- ``lifecycle order show O-1`` on a SQLite file holding one order: opens the engine, reads
  the order, its history, deadlines and ledger, and prints them; the target is under 0.3 s.

Each line gives the median, its ratio to the floor, and the time above the floor (what
lifecycle itself costs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import lifecycle
from benchmarks.fire import place
from lifecycle.logs import configure

TARGET_SECONDS = 0.3


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cli_startup",
                                     description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each command (default 15)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    configure("warning")
    print(f"lifecycle {lifecycle.__version__}, command start-up: {args.runs} runs each, "
          f"interleaved, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="lifecycle-bench-") as folder:
        url = f"sqlite:///{os.path.join(folder, 'startup.db')}"
        with lifecycle.open(url) as engine:
            order = place(engine, 1)[0]
        python = [sys.executable]
        commands = {
            "floor: python -c pass": [*python, "-c", "pass"],
            "python -c 'import sqlalchemy'": [*python, "-c", "import sqlalchemy"],
            "lifecycle --version": [*lifecycle_command(), "--version"],
            f"lifecycle order show {order}": [*lifecycle_command(), "--db", url, "order", "show",
                                              order],
        }
        times = measure(commands, args.runs)
    floor = statistics.median(times["floor: python -c pass"])
    width = max(map(len, commands))
    print(f"{'command':<{width}}  median s  / floor  above floor s  target")
    for name, taken in times.items():
        median = statistics.median(taken)
        verdict = ""
        if name.startswith("lifecycle"):
            verdict = "met" if median < TARGET_SECONDS else f"NOT met (< {TARGET_SECONDS} s)"
        print(f"{name:<{width}}  {median:8.3f}  {median / floor:6.2f}  {median - floor:13.3f}  "
              f"{verdict}")


def lifecycle_command() -> list[str]:
    """The console script beside this interpreter, as an operator runs it."""
    script = Path(sys.executable).with_name("lifecycle")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from lifecycle.cli import main; "
                                  "sys.argv[0] = 'lifecycle'; main()"]


def measure(commands: dict[str, list[str]], runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            began = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            taken = time.perf_counter() - began
            if done.returncode != 0:
                raise SystemExit(f"{name} failed ({done.returncode}): {done.stderr.strip()}")
            times[name].append(taken)
    return times


if __name__ == "__main__":
    main()
