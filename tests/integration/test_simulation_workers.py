"""Simulation shards and workers (issue #15): the market as independent shards, run on one
process or several, gives one report for one seed and shard count.

On SQLite: shards, batch sizes and the refusals (several workers need PostgreSQL). On
PostgreSQL: ``--workers`` 1, 2 and 3 give byte-identical reports (minus the wall clock),
`lifecycle check` passes after a workers run, and a run stopped part-way on workers resumes
to the same report as one stopped and resumed on a single process.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, make_url, text

import lifecycle
from lifecycle import simulation
from lifecycle.cli import cli
from lifecycle.simulation import Config, record
from lifecycle.simulation.shards import Combined, shard_config, shard_configs, share
from lifecycle.simulation.workers import assign
from tests.builders import active_seller, buyer, order_payload

CONFIG = Config(sellers=24, orders=150, days=15, seed=5, shards=3, drain_days=60)
# Smaller for PostgreSQL, where a tick's commit waits on the log flush.
PG_CONFIG = replace(CONFIG, orders=60, days=8, drain_days=40)


def sqlite(directory: Path, name: str = "sim.db") -> str:
    return f"sqlite:///{directory / name}"


@pytest.fixture
def scratch_pg(pg_url: str) -> Iterator[Callable[[], str]]:
    """Fresh PostgreSQL databases on the test server, each upgraded, dropped at the end: a
    run per database, so that no run meets another's rows."""
    server = make_url(pg_url)
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def fresh() -> str:
        name = f"lifecycle_test_sim_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        url = server.set(database=name).render_as_string(hide_password=False)
        lifecycle.open(url, upgrade=True).close()
        return url

    yield fresh
    with admin.connect() as conn:
        for name in made:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# --- the shards ----------------------------------------------------------------------------


def test_the_shards_split_sellers_and_orders_by_their_number() -> None:
    config = replace(CONFIG, sellers=10, orders=101, shards=4)
    shards = shard_configs(config)

    assert [c.sellers for c in shards] == [3, 3, 2, 2]
    assert [c.orders for c in shards] == [26, 25, 25, 25]
    assert [share(101, 4, s) for s in range(4)] == [len(range(s, 101, 4)) for s in range(4)]
    assert [c.label for c in shards] == ["sim-0", "sim-1", "sim-2", "sim-3"]
    assert len({c.seed for c in shards}) == 4
    # Order n of shard s is order n * S + s of the run: no two shards share a number.
    assert sorted(c.run_serial(n) for c in shards for n in range(c.orders)) == list(range(101))
    assert shard_config(replace(config, shards=1), 0) == replace(config, shards=1)
    assert assign(7, 3) == [[0, 3, 6], [1, 4], [2, 5]]


def test_a_run_is_one_shard_unless_told_and_never_more_shards_than_sellers() -> None:
    assert Config(sellers=5000).shards == 1
    with pytest.raises(lifecycle.InvalidPayload, match="shards"):
        Config(sellers=4, shards=5)
    # A run stored before shards was one market, and resumes as one.
    stored = CONFIG.to_dict()
    del stored["shards"]
    assert Config.from_dict(stored).shards == 1
    assert Config.from_dict(CONFIG.to_dict()) == CONFIG


def test_the_run_reports_a_day_once_every_shard_reached_it() -> None:
    heard: list[tuple[int, int]] = []
    combined = Combined(lambda day, orders, rate: heard.append((day, orders)), [0, 1])

    combined.day(0, 1, 5, 1.0)
    combined.day(1, 1, 4, 1.0)
    combined.day(0, 2, 9, 1.0)
    combined.finished(1)
    combined.day(0, 3, 12, 1.0)

    assert heard == [(1, 9), (2, 13), (3, 16)]


def test_a_shard_fires_and_lists_only_its_own_deadlines(engine: lifecycle.Engine,
                                                        clock: lifecycle.SimulatedClock) -> None:
    active_seller(engine)
    ids = ("a-1-o1", "a-10-o1", "a-2-o1")  # "a-1-" is a prefix of the first only
    for id in ids:
        engine.create("order", buyer(), order_payload(), id=id)  # payment_timeout in 24 h
    clock.set(clock.now() + timedelta(hours=25))

    assert [status for status, _ in engine.first_deadlines(16, prefix="a-1-")] == ["pending"]
    assert len(engine.first_deadlines(16)) == 4  # with the seller's fee_lapse
    assert engine.run_due_timers(prefix="a-1-") == 1
    assert [engine.get("order", id).state for id in ids] == [
        "cancelled", "awaiting_payment", "awaiting_payment"]
    assert engine.run_due_timers() == 2


# --- SQLite ----------------------------------------------------------------------------------


def test_sharded_runs_give_one_report_for_any_batch_size(tmp_path: Path) -> None:
    batched = simulation.run_on(sqlite(tmp_path, "a.db"), CONFIG)
    one_by_one = simulation.run_on(sqlite(tmp_path, "b.db"), CONFIG, batch_size=1)

    assert batched.to_json(deterministic=True) == one_by_one.to_json(deterministic=True)
    assert batched.status == "finished"
    assert batched.check["passed"], batched.check
    assert batched.funnel["placed"] == CONFIG.orders
    assert batched.config["shards"] == 3
    # Each shard's ids carry its label, and its progress row says it finished.
    with lifecycle.open(sqlite(tmp_path, "a.db")) as engine:
        for c in shard_configs(CONFIG):
            row = record.load(engine.database, c.label)
            assert row is not None
            assert row.status == "finished"
        orders = engine.find("order", limit=1000)
    assert len(orders) == CONFIG.orders
    assert Counter(o.id.rsplit("-", 2)[-2] for o in orders) == {"0": 50, "1": 50, "2": 50}


def test_several_workers_on_sqlite_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    with pytest.raises(lifecycle.InvalidPayload, match="PostgreSQL"):
        simulation.run_on(sqlite(tmp_path), CONFIG, workers=2)
    assert not (tmp_path / "sim.db").exists()

    done = CliRunner().invoke(cli, ["--db", sqlite(tmp_path), "simulate", "--sellers", "24",
                                    "--orders", "30", "--workers", "2"])
    assert done.exit_code == 2
    assert "PostgreSQL" in done.output
    assert not (tmp_path / "sim.db").exists()
    assert CliRunner().invoke(cli, ["--db", sqlite(tmp_path), "simulate",
                                    "--workers", "0"]).exit_code == 2


# --- PostgreSQL ------------------------------------------------------------------------------


@pytest.mark.pg
def test_the_report_is_the_same_on_one_two_and_three_workers(
        scratch_pg: Callable[[], str], tmp_path: Path) -> None:
    reports = {workers: simulation.run_on(url := scratch_pg(), PG_CONFIG, workers=workers)
               for workers in (1, 2, 3)}
    checked = CliRunner().invoke(cli, ["--db", url, "check"])  # after the 3-worker run

    jsons = {workers: report.to_json(deterministic=True) for workers, report in reports.items()}
    assert jsons[1] == jsons[2] == jsons[3]
    assert reports[2].status == "finished"
    assert reports[2].check["passed"], reports[2].check
    assert checked.exit_code == 0, checked.output
    assert checked.output.startswith("ok:")
    # The same market on SQLite, one process: the same report again.
    on_sqlite = simulation.run_on(sqlite(tmp_path), PG_CONFIG)
    assert on_sqlite.to_json(deterministic=True) == jsons[1]


@pytest.mark.pg
def test_more_workers_than_shards_are_refused_and_nothing_is_written(
        scratch_pg: Callable[[], str]) -> None:
    url = scratch_pg()
    with pytest.raises(lifecycle.InvalidPayload, match="at most 3"):
        simulation.run_on(url, PG_CONFIG, workers=4)
    with lifecycle.open(url) as engine:
        assert record.load(engine.database, PG_CONFIG.name) is None


@pytest.mark.pg
def test_a_run_stopped_on_workers_resumes_to_the_report_of_one_process(
        scratch_pg: Callable[[], str]) -> None:
    reports = []
    for workers in (2, 1):
        url = scratch_pg()
        stopped = simulation.run_on(url, PG_CONFIG, workers=workers, stop_after_orders=25)
        assert stopped.status == "stopped"
        assert stopped.funnel["placed"] == 25
        reports.append(simulation.run_on(url, resume=True, workers=workers))

    assert reports[0].to_json(deterministic=True) == reports[1].to_json(deterministic=True)
    assert reports[0].status == "finished"
    assert reports[0].funnel["placed"] == PG_CONFIG.orders
    assert reports[0].check["passed"], reports[0].check


@pytest.mark.pg
def test_a_run_stopped_from_the_progress_callback_on_workers_resumes(
        scratch_pg: Callable[[], str]) -> None:
    url = scratch_pg()
    days: list[int] = []

    def progress(day: int, orders: int, rate: float) -> None:
        days.append(day)
        if day == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        simulation.run_on(url, PG_CONFIG, workers=3, progress=progress)
    with lifecycle.open(url) as engine:
        assert engine.check() == []
        rows = [record.load(engine.database, c.label) for c in shard_configs(PG_CONFIG)]
    assert all(row is not None and row.status == "stopped" for row in rows)
    assert days == list(range(1, 5))
    resumed = simulation.run_on(url, resume=True, workers=2)

    assert resumed.status == "finished"
    assert resumed.check["passed"]
    assert resumed.funnel["placed"] == PG_CONFIG.orders
