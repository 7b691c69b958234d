"""Instructions per ``fire`` on an order pinned to an older version, counted by callgrind (issue
#18): steadier than time on a shared machine.

    for m in "v2 fire" "v2 none" "v1 fire" "v1 none"; do set -- $m
      valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$1.$2 \\
        .venv/bin/python -m benchmarks.versions_instructions $1 $2; done

Orders are placed under version 1 (a process running only version 1) and under version 2 (the
worked example, `lifecycle.machines.examples.customs_hold`). Then one engine fires the happy
path on 60 of the version-1 orders: ``v2``, an engine that also runs version 2 (so the orders
are pinned to an older version), or ``v1``, one that runs version 1 alone; ``none`` fires
nothing (the set-up's cost, subtracted). Instructions per trigger:
(total of ``fire`` − total of ``none``) / 360, for each engine; compare the two.
"""

from __future__ import annotations

import sys
import tempfile

import lifecycle
import lifecycle.machines.examples.customs_hold
from benchmarks.fire import HAPPY_PATH, KIND, place
from lifecycle.logs import configure

EXAMPLE = "lifecycle.machines.examples.customs_hold"
N, WARMUP = 60, 5


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[0] not in ("v1", "v2") or argv[1] not in ("fire", "none"):
        raise SystemExit("usage: python -m benchmarks.versions_instructions v1|v2 fire|none")
    with_v2, fire_them = argv[0] == "v2", argv[1] == "fire"
    configure("warning")
    folder = tempfile.mkdtemp(prefix="lifecycle-bench-")
    url, clock = f"sqlite:///{folder}/versions.db", lifecycle.SimulatedClock()
    with lifecycle.open(url, clock=clock) as only_v1:
        pinned = place(only_v1, WARMUP + N)
    with lifecycle.open(url, clock=clock, machines=EXAMPLE) as both:
        place(both, WARMUP + N)
    with lifecycle.open(url, clock=clock, machines=EXAMPLE if with_v2 else None) as engine:
        for id in pinned[:WARMUP] + (pinned[WARMUP:] if fire_them else []):
            for trigger, actor, payload in HAPPY_PATH:
                engine.fire(KIND, id, trigger, actor, payload)
    print(f"{'fired' if fire_them else 'set up'}: {N if fire_them else 0} orders x "
          f"{len(HAPPY_PATH)} triggers, engine with version 2: {with_v2}")


if __name__ == "__main__":
    main(sys.argv[1:])
