"""Crash consistency: a simulation killed with SIGKILL at random moments leaves a database that
`lifecycle check` passes, and `--resume` takes it to the end (issue 9). The run is batched (the
default `--batch-size`, issue #15): a kill loses the open batch whole, and the progress row
`--resume` reads was written in the last batch that committed, so it covers every transition
the database holds — none later than its clock, no order past its count. A run of several
shards (issue #15) is killed whole, workers and all, and each shard's progress row must cover
that shard's part of the database."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC
from pathlib import Path

KILLS = 3
# Large enough that no run ends before its kill; each resume goes on from where the last died.
RUN = ["simulate", "--orders", "1500", "--sellers", "20", "--days", "60", "--seed", "11",
       "--name", "crash", "--shards", "1"]
# The same run as two shards on two worker processes (PostgreSQL only).
WORKERS = [*RUN[:-1], "2", "--workers", "2"]


def lifecycle_command() -> str:
    found = shutil.which("lifecycle") or str(Path(sys.executable).with_name("lifecycle"))
    assert Path(found).exists(), "the lifecycle console script is installed with the package"
    return found


def killed_and_resumed(db: str, tmp_path: Path, run: list[str] = RUN,
                       labels: tuple[str, ...] = ("crash",)) -> list[str]:
    """Start the run, SIGKILL it (its process group: workers too) at a random moment, check
    the database, resume; KILLS times. ``labels``: the progress rows of its shards. Returns
    what each `check` printed."""
    command = lifecycle_command()
    env = {**os.environ, "LIFECYCLE_DB": db}
    chance = random.Random(20261123)
    checks = []
    for attempt in range(KILLS):
        args = [command, *run, *(["--resume"] if attempt else [])]
        process = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        # Mid-run: a random moment after the run's first order committed (start-up takes about
        # a second on a quiet machine, several under load).
        wait_for_an_order(db, process)
        time.sleep(chance.uniform(0.2, 2.5))
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
        check = subprocess.run([command, "check"], env=env, cwd=tmp_path, capture_output=True,
                               text=True, timeout=300)
        assert check.returncode == 0, f"after kill {attempt + 1}: {check.stdout}{check.stderr}"
        checks.append(check.stdout.strip())
        for label in labels:
            assert_progress_covers_the_database(db, attempt + 1, label)
    finished = subprocess.run([command, *run, "--resume", "--json"], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=900)
    assert finished.returncode == 0, finished.stderr
    assert '"status": "finished"' in finished.stdout
    assert '"passed": true' in finished.stdout
    return checks


def wait_for_an_order(db: str, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    """Until the run has committed an order (read through Core alone: opening an engine here
    would race the run's own creation of the schema)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import DBAPIError

    database = create_engine(db)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with database.connect() as conn:
                    if conn.execute(text("SELECT 1 FROM aggregates WHERE kind = 'order' "
                                         "AND id LIKE 'crash-%' LIMIT 1")).first():
                        return
            except DBAPIError:
                pass  # no schema yet, or the file is being created
            time.sleep(0.05)
    finally:
        database.dispose()
    raise AssertionError("the run committed no order in time")


def assert_progress_covers_the_database(db: str, kills: int, label: str = "crash") -> None:
    """The saved progress of the run (or of its shard ``label``) matches what committed:
    whole batches, with their progress."""
    from sqlalchemy import func, select

    import lifecycle
    from lifecycle.simulation import record
    from lifecycle.store import tables

    with lifecycle.open(db) as engine:
        progress = record.load(engine.database, label)
        assert progress is not None, f"after kill {kills}: no progress row"
        with engine.database.connect() as conn:
            latest = conn.execute(select(func.max(tables.history.c.at)).where(
                tables.history.c.aggregate_id.like(f"{label}-%"))).scalar()
            last_order = conn.execute(select(func.max(tables.aggregates.c.id)).where(
                tables.aggregates.c.kind == "order",
                tables.aggregates.c.id.like(f"{label}-o%"))).scalar()
    if progress.status == "new":  # a shard whose worker had not started it yet
        assert latest is None, f"after kill {kills}: {label} wrote before it started"
        return
    assert latest is not None, f"after kill {kills}: no transition committed"
    if last_order is None:  # a shard may be killed before its first order arrived
        assert progress.next_order == 0
        return
    if latest.tzinfo is None:  # SQLite's aggregate hands back the stored UTC moment bare
        latest = latest.replace(tzinfo=UTC)
    assert latest <= progress.sim_now, (f"after kill {kills}: a transition at {latest}, after the "
                                        f"saved progress at {progress.sim_now}")
    assert int(last_order.removeprefix(f"{label}-o")) < progress.next_order, (
        f"after kill {kills}: order {last_order} committed, saved progress at "
        f"{progress.next_order} orders")


def test_sqlite_run_killed_three_times_stays_consistent_and_resumes(tmp_path: Path) -> None:
    checks = killed_and_resumed(f"sqlite:///{tmp_path / 'crash.db'}", tmp_path)
    assert len(checks) == KILLS
    assert all(c.startswith("ok:") for c in checks)


def test_postgresql_run_killed_three_times_stays_consistent_and_resumes(
    pg_url: str, tmp_path: Path
) -> None:
    empty(pg_url)
    checks = killed_and_resumed(pg_url, tmp_path)
    assert all(c.startswith("ok:") for c in checks)


def test_postgresql_run_on_two_workers_killed_three_times_stays_consistent_and_resumes(
    pg_url: str, tmp_path: Path
) -> None:
    empty(pg_url)
    checks = killed_and_resumed(pg_url, tmp_path, WORKERS, ("crash-0", "crash-1"))
    assert all(c.startswith("ok:") for c in checks)


def empty(pg_url: str) -> None:
    """The session's database without the rows of earlier tests (and runs)."""
    from sqlalchemy import text

    import lifecycle

    with lifecycle.open(pg_url) as engine, engine.database.begin() as conn:
        tables = ", ".join(t for t in ("aggregates", "history", "outbox", "idempotency",
                                       "unique_claims", "deadlines", "ledger", "lookups"))
        conn.execute(text(f"TRUNCATE {tables}"))
        conn.execute(text("DROP TABLE IF EXISTS simulation_runs"))
