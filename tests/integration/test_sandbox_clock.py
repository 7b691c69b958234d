"""Time you can move in a sandbox (issue #19): ``lifecycle db init --sandbox`` stores a clock in
the database; every process that opens it reads that clock; ``lifecycle clock advance`` moves it
and fires what fell due, each deadline at its due time; a production database refuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

import lifecycle
from lifecycle.cli import cli
from lifecycle.store.database import connect
from tests.builders import order_in, rows

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
REPO = Path(lifecycle.__file__).resolve().parents[1]
PG_URL = os.environ.get("LIFECYCLE_TEST_PG")


def run(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", url, *args])


def ok_json(url: str, *args: str) -> Any:
    result = run(url, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def refused(result: Result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture
def sandbox(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/sandbox.db"
    made = ok_json(url, "db", "init", "--sandbox", "--start", "2026-03-01T09:00:00")
    assert made == {"database": str(tmp_path / "sandbox.db"), "schema": made["schema"],
                    "sandbox": True, "clock": START.isoformat()}
    return url


def test_a_sandbox_clock_starts_where_init_said_and_every_opener_reads_it(sandbox: str) -> None:
    shown = ok_json(sandbox, "clock", "show")
    assert shown == {"now": START.isoformat(), "started_at": START.isoformat(),
                     "advanced_seconds": 0.0, "next_due_at": None}

    with lifecycle.open(sandbox) as engine:  # the embedded library: the same stored clock
        assert isinstance(engine.clock, lifecycle.SandboxClock)
        assert engine.clock.now() == START
        moved = ok_json(sandbox, "clock", "advance", "1d12h")
        # Another process moved it: this engine, opened before, sees the new time at once.
        assert engine.clock.now() == START + timedelta(days=1, hours=12)
    assert moved == {"from": START.isoformat(),
                     "to": (START + timedelta(days=1, hours=12)).isoformat(), "fired": 0}
    text = run(sandbox, "clock", "show").stdout
    assert "sandbox clock: 2026-03-02 21:00:00 UTC" in text
    assert "moved 1d 12h00m since" in text


@pytest.mark.parametrize("duration", ["0s", "0d", "-1d", "1x", ""])
def test_time_only_moves_forward_and_a_refused_move_writes_nothing(sandbox: str,
                                                                   duration: str) -> None:
    with lifecycle.open(sandbox) as engine:
        before = rows(engine)
        line = refused(run(sandbox, "clock", "advance", "--", duration), 2)
        assert rows(engine) == before
        assert engine.clock.now() == START
    assert "duration" in line
    assert "30m, 6h, 10d" in line or "like 90m" in line


def test_a_production_database_refuses_clock_commands_and_writes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/prod.db"
    assert ok_json(url, "db", "init")["sandbox"] is False
    with lifecycle.open(url) as engine:
        before = rows(engine)
        for args in (("clock", "show"), ("clock", "advance", "10d"),
                     ("clock", "advance", "10d", "--json")):
            line = refused(run(url, *args), 1)
            assert f"{tmp_path}/prod.db is a production database" in line
            assert "db init --sandbox" in line
        assert rows(engine) == before
        assert isinstance(engine.clock, lifecycle.SystemClock)
        with pytest.raises(lifecycle.NotASandbox):
            lifecycle.advance_clock(engine, "1d")


def test_a_sandbox_refuses_a_clock_of_the_callers_own(sandbox: str) -> None:
    with pytest.raises(lifecycle.InvalidPayload, match="is a sandbox"):
        lifecycle.open(sandbox, clock=lifecycle.SimulatedClock())


def test_the_not_received_wait_and_escalation_from_day_4_shown_by_moving_the_clock(
    sandbox: str,
) -> None:
    with lifecycle.open(sandbox) as engine:
        order = order_in(engine, lifecycle.SimulatedClock(), "shipped", buyer_id="ana",
                         seller_id="acme")
    dispute = ("dispute", "open", order.id, "--as", "ana", "--type", "not_received",
               "--reason", "still_in_transit", "--refund-amount", "10.00")

    assert "opens 10 days after shipping" in refused(run(sandbox, *dispute), 1)
    assert ok_json(sandbox, "clock", "advance", "9d")["fired"] == 0
    assert "opens 10 days after shipping" in refused(run(sandbox, *dispute), 1)
    ok_json(sandbox, "clock", "advance", "1d")
    opened = ok_json(sandbox, *dispute)
    assert opened["state"] == "awaiting_seller"

    ok_json(sandbox, "dispute", "counter", opened["id"], "--as", "acme", "--refund-amount", "5.00")
    escalate = ("dispute", "escalate", opened["id"], "--as", "buyer:ana")
    assert "escalate from the 4th day" in refused(run(sandbox, *escalate), 1)
    ok_json(sandbox, "clock", "advance", "3d")
    assert ok_json(sandbox, *escalate)["state"] == "under_arbitration"


def test_auto_confirm_and_fund_release_fire_at_their_due_times_in_one_move(sandbox: str) -> None:
    with lifecycle.open(sandbox) as engine:
        order = order_in(engine, lifecycle.SimulatedClock(), "delivered")
        delivered_at = engine.history("order", order.id)[-1].at
    assert delivered_at == START

    moved = ok_json(sandbox, "clock", "advance", "20d")

    assert moved["fired"] == 2  # auto_confirm on day 5, release_funds 15 days later
    with lifecycle.open(sandbox) as engine:
        assert engine.get("order", order.id).state == "funds_released"
        steps = {e.trigger: e.at for e in engine.history("order", order.id)}
        assert steps["auto_confirm"] == START + timedelta(days=5)
        assert steps["release_funds"] == START + timedelta(days=20)
        assert engine.balances("order", order.id)["USD"]["escrow"] == 0
        assert engine.clock.now() == START + timedelta(days=20)


def test_a_timer_worker_in_another_process_fires_by_the_stored_clock(sandbox: str,
                                                                     tmp_path: Path) -> None:
    with lifecycle.open(sandbox) as engine:
        order = order_in(engine, lifecycle.SimulatedClock(), "delivered")
        # The clock moved by this process, without firing: the worker must see it to fire.
        engine.clock.move_to(START + timedelta(days=5))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("LIFECYCLE_DB", None)
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from lifecycle.cli import main; "
                               "sys.argv[0] = 'lifecycle'; main()",
         "--db", sandbox, "timers", "run", "--once"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    with lifecycle.open(sandbox) as engine:
        assert engine.get("order", order.id).state == "completed"
        assert engine.history("order", order.id)[-1].at == START + timedelta(days=5)


def test_the_service_on_a_sandbox_runs_on_its_stored_clock(sandbox: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from lifecycle.service import app_from_environment

    monkeypatch.setenv("LIFECYCLE_DB", sandbox)
    app = app_from_environment()
    engine = app.state.engine
    try:
        assert isinstance(engine.clock, lifecycle.SandboxClock)
        ok_json(sandbox, "clock", "advance", "6h")
        assert engine.clock.now() == START + timedelta(hours=6)  # what `lifecycle serve` sees
    finally:
        engine.close()


@pytest.mark.pg
def test_on_postgresql_a_sandbox_fires_what_fell_due_at_its_due_times() -> None:
    if not PG_URL:
        pytest.skip("LIFECYCLE_TEST_PG is unset: PostgreSQL tests need a server URL")
    name = f"sandbox_{uuid.uuid4().hex[:10]}"
    server = connect(PG_URL).execution_options(isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.url.set(database=name).render_as_string(hide_password=False)
    try:
        assert ok_json(url, "db", "init", "--sandbox", "--start", "2026-03-01T09:00:00")["sandbox"]
        with lifecycle.open(url) as engine:
            order = order_in(engine, lifecycle.SimulatedClock(), "delivered")

        assert ok_json(url, "clock", "advance", "20d")["fired"] == 2

        with lifecycle.open(url) as engine:
            assert engine.get("order", order.id).state == "funds_released"
            assert engine.history("order", order.id)[-1].at == START + timedelta(days=20)
    finally:
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        server.dispose()
