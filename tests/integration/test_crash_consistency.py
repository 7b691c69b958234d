"""Crash consistency: a simulation killed with SIGKILL at random moments leaves a database that
`lifecycle check` passes, and `--resume` takes it to the end (issue 9)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

KILLS = 3
# Large enough that no run ends before its kill; each resume goes on from where the last died.
RUN = ["simulate", "--orders", "1500", "--sellers", "20", "--days", "60", "--seed", "11",
       "--name", "crash"]


def lifecycle_command() -> str:
    found = shutil.which("lifecycle") or str(Path(sys.executable).with_name("lifecycle"))
    assert Path(found).exists(), "the lifecycle console script is installed with the package"
    return found


def killed_and_resumed(db: str, tmp_path: Path) -> list[str]:
    """Start the run, SIGKILL it at a random moment, check the database, resume; KILLS times.
    Returns what each `check` printed."""
    command = lifecycle_command()
    env = {**os.environ, "LIFECYCLE_DB": db}
    chance = random.Random(20261123)
    checks = []
    for attempt in range(KILLS):
        args = [command, *RUN, *(["--resume"] if attempt else [])]
        process = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(chance.uniform(1.5, 4.0))  # past start-up (about a second), mid-run
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
        check = subprocess.run([command, "check"], env=env, cwd=tmp_path, capture_output=True,
                               text=True, timeout=300)
        assert check.returncode == 0, f"after kill {attempt + 1}: {check.stdout}{check.stderr}"
        checks.append(check.stdout.strip())
    finished = subprocess.run([command, *RUN, "--resume", "--json"], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=900)
    assert finished.returncode == 0, finished.stderr
    assert '"status": "finished"' in finished.stdout
    assert '"passed": true' in finished.stdout
    return checks


def test_sqlite_run_killed_three_times_stays_consistent_and_resumes(tmp_path: Path) -> None:
    checks = killed_and_resumed(f"sqlite:///{tmp_path / 'crash.db'}", tmp_path)
    assert len(checks) == KILLS
    assert all(c.startswith("ok:") for c in checks)


def test_postgresql_run_killed_three_times_stays_consistent_and_resumes(
    pg_url: str, tmp_path: Path
) -> None:
    from sqlalchemy import text

    import lifecycle

    with lifecycle.open(pg_url) as engine, engine.database.begin() as conn:
        tables = ", ".join(t for t in ("aggregates", "history", "outbox", "idempotency",
                                       "unique_claims", "deadlines", "ledger", "lookups"))
        conn.execute(text(f"TRUNCATE {tables}"))
        conn.execute(text("DROP TABLE IF EXISTS simulation_runs"))
    checks = killed_and_resumed(pg_url, tmp_path)
    assert all(c.startswith("ok:") for c in checks)
