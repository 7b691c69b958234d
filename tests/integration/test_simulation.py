"""Simulation runs (SPEC §9): the marketplace on a simulated clock through the real engine.

One small run (shared by several tests) must reach every state of every machine and every
dispute path of §5 with the ledger check passing; the same seed must give the same report;
faults must be counted without breaking an invariant; a stopped run must resume to the end.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
import structlog

import lifecycle
from lifecycle import simulation
from lifecycle.machines import DEFINITIONS
from lifecycle.simulation import Behaviour, Config, Faults, Report

# Shares raised above the defaults so that 20 sellers and 300 orders meet every case.
COVERING = Behaviour(
    rejected=0.25, gives_up=0.5, never_pays_fee=0.1, suspended=0.15, closes=0.05,
    coupon_left_in_draft=0.3, coupon_deactivated=0.4, claims_without_ordering=0.15,
    disputes_received=0.1, disputes_not_received=0.06, disputes_after_completion=0.02,
)
SMALL = Config(sellers=20, orders=300, days=90, seed=7, behaviour=COVERING, fee_period_days=30)


def url(directory: Path, name: str = "sim.db") -> str:
    return f"sqlite:///{directory / name}"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Report, str]:
    directory = tmp_path_factory.mktemp("small")
    # Module fixtures run before the per-test fixture that quiets the logs.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        report = simulation.run_on(url(directory), SMALL)
    finally:
        structlog.reset_defaults()
    return report, url(directory)


def test_a_small_run_reaches_every_state_of_every_machine(small: tuple[Report, str]) -> None:
    report, _ = small

    assert report.status == "finished"
    for kind, definition in DEFINITIONS.items():
        missed = [state for state in definition.states if not report.reached[kind][state]]
        assert missed == [], f"{kind} never entered {missed}"
    assert report.states["order"]["funds_released"] > 200
    assert sum(report.states["order"].values()) == report.funnel["placed"] == 300


def test_a_small_run_takes_every_dispute_path(small: tuple[Report, str]) -> None:
    report, _ = small
    fired = {t.split(".", 1)[1] for t in report.triggers if t.startswith("dispute.")}
    paths = " | ".join(report.dispute_paths)

    assert fired >= {"accept_claim", "counter_offer", "accept_offer", "reject_offer", "escalate",
                     "negotiation_timeout", "seller_response_timeout", "arbitrate", "ship_return",
                     "confirm_return_received", "return_timeout", "withdraw"}
    for decision in ("refund", "no_refund", "return_and_refund"):
        assert f"arbitrate({decision})" in paths
    for kind in ("not_received", "received"):
        assert report.disputes[kind].get("resolved_refund", 0) > 0
        assert report.disputes[kind].get("resolved_no_refund", 0) > 0


def test_a_small_run_passes_the_ledger_check_and_accounts_for_the_money(
        small: tuple[Report, str]) -> None:
    report, db = small
    usd = {item: Decimal(amount) for item, amount in report.money["USD"].items()}

    assert report.check == {"ran": True, "passed": True, "violations": 0, "first": []}
    with lifecycle.open(db) as engine:
        assert engine.check() == []
    assert usd["escrow_held"] == 0  # every order ended
    # everything that went into escrow came out again
    assert usd["captured"] + usd["coupon_subsidy"] == (
        usd["refunded"] + usd["coupon_returned"] + usd["paid_out"] + usd["commission"])
    assert usd["coupon_subsidy"] == usd["coupon_returned"] + usd["coupons_settled_by_sellers"] > 0
    assert usd["store_fees"] > 0
    assert report.gateway["captured"] == report.money["USD"]["captured"]
    assert report.gateway["paid_out"] == report.money["USD"]["paid_out"]


def test_the_report_renders_as_tables_json_and_an_offline_page(
        small: tuple[Report, str], tmp_path: Path) -> None:
    report, _ = small

    text = report.render()
    for title in ("Final states", "Order funnel", "Disputes by type and outcome", "Dispute paths",
                  "Times (simulated days)", "Money", "Ledger and history check: passed", "Activity",
                  "Wall clock"):
        assert title in text
    data = json.loads(report.to_json())
    assert set(data["durations"]) == {"place_to_ship", "ship_to_delivered", "place_to_funds_released"}
    assert data["durations"]["place_to_funds_released"]["p50"] > 15  # the protection period
    assert "wall" not in json.loads(report.to_json(deterministic=True))
    page = report.write_html(tmp_path / "report").read_text()
    assert page.count("<svg") == 2
    assert "<script" not in page
    assert "http" not in page.replace("http://www.w3.org/2000/svg", "")  # nothing to fetch
    assert len(report.timeline) >= 90


def test_two_runs_with_one_seed_give_the_same_report(tmp_path: Path) -> None:
    config = replace(SMALL, orders=80, sellers=8, days=30, seed=3)

    first = simulation.run_on(url(tmp_path, "a.db"), config)
    second = simulation.run_on(url(tmp_path, "b.db"), config)
    other = simulation.run_on(url(tmp_path, "c.db"), replace(config, seed=4))

    assert first.to_json(deterministic=True) == second.to_json(deterministic=True)
    assert first.to_json(deterministic=True) != other.to_json(deterministic=True)
    assert first.wall["seconds"] > 0


def test_faults_are_counted_and_break_no_invariant(tmp_path: Path) -> None:
    faults = Faults.parse("decline=0.03,timeout=0.03,error=0.01,duplicate=0.1,late=0.05,conflict=0.05")
    config = replace(SMALL, orders=150, sellers=10, days=45, seed=5, faults=faults)

    report = simulation.run_on(url(tmp_path), config)

    assert report.check["passed"], report.check
    activity = report.activity
    for counted in ("conflicts.injected", "conflicts.retried", "adapter.declined",
                    "adapter.timeout", "retries.same_key", "callbacks.ignored", "pushes.ignored"):
        assert activity.get(counted, 0) > 0, counted
    assert activity["conflicts.retried"] >= activity["conflicts.injected"]
    assert report.config["faults"]["conflict"] == 0.05
    assert report.funnel["funds_released"] > 100


def test_a_stopped_run_resumes_to_the_end(tmp_path: Path) -> None:
    config = replace(SMALL, orders=120, sellers=10, days=40, seed=9)
    db = url(tmp_path)

    stopped = simulation.run_on(db, config, stop_after_orders=50)
    assert stopped.status == "stopped"
    assert stopped.funnel["placed"] == 50
    with pytest.raises(lifecycle.AlreadyExists):
        simulation.run_on(db, config)
    finished = simulation.run_on(db, resume=True)

    assert finished.status == "finished"
    assert finished.funnel["placed"] == 120
    assert finished.check["passed"], finished.check
    assert finished.states["order"]["funds_released"] > 80
    again = simulation.run_on(db, resume=True)  # a finished run is only reported on
    assert again.to_json(deterministic=True) == finished.to_json(deterministic=True)


def test_a_run_stopped_from_the_progress_callback_resumes(tmp_path: Path) -> None:
    config = replace(SMALL, orders=60, sellers=6, days=20, seed=2)
    db = url(tmp_path)
    days: list[int] = []

    def progress(day: int, orders: int, rate: float) -> None:
        days.append(day)
        if day == 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        simulation.run_on(db, config, progress=progress)
    with lifecycle.open(db) as engine:
        assert engine.check() == []
    resumed = simulation.run_on(db, resume=True, progress=progress)

    assert days[:8] == list(range(1, 9))
    assert resumed.status == "finished"
    assert resumed.check["passed"]
    assert resumed.funnel["placed"] == 60


def test_resume_without_a_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(lifecycle.NotFound):
        simulation.run_on(url(tmp_path), resume=True)


@pytest.mark.parametrize(("spec", "problem"), [
    ("decline=2", "probability"), ("typo=0.1", "NAME=RATE"), ("decline", "NAME=RATE"),
    ("timeout=x", "number"), ("decline=0.6,timeout=0.6", "exceed"),
])
def test_a_bad_faults_spec_names_the_problem(spec: str, problem: str) -> None:
    with pytest.raises(lifecycle.InvalidPayload, match=problem):
        Faults.parse(spec)


def test_a_faults_spec_round_trips() -> None:
    faults = Faults.parse(" decline=0.02, timeout=0.01,duplicate=0.05,conflict=0.01 ")
    assert faults == Faults(decline=0.02, timeout=0.01, duplicate=0.05, conflict=0.01)
    assert Faults.parse(faults.spec()) == faults
    assert Config.from_dict(json.loads(json.dumps(SMALL.to_dict()))) == SMALL


@pytest.mark.pg
def test_a_tiny_run_on_postgresql_reports_as_on_sqlite(pg_url: str, tmp_path: Path) -> None:
    config = Config(sellers=4, orders=25, days=10, seed=1, name="pgsmoke")

    report = simulation.run_on(pg_url, config)

    assert report.status == "finished"
    assert report.check["passed"], report.check
    assert report.funnel["placed"] == 25
    on_sqlite = simulation.run_on(url(tmp_path), config)
    assert report.to_json(deterministic=True) == on_sqlite.to_json(deterministic=True)
