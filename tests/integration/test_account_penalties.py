"""Violations and penalties (SPEC §12, issue #20): an operator records a violation against a
store; its points count for 365 days; 12 points restrict promotion, 24 refuse new orders, 48
suspend the store through the onboarding machine; the seller appeals within 7 days; an
operator upholds or overturns. Each refusal is its own error and writes nothing."""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import update

import lifecycle
from lifecycle import Actor, Aggregate, Engine, SimulatedClock, order_refusal
from lifecycle.cli import cli
from lifecycle.store.tables import aggregates
from tests.builders import (
    OPERATOR,
    SYSTEM,
    active_seller,
    buyer,
    order_payload,
    rows,
    seller,
    seller_in,
)

with warnings.catch_warnings():
    # Starlette's notice about its own client dependency, as in tests/console/conftest.py.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

    from lifecycle.service import create_app

SELLER = "s-1"
YEAR = timedelta(days=365)


def record(engine: Engine, points: int | None = None, *, type: str = "listing",
           seller_id: str = SELLER, by: Actor = OPERATOR) -> Aggregate:
    payload: dict[str, Any] = {"seller": seller_id, "type": type}
    if points is not None:
        payload["points"] = points
    return engine.create("violation", by, payload)


def standing(engine: Engine, seller_id: str = SELLER) -> Aggregate:
    return engine.get("standing", seller_id)


def appeal(engine: Engine, violation: Aggregate, seller_id: str = SELLER) -> Aggregate:
    return engine.fire("violation", violation.id, "appeal", seller(seller_id),
                       {"reason": "the listing was right"})


def overturn(engine: Engine, violation: Aggregate) -> Aggregate:
    appeal(engine, violation)
    return engine.fire("violation", violation.id, "overturn", OPERATOR,
                       {"reason": "recorded by mistake"})


def loads(engine: Engine) -> tuple[Callable[[str, str], Aggregate | None], list[tuple[str, str]]]:
    """A ``load`` for `order_refusal` over the engine, and the loads it made."""
    made: list[tuple[str, str]] = []

    def load(kind: str, id: str) -> Aggregate | None:
        made.append((kind, id))
        try:
            return engine.get(kind, id)
        except lifecycle.NotFound:
            return None

    return load, made


@pytest.fixture
def store(engine: Engine) -> Engine:
    active_seller(engine, SELLER)
    return engine


# --- recording: default points, deadlines, the standing ----------------------------------


def test_a_violation_without_points_carries_its_types_default_and_opens_the_standing(
        store: Engine, clock: SimulatedClock) -> None:
    recorded = record(store, type="prohibited_goods")

    assert (recorded.state, recorded.data["points"]) == ("recorded", 12)
    assert recorded.data["appeal_until"] == (clock.now() + timedelta(days=7)).isoformat()
    assert recorded.data["expires_at"] == (clock.now() + YEAR).isoformat()
    due = {(d.trigger, d.due_at) for d in store.deadlines(kind="violation", id=recorded.id)}
    assert due == {("finalise", clock.now() + timedelta(days=7)), ("expire", clock.now() + YEAR)}
    shown = standing(store)
    assert (shown.state, shown.data["points"]) == ("promotion_restricted", 12)
    assert list(shown.data["violations"]) == [recorded.id]
    assert [e.actor for e in store.history("standing", SELLER)] == [OPERATOR, OPERATOR]


def test_a_policy_changes_the_default_points_of_a_type(store: Engine) -> None:
    store.set_policy(store.policy.with_overrides(violation_points_listing=5))

    assert record(store).data["points"] == 5


# --- thresholds: 12 restricts promotion, 24 refuses orders, 48 suspends --------------------


def test_twelve_points_restrict_promotion(store: Engine) -> None:
    record(store, 11)
    assert standing(store).state == "clear"

    record(store, 1)

    assert (standing(store).state, standing(store).data["points"]) == ("promotion_restricted", 12)
    assert store.get("seller", SELLER).state == "active"


def test_twenty_four_points_refuse_new_orders(store: Engine) -> None:
    record(store, 23)
    load, _ = loads(store)
    assert order_refusal(load, SELLER) is None

    record(store, 3)

    assert standing(store).state == "orders_refused"
    assert order_refusal(load, SELLER) == (
        "store s-1 has 26 penalty points in the last 365 days (24 or more: new orders are "
        "refused)")


def test_order_refusal_loads_one_aggregate_and_says_nothing_for_a_store_never_penalised(
        store: Engine) -> None:
    load, made = loads(store)

    assert order_refusal(load, SELLER) is None
    record(store, 30)
    assert order_refusal(load, SELLER) is not None
    assert made == [("standing", SELLER), ("standing", SELLER)]


def test_twenty_four_points_refuse_new_orders_in_words_and_write_nothing(
        store: Engine) -> None:
    placed = store.create("order", buyer(), order_payload(SELLER))
    record(store, 24)
    before = rows(store)

    with pytest.raises(lifecycle.GuardFailed) as refused:
        store.create("order", buyer(), order_payload(SELLER))

    assert refused.value.rule == "seller.active"
    assert str(refused.value).endswith(
        "store s-1 has 24 penalty points in the last 365 days (24 or more: new orders are "
        "refused)")
    assert rows(store) == before
    # orders placed before go on
    assert store.fire("order", placed.id, "pay", buyer(), {}).state == "paid"


def test_below_twenty_four_points_a_store_takes_orders(store: Engine) -> None:
    record(store, 23)

    assert store.create("order", buyer(), order_payload(SELLER)).state == "awaiting_payment"


def test_forty_eight_points_suspend_the_seller_through_the_onboarding_machine(
        store: Engine) -> None:
    record(store, 30)
    last = record(store, 18)

    suspended = store.get("seller", SELLER)
    assert suspended.state == "suspended"
    entry = store.history("seller", SELLER)[-1]
    assert (entry.trigger, entry.source, entry.dest, entry.actor) == (
        "suspend", "active", "suspended", OPERATOR)
    reason = ("48 penalty points in the last 365 days (48 or more: the store is suspended); "
              f"latest violation {last.id}")
    assert entry.payload == {"reason": reason}
    assert suspended.data["suspension_reason"] == reason
    assert standing(store).state == "store_suspended"
    assert standing(store).data["suspension"]["seller_version"] == suspended.version


def test_reaching_48_suspends_no_seller_that_is_not_active(store: Engine) -> None:
    """``suspend`` is defined from active only: a seller an operator suspended already stays
    as it is, and the suspension is not the penalties'."""
    store.fire("seller", SELLER, "suspend", OPERATOR, {"reason": "fake documents"})
    version = store.get("seller", SELLER).version

    record(store, 50)

    assert standing(store).state == "store_suspended"
    assert "suspension" not in standing(store).data
    assert store.get("seller", SELLER).version == version


# --- overturning lifts ---------------------------------------------------------------------


def test_an_overturned_violation_loses_its_points_and_its_restriction(store: Engine) -> None:
    record(store, 12)
    wrong = record(store, 14)
    assert standing(store).state == "orders_refused"

    overturned = overturn(store, wrong)

    assert overturned.state == "overturned"
    assert (standing(store).state, standing(store).data["points"]) == ("promotion_restricted", 12)
    assert wrong.id not in standing(store).data["violations"]
    load, _ = loads(store)
    assert order_refusal(load, SELLER) is None


def test_an_overturn_below_48_reinstates_the_suspension_the_penalties_caused(store: Engine) -> None:
    record(store, 30)
    wrong = record(store, 20)
    assert store.get("seller", SELLER).state == "suspended"

    overturn(store, wrong)

    assert store.get("seller", SELLER).state == "active"
    entry = store.history("seller", SELLER)[-1]
    assert (entry.trigger, entry.actor) == ("reinstate", OPERATOR)
    assert "fell to 30, below 48" in entry.payload["note"]
    assert (standing(store).state, standing(store).data.get("suspension")) == ("orders_refused", None)


def test_an_overturn_lifts_no_suspension_an_operator_made_since(store: Engine) -> None:
    record(store, 30)
    wrong = record(store, 20)
    store.fire("seller", SELLER, "reinstate", OPERATOR, {})
    store.fire("seller", SELLER, "suspend", OPERATOR, {"reason": "fake documents"})

    overturn(store, wrong)

    assert store.get("seller", SELLER).state == "suspended"
    assert store.history("seller", SELLER)[-1].trigger == "suspend"
    assert "suspension" not in standing(store).data


# --- expiry: a rolling 365 days -----------------------------------------------------------


def test_points_expire_after_365_days(store: Engine, clock: SimulatedClock) -> None:
    old = record(store, 12)
    clock.advance(timedelta(days=200))
    record(store, 12)
    assert standing(store).state == "orders_refused"

    clock.advance(timedelta(days=164, hours=23))
    store.run_due_timers()
    assert standing(store).data["points"] == 24

    clock.advance(timedelta(hours=1))
    store.run_due_timers()

    assert store.get("violation", old.id).state == "expired"
    assert (standing(store).state, standing(store).data["points"]) == ("promotion_restricted", 12)
    entry = store.history("standing", SELLER)[-1]
    assert (entry.trigger, entry.actor.role, entry.payload["why"]) == (
        "remove_violation", "system", "expired")


def test_an_expiry_below_48_leaves_the_store_suspended_until_an_operator_reinstates(
        store: Engine, clock: SimulatedClock) -> None:
    record(store, 48)
    clock.advance(YEAR)
    store.run_due_timers()

    assert standing(store).state == "clear"
    assert store.get("seller", SELLER).state == "suspended"
    assert standing(store).data["suspension"]["liftable_since"] == clock.now().isoformat()
    store.fire("seller", SELLER, "reinstate", OPERATOR, {})
    assert store.get("seller", SELLER).state == "active"


# --- the appeal ---------------------------------------------------------------------------


def test_the_seller_appeals_within_7_days_and_an_operator_upholds(
        store: Engine, clock: SimulatedClock) -> None:
    violation = record(store, 12)
    clock.advance(timedelta(days=6, hours=23))

    appealed = appeal(store, violation)
    upheld = store.fire("violation", violation.id, "uphold", OPERATOR, {"note": "photos checked"})

    assert (appealed.state, upheld.state) == ("appealed", "final")
    assert upheld.data["decision"] == "upheld"
    assert standing(store).data["points"] == 12


def test_an_appeal_after_7_days_is_refused(store: Engine, clock: SimulatedClock) -> None:
    violation = record(store, 12)
    clock.advance(timedelta(days=7))  # the deadline has not fired yet: the rule refuses
    counts = rows(store)

    with pytest.raises(lifecycle.GuardFailed) as refused:
        appeal(store, violation)

    assert refused.value.rule == "violation.appeal_within_7_days"
    assert "within 7 days" in str(refused.value)
    assert rows(store) == counts
    store.run_due_timers()
    assert store.get("violation", violation.id).state == "final"


def test_an_appeal_by_another_seller_is_refused(store: Engine) -> None:
    violation = record(store, 12)
    active_seller(store, "s-2")
    counts = rows(store)

    with pytest.raises(lifecycle.Forbidden) as refused:
        appeal(store, violation, seller_id="s-2")

    assert "is not theirs" in str(refused.value)
    assert rows(store) == counts


def test_uphold_without_an_appeal_is_refused(store: Engine) -> None:
    violation = record(store, 12)
    counts = rows(store)

    with pytest.raises(lifecycle.InvalidTransition) as refused:
        store.fire("violation", violation.id, "uphold", OPERATOR, {})

    assert (refused.value.state, refused.value.trigger) == ("recorded", "uphold")
    assert rows(store) == counts


def test_overturn_needs_a_reason(store: Engine) -> None:
    violation = record(store, 12)
    appeal(store, violation)
    counts = rows(store)

    with pytest.raises(lifecycle.InvalidPayload) as refused:
        store.fire("violation", violation.id, "overturn", OPERATOR, {})

    assert refused.value.field == "reason"
    assert rows(store) == counts


# --- refusals when recording ---------------------------------------------------------------


@pytest.mark.parametrize("points", [0, -3])
def test_points_of_zero_or_less_are_refused(store: Engine, points: int) -> None:
    counts = rows(store)

    with pytest.raises(lifecycle.InvalidPayload) as refused:
        record(store, points)

    assert refused.value.field == "points"
    assert rows(store) == counts


def test_an_unknown_type_is_refused(store: Engine) -> None:
    counts = rows(store)

    with pytest.raises(lifecycle.InvalidPayload) as refused:
        record(store, 3, type="piracy")

    assert refused.value.field == "type"
    assert "intellectual_property" in str(refused.value)
    assert rows(store) == counts


def test_a_violation_against_an_unknown_seller_is_refused(store: Engine) -> None:
    counts = rows(store)

    with pytest.raises(lifecycle.InvalidPayload) as refused:
        record(store, 3, seller_id="nobody")

    assert (refused.value.field, str(refused.value)) == (
        "seller", "invalid seller: no seller with id 'nobody'")
    assert rows(store) == counts


def test_a_violation_against_a_closed_store_is_refused(engine: Engine) -> None:
    seller_in(engine, "closed")
    counts = rows(engine)

    with pytest.raises(lifecycle.GuardFailed) as refused:
        record(engine, 3)

    assert refused.value.rule == "violation.store_not_closed"
    assert rows(engine) == counts


def test_only_an_operator_records_a_violation(store: Engine) -> None:
    counts = rows(store)

    with pytest.raises(lifecycle.Forbidden):
        record(store, 3, by=seller(SELLER))

    assert rows(store) == counts


def test_penalty_thresholds_that_do_not_rise_are_refused() -> None:
    with pytest.raises(lifecycle.InvalidPayload) as refused:
        lifecycle.Policy().with_overrides(penalty_orders_refused_at=60)

    assert refused.value.field == "policy.penalty_orders_refused_at"


# --- the store's violations, the check ----------------------------------------------------


def test_a_stores_violations_are_listed_active_or_not(store: Engine) -> None:
    first, second = record(store, 2), record(store, 3)
    overturn(store, second)
    active_seller(store, "s-2")
    record(store, 4, seller_id="s-2")

    listed = store.violations(SELLER)

    assert sorted((v.id, v.state) for v in listed) == sorted(
        [(first.id, "recorded"), (second.id, "overturned")])


def test_check_finds_a_standing_whose_points_are_not_its_violations(store: Engine) -> None:
    record(store, 12)
    assert [v for v in store.check() if v.rule.startswith("penalty")] == []
    drifted = {**standing(store).data, "points": 40}
    store.execute(update(aggregates).where(aggregates.c.kind == "standing")
                  .values(data=json.dumps(drifted)))

    [found] = [v for v in store.check() if v.rule.startswith("penalty")]

    assert (found.kind, found.id, found.rule) == ("standing", SELLER,
                                                  "penalty.points_match_violations")
    assert "holds 40 points" in found.detail


# --- CLI and HTTP ---------------------------------------------------------------------------


def test_the_cli_records_appeals_overturns_and_shows_the_standing(
        store: Engine, db_url: str) -> None:
    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, ["--db", db_url, *args])

    said = run("violation", "record", SELLER, "--type", "fraud", "--id", "v-1")
    assert said.exit_code == 0, said.output
    assert said.output == ("violation v-1 is recorded (version 1); store s-1 has 24 points: "
                           "orders_refused\n")
    shown = run("standing", "show", SELLER, "--json")
    assert shown.exit_code == 0, shown.output
    body = json.loads(shown.output)
    assert (body["points"], body["level"]) == (24, "orders_refused")
    assert body["active_violations"][0]["expires_at"] == store.get("violation", "v-1").data[
        "expires_at"]

    refused = run("violation", "appeal", "v-1", "--as", "seller:s-9", "--reason", "no")
    assert (refused.exit_code, refused.output) == (
        1, "error: seller s-9 may not appeal: violation v-1 is not theirs\n")
    assert run("violation", "appeal", "v-1", "--as", "seller:s-1", "--reason", "no").exit_code == 0
    assert run("violation", "overturn", "v-1", "--reason", "checked").exit_code == 0
    text = run("standing", "show", SELLER).output
    assert "points      0 in the last 365 days" in text
    listed = run("standing", "violations", SELLER).output
    assert "v-1  overturned  fraud" in listed


def test_the_http_api_records_and_a_seller_reads_only_its_own_standing(store: Engine) -> None:
    _, operator = store.create_key("operator", actor_id="op-1")
    _, owner = store.create_key("seller", actor_id=SELLER)
    _, other = store.create_key("seller", actor_id="s-2")
    with TestClient(create_app(store)) as http:
        made = http.post("/v1/violations", json={"seller": SELLER, "type": "listing", "points": 30},
                         headers={"Authorization": f"Bearer {operator}"})
        assert made.status_code == 201, made.text
        mine = http.get(f"/v1/standings/{SELLER}", headers={"Authorization": f"Bearer {owner}"})
        listed = http.get(f"/v1/standings/{SELLER}/violations",
                          headers={"Authorization": f"Bearer {owner}"})
        theirs = http.get(f"/v1/standings/{SELLER}", headers={"Authorization": f"Bearer {other}"})
        refused = http.post("/v1/violations", json={"seller": SELLER, "type": "listing", "points": 0},
                            headers={"Authorization": f"Bearer {operator}"})

    assert (mine.status_code, mine.json()["state"]) == (200, "orders_refused")
    assert [v["id"] for v in listed.json()] == [made.json()["id"]]
    assert theirs.status_code == 404
    assert refused.status_code == 422


# --- PostgreSQL: two operators at once ------------------------------------------------------


@pytest.mark.pg
@pytest.mark.parametrize("first", [True, False], ids=["first-violations", "later-violations"])
def test_two_operators_recording_at_once_leave_consistent_points(
        pg_engine: Engine, first: bool) -> None:
    active_seller(pg_engine, SELLER)
    if not first:
        record(pg_engine, 1, by=OPERATOR)
    barrier = threading.Barrier(2, timeout=10)
    outcomes: list[str] = []

    def operator(n: int) -> None:
        barrier.wait()
        for _attempt in range(5):  # a conflict is retryable: the loser tries again
            try:
                record(pg_engine, 10 + n, by=Actor("operator", f"op-{n}"))
            except lifecycle.Conflict:
                outcomes.append("conflict")
                continue
            outcomes.append("recorded")
            return

    threads = [threading.Thread(target=operator, args=(n,)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes.count("recorded") == 2
    expected = 11 + 12 + (0 if first else 1)
    assert standing(pg_engine).data["points"] == expected
    assert len(pg_engine.violations(SELLER)) == (2 if first else 3)
    assert pg_engine.check() == []


def test_the_graph_command_draws_both_machines() -> None:
    for kind in ("violation", "standing"):
        drawn = CliRunner().invoke(cli, ["graph", kind])
        assert drawn.exit_code == 0, drawn.output
        assert drawn.output.startswith(f"---\ntitle: {kind}\n---\nstateDiagram-v2")


def test_the_system_finalises_a_violation_when_its_appeal_window_closes(
        store: Engine, clock: SimulatedClock) -> None:
    violation = record(store, 2)
    clock.advance(timedelta(days=7))
    store.run_due_timers()

    entry = store.history("violation", violation.id)[-1]
    assert (entry.trigger, entry.actor.role) == ("finalise", SYSTEM.role)
