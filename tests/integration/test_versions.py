"""Versioned machines (issue #18, SPEC §13): aggregates pinned to the version they started on,
migrations with a dry run, replay across a migration, and refusal of an edited definition.

The worked example is version 2 of the order machine (`lifecycle.machines.examples.customs_hold`):
a ``customs_hold`` state between ``in_transit`` and ``delivered``, and a ship deadline of at
most 5 days instead of the seller's 7.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text

import lifecycle
from lifecycle.cli import cli
from lifecycle.machines import order
from lifecycle.machines.definition import (
    Context,
    Deadline,
    Fire,
    MachineDefinition,
    Transition,
    sends,
)
from lifecycle.machines.examples import customs_hold
from lifecycle.store.tables import history, machine_versions, metadata
from tests.builders import SYSTEM, buyer, order_in, order_payload, rows

EXAMPLE = "lifecycle.machines.examples.customs_hold"
V1_STATES = order.STATES
TERMINAL = ("funds_released", "cancelled", "refunded")


@pytest.fixture
def v1_orders(db_url: str, clock: lifecycle.SimulatedClock) -> dict[str, str]:
    """A database written by a process that runs only version 1: an order in every state."""
    with lifecycle.open(db_url, clock=clock) as engine:
        return {state: order_in(engine, clock, state).id for state in V1_STATES}


@pytest.fixture
def v2(db_url: str, clock: lifecycle.SimulatedClock,
       v1_orders: dict[str, str]) -> Iterator[lifecycle.Engine]:
    """The same database opened by a process that also runs version 2."""
    with lifecycle.open(db_url, clock=clock, machines=EXAMPLE) as engine:
        yield engine


def _run_timers_to_the_end(engine: lifecycle.Engine, clock: lifecycle.SimulatedClock,
                           days: int = 120) -> None:
    """The timer worker, once a simulated day."""
    worker = lifecycle.TimerWorker(engine)
    for _ in range(days):
        clock.advance(timedelta(days=1))
        worker.run(threading.Event(), once=True)


# --- pinned versions ----------------------------------------------------------------------


def test_new_aggregates_start_on_the_newest_and_old_ones_stay_pinned(
        v2: lifecycle.Engine, v1_orders: dict[str, str]) -> None:
    assert {v2.get("order", id).machine_version for id in v1_orders.values()} == {1}
    placed = v2.create("order", buyer(), order_payload())
    assert placed.machine_version == 2
    assert v2.history("order", placed.id)[0].machine_version == 2
    # A customs exception holds a version-2 order in transit; on a version-1 order the same
    # trigger is the self-loop version 1 defines: recorded, the order stays in transit.
    assert v2.allowed("order", v1_orders["paid"], lifecycle.Actor("seller", "s-1")) == [
        "book_pickup", "ship_offline"]
    pinned = v2.fire("order", v1_orders["in_transit"], "tracking_exception", SYSTEM,
                     {"kind": "customs_hold"})
    assert (pinned.state, pinned.machine_version) == ("in_transit", 1)
    with pytest.raises(lifecycle.InvalidTransition):
        v2.fire("order", v1_orders["in_transit"], "tracking_in_transit", SYSTEM, {})
    assert v2.check() == []


def test_history_rows_record_the_policy_version_they_ran_under(v2: lifecycle.Engine) -> None:
    placed = v2.create("order", buyer(), order_payload())
    assert v2.history("order", placed.id)[0].policy_version == v2.stored_policy().version
    newer = dataclasses.replace(v2.policy, payment_timeout=timedelta(hours=12))
    stored = v2.set_policy(newer)
    paid = v2.fire("order", placed.id, "pay", buyer(), {})
    assert [e.policy_version for e in v2.history("order", paid.id)] == [stored.version - 1,
                                                                         stored.version]


def test_a_process_without_the_version_an_aggregate_runs_refuses_it_and_writes_nothing(
        db_url: str, clock: lifecycle.SimulatedClock, v2: lifecycle.Engine) -> None:
    placed = v2.create("order", buyer(), order_payload())
    with lifecycle.open(db_url, clock=clock) as old:
        before = rows(old)
        with pytest.raises(lifecycle.UnknownMachineVersion, match="version 2 of the order"):
            old.fire("order", placed.id, "pay", buyer(), {})
        with pytest.raises(lifecycle.UnknownMachineVersion):
            old.allowed("order", placed.id, buyer())
        assert rows(old) == before
        assert old.get("order", placed.id).machine_version == 2  # reading it is fine


# --- the worked example: dry run, migrate, run to the end -----------------------------------


def test_dry_run_says_what_would_happen_to_each_order_and_writes_nothing(
        v2: lifecycle.Engine, v1_orders: dict[str, str]) -> None:
    before = rows(v2)
    report = v2.migrate("order", 2, dry_run=True)
    assert rows(v2) == before
    plans = {p.state: p for p in report.plans}
    in_flight = [s for s in V1_STATES if s not in TERMINAL]
    assert sorted(plans) == sorted(in_flight)
    assert report.terminal_left == len(TERMINAL)
    assert report.migrated == 0
    assert not report.stranded
    assert report.to_json()["money_ok"] is True
    assert all(p.new_state == p.state and p.from_version == 1 for p in report.plans)
    # The shorter ship deadline: the seller's 7 days become 5.
    (ship,) = plans["paid"].deadlines
    assert (ship.trigger, ship.action) == ("ship_deadline", "moved")
    assert ship.due_before is not None
    assert ship.due_after == ship.due_before - timedelta(days=2)
    # Every other deadline keeps its due time.
    for state, plan in plans.items():
        if state != "paid":
            assert {d.action for d in plan.deadlines} <= {"kept"}, state
    assert {c: str(amount) for c, amount in plans["paid"].escrow.items()} == {"USD": "52.48"}
    assert plans["awaiting_payment"].escrow == {}


def test_every_order_of_version_1_is_migrated_and_runs_to_a_terminal_state(
        v2: lifecycle.Engine, clock: lifecycle.SimulatedClock, v1_orders: dict[str, str]) -> None:
    dry = v2.migrate("order", 2, dry_run=True)
    done = v2.migrate("order", 2)
    assert done.migrated == len(dry.plans) == 9
    assert [p.to_json() for p in done.plans] == [p.to_json() for p in dry.plans]
    migrated = v2.get("order", v1_orders["paid"])
    assert migrated.machine_version == 2
    last = v2.history("order", migrated.id)[-1]
    assert (last.trigger, last.source, last.dest, last.machine_version) == (
        "migrated", "paid", "paid", 2)
    assert last.payload["from_version"] == 1
    assert last.actor.role == "operator"
    events = [e.name for e in v2.events(0, limit=10_000)]
    assert events.count("order.migrated") == 9
    (due,) = v2.deadlines(kind="order", id=migrated.id)
    assert due.trigger == "ship_deadline"
    # Terminal orders stay on version 1; migrating again finds nothing in flight.
    assert v2.get("order", v1_orders["funds_released"]).machine_version == 1
    again = v2.migrate("order", 2)
    assert (again.migrated, again.already, again.terminal_left) == (0, 9, 3)
    # Version 2's new state, reached by a migrated order, then every order to its end.
    held = v2.fire("order", v1_orders["in_transit"], "tracking_exception", SYSTEM,
                   {"kind": "customs_hold"})
    assert held.state == "customs_hold"
    assert v2.check() == []
    _run_timers_to_the_end(v2, clock)
    for state, id in v1_orders.items():
        ended = v2.get("order", id)
        assert ended.state in TERMINAL, (state, ended.state)
        assert v2.replay("order", id) == ended.state  # replay spans the migration
    assert v2.get("order", v1_orders["paid"]).state == "cancelled"
    assert v2.get("order", v1_orders["in_transit"]).state == "funds_released"
    assert v2.check() == []


def test_on_postgresql_every_order_is_migrated_and_runs_to_the_end(
        pg_engine: lifecycle.Engine, pg_url: str, clock: lifecycle.SimulatedClock) -> None:
    ids = {state: order_in(pg_engine, clock, state).id for state in V1_STATES}
    try:
        with lifecycle.open(pg_url, clock=clock, machines=EXAMPLE) as v2:
            dry = v2.migrate("order", 2, dry_run=True)
            assert len(dry.plans) == 9
            assert not dry.stranded
            assert v2.migrate("order", 2).migrated == 9
            v2.fire("order", ids["in_transit"], "tracking_exception", SYSTEM,
                    {"kind": "customs_hold"})
            _run_timers_to_the_end(v2, clock)
            assert {v2.get("order", id).state for id in ids.values()} <= set(TERMINAL)
            assert all(v2.replay("order", id) for id in ids.values())
            assert v2.check() == []
    finally:
        # The database is shared by the session's PostgreSQL tests, whose processes run
        # version 1 only: leave no order of version 2 behind.
        with pg_engine.database.begin() as conn:
            conn.execute(text("TRUNCATE " + ", ".join(t.name for t in metadata.sorted_tables)))


def test_the_ship_deadline_fires_on_the_migrated_due_time(
        v2: lifecycle.Engine, clock: lifecycle.SimulatedClock, v1_orders: dict[str, str]) -> None:
    v2.migrate("order", 2, state="paid")
    clock.advance(timedelta(days=5) - timedelta(minutes=1))
    v2.run_due_timers()
    assert v2.get("order", v1_orders["paid"]).state == "paid"
    clock.advance(timedelta(minutes=2))
    v2.run_due_timers()
    assert v2.get("order", v1_orders["paid"]).state == "cancelled"


def test_where_state_migrates_only_that_state(v2: lifecycle.Engine,
                                              v1_orders: dict[str, str]) -> None:
    report = v2.migrate("order", 2, state="shipped")
    assert [p.id for p in report.plans] == [v1_orders["shipped"]]
    assert v2.get("order", v1_orders["in_transit"]).machine_version == 1
    with pytest.raises(lifecycle.InvalidPayload, match="no version of the order machine"):
        v2.migrate("order", 2, state="teleported")


def test_a_paused_deadline_keeps_its_time_left_across_the_migration(
        v2: lifecycle.Engine, v1_orders: dict[str, str]) -> None:
    id = v1_orders["in_dispute"]
    (before,) = v2.deadlines(kind="order", id=id)
    v2.migrate("order", 2)
    (after,) = v2.deadlines(kind="order", id=id)
    assert (after.status, after.remaining, after.state) == ("paused", before.remaining,
                                                            before.state)


def test_a_migration_that_would_strand_money_is_refused_whole(
        db_url: str, clock: lifecycle.SimulatedClock, v1_orders: dict[str, str]) -> None:
    # A careless migration: paid orders straight to cancelled, with their money still held.
    careless = lifecycle.Migration("order", 1, 2, states={"paid": "cancelled"})
    with lifecycle.open(db_url, clock=clock,
                        machines=[customs_hold.DEFINITION, careless]) as engine:
        dry = engine.migrate("order", 2, dry_run=True)
        (stranded,) = dry.stranded
        assert stranded.id == v1_orders["paid"]
        assert stranded.new_state == "cancelled"
        assert "52.48 USD held in escrow" in stranded.problems[0]
        assert dry.to_json()["money_ok"] is False
        before = rows(engine)
        with pytest.raises(lifecycle.MigrationRefused, match="would strand 1 aggregate"):
            engine.migrate("order", 2)
        assert rows(engine) == before
        assert {engine.get("order", id).machine_version for id in v1_orders.values()} == {1}


def test_a_state_the_new_version_lacks_is_stranded(
        db_url: str, clock: lifecycle.SimulatedClock, v1_orders: dict[str, str]) -> None:
    without = _order_without("cancel_requested")
    with lifecycle.open(db_url, clock=clock,
                        machines=[without, lifecycle.Migration("order", 1, 2)]) as engine:
        (stranded,) = engine.migrate("order", 2, dry_run=True).stranded
        assert stranded.state == "cancel_requested"
        assert any("has no state 'cancel_requested'" in p for p in stranded.problems)
        assert any("waits in cancel_requested" in p for p in stranded.problems)
    # Mapped explicitly, it is not.
    mapped = lifecycle.Migration("order", 1, 2, states={"cancel_requested": "paid"})
    with lifecycle.open(db_url, clock=clock, machines=[without, mapped]) as engine:
        report = engine.migrate("order", 2)
        assert not report.stranded
        moved = engine.get("order", v1_orders["cancel_requested"])
        assert (moved.state, moved.machine_version) == ("paid", 2)
        assert {d.trigger for d in engine.deadlines(kind="order", id=moved.id)} == {"ship_deadline"}
        assert engine.replay("order", moved.id) == "paid"
        assert engine.check() == []


def _order_without(state: str) -> MachineDefinition:
    """Version 2 of the order machine without ``state`` (and every arrow touching it)."""
    v1 = order.DEFINITION
    return MachineDefinition(
        "order", version=2, states=tuple(s for s in v1.states if s != state),
        terminal=v1.terminal, pausing=v1.pausing, owners=v1.owners, new_id=v1.new_id,
        transitions=tuple(t for t in v1.transitions if state not in t.source and t.dest != state),
        deadlines=tuple(d for d in v1.deadlines if d.state != state), retired=v1.retired)


def test_migration_refusals_name_what_is_wrong(v2: lifecycle.Engine) -> None:
    with pytest.raises(lifecycle.UnknownMachineVersion, match="version 3 of the order"):
        v2.migrate("order", 3, dry_run=True)
    with pytest.raises(lifecycle.UnknownKind):
        v2.migrate("parcel", 2)
    with pytest.raises(lifecycle.DefinitionError, match="no migration takes the seller"):
        lifecycle.Machines([*lifecycle.definitions().values()]).path("seller", 1, 2)


# --- replay ---------------------------------------------------------------------------------


def test_a_history_that_spans_a_migration_replays_and_a_tampered_one_does_not(
        v2: lifecycle.Engine, v1_orders: dict[str, str]) -> None:
    v2.migrate("order", 2)
    id = v1_orders["in_transit"]
    v2.fire("order", id, "tracking_exception", SYSTEM, {"kind": "customs_hold"})
    v2.fire("order", id, "tracking_delivered", SYSTEM, {})
    assert v2.replay("order", id) == "delivered"
    # The customs_hold step only version 2 allows, marked as run under version 1.
    with v2.database.begin() as conn:
        conn.execute(history.update().where(history.c.aggregate_id == id,
                                            history.c.dest == "customs_hold")
                     .values(machine_version=1))
    problems = [v for v in v2.check() if v.id == id]
    assert problems
    assert "without a migrated row" in problems[0].detail
    with pytest.raises(lifecycle.ReplayMismatch):
        v2.replay("order", id)


# --- an edited definition that kept its version ----------------------------------------------


def _edited_v1() -> MachineDefinition:
    """Version 1 of the order machine with a 3-day ship deadline: edited, not bumped."""
    v1 = order.DEFINITION
    return MachineDefinition(
        "order", version=1, states=v1.states, terminal=v1.terminal, pausing=v1.pausing,
        owners=v1.owners, new_id=v1.new_id, transitions=v1.transitions, retired=v1.retired,
        deadlines=tuple(
            Deadline(d.state, d.trigger, _three_days, d.anchor) if d.trigger == "ship_deadline"
            else d for d in v1.deadlines))


def _three_days(policy: object, data: object) -> timedelta:
    return timedelta(days=3)


def test_an_edited_definition_whose_version_was_not_bumped_is_refused(
        db_url: str, clock: lifecycle.SimulatedClock, v1_orders: dict[str, str]) -> None:
    with lifecycle.open(db_url, clock=clock) as engine:
        before = rows(engine)
    with pytest.raises(lifecycle.DefinitionChanged) as refused:
        lifecycle.open(db_url, clock=clock, machines=[_edited_v1()])
    message = str(refused.value)
    assert "order machine's version 1" in message
    assert "deadline ship_deadline on paid: duration changed" in message
    assert "version=2" in message
    with lifecycle.open(db_url, clock=clock) as engine:
        assert rows(engine) == before


def test_the_cli_refuses_an_edited_definition_naming_what_changed(
        db_url: str, tmp_path: Path, v1_orders: dict[str, str]) -> None:
    edited = tmp_path / "edited.py"
    edited.write_text(
        "from lifecycle.machines import order\n"
        "from lifecycle.machines.definition import MachineDefinition, Transition\n"
        "v1 = order.DEFINITION\n"
        "lose = Transition('lose', ('in_transit',), 'lost', frozenset({'operator'}))\n"
        "MACHINES = [MachineDefinition('order', version=1, states=(*v1.states, 'lost'),\n"
        "    terminal=v1.terminal | {'lost'}, pausing=v1.pausing, owners=v1.owners,\n"
        "    new_id=v1.new_id, retired=v1.retired, deadlines=v1.deadlines,\n"
        "    transitions=(*v1.transitions, lose))]\n")
    result = CliRunner().invoke(cli, ["--db", db_url, "--machines", str(edited), "order", "list"])
    assert result.exit_code == 2, result.output
    assert "state lost added" in result.output
    assert "transition lose from in_transit added" in result.output


def test_machines_lists_each_version_here_and_in_the_database(
        db_url: str, v2: lifecycle.Engine, v1_orders: dict[str, str]) -> None:
    found = {(v.kind, v.version): v for v in v2.machine_versions()}
    assert found[("order", 1)].aggregates == len(V1_STATES)
    assert found[("order", 2)].newest
    assert not found[("order", 1)].newest
    assert found[("order", 2)].registered_at is not None
    with v2.database.connect() as conn:
        assert conn.execute(select(func.count()).select_from(machine_versions)).scalar() == len(
            found)
    result = CliRunner().invoke(cli, ["--db", db_url, "--machines", EXAMPLE, "machines",
                                      "--json"])
    assert result.exit_code == 0, result.output
    assert {(r["kind"], r["version"]) for r in lifecycle.loads_json(result.output)} == set(found)


# --- the CLI ----------------------------------------------------------------------------------


def test_cli_migrate_dry_run_then_migrate(db_url: str, v1_orders: dict[str, str]) -> None:
    runner = CliRunner()
    base = ["--db", db_url, "--machines", EXAMPLE, "migrate", "order", "--to", "2"]
    dry = runner.invoke(cli, [*base, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would migrate 9 in-flight aggregates to version 2" in dry.output
    assert "ship_deadline moved" in dry.output
    assert "stranded: 0; every money invariant holds" in dry.output
    as_json = lifecycle.loads_json(runner.invoke(cli, [*base, "--dry-run", "--json"]).output)
    assert (as_json["in_flight"], as_json["stranded"], as_json["migrated"]) == (9, 0, 0)
    done = runner.invoke(cli, [*base, "--where", "state=paid", "--as", "operator:ana"])
    assert done.exit_code == 0, done.output
    assert "migrated 1 in-flight aggregate to version 2" in done.output
    with lifecycle.open(db_url, machines=EXAMPLE) as engine:
        assert engine.history("order", v1_orders["paid"])[-1].actor == lifecycle.Actor(
            "operator", "ana")
    bad = runner.invoke(cli, [*base, "--where", "paid"])
    assert bad.exit_code == 2
    assert "--where takes state=STATE" in bad.output
    unknown = runner.invoke(cli, ["--db", db_url, "migrate", "order", "--to", "2"])
    assert unknown.exit_code != 0
    assert "version 2 of the order machine" in unknown.output


# --- lifecycle verify -------------------------------------------------------------------------


def test_the_shipped_machines_and_the_example_verify() -> None:
    findings = lifecycle.verify(machines=EXAMPLE)
    assert findings
    assert all(f.ok for f in findings), [f for f in findings if not f.ok]
    checks = {(f.kind, f.version, f.check) for f in findings}
    assert ("order", 2, "migrations") in checks
    assert ("dispute", 1, "follow_ups") in checks
    result = CliRunner().invoke(cli, ["verify"])
    assert result.exit_code == 0, result.output
    assert "checks passed" in result.output


def _probe(*, sends_to: tuple[str, str] | None = None, internal_leaf: bool = False) -> MachineDefinition:
    """A small machine of its own kind, to give `verify` something to find."""

    def go(ctx: object) -> None:
        return None

    effect = sends(sends_to)(go) if sends_to else None
    arrows = [Transition("start", (), "a", frozenset({"operator"})),
              Transition("go", ("a",), "b", frozenset({"operator"}), effect=effect)]
    if internal_leaf:
        arrows.append(Transition("poke", ("a",), "b", frozenset({"system"}), internal=True))
    return MachineDefinition("probe", states=("a", "b"), terminal=frozenset({"b"}),
                             transitions=tuple(arrows), owners={}, new_id=lambda actor: "p-1")


def test_verify_finds_a_follow_up_no_version_of_its_receiver_defines() -> None:
    findings = lifecycle.verify("probe", machines=[_probe(sends_to=("order", "teleport"))])
    (failed,) = [f for f in findings if not f.ok]
    assert failed.check == "follow_ups"
    assert "go sends order teleport, which version 1 of the order machine does not define" in (
        failed.problems)
    result = CliRunner().invoke(cli, ["verify", "order"])
    assert result.exit_code == 0


def test_verify_finds_an_internal_trigger_nothing_sends(tmp_path: Path) -> None:
    findings = lifecycle.verify("probe", machines=[_probe(internal_leaf=True)])
    (failed,) = [f for f in findings if not f.ok]
    assert "internal trigger poke is sent by no machine" in failed.problems[0]
    module = tmp_path / "probe_machines.py"
    module.write_text(
        "from lifecycle.machines.definition import MachineDefinition, Transition\n"
        "MACHINES = [MachineDefinition('probe', states=('a', 'b'), terminal=frozenset({'b'}),\n"
        "    owners={}, new_id=lambda actor: 'p-1', transitions=(\n"
        "    Transition('start', (), 'a', frozenset({'operator'})),\n"
        "    Transition('poke', ('a',), 'b', frozenset({'system'}), internal=True)))]\n")
    result = CliRunner().invoke(cli, ["--machines", str(module), "verify", "--json"])
    assert result.exit_code == 1
    report = lifecycle.loads_json(result.output)
    assert report["ok"] is False
    assert any("poke" in p for c in report["checks"] for p in c["problems"])


def test_a_follow_up_its_effect_does_not_declare_is_refused_when_it_runs(
        db_url: str, clock: lifecycle.SimulatedClock) -> None:
    def pay_someones_order(ctx: Context) -> None:  # fires on an order, and says nothing of it
        ctx.follow_ups.append(Fire("order", "o-1", "pay", {}))

    sneaky = MachineDefinition(
        "probe", states=("a",), terminal=frozenset({"a"}), owners={}, new_id=lambda actor: "p-1",
        transitions=(Transition("start", (), "a", frozenset({"operator"}),
                                effect=pay_someones_order),))
    assert lifecycle.verify("probe", machines=[sneaky])  # nothing declared, nothing to check
    with lifecycle.open(db_url, clock=clock, machines=[sneaky]) as engine:
        before = rows(engine)
        with pytest.raises(lifecycle.DefinitionError, match="asked for order pay, which its "
                                                            "effect does not declare"):
            engine.create("probe", lifecycle.Actor("operator", "ana"))
        assert rows(engine) == before
    assert order.DEFINITION.sends["open_dispute"] == (("dispute", "open"),)
