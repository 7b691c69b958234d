"""Simulation runs (SPEC §9): the marketplace on a simulated clock through the real engine.

One small run (shared by several tests) must reach every state of every machine and every
dispute path of §5 with the ledger check passing; the same seed must give the same report;
faults must be counted without breaking an invariant; a stopped run must resume to the end.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner

import lifecycle
from lifecycle import simulation
from lifecycle.cli import cli
from lifecycle.simulation import Behaviour, Config, Faults, Report, charts, readback, record, world
from lifecycle.simulation.driver import Driver
from lifecycle.simulation.market import Market
from lifecycle.simulation.retry import GAVE_UP, REREAD, SAME_KEY
from tests.builders import legacy_scans

# Shares raised above the defaults so that 20 sellers and 300 orders meet every case.
COVERING = Behaviour(
    rejected=0.25, gives_up=0.5, never_pays_fee=0.1, suspended=0.15, closes=0.05,
    coupon_left_in_draft=0.3, coupon_deactivated=0.4, claims_without_ordering=0.15,
    disputes_received=0.1, disputes_not_received=0.06, disputes_after_completion=0.02,
    # the seller's account (issue #20)
    violations_minor=0.2, violations_restricted=0.15, violations_orders_refused=0.15,
    violations_suspended=0.15, avatar_rejected=0.25, avatar_overdue=0.3,
)
# 20 days of penalty points instead of 365, so that violations expire in the run.
SMALL = Config(sellers=20, orders=300, days=90, seed=7, behaviour=COVERING, fee_period_days=30,
               violation_points_period_days=20)


def url(directory: Path, name: str = "sim.db") -> str:
    return f"sqlite:///{directory / name}"


def read_one_by_one(engine: lifecycle.Engine, prefix: str) -> dict[str, Any]:
    """The report's reading of the database done the slow way, as it was before its bulk
    statements: every aggregate, its postings and its history through the engine's API."""
    states = {kind: Counter(dict.fromkeys(lifecycle.definition(kind).states, 0))
              for kind in (*readback.KINDS, *readback.BY_SELLER)}
    transitions = 0
    funnel: Counter[str] = Counter()
    endings: Counter[str] = Counter()
    durations: dict[str, list[float]] = {name: [] for name in readback.DURATIONS}
    money = readback._Money()
    disputes: dict[str, Counter[str]] = defaultdict(Counter)
    paths: Counter[str] = Counter()
    for kind in readback.KINDS:
        terminal = lifecycle.definition(kind).terminal
        page: list[lifecycle.Aggregate] = []
        while True:
            page = engine.find(kind, limit=50, after_id=page[-1].id if page else None)
            for aggregate in (a for a in page if a.id.startswith(prefix)):
                states[kind][aggregate.state] += 1
                transitions += aggregate.version
                if kind in ("seller", "order", "unexpected_capture"):
                    for _seq, posting, account, amount, currency in engine.postings(kind, aggregate.id):
                        money.add(kind, posting, account, currency, amount > 0, amount)
                if kind == "order":
                    readback._order(aggregate.data, aggregate.state, funnel, endings, durations)
                if kind == "dispute":
                    type_, state = aggregate.data["type"], aggregate.state
                    disputes[type_][state if state in terminal else "open"] += 1
                    if state in terminal:
                        steps = [(e.trigger, e.payload.get("decision"))
                                 for e in engine.history(kind, aggregate.id)]
                        paths[f"{type_}: {readback._path(steps)}"] += 1
            if len(page) < 50:
                break
    for kind in readback.BY_SELLER:  # ids of their own: the run's are its sellers'
        page = []
        while True:
            page = engine.find(kind, limit=50, after_id=page[-1].id if page else None)
            for aggregate in (a for a in page if a.data["seller"].startswith(prefix)):
                states[kind][aggregate.state] += 1
                transitions += aggregate.version
            if len(page) < 50:
                break
    parked = Counter(d.trigger for d in engine.deadlines(failed=True, limit=1_000_000)
                     if d.aggregate_id.startswith(prefix))
    released = Counter(int(days) for days in durations["place_to_funds_released"])
    return {
        "states": {kind: dict(counts) for kind, counts in states.items()},
        "transitions": transitions,
        "funnel": {stage: funnel[stage] for stage in readback.FUNNEL},
        "endings": dict(sorted(endings.items())),
        "disputes": {t: dict(sorted(c.items())) for t, c in sorted(disputes.items())},
        "dispute_paths": dict(sorted(paths.items())),
        "durations": {name: readback.summary(values) for name, values in durations.items()},
        "release_histogram": tuple(sorted(released.items())),
        "money": money.to_dict(),
        "parked": dict(sorted(parked.items())),
    }


def assert_read_back_alike(report: Report, db: str) -> None:
    with lifecycle.open(db) as engine:
        expected = read_one_by_one(engine, f"{report.name}-")
    assert {name: getattr(report, name) for name in expected} == expected


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
    for kind, definition in lifecycle.definitions().items():
        if kind == "unexpected_capture":
            continue  # a gateway's mistakes, not the market's: see test_unexpected_captures.py
        missed = [state for state in definition.states if not report.reached[kind][state]]
        assert missed == [], f"{kind} never entered {missed}"
    assert report.states["order"]["funds_released"] > 200
    assert sum(report.states["order"].values()) == report.funnel["placed"] == 300


def test_a_small_run_exercises_the_seller_account(small: tuple[Report, str]) -> None:
    report, db = small
    staff, violations = report.accounts["sub-accounts"], report.accounts["violations"]
    penalties, points = report.accounts["penalties"], report.accounts["points"]
    messages, profiles = report.accounts["messages"], report.accounts["profiles"]

    for what in ("created", "disabled", "enabled again", "removed",
                 "orders shipped by sub-accounts", "disputes answered by sub-accounts",
                 "staff actions refused (then done by the owner)"):
        assert staff[what] > 0, what
    assert staff["actions taken by sub-accounts"] == (
        staff["orders shipped by sub-accounts"] + staff["disputes answered by sub-accounts"])
    for what in ("recorded", "appealed", "upheld", "overturned", "final without appeal",
                 "expired"):
        assert violations[what] > 0, what
    assert penalties["stores suspended by penalties"] > 0
    assert penalties["orders refused by penalties"] > 0
    assert report.funnel["placed"] == 300  # a refused buyer ordered from another store
    assert points["points earned"] == 10 * points["orders that earned"] > 0
    assert points["orders that earned"] <= report.funnel["paid"]  # a free order earns none
    for what in ("redemptions", "redemptions refused (balance too low)", "corrections",
                 "penalties", "accounts closed"):
        assert points[what] > 0, what
    assert messages["sent"] >= sum(sum(c.values()) for c in report.disputes.values())
    for what in ("read", "labelled", "marked", "removed by operators"):
        assert messages[what] > 0, what
    for what in ("privacy set", "subscriptions set", "closed", "contacts verified",
                 "codes expired", "codes sent again", "avatars approved", "avatars rejected",
                 "avatars overdue"):
        assert profiles[what] > 0, what
    with lifecycle.open(db) as engine:
        assert engine.policy.violation_points_period.days == 20  # Config's shortening
        shippers = [entry.actor for order in engine.find("order", state="funds_released",
                                                         limit=1000)
                    for entry in engine.history("order", order.id)
                    if entry.trigger in ("ship_offline", "book_pickup")]
        left = sum(engine.points(s.id, lifecycle.Actor("operator", "audit")).balance
                   for s in engine.find("points_account", limit=1000))
    assert any(actor.sub == "shipper" for actor in shippers)  # recorded under its own id
    assert left == (points["points earned"] - points["points redeemed"]
                    + points["points corrected (added)"] - points["points corrected (taken back)"]
                    - points["points penalised"])


def test_the_seller_accounts_section_is_in_the_text_the_json_and_the_page(
        small: tuple[Report, str]) -> None:
    report, _ = small

    text = report.render()
    assert "Seller accounts" in text
    assert "orders refused by penalties" in text
    data = json.loads(report.to_json(deterministic=True))
    assert data["accounts"] == {area: dict(c) for area, c in report.accounts.items()}
    assert "<h2>Seller accounts</h2>" in report.html()


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


def test_the_report_reads_back_what_the_engine_tells_of_each_aggregate(
        small: tuple[Report, str]) -> None:
    report, db = small

    assert report.dispute_paths
    assert report.money["USD"]["coupons_settled_by_sellers"] != "0"
    assert_read_back_alike(report, db)


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
    assert page.count("<svg") == 1 + len(charts.PHASES)  # a states chart per phase, a histogram
    assert "<script" not in page
    assert "http" not in page.replace("http://www.w3.org/2000/svg", "")  # nothing to fetch
    assert len(report.timeline) >= 90


def test_the_page_replaces_a_symlink_in_the_report_dir_instead_of_writing_through_it(
        small: tuple[Report, str], tmp_path: Path) -> None:
    report, _ = small
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    directory = tmp_path / "report"
    directory.mkdir()
    (directory / "index.html").symlink_to(victim)

    written = report.write_html(directory)

    assert victim.read_text() == "keep me"
    assert not written.is_symlink()
    assert written.read_text().startswith("<!doctype html>")
    assert sorted(p.name for p in directory.iterdir()) == ["index.html"]  # no temporary left


def test_simulate_with_a_report_dir_never_writes_through_a_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    directory = tmp_path / "report"
    directory.mkdir()
    (directory / "index.html").symlink_to(victim)

    result = CliRunner().invoke(cli, ["--db", url(tmp_path), "simulate", "--sellers", "2",
                                      "--orders", "5", "--days", "3", "--report-dir",
                                      str(directory)])

    assert result.exit_code == 0, result.output
    assert victim.read_text() == "keep me"
    assert not (directory / "index.html").is_symlink()
    assert "<svg" in (directory / "index.html").read_text()


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
    assert_read_back_alike(report, url(tmp_path))


def test_the_driver_keeps_only_open_orders_and_sees_the_first_deadlines_as_listed(
        tmp_path: Path) -> None:
    config = replace(SMALL, orders=80, sellers=8, days=20, seed=4, fee_period_days=None,
                     faults=Faults.parse("decline=0.1"))
    clock = lifecycle.SimulatedClock(config.start)
    gateway, carriers = simulation.sandbox_adapters(config, clock)
    listings: list[list[str]] = []
    with lifecycle.open(url(tmp_path), clock=clock, payments=gateway, carriers=carriers) as engine:
        record.ensure_table(engine.database)
        progress = record.Progress(config.name, config.to_dict(), "running", 0, config.start, 0)
        record.save(engine.database, progress, config.start, new=True)

        def each_day(day: int, orders: int, rate: float) -> None:
            assert len(market.orders.open) == market.open_orders()
            assert len(market.scans) == len(set(market.scans))  # each push tick once
            for n in (1, 5, 16):
                listed = [(d.status, d.due_at) for d in engine.deadlines(limit=n)]
                assert engine.first_deadlines(n) == listed
            listings.append([d.status for d in engine.deadlines(limit=16)])

        market = Market(engine, config, progress, on_progress=each_day)
        try:
            assert Driver(market).run() == "finished"
        finally:
            market.close()
        orders = engine.find("order", limit=1000)

    statuses = {status for listed in listings for status in listed}
    assert statuses == {"pending", "paused", "failed"}  # every kind of row was compared
    assert len(orders) == 80
    # what the driver still holds at the end: the orders a parked refund or payout left open
    terminal = lifecycle.definition("order").terminal
    assert set(market.orders.open) == {o.id for o in orders if o.state not in terminal}
    assert len(market.orders.open) < 5


def test_group_ranks_come_out_as_counted_one_by_one() -> None:
    def choose(n: int) -> str:
        return "abcde"[int(world.unit(1, "rank", n) * 5)]

    def group(choice: str) -> str:
        return "vowel" if choice in "ae" else choice

    counts: Counter[str] = Counter()
    expected = []
    for n in range(3000):
        expected.append((choose(n), counts[group(choose(n))]))
        counts[group(choose(n))] += 1
    ranks = world._Ranks(choose, group)

    assert ranks(2999) == expected[2999]  # a late one asked for first
    assert [ranks(n) for n in range(3000)] == expected


def test_a_retry_counts_each_retried_failure_and_gives_up_after_the_last_try() -> None:
    counted: Counter[str] = Counter()
    attempts: list[int] = []

    def always_conflicts(attempt: int) -> None:
        attempts.append(attempt)
        raise lifecycle.Conflict("order", "sim-o0000001", 3)

    assert REREAD.run(always_conflicts, lambda name: counted.update([name])) is GAVE_UP
    assert attempts == [0, 1, 2, 3, 4]
    assert counted == {"conflicts.retried": 5, "conflicts.given_up": 1}


def test_a_retry_passes_on_what_it_does_not_retry_and_returns_what_succeeds() -> None:
    counted: Counter[str] = Counter()

    def count(name: str) -> None:
        counted[name] += 1

    def declined(attempt: int) -> None:
        raise lifecycle.PaymentDeclined("sandbox", "capture", "card declined by the issuer")

    def times_out_once(attempt: int) -> str:
        if attempt == 0:
            raise lifecycle.AdapterError("sandbox", "capture", "no reply", timeout=True)
        return f"captured on try {attempt}"

    with pytest.raises(lifecycle.PaymentDeclined):
        SAME_KEY.run(declined, count)
    with pytest.raises(lifecycle.PaymentDeclined):
        REREAD.run(declined, count)  # a decline is no conflict: nothing re-read
    assert counted == {}
    assert SAME_KEY.run(times_out_once, count) == "captured on try 1"
    assert counted == {"adapter.timeout": 1, "retries.same_key": 1}


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


def test_a_run_resumes_over_legacy_record_tracking_rows(tmp_path: Path) -> None:
    """A database written before scans stopped being transitions holds ``record_tracking``
    self-loops: the resume reads past them and the check still replays every history."""
    config = replace(SMALL, orders=60, sellers=6, days=30, seed=3)
    db = url(tmp_path)
    simulation.run_on(db, config, stop_after_orders=40)
    with lifecycle.open(db) as engine:
        shipped = [order for state in ("shipped", "in_transit", "delivered", "completed")
                   for order in engine.find("order", state=state, limit=1000)]
        assert shipped  # the stopped run left orders on their way
        for order in shipped:
            legacy_scans(engine, order, 2)

    finished = simulation.run_on(db, resume=True)

    assert finished.status == "finished"
    assert finished.check["passed"], finished.check
    assert finished.funnel["placed"] == 60


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
def test_a_tiny_run_on_postgresql_reports_as_on_sqlite(pg_url: str, pg_engine: lifecycle.Engine,
                                                       tmp_path: Path) -> None:
    # pg_engine: the session's database emptied first. Another test's deadlines left in it
    # would be the driver's next due time too, and move the run's clock.
    config = Config(sellers=4, orders=25, days=10, seed=1, name="pgsmoke")

    report = simulation.run_on(pg_url, config)

    assert report.status == "finished"
    assert report.check["passed"], report.check
    assert report.funnel["placed"] == 25
    on_sqlite = simulation.run_on(url(tmp_path), config)
    assert report.to_json(deterministic=True) == on_sqlite.to_json(deterministic=True)
    assert_read_back_alike(report, pg_url)  # amid other tests' aggregates
