"""The points centre of the seller's account (issue #20, SPEC §12): a points ledger per seller,
double-entry like money; earned once per paid order and per answered quotation, redeemed for
catalogue items, corrected and penalised by operators with a reason, never negative; the
account's records visible to the seller and operators only; `lifecycle check` verifies it.

The order machine of this release does not earn points yet: the lead wires
`points.earned_for_order` into an order version 2. These tests build that version 2 here, as
the hook's caller will, and pay real orders through it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import delete, insert

import lifecycle
import lifecycle.service
from lifecycle import Actor
from lifecycle.cli import cli
from lifecycle.machines import points
from lifecycle.machines.definition import Context
from lifecycle.store.tables import aggregates, history, ledger
from tests.builders import OPERATOR, SYSTEM, order_in, rows, seller, seller_in

KIND = "points_account"
OWNER = seller("s-1")
MARKETPLACE = Actor("system", "marketplace")


@pytest.fixture
def earning(db_url: str, clock: lifecycle.SimulatedClock) -> Iterator[lifecycle.Engine]:
    """An engine of the shipped machines: its orders earn points when paid, through the
    points account's reaction to the order's ``pay`` (the order machine is version 1)."""
    with lifecycle.open(db_url, clock=clock) as opened:
        assert opened.definition("order").version == 1
        yield opened


@pytest.fixture
def account(engine: lifecycle.Engine) -> lifecycle.Aggregate:
    """Seller s-1's points account, holding 300 points."""
    seller_in(engine, "active")
    engine.create(KIND, OWNER, {})
    return engine.fire(KIND, "s-1", "correct", OPERATOR, {"points": 300, "reason": "opening bonus"})


def refused_writing_nothing(engine: lifecycle.Engine, error: type[lifecycle.LifecycleError],
                            call: Callable[[], Any]) -> lifecycle.LifecycleError:
    before = rows(engine)
    with pytest.raises(error) as refused:
        call()
    assert rows(engine) == before
    return refused.value


def balance(engine: lifecycle.Engine, id: str = "s-1") -> Decimal:
    return engine.balances(KIND, id)[lifecycle.ledger.POINTS]["points"]


def problems(engine: lifecycle.Engine) -> list[tuple[str, str]]:
    return [(v.id, v.rule) for v in engine.check()]


# --- earning ------------------------------------------------------------------------------


def test_a_paid_order_earns_nothing_until_its_funds_are_released(
        earning: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    paid = order_in(earning, clock, "paid")
    completed = order_in(earning, clock, "completed", buyer_id="b-2")

    assert (paid.state, completed.state) == ("paid", "completed")
    with pytest.raises(lifecycle.NotFound):
        earning.get(KIND, "s-1")


def test_a_released_order_opens_its_sellers_points_account_and_earns_the_policys_points(
        earning: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    first = order_in(earning, clock, "funds_released")
    second = order_in(earning, clock, "funds_released", buyer_id="b-2")
    assert first.machine_version == 1  # the shipped order machine: points are a reaction
    account = earning.get(KIND, "s-1")
    per_order = lifecycle.Policy().points_per_paid_order
    assert (account.state, account.data["balance"]) == ("open", 2 * per_order)
    assert balance(earning) == 2 * per_order
    assert [(e.trigger, e.payload) for e in earning.history(KIND, "s-1")] == [
        ("open", {}),
        ("earn", {"reason": "order_paid", "reference": first.id}),
        ("earn", {"reason": "order_paid", "reference": second.id}),
    ]
    assert earning.get("points_earning", f"order_paid:{first.id}").data["points"] == per_order
    assert problems(earning) == []


def test_an_order_earns_once(earning: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    paid = order_in(earning, clock, "funds_released")

    def load(kind: str, id: str) -> lifecycle.Aggregate | None:
        try:
            return earning.get(kind, id)
        except lifecycle.NotFound:
            return None

    again = Context("order", paid.id, "funds_released", dict(paid.data), None, SYSTEM, clock.now(),
                    lifecycle.Policy(), load)
    assert points.earned_for_order(again, "s-1", paid.id) == []  # the hook earns nothing twice
    refused = refused_writing_nothing(earning, lifecycle.GuardFailed, lambda: earning.fire(
        KIND, "s-1", "earn", OPERATOR, {"reason": "order_paid", "reference": paid.id}))
    assert refused.rule == "points.earned_once"
    assert f"order_paid {paid.id} has already earned points" in str(refused)


def test_a_closed_points_account_earns_nothing_and_the_release_still_goes_through(
        earning: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    seller_in(earning, "active")
    earning.create(KIND, OWNER, {})
    earning.fire(KIND, "s-1", "close", OPERATOR, {"reason": "seller asked to leave the scheme"})
    paid = order_in(earning, clock, "funds_released")
    assert paid.state == "funds_released"
    assert earning.get(KIND, "s-1").version == 2
    assert earning.balances(KIND, "s-1") == {}


def test_a_quotation_answered_earns_once_per_reference(account: lifecycle.Aggregate,
                                                       engine: lifecycle.Engine) -> None:
    report = {"reason": "quotation_answered", "reference": "rfq-7"}
    earned = engine.fire(KIND, "s-1", "earn", MARKETPLACE, report)
    assert earned.data["balance"] == 300 + lifecycle.Policy().points_per_quotation
    refused = refused_writing_nothing(engine, lifecycle.GuardFailed,
                                      lambda: engine.fire(KIND, "s-1", "earn", MARKETPLACE, report))
    assert refused.rule == "points.earned_once"
    assert "quotation_answered rfq-7 has already earned points" in str(refused)


def test_a_seller_cannot_earn_points_for_themselves(account: lifecycle.Aggregate,
                                                    engine: lifecycle.Engine) -> None:
    refused_writing_nothing(engine, lifecycle.Forbidden, lambda: engine.fire(
        KIND, "s-1", "earn", OWNER, {"reason": "quotation_answered", "reference": "rfq-1"}))


def test_a_points_account_belongs_to_a_seller_account(engine: lifecycle.Engine) -> None:
    refused = refused_writing_nothing(engine, lifecycle.GuardFailed,
                                      lambda: engine.create(KIND, seller("nobody"), {}))
    assert refused.rule == "points.seller_exists"


# --- redemption ---------------------------------------------------------------------------


def test_redeeming_more_than_the_balance_is_refused_and_writes_nothing(
        account: lifecycle.Aggregate, engine: lifecycle.Engine) -> None:
    refused = refused_writing_nothing(engine, lifecycle.GuardFailed, lambda: engine.fire(
        KIND, "s-1", "redeem", OWNER, {"item": "quotation_rights", "quantity": 4}))
    assert refused.rule == "points.balance_covers_redemption"
    assert "4 x quotation_rights costs 400 points; the balance is 300" in str(refused)
    assert balance(engine) == 300


def test_a_redemption_spends_the_items_price_in_the_policy(
        db_url: str, clock: lifecycle.SimulatedClock) -> None:
    policy = lifecycle.Policy().with_overrides(points_price_click_credit=120)
    with lifecycle.open(db_url, clock=clock, policy=policy) as engine:
        seller_in(engine, "active")
        engine.create(KIND, OWNER, {})
        engine.fire(KIND, "s-1", "correct", OPERATOR, {"points": 300, "reason": "bonus"})
        spent = engine.fire(KIND, "s-1", "redeem", OWNER, {"item": "pay_per_click_credit",
                                                           "quantity": 2})
        assert spent.data["balance"] == 60
        assert spent.data["items"] == {"pay_per_click_credit": 2}
        assert lifecycle.points_catalogue(engine.policy)["pay_per_click_credit"] == 120


def test_an_unknown_catalogue_item_is_refused_naming_the_field(
        account: lifecycle.Aggregate, engine: lifecycle.Engine) -> None:
    refused = refused_writing_nothing(engine, lifecycle.InvalidPayload, lambda: engine.fire(
        KIND, "s-1", "redeem", OWNER, {"item": "free_lunch"}))
    assert refused.field == "item"


# --- corrections and penalties ------------------------------------------------------------


def test_a_deduction_below_zero_is_refused_and_writes_nothing(
        account: lifecycle.Aggregate, engine: lifecycle.Engine) -> None:
    refused = refused_writing_nothing(engine, lifecycle.GuardFailed, lambda: engine.fire(
        KIND, "s-1", "correct", OPERATOR, {"points": -301, "reason": "double credit"}))
    assert refused.rule == "points.never_negative"
    taken = engine.fire(KIND, "s-1", "correct", OPERATOR, {"points": -300, "reason": "double credit"})
    assert taken.data["balance"] == 0


@pytest.mark.parametrize("payload", [{"points": -5}, {"points": -5, "reason": "   "}])
def test_a_correction_needs_a_reason(account: lifecycle.Aggregate, engine: lifecycle.Engine,
                                     payload: dict[str, Any]) -> None:
    refused = refused_writing_nothing(engine, lifecycle.InvalidPayload, lambda: engine.fire(
        KIND, "s-1", "correct", OPERATOR, payload))
    assert refused.field == "reason"


def test_a_correction_of_zero_points_is_refused(account: lifecycle.Aggregate,
                                                engine: lifecycle.Engine) -> None:
    refused = refused_writing_nothing(engine, lifecycle.InvalidPayload, lambda: engine.fire(
        KIND, "s-1", "correct", OPERATOR, {"points": 0, "reason": "nothing"}))
    assert refused.field == "points"


def test_only_operators_correct_points(account: lifecycle.Aggregate, engine: lifecycle.Engine) -> None:
    refused_writing_nothing(engine, lifecycle.Forbidden, lambda: engine.fire(
        KIND, "s-1", "correct", OWNER, {"points": 1000, "reason": "I deserve it"}))


def test_a_penalty_takes_at_most_the_balance_and_is_recorded(
        account: lifecycle.Aggregate, engine: lifecycle.Engine) -> None:
    engine.fire(KIND, "s-1", "penalise", SYSTEM,
                {"points": 500, "reason": "listing violation", "reference": "v-1"})
    assert balance(engine) == 0
    (penalty,) = [r for r in engine.points("s-1", OWNER).records if r.record == "penalty"]
    assert (penalty.points, penalty.asked, penalty.reference) == (-300, 500, "v-1")
    assert engine.balances(KIND, "s-1")["PTS"]["points_forfeited"] == 300


def test_a_points_account_closes_only_at_zero(account: lifecycle.Aggregate,
                                              engine: lifecycle.Engine) -> None:
    refused = refused_writing_nothing(engine, lifecycle.GuardFailed, lambda: engine.fire(
        KIND, "s-1", "close", OPERATOR, {"reason": "leaving"}))
    assert refused.rule == "points.closed_at_zero"


# --- the records, and who reads them -----------------------------------------------------


def test_the_account_shows_each_kind_of_record_with_the_balance_after_it(
        account: lifecycle.Aggregate, engine: lifecycle.Engine) -> None:
    engine.fire(KIND, "s-1", "earn", MARKETPLACE, {"reason": "quotation_answered", "reference": "q-1"})
    engine.fire(KIND, "s-1", "redeem", OWNER, {"item": "quotation_rights"})
    engine.fire(KIND, "s-1", "penalise", OPERATOR, {"points": 5, "reason": "late answers"})
    shown = engine.points("s-1", OWNER)
    assert [(r.record, r.points, r.balance, r.reason) for r in shown.records] == [
        ("correction", 300, 300, "opening bonus"),
        ("earning", 5, 305, "quotation_answered"),
        ("redemption", -100, 205, None),
        ("penalty", -5, 200, "late answers"),
    ]
    assert shown.balance == 200 == engine.get(KIND, "s-1").data["balance"]
    assert engine.points("s-1", OPERATOR) == shown


@pytest.mark.parametrize("reader", [seller("s-2"), Actor("buyer", "s-1")])
def test_nobody_but_the_seller_and_operators_reads_the_points(
        account: lifecycle.Aggregate, engine: lifecycle.Engine, reader: Actor) -> None:
    with pytest.raises(lifecycle.Forbidden):
        engine.points("s-1", reader)


# --- the ledger, and lifecycle check ------------------------------------------------------


def test_points_postings_balance_and_are_no_money(account: lifecycle.Aggregate,
                                                  engine: lifecycle.Engine) -> None:
    engine.fire(KIND, "s-1", "redeem", OWNER, {"item": "quotation_rights"})
    accounts = engine.balances(KIND, "s-1")
    assert set(accounts) == {"PTS"}
    assert sum(accounts["PTS"].values()) == 0
    assert accounts["PTS"] == {"points_issued": -300, "points": 200, "points_redeemed": 100}
    with pytest.raises(lifecycle.InvalidPayload, match="not a supported ISO 4217 code"):
        lifecycle.currency_exponent("PTS")  # no order, fee or coupon is priced in points
    assert problems(engine) == []


def _posted(engine: lifecycle.Engine, seq: int, *entries: tuple[str, int]) -> None:
    with engine.database.begin() as conn:
        for account_name, amount in entries:
            conn.execute(insert(ledger).values(
                kind=KIND, aggregate_id="s-1", seq=seq, posting="redeem", account=account_name,
                amount_minor=amount, currency="PTS", at=engine.clock.now()))


def test_check_catches_a_negative_points_balance_written_behind_the_engines_back(
        account: lifecycle.Aggregate, engine: lifecycle.Engine) -> None:
    _posted(engine, account.version, ("points", -500), ("points_redeemed", 500))
    assert problems(engine) == [("s-1", "points.never_negative")]
    assert "fell to -200" in str(engine.check()[0])


def test_check_catches_a_points_posting_that_does_not_balance(
        account: lifecycle.Aggregate, engine: lifecycle.Engine) -> None:
    _posted(engine, account.version, ("points", -100))
    assert problems(engine) == [("s-1", "ledger.posting_balances")]


def test_check_catches_an_action_earned_twice(account: lifecycle.Aggregate,
                                              engine: lifecycle.Engine) -> None:
    report = {"reason": "quotation_answered", "reference": "rfq-9"}
    engine.fire(KIND, "s-1", "earn", MARKETPLACE, report)
    with engine.database.begin() as conn:  # the record that made it earn once, gone
        for table in (history, aggregates):
            conn.execute(delete(table).where(table.c.kind == "points_earning"))
    engine.fire(KIND, "s-1", "earn", MARKETPLACE, report)
    assert ("s-1", "points.earned_once") in problems(engine)


# --- the command line ---------------------------------------------------------------------


def invoke(db_url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", db_url, *args])


def test_cli_round_trip(engine: lifecycle.Engine, db_url: str) -> None:
    seller_in(engine, "active", "acme")
    assert invoke(db_url, "points", "open", "acme", "--as", "acme").exit_code == 0
    steps = [
        ("earn", "acme", "--reason", "quotation_answered", "--reference", "rfq-1",
         "--as", "system:marketplace"),
        ("correct", "acme", "--points", "300", "--reason", "welcome"),
        ("redeem", "acme", "--item", "pay_per_click_credit", "--as", "acme"),
        ("penalise", "acme", "--points", "5", "--reason", "late", "--reference", "v-1"),
    ]
    for step in steps:
        done = invoke(db_url, "points", *step)
        assert done.exit_code == 0, done.output
    over = invoke(db_url, "points", "redeem", "acme", "--item", "business_opportunity_package",
                  "--as", "acme")
    assert over.exit_code == 1
    assert "points.balance_covers_redemption" in over.output
    below = invoke(db_url, "points", "correct", "acme", "--points", "-1000", "--reason", "x")
    assert below.exit_code == 1
    assert "points.never_negative" in below.output
    shown = invoke(db_url, "points", "show", "acme", "--as", "acme", "--json")
    assert shown.exit_code == 0, shown.output
    statement = json.loads(shown.output)
    assert statement["balance"] == 5 + 300 - 200 - 5
    assert [r["record"] for r in statement["records"]] == [
        "earning", "correction", "redemption", "penalty"]
    text = invoke(db_url, "points", "show", "acme").output
    assert "balance 100" in text
    assert "1 x pay_per_click_credit" in text
    other = invoke(db_url, "points", "show", "acme", "--as", "seller:other")
    assert other.exit_code == 1
    catalogue = json.loads(invoke(db_url, "points", "catalogue", "--json").output)
    assert catalogue == {"business_opportunity_package": 500, "pay_per_click_credit": 200,
                         "quotation_rights": 100}
    assert "ok" in invoke(db_url, "check").output


def test_lifecycle_graph_draws_the_points_machines() -> None:
    drawn = CliRunner().invoke(cli, ["graph", "points"])
    assert drawn.exit_code == 0
    assert "redeem (seller, operator)" in drawn.output
    assert CliRunner().invoke(cli, ["graph", "points_earning", "--format", "dot"]).exit_code == 0


# --- PostgreSQL: redemptions racing ------------------------------------------------------


@pytest.mark.pg
def test_two_concurrent_redemptions_beyond_the_balance_let_exactly_one_through(
        pg_engine: lifecycle.Engine, pg_url: str, clock: lifecycle.SimulatedClock) -> None:
    seller_in(pg_engine, "active")
    pg_engine.create(KIND, OWNER, {})
    pg_engine.fire(KIND, "s-1", "correct", OPERATOR, {"points": 150, "reason": "bonus"})
    engines = [lifecycle.open(pg_url, clock=clock) for _ in range(2)]
    barrier = threading.Barrier(2, timeout=10)
    outcomes: list[Any] = [None, None]

    def redeem(n: int) -> None:
        barrier.wait()
        try:
            outcomes[n] = engines[n].fire(KIND, "s-1", "redeem", OWNER, {"item": "quotation_rights"})
        except lifecycle.LifecycleError as error:  # asserted on below
            outcomes[n] = error

    try:
        for engine in engines:
            engine.find(KIND, limit=1)  # a pooled connection each, so the race is not staggered
        threads = [threading.Thread(target=redeem, args=(n,)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        for engine in engines:
            engine.close()
    won = [o for o in outcomes if isinstance(o, lifecycle.Aggregate)]
    lost = [o for o in outcomes if isinstance(o, lifecycle.LifecycleError)]
    assert len(won) == 1, outcomes
    assert len(lost) == 1, outcomes
    # The loser either lost the version race or read the winner's balance after it committed.
    assert isinstance(lost[0], lifecycle.Conflict) or (
        isinstance(lost[0], lifecycle.GuardFailed)
        and lost[0].rule == "points.balance_covers_redemption")
    assert balance(pg_engine) == 50
    assert pg_engine.get(KIND, "s-1").data["balance"] == 50
    assert problems(pg_engine) == []


@pytest.mark.pg
def test_releases_of_one_sellers_orders_at_once_all_earn_and_none_conflicts(
        pg_engine: lifecycle.Engine, pg_url: str, clock: lifecycle.SimulatedClock) -> None:
    """Each release credits the seller's one points account: distinct orders, released by
    four processes at the same moment, wait for each other on it rather than fail."""
    seller_in(pg_engine, "active")
    pg_engine.create(KIND, OWNER, {})
    orders = [order_in(pg_engine, clock, "completed", buyer_id=f"b-{n}").id for n in range(4)]
    engines = [lifecycle.open(pg_url, clock=clock) for _ in orders]
    barrier = threading.Barrier(len(orders), timeout=10)
    outcomes: list[Any] = [None] * len(orders)

    def release(n: int) -> None:
        barrier.wait()
        try:
            outcomes[n] = engines[n].fire("order", orders[n], "release_funds", SYSTEM, {})
        except lifecycle.LifecycleError as error:  # asserted on below
            outcomes[n] = error

    try:
        for engine in engines:
            engine.find(KIND, limit=1)  # a pooled connection each, so the race is not staggered
        threads = [threading.Thread(target=release, args=(n,)) for n in range(len(orders))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        for engine in engines:
            engine.close()
    assert [getattr(o, "state", o) for o in outcomes] == ["funds_released"] * len(orders)
    per_order = lifecycle.Policy().points_per_paid_order
    assert balance(pg_engine) == len(orders) * per_order
    assert problems(pg_engine) == []


# --- HTTP: the generic routes serve the kind ----------------------------------------------


def test_the_generic_http_routes_serve_points_to_the_seller_and_operators_only(
        account: lifecycle.Aggregate, engine: lifecycle.Engine) -> None:
    app = lifecycle.service.create_app(engine)
    tokens = {who: engine.create_key(role, actor_id=id)[1]
              for who, role, id in (("owner", "seller", "s-1"), ("other", "seller", "s-2"),
                                    ("operator", "operator", "op-1"))}

    async def call(method: str, path: str, who: str, body: Any = None) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://test") as client:
            return await client.request(method, path, json=body,
                                        headers={"Authorization": f"Bearer {tokens[who]}"})

    redeemed = asyncio.run(call("POST", "/v1/points_accounts/s-1/redeem", "owner",
                                {"item": "quotation_rights"}))
    assert redeemed.status_code == 200, redeemed.text
    assert redeemed.json()["data"]["balance"] == 200
    over = asyncio.run(call("POST", "/v1/points_accounts/s-1/redeem", "owner",
                            {"item": "business_opportunity_package"}))
    assert over.status_code == 422, over.text
    assert "points.balance_covers_redemption" in over.text
    ledger_read = asyncio.run(call("GET", "/v1/points_accounts/s-1/ledger", "operator"))
    assert ledger_read.status_code == 200
    assert asyncio.run(call("GET", "/v1/points_accounts/s-1", "other")).status_code == 404
