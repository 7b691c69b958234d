#!/bin/bash
# Does a change keep simulation reports as they were? Runs the same four simulations (seed 7,
# 400 orders; faults off and on; batch sizes 1 and 500) with the code of two checkouts and says,
# for each, whether the report JSON is the same once what depends on the machine (seconds, CPU,
# memory, rates) is taken out.
#
#     bash scripts/same_reports.sh BEFORE_TREE AFTER_TREE   # e.g. a `git worktree` of the old commit, and .
#
# Each tree's code is imported from the tree itself (python -c from its folder); the Python is
# this checkout's .venv, or $PYTHON.
set -euo pipefail
python=${PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}
out=$(mktemp -d)

normalised() {  # the report JSON on stdin, without what depends on the machine
    "$python" -c '
import json, sys
MACHINE = ("second", "wall", "cpu", "rss", "per_s", "rate", "elapsed")
def strip(o):
    if isinstance(o, dict):
        return {k: strip(v) for k, v in o.items() if not any(w in k for w in MACHINE)}
    return [strip(v) for v in o] if isinstance(o, list) else o
print(json.dumps(strip(json.load(sys.stdin)), indent=1, sort_keys=True))'
}

report() {  # TREE FAULTS BATCH_SIZE
    local db
    db=$(mktemp -d)
    (cd "$1" && "$python" -c 'import sys; from lifecycle.cli import main; sys.argv[0] = "lifecycle"; main()' \
        simulate --sellers 20 --orders 400 --days 40 --seed 7 --batch-size "$3" --json \
        --db "sqlite:///$db/run.db" ${2:+--faults "$2"} 2>>"$out/log") | normalised
    rm -rf "$db"
}

status=0
for faults in "" "decline=0.05,timeout=0.02,duplicate=0.05,conflict=0.02,late=0.05"; do
    for size in 1 500; do
        name="faults=${faults:-none} batch-size=$size"
        report "$1" "$faults" "$size" > "$out/before.json"
        report "$2" "$faults" "$size" > "$out/after.json"
        if cmp -s "$out/before.json" "$out/after.json"; then
            echo "same:    $name"
        else
            echo "differs: $name"; diff "$out/before.json" "$out/after.json" | head -20 || true; status=1
        fi
    done
done
[ $status = 0 ] || echo "(the runs' logs: $out/log)"
[ $status = 0 ] && rm -rf "$out"
exit $status
