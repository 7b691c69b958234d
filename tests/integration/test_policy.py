"""The policy lives in the database (SPEC §2, issue #13): set once, read by every process.

A service opened with a 1-hour protection period and a timer worker opened with nothing must
schedule the same deadlines; a process given another policy is refused unless it asks to store
it; a change made by another process (``lifecycle policy set``) is used from the next trigger.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import insert, inspect, text

import lifecycle
from lifecycle import Policy, simulation
from lifecycle.cli import cli
from lifecycle.store.tables import metadata
from lifecycle.store.tables import policy as policy_table
from tests.builders import buyer, order_in, rows
from tests.integration.test_cli import assert_one_line_error
from tests.integration.test_cli_domain import documented, same_shape

ONE_HOUR = Policy().with_overrides(protection_period=timedelta(hours=1))
DEFAULTS = Policy()


def run(db_url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", db_url, *args])


def due(engine: lifecycle.Engine, order_id: str, trigger: str) -> datetime:
    [deadline] = [d for d in engine.deadlines(kind="order", id=order_id) if d.trigger == trigger]
    return deadline.due_at


# --- SQLite: several engines on one file ---------------------------------------------------


def test_an_engine_opened_without_a_policy_schedules_with_the_stored_one(
        db_url: str, clock: lifecycle.SimulatedClock) -> None:
    with lifecycle.open(db_url, clock=clock, policy=ONE_HOUR), \
            lifecycle.open(db_url, clock=clock) as second:
        order = order_in(second, clock, "completed")

        assert due(second, order.id, "release_funds") == clock.now() + timedelta(hours=1)
        assert second.policy == ONE_HOUR
        assert [v.version for v in second.policy_versions()] == [1]


def test_a_new_database_stores_the_defaults_as_version_1(
        db_url: str, clock: lifecycle.SimulatedClock) -> None:
    with lifecycle.open(db_url, clock=clock) as engine:
        [first] = engine.policy_versions()

    assert (first.version, first.policy, first.set_at) == (1, DEFAULTS, clock.now())


def test_opening_with_a_different_policy_is_refused_and_writes_nothing(
        db_url: str, clock: lifecycle.SimulatedClock) -> None:
    other = Policy().with_overrides(protection_period=timedelta(hours=2))
    other = other.with_settings([("commission_rate", "0.04")])
    with lifecycle.open(db_url, clock=clock, policy=ONE_HOUR) as first:
        order_in(first, clock, "paid")
        before = rows(first)

        with pytest.raises(lifecycle.PolicyMismatch) as refused:
            lifecycle.open(db_url, clock=clock, policy=other)

        assert refused.value.version == 1
        assert refused.value.differences == (("protection_period", "1h", "2h"),
                                             ("commission_rate", "0.05", "0.04"))
        message = str(refused.value)
        assert "protection_period stored 1h, given 2h" in message
        assert "commission_rate stored 0.05, given 0.04" in message
        assert isinstance(refused.value, lifecycle.LifecycleError)
        assert rows(first) == before
        assert [v.policy for v in first.policy_versions()] == [ONE_HOUR]
        # the defaults differ from the stored policy too
        with pytest.raises(lifecycle.PolicyMismatch, match="protection_period stored 1h, given 15d"):
            lifecycle.open(db_url, clock=clock, policy=DEFAULTS)
        assert rows(first) == before


def test_update_policy_stores_the_given_one_as_the_next_version_and_keeps_the_old(
        db_url: str, clock: lifecycle.SimulatedClock) -> None:
    with lifecycle.open(db_url, clock=clock) as first:
        order = order_in(first, clock, "delivered")
        clock.advance(timedelta(minutes=5))

        with lifecycle.open(db_url, clock=clock, policy=ONE_HOUR, update_policy=True) as second:
            versions = second.policy_versions()
            assert [(v.version, v.policy) for v in versions] == [(1, DEFAULTS), (2, ONE_HOUR)]
            assert versions[1].set_at == clock.now()
            assert second.stored_policy() == versions[1]

        # the engine opened before the change schedules with it from its next trigger
        first.fire("order", order.id, "confirm_receipt", buyer())
        assert due(first, order.id, "release_funds") == clock.now() + timedelta(hours=1)
        # the same policy again stores nothing
        with lifecycle.open(db_url, clock=clock, policy=ONE_HOUR, update_policy=True):
            pass
        assert [v.version for v in first.policy_versions()] == [1, 2]


def test_a_policy_set_through_the_cli_is_seen_by_an_open_engines_next_transition(
        db_url: str, clock: lifecycle.SimulatedClock) -> None:
    with lifecycle.open(db_url, clock=clock) as engine:
        order = order_in(engine, clock, "delivered")
        assert engine.policy.protection_period == timedelta(days=15)

        result = run(db_url, "policy", "set", "protection_period=1h")

        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines() == ["protection_period: 15d -> 1h",
                                              "policy version 2 (was 1)"]
        assert engine.policy.protection_period == timedelta(hours=1)
        engine.fire("order", order.id, "confirm_receipt", buyer())
        assert due(engine, order.id, "release_funds") == clock.now() + timedelta(hours=1)


def test_a_timer_worker_in_another_engine_schedules_follow_on_deadlines_with_the_stored_policy(
        db_url: str, clock: lifecycle.SimulatedClock) -> None:
    with lifecycle.open(db_url, clock=clock, policy=ONE_HOUR) as service, \
            lifecycle.open(db_url, clock=clock) as worker:
        order = order_in(service, clock, "delivered")
        clock.advance(DEFAULTS.auto_confirm_after_delivery)

        assert worker.run_due_timers() == 1  # auto_confirm: the order completes

        assert worker.get("order", order.id).state == "completed"
        assert due(worker, order.id, "release_funds") == clock.now() + timedelta(hours=1)
        clock.advance(timedelta(hours=1))
        assert worker.run_due_timers() == 1
        assert worker.get("order", order.id).state == "funds_released"


def test_set_policy_refuses_when_another_process_changed_it_since_it_was_read(
        db_url: str, clock: lifecycle.SimulatedClock) -> None:
    with lifecycle.open(db_url, clock=clock) as one, lifecycle.open(db_url, clock=clock) as two:
        read = one.stored_policy()
        two.set_policy(ONE_HOUR)
        before = rows(one)

        with pytest.raises(lifecycle.Conflict):
            one.set_policy(read.policy.with_overrides(commission_rate=ONE_HOUR.commission_rate / 2),
                           expected_version=read.version)

        assert rows(one) == before
        assert one.set_policy(ONE_HOUR).version == 2  # the same values: nothing stored


def _store_raw(db_url: str, version: int, values: dict[str, object]) -> None:
    with lifecycle.open(db_url) as engine, engine.database.begin() as conn:
        conn.execute(insert(policy_table).values(version=version, values=values,
                                                 created_at=engine.clock.now()))


def test_a_policy_stored_by_a_newer_lifecycle_is_refused_naming_what_it_does_not_know(
        db_url: str, clock: lifecycle.SimulatedClock) -> None:
    with lifecycle.open(db_url, clock=clock) as engine:
        order = order_in(engine, clock, "delivered")
        _store_raw(db_url, 2, {**DEFAULTS.to_json(), "surge_window": "P1D"})
        before = rows(engine)

        with pytest.raises(lifecycle.UnknownPolicyValues, match="surge_window"):
            engine.fire("order", order.id, "confirm_receipt", buyer())
        with pytest.raises(lifecycle.UnknownPolicyValues, match="version 2"):
            lifecycle.open(db_url, clock=clock)

        assert rows(engine) == before
        assert engine.get("order", order.id).state == "delivered"


def test_a_policy_stored_by_an_older_lifecycle_takes_the_defaults_for_what_it_lacks(
        db_url: str, clock: lifecycle.SimulatedClock) -> None:
    older = {k: v for k, v in ONE_HOUR.to_json().items() if k != "outbox_retention"}
    with lifecycle.open(db_url, clock=clock) as engine:
        _store_raw(db_url, 2, older)

        assert engine.policy == ONE_HOUR
        # the same policy, given in full, matches what is stored: nothing to refuse or write
        with lifecycle.open(db_url, clock=clock, policy=ONE_HOUR):
            pass
        assert [v.version for v in engine.policy_versions()] == [1, 2]


# --- the command line ------------------------------------------------------------------------


def test_policy_show_lists_every_value_with_its_unit_and_version(engine: lifecycle.Engine,
                                                                 db_url: str) -> None:
    result = run(db_url, "policy", "show")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("policy version 1, set ")
    table = {line.split()[0]: line.split(None, 2)[1:] for line in lines[3:]}
    assert table["protection_period"] == ["15d", "duration"]
    assert table["commission_rate"][0] == "0.05"
    assert table["annual_fee.default"] == ["1000.00", "USD a year, per business category"]
    assert table["idempotency_retention"] == ["30d", "duration"]
    assert table["outbox_retention"] == ["7d", "duration"]
    assert len(table) == len(DEFAULTS.settings())


def test_policy_show_json_is_the_stored_form_and_documented(engine: lifecycle.Engine,
                                                           db_url: str) -> None:
    result = run(db_url, "policy", "show", "--json")

    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    same_shape(shown, documented("policy"))
    assert shown["version"] == 1
    # As stored, but money with its currency's minor units (issue #19): "5" USD shows as "5.00".
    assert shown["values"] == {**DEFAULTS.to_json(), "coupon_min_denomination": {"USD": "5.00"}}
    assert Policy.from_json(shown["values"]) == engine.policy


def test_policy_set_changes_several_values_at_once_as_one_version(engine: lifecycle.Engine,
                                                                  db_url: str) -> None:
    result = run(db_url, "policy", "set", "payment_timeout=90m", "escalate_from=2d12h",
                 "commission_rate=0.04", "annual_fee.fashion=800.00", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"version": 2, "was": 1, "changed": [
        {"name": "payment_timeout", "from": "1d", "to": "1h30m"},
        {"name": "escalate_from", "from": "3d", "to": "2d12h"},
        {"name": "commission_rate", "from": "0.05", "to": "0.04"},
        {"name": "annual_fee.fashion", "from": "-", "to": "800.00"},
    ]}
    policy = engine.policy
    assert policy.payment_timeout == timedelta(minutes=90)
    assert policy.fee_for("fashion") == 800
    again = run(db_url, "policy", "set", "commission_rate=0.04")
    assert again.stdout == "no change: policy version 2 already has these values\n"
    assert [v.version for v in engine.policy_versions()] == [1, 2]


@pytest.mark.parametrize(("settings", "named"), [
    (["protection_period=1h", "bogus=3"], "policy.bogus: unknown policy value"),
    (["protection_period=1x"], "policy.protection_period: '1x' is not a duration"),
    (["protection_period=1h", "commission_rate=1.5"], "policy.commission_rate"),
    (["annual_fee=900"], "policy.annual_fee: annual_fee is a table"),
    (["annual_fee.default=ten"], "policy.annual_fee.default: 'ten' is not a decimal"),
    (["coupon_max_copies=many"], "policy.coupon_max_copies"),
    (["protection_period=1h", "protection_period=2h"], "policy.protection_period: given twice"),
    (["protection_period"], "'protection_period' is not NAME=VALUE"),
    (["=1h"], "'=1h' is not NAME=VALUE"),
])
def test_bad_policy_set_input_is_one_error_naming_it_and_writes_nothing(
        engine: lifecycle.Engine, db_url: str, settings: list[str], named: str) -> None:
    before = rows(engine)

    line = assert_one_line_error(run(db_url, "policy", "set", *settings), 2)

    assert named in line
    assert rows(engine) == before
    assert engine.policy == DEFAULTS


def test_policy_set_without_values_is_a_usage_error(engine: lifecycle.Engine, db_url: str) -> None:
    before = rows(engine)

    line = assert_one_line_error(run(db_url, "policy", "set"), 2)

    assert "NAME=VALUE" in line
    assert rows(engine) == before


# --- simulations ---------------------------------------------------------------------------


def test_a_simulation_on_a_database_holding_another_policy_is_refused_and_writes_nothing(
        db_url: str) -> None:
    with lifecycle.open(db_url, policy=ONE_HOUR) as engine:
        before = rows(engine)

        with pytest.raises(lifecycle.PolicyMismatch, match="protection_period stored 1h, given 15d"):
            simulation.run_on(db_url, simulation.Config(sellers=1, orders=1, days=1))

        assert rows(engine) == before
        assert "simulation_runs" not in inspect(engine.database).get_table_names()


def test_a_simulation_stores_its_own_policy_and_resumes_with_it(db_url: str) -> None:
    config = simulation.Config(sellers=2, orders=5, days=2, seed=3, fee_period_days=20)

    simulation.run_on(db_url, config, stop_after_orders=2)
    report = simulation.run_on(db_url, resume=True)

    assert report.check["passed"]
    with lifecycle.open(db_url) as engine:
        [stored] = engine.policy_versions()
    assert stored.policy == DEFAULTS.with_overrides(fee_period=timedelta(days=20))


# --- PostgreSQL: services and workers as separate engines -------------------------------------


@pytest.fixture
def pg_fresh(pg_url: str) -> str:
    """``pg_url`` with every table emptied, the policy's too, before any engine opens."""
    with lifecycle.open(pg_url) as engine, engine.database.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(t.name for t in metadata.sorted_tables)}"))
    return pg_url


@pytest.mark.pg
def test_on_postgresql_every_engine_schedules_with_the_stored_policy(
        pg_fresh: str, clock: lifecycle.SimulatedClock) -> None:
    with lifecycle.open(pg_fresh, clock=clock, policy=ONE_HOUR) as service, \
            lifecycle.open(pg_fresh, clock=clock) as worker:
        assert worker.policy == ONE_HOUR
        before = rows(service)
        with pytest.raises(lifecycle.PolicyMismatch, match="protection_period stored 1h, given 15d"):
            lifecycle.open(pg_fresh, clock=clock, policy=DEFAULTS)
        assert rows(service) == before

        order = order_in(service, clock, "delivered")
        clock.advance(DEFAULTS.auto_confirm_after_delivery)
        assert worker.run_due_timers() == 1
        assert worker.get("order", order.id).state == "completed"
        assert due(worker, order.id, "release_funds") == clock.now() + timedelta(hours=1)

        # a change through the command line reaches both engines' next triggers
        result = run(pg_fresh, "policy", "set", "protection_period=2h", "seller_response_timeout=1d")
        assert result.exit_code == 0, result.output
        second = order_in(service, clock, "completed", buyer_id="b-2")
        assert due(service, second.id, "release_funds") == clock.now() + timedelta(hours=2)
        with lifecycle.open(pg_fresh, clock=clock, policy=ONE_HOUR, update_policy=True):
            pass
        assert [v.version for v in worker.policy_versions()] == [1, 2, 3]
        assert worker.policy == ONE_HOUR


@pytest.mark.pg
def test_on_postgresql_bad_policy_set_input_writes_nothing(pg_fresh: str,
                                                          clock: lifecycle.SimulatedClock) -> None:
    with lifecycle.open(pg_fresh, clock=clock) as engine:
        before = rows(engine)

        line = assert_one_line_error(run(pg_fresh, "policy", "set", "protection_period=1h",
                                         "annual_fee.default=-5"), 2)

        assert "policy.annual_fee.default" in line
        assert rows(engine) == before
        assert [v.version for v in engine.policy_versions()] == [1]
