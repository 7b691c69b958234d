"""Sub-accounts (issue #20, SPEC §12): a store's staff act as ``seller:acme/ana`` on the store's
orders only within their permissions, recorded under their own id; disabling one takes effect
on its next action; the owner alone manages them; money is shown only with view_money.

Each refusal is its own error and writes nothing (`rows` before and after).
"""

from __future__ import annotations

import json
import subprocess
import warnings
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import lifecycle
from lifecycle import Actor
from lifecycle.cli import cli, diagrams
from lifecycle.machines import DEFINITIONS, subaccount
from lifecycle.service import create_app
from tests.builders import (
    CHECKLIST,
    OPERATOR,
    PICKUP,
    SHIPMENT,
    console_script,
    dispute_opened,
    order_in,
    order_payload,
    rows,
    seller_in,
)

with warnings.catch_warnings():
    from starlette.exceptions import StarletteDeprecationWarning

    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

OWNER = Actor("seller", "s-1")
ANA = Actor.parse("seller:s-1/ana")


def staff(engine: lifecycle.Engine, *permissions: str, name: str = "ana",
          store: str = "s-1") -> lifecycle.Aggregate:
    """The store's sub-account ``name`` with ``permissions``, created by its owner."""
    return engine.create("subaccount", Actor("seller", store), {"permissions": list(permissions)},
                         id=f"{store}:{name}")


def coupon_terms(engine: lifecycle.Engine) -> dict[str, Any]:
    now = engine.clock.now()
    return {"title": "Spring", "currency": "USD", "denomination": "5.00",
            "starts_at": now.isoformat(), "ends_at": (now + timedelta(days=30)).isoformat(),
            "copies": 10}


# --- the actor form ---------------------------------------------------------------------------


def test_the_actor_form_names_the_store_and_the_sub_account() -> None:
    ana = Actor.parse("seller:acme/ana")

    assert (ana.role, ana.id, ana.sub) == ("seller", "acme", "ana")
    assert ana == Actor("seller", "acme", "ana") == Actor("seller", "acme/ana")
    assert str(ana) == "seller:acme/ana"
    assert ana.acting_id == "acme/ana"
    assert ana.owner == Actor("seller", "acme")


def test_an_actor_without_a_sub_account_is_as_before() -> None:
    owner = Actor("seller", "acme")

    assert owner.sub is None
    assert (str(owner), owner.acting_id, owner.owner) == ("seller:acme", "acme", owner)
    assert owner == Actor.parse("seller:acme")
    assert hash(owner) == hash(Actor("seller", "acme"))


@pytest.mark.parametrize("text", ["buyer:x/y", "operator:ana/bob", "system:timer/x"])
def test_only_sellers_have_sub_accounts(text: str) -> None:
    with pytest.raises(lifecycle.InvalidPayload, match="only sellers have sub-accounts"):
        Actor.parse(text)


@pytest.mark.parametrize(("text", "field"), [
    ("seller:acme/", "actor.sub"), ("seller:/ana", "actor.id"), ("seller:a/b/c", "actor.sub"),
])
def test_a_malformed_sub_account_is_refused_naming_the_field(text: str, field: str) -> None:
    with pytest.raises(lifecycle.InvalidPayload) as refused:
        Actor.parse(text)

    assert refused.value.field == field
    with pytest.raises(lifecycle.InvalidPayload, match="one id with no /"):
        Actor("seller", "a/b", "c")


# --- acting within the permissions ------------------------------------------------------------


def test_a_sub_account_ships_an_order_of_its_store_recorded_under_its_own_id(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order = order_in(engine, clock, "paid")
    staff(engine, "ship_orders")

    shipped = engine.fire("order", order.id, "ship_offline", ANA, SHIPMENT)

    last = engine.history("order", order.id)[-1]
    assert shipped.state == "shipped"
    assert (last.trigger, last.actor, str(last.actor)) == ("ship_offline", ANA, "seller:s-1/ana")
    event = engine.events(limit=1000)[-1].body
    assert (event["name"], event["actor"]) == ("order.shipped", {"role": "seller", "id": "s-1/ana"})
    assert engine.replay("order", order.id) == "shipped"
    assert engine.check() == []


def test_the_history_table_keeps_the_sub_accounts_id(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order = order_in(engine, clock, "paid")
    staff(engine, "ship_orders")
    engine.fire("order", order.id, "book_pickup", ANA, PICKUP)

    with engine.database.connect() as conn:
        stored = conn.exec_driver_sql(
            "SELECT actor_role, actor_id FROM history WHERE aggregate_id = ? AND trigger = ?",
            (order.id, "book_pickup")).all()
    assert stored == [("seller", "s-1/ana")]


def test_a_sub_account_without_the_permission_is_refused(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order = order_in(engine, clock, "paid")
    staff(engine, "answer_disputes")
    before = rows(engine)

    with pytest.raises(lifecycle.Forbidden) as refused:
        engine.fire("order", order.id, "ship_offline", ANA, SHIPMENT)

    assert str(refused.value).startswith(
        f"order {order.id} is paid: seller s-1/ana may not ship_offline: ship orders needs "
        "the ship_orders permission; its permissions are answer_disputes")
    assert rows(engine) == before
    assert engine.get("order", order.id).state == "paid"


def test_a_sub_account_is_refused_on_another_stores_order(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order = order_in(engine, clock, "paid", seller_id="s-2")
    seller_in(engine, "active", "s-1")
    staff(engine, "ship_orders")
    before = rows(engine)

    with pytest.raises(lifecycle.Forbidden, match=f"seller s-1/ana may not ship_offline: "
                                                  f"order {order.id} is not theirs"):
        engine.fire("order", order.id, "ship_offline", ANA, SHIPMENT)

    assert rows(engine) == before


def test_a_disabled_sub_account_is_refused_on_its_next_action(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order = order_in(engine, clock, "paid")
    staff(engine, "ship_orders")
    engine.fire("order", order.id, "book_pickup", ANA, PICKUP)  # its first action passes
    engine.fire("subaccount", "s-1:ana", "disable", OWNER)
    before = rows(engine)

    with pytest.raises(lifecycle.Forbidden, match="sub-account s-1/ana is disabled"):
        engine.fire("order", order.id, "confirm_pickup", ANA, {})

    assert rows(engine) == before
    engine.fire("subaccount", "s-1:ana", "enable", OWNER)
    assert engine.fire("order", order.id, "confirm_pickup", ANA, {}).state == "shipped"


def test_an_idempotency_key_tells_the_sub_account_from_its_store(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    """The same key and payload from the owner is not the same request as from its staff."""
    order = order_in(engine, clock, "paid")
    staff(engine, "ship_orders")
    engine.fire("order", order.id, "ship_offline", ANA, SHIPMENT, idempotency_key="ship-1")
    before = rows(engine)

    again = engine.fire("order", order.id, "ship_offline", ANA, SHIPMENT, idempotency_key="ship-1")
    with pytest.raises(lifecycle.IdempotencyMismatch):
        engine.fire("order", order.id, "ship_offline", OWNER, SHIPMENT, idempotency_key="ship-1")

    assert again.version == engine.get("order", order.id).version
    assert rows(engine) == before


def test_a_changed_permission_applies_from_the_next_action(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order = order_in(engine, clock, "paid")
    staff(engine, "ship_orders")
    engine.fire("subaccount", "s-1:ana", "set_permissions", OWNER,
                {"permissions": ["answer_disputes"]})

    with pytest.raises(lifecycle.Forbidden, match="its permissions are answer_disputes"):
        engine.fire("order", order.id, "ship_offline", ANA, SHIPMENT)


def test_a_removed_or_unknown_sub_account_cannot_act(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order = order_in(engine, clock, "paid")
    staff(engine, "ship_orders")
    engine.fire("subaccount", "s-1:ana", "remove", OWNER)

    with pytest.raises(lifecycle.Forbidden, match="sub-account s-1/ana is removed"):
        engine.fire("order", order.id, "ship_offline", ANA, SHIPMENT)
    with pytest.raises(lifecycle.Forbidden, match="there is no sub-account s-1/bob"):
        engine.fire("order", order.id, "ship_offline", Actor.parse("seller:s-1/bob"), SHIPMENT)


def test_a_sub_account_answers_a_dispute_with_answer_disputes(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    _order, dispute = dispute_opened(engine, clock)
    staff(engine, "answer_disputes")

    offered = engine.fire("dispute", dispute.id, "counter_offer", ANA, {"refund_amount": "10.00"})

    assert offered.state == "negotiating"
    assert engine.history("dispute", dispute.id)[-1].actor == ANA


def test_a_sub_account_manages_coupons_with_manage_coupons_and_they_are_the_stores(
        engine: lifecycle.Engine) -> None:
    seller_in(engine, "active", "s-1")
    staff(engine, "manage_coupons")
    staff(engine, "ship_orders", name="bob")

    coupon = engine.create("coupon", ANA, coupon_terms(engine))
    engine.fire("coupon", coupon.id, "activate", ANA, {})

    assert engine.get("coupon", coupon.id).data["seller"] == "s-1"  # the store's coupon
    with pytest.raises(lifecycle.Forbidden, match="manage coupons needs the manage_coupons"):
        engine.create("coupon", Actor.parse("seller:s-1/bob"), coupon_terms(engine))


def test_cancellation_requests_are_the_owners_alone(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order = order_in(engine, clock, "cancel_requested")
    staff(engine, *subaccount.PERMISSIONS)
    before = rows(engine)

    with pytest.raises(lifecycle.Forbidden,
                       match=r"only the store's owner \(seller:s-1\) may accept_cancel a order"):
        engine.fire("order", order.id, "accept_cancel", ANA, {})

    assert rows(engine) == before


def test_allowed_offers_a_sub_account_only_what_its_permissions_cover(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order = order_in(engine, clock, "paid")
    staff(engine, "answer_disputes")

    assert engine.allowed("order", order.id, OWNER) == ["book_pickup", "ship_offline"]
    assert engine.allowed("order", order.id, ANA) == []
    engine.fire("subaccount", "s-1:ana", "set_permissions", OWNER, {"permissions": ["ship_orders"]})
    assert engine.allowed("order", order.id, ANA) == ["book_pickup", "ship_offline"]


def test_every_seller_trigger_of_the_store_machines_is_mapped() -> None:
    """A permission covers it, or it is the owner's on purpose; nothing is left to chance."""
    for kind in ("order", "dispute", "coupon", "voucher"):
        for transition in DEFINITIONS[kind].transitions:
            if "seller" in transition.roles:
                pair = (kind, transition.trigger)
                assert (pair in subaccount.COVERED_BY) != (pair in subaccount.OWNER_ONLY), pair


def test_the_accounts_own_machines_and_unknown_kinds_are_owner_only(
        engine: lifecycle.Engine) -> None:
    account = staff_aggregate(*subaccount.PERMISSIONS)

    for kind, trigger in [("seller", "close"), ("subaccount", "create"), ("profile", "update"),
                          ("points", "redeem"), ("violation", "appeal")]:
        reason = subaccount.refusal(ANA, kind, trigger, account)
        assert reason == f"only the store's owner (seller:s-1) may {trigger} a {kind}"


def staff_aggregate(*permissions: str) -> lifecycle.Aggregate:
    return lifecycle.Aggregate("subaccount", "s-1:ana", "active", 1,
                               {"seller": "s-1", "name": "ana", "permissions": list(permissions)})


def test_a_sub_account_cannot_act_on_its_stores_account(engine: lifecycle.Engine) -> None:
    seller_in(engine, "active", "s-1")
    staff(engine, *subaccount.PERMISSIONS)
    before = rows(engine)

    with pytest.raises(lifecycle.Forbidden, match="only the store's owner"):
        engine.fire("seller", "s-1", "close", ANA, {})

    assert rows(engine) == before


# --- the owner alone manages sub-accounts -----------------------------------------------------


def test_a_sub_account_may_not_create_another(engine: lifecycle.Engine) -> None:
    seller_in(engine, "active", "s-1")
    staff(engine, *subaccount.PERMISSIONS)
    before = rows(engine)

    with pytest.raises(lifecycle.Forbidden,
                       match=r"seller s-1/ana may not create: only the store's owner"):
        engine.create("subaccount", ANA, {"permissions": ["view_money"]}, id="s-1:bob")

    assert rows(engine) == before


@pytest.mark.parametrize("trigger", ["set_permissions", "disable", "remove"])
def test_a_sub_account_may_not_manage_one(engine: lifecycle.Engine, trigger: str) -> None:
    seller_in(engine, "active", "s-1")
    staff(engine, *subaccount.PERMISSIONS)
    staff(engine, name="bob")
    payload = {"permissions": ["view_money"]} if trigger == "set_permissions" else {}
    before = rows(engine)

    with pytest.raises(lifecycle.Forbidden, match="only the store's owner"):
        engine.fire("subaccount", "s-1:bob", trigger, ANA, payload)

    assert rows(engine) == before


def test_another_seller_may_not_create_or_manage_a_stores_sub_account(
        engine: lifecycle.Engine) -> None:
    seller_in(engine, "active", "s-1")
    seller_in(engine, "active", "s-2")
    staff(engine, "ship_orders")
    other = Actor("seller", "s-2")
    before = rows(engine)

    with pytest.raises(lifecycle.Forbidden, match="a seller creates only their own subaccount"):
        engine.create("subaccount", other, {"permissions": []}, id="s-1:bob")
    with pytest.raises(lifecycle.Forbidden, match="subaccount s-1:ana is not theirs"):
        engine.fire("subaccount", "s-1:ana", "set_permissions", other, {"permissions": []})

    assert rows(engine) == before


def test_an_operator_may_disable_a_sub_account_but_not_create_one(
        engine: lifecycle.Engine) -> None:
    seller_in(engine, "active", "s-1")
    staff(engine, "ship_orders")

    assert engine.fire("subaccount", "s-1:ana", "disable", OPERATOR).state == "disabled"
    with pytest.raises(lifecycle.Forbidden, match="only seller may create"):
        engine.create("subaccount", OPERATOR, {"permissions": []}, id="s-1:bob")


@pytest.mark.parametrize(("id", "payload", "field"), [
    ("s-1", {"permissions": []}, "id"),
    ("s-1:ana", {"permissions": ["fly"]}, "permissions.0"),
    ("s-1:a/b", {"permissions": []}, "actor.sub"),
])
def test_a_bad_sub_account_is_refused_naming_the_field(
        engine: lifecycle.Engine, id: str | None, payload: dict[str, Any], field: str) -> None:
    seller_in(engine, "active", "s-1")
    before = rows(engine)

    with pytest.raises(lifecycle.InvalidPayload) as refused:
        engine.create("subaccount", OWNER, payload, id=id)

    assert refused.value.field == field
    assert rows(engine) == before


def test_a_sub_account_created_without_an_id_is_named_for_its_store(
        engine: lifecycle.Engine) -> None:
    seller_in(engine, "active", "s-1")

    made = engine.create("subaccount", OWNER, {"permissions": ["ship_orders"]})

    assert made.id.startswith("s-1:u")
    assert (made.data["seller"], made.data["name"]) == ("s-1", made.id[4:])


def test_a_sub_account_belongs_to_a_registered_store(engine: lifecycle.Engine) -> None:
    with pytest.raises(lifecycle.GuardFailed) as refused:
        engine.create("subaccount", Actor("seller", "nobody"), {"permissions": []},
                      id="nobody:ana")

    assert refused.value.rule == "subaccount.store_exists"


# --- view money -------------------------------------------------------------------------------


def test_money_is_shown_to_a_sub_account_only_with_view_money(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order = order_in(engine, clock, "paid")
    staff(engine, "ship_orders")
    staff(engine, "view_money", name="bob")
    bob = Actor.parse("seller:s-1/bob")

    with pytest.raises(lifecycle.Forbidden, match="viewing money needs the view_money permission"):
        engine.balances("order", order.id, actor=ANA)
    with pytest.raises(lifecycle.Forbidden, match="read the order's ledger"):
        engine.postings("order", order.id, actor=ANA)
    assert engine.balances("order", order.id, actor=bob) == engine.balances("order", order.id)
    assert engine.postings("order", order.id, actor=OWNER) == engine.postings("order", order.id)
    hidden = engine.without_money(engine.get("order", order.id), ANA).data
    assert "amount_paid" not in hidden
    assert "payment_ref" not in hidden
    assert hidden["total"] == order.data["total"]  # the order's terms stay
    assert engine.without_money(engine.get("order", order.id), bob).data == \
        engine.get("order", order.id).data


def test_a_disabled_sub_account_sees_no_money(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order_in(engine, clock, "paid")
    staff(engine, "view_money")
    engine.fire("subaccount", "s-1:ana", "disable", OWNER)

    assert engine.sees_money(ANA) is False
    assert engine.sees_money(OWNER) is True


# --- the CLI ----------------------------------------------------------------------------------


def invoke(db_url: str, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--db", db_url, *args])


def test_the_cli_acts_as_a_sub_account_and_hides_money(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, db_url: str) -> None:
    order = order_in(engine, clock, "paid")

    made = invoke(db_url, "subaccount", "create", "s-1/ana", "--permission", "ship_orders",
                  "--as", "seller:s-1", "--json")
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)["data"]["permissions"] == ["ship_orders"]

    shipped = invoke(db_url, "order", "ship-offline", order.id, "--as", "seller:s-1/ana",
                     "--carrier", "dhl", "--waybill", SHIPMENT["waybill"], "--confirm", "all")
    assert shipped.exit_code == 0, shipped.output

    history = json.loads(invoke(db_url, "order", "history", order.id, "--json").output)
    assert history[-1]["actor"] == "seller:s-1/ana"
    shown = json.loads(invoke(db_url, "order", "show", order.id, "--as", "seller:s-1/ana",
                              "--json").output)
    assert shown["money"]["balances"] == {}
    assert shown["money"]["figures"] == {}
    assert shown["money"]["hidden"] == "needs the view_money permission"
    assert "amount_paid" not in shown["data"]
    owner = json.loads(invoke(db_url, "order", "show", order.id, "--as", "seller:s-1",
                              "--json").output)
    assert owner["money"]["balances"]
    assert "hidden" not in owner["money"]


def test_the_cli_manages_sub_accounts(engine: lifecycle.Engine, db_url: str) -> None:
    seller_in(engine, "active", "s-1")
    assert invoke(db_url, "subaccount", "create", "s-1/ana", "--permission", "ship_orders",
                  "--permission", "answer_disputes").exit_code == 0  # the owner by default

    changed = invoke(db_url, "subaccount", "permissions", "s-1/ana", "--permission", "view_money")
    disabled = invoke(db_url, "subaccount", "disable", "s-1:ana")
    listed = json.loads(invoke(db_url, "subaccount", "list", "s-1", "--json").output)
    shown = json.loads(invoke(db_url, "subaccount", "show", "s-1/ana", "--json").output)
    refused = invoke(db_url, "subaccount", "enable", "s-1/ana", "--as", "seller:s-1/ana")

    assert changed.exit_code == disabled.exit_code == 0
    assert [(a["id"], a["state"], a["data"]["permissions"]) for a in listed["items"]] == \
        [("s-1:ana", "disabled", ["view_money"])]
    assert sorted(shown["allowed"]) == ["enable", "remove", "set_permissions"]
    assert refused.exit_code == 1
    assert "seller s-1/ana may not enable: sub-account s-1/ana is disabled" in refused.output
    assert engine.get("subaccount", "s-1:ana").state == "disabled"


def test_the_console_script_refuses_a_buyers_sub_account(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/cli.db"
    lifecycle.open(url).close()

    done = subprocess.run([console_script(), "--db", url, "order", "pay", "o-1", "--as",
                           "buyer:x/y"], capture_output=True, text=True, check=False)

    assert done.returncode == 2
    assert done.stderr.strip() == ("error: invalid actor: buyer:x/y names a sub-account, and "
                                   "only sellers have sub-accounts")


def test_lifecycle_graph_draws_the_sub_account_machine() -> None:
    drawn = CliRunner().invoke(cli, ["graph", "subaccount"])

    assert drawn.exit_code == 0
    assert "active --> disabled: disable (seller, operator)" in drawn.output
    assert "disabled --> active: enable (seller)" in drawn.output


def test_the_sub_account_diagram_in_the_docs_matches_its_definition() -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "diagrams" / "subaccount.md"

    assert page.read_text(encoding="utf-8") == diagrams.page("subaccount"), \
        "run python scripts/update_diagrams.py"


# --- HTTP -------------------------------------------------------------------------------------


@pytest.fixture
def http(engine: lifecycle.Engine) -> Iterator[TestClient]:
    with TestClient(create_app(engine)) as client:
        yield client


def bearer(engine: lifecycle.Engine, role: str, actor_id: str | None) -> dict[str, str]:
    _key, token = engine.create_key(role, actor_id=actor_id)
    return {"Authorization": f"Bearer {token}"}


def test_an_api_key_for_a_sub_account_acts_as_it(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, http: TestClient) -> None:
    order = order_in(engine, clock, "paid")
    staff(engine, "ship_orders")
    ana = bearer(engine, "seller", "s-1/ana")

    shipped = http.post(f"/v1/orders/{order.id}/ship_offline", headers=ana,
                        json={"checklist": CHECKLIST, "carrier": "dhl",
                              "waybill": SHIPMENT["waybill"]})
    ledger = http.get(f"/v1/orders/{order.id}/ledger", headers=ana)
    read = http.get(f"/v1/orders/{order.id}", headers=ana)
    history = http.get(f"/v1/orders/{order.id}/history", headers=ana)

    assert shipped.status_code == 200, shipped.text
    assert "amount_paid" not in shipped.json()["data"]
    assert ledger.status_code == 403
    assert "viewing money needs the view_money permission" in ledger.json()["detail"]
    assert read.status_code == 200
    assert "amount_paid" not in read.json()["data"]
    assert history.json()[-1]["actor"] == {"role": "seller", "id": "s-1/ana"}


def test_sub_accounts_through_the_generic_routes(
        engine: lifecycle.Engine, http: TestClient) -> None:
    seller_in(engine, "active", "s-1")
    owner = bearer(engine, "seller", "s-1")

    made = http.post("/v1/subaccounts", params={"id": "s-1:ana"}, headers=owner,
                     json={"permissions": ["ship_orders"]})
    ana = bearer(engine, "seller", "s-1/ana")
    read = http.get("/v1/subaccounts/s-1:ana", headers=owner)
    by_staff = http.post("/v1/subaccounts", params={"id": "s-1:bob"}, headers=ana,
                         json={"permissions": []})
    disabled = http.post("/v1/subaccounts/s-1:ana/disable", headers=owner)
    after = http.get("/v1/subaccounts/s-1:ana/allowed", headers=ana)

    assert made.status_code == 201, made.text
    assert made.headers["Location"] == "/v1/subaccounts/s-1:ana"
    assert read.json()["data"]["permissions"] == ["ship_orders"]
    assert by_staff.status_code == 403
    assert disabled.json()["state"] == "disabled"
    assert after.json() == {"actor": {"role": "seller", "id": "s-1/ana"}, "allowed": []}


def test_a_role_scope_key_names_a_sub_account_with_the_actor_header(
        engine: lifecycle.Engine, http: TestClient) -> None:
    seller_in(engine, "active", "s-1")
    staff(engine, "ship_orders")
    scope = bearer(engine, "seller", None)

    read = http.get("/v1/subaccounts/s-1:ana/allowed",
                    headers={**scope, "Lifecycle-Actor": "s-1/ana"})

    assert read.json()["actor"] == {"role": "seller", "id": "s-1/ana"}


def test_a_key_for_a_buyers_sub_account_is_refused(engine: lifecycle.Engine) -> None:
    before = rows(engine)

    with pytest.raises(lifecycle.InvalidPayload, match="only sellers have sub-accounts"):
        engine.create_key("buyer", actor_id="x/y")

    assert rows(engine) == before


# --- PostgreSQL: several processes share the database -----------------------------------------


def test_a_disable_in_another_process_stops_the_sub_accounts_next_action(
        pg_engine: lifecycle.Engine, pg_url: str, clock: lifecycle.SimulatedClock) -> None:
    """No process keeps a sub-account in memory: the staff's process (``pg_engine``) acts,
    the owner disables it in another (``elsewhere``), and the staff's next action is refused."""
    first = order_in(pg_engine, clock, "paid")
    second = pg_engine.create("order", Actor("buyer", "b-2"), order_payload())
    pg_engine.fire("order", second.id, "pay", Actor("buyer", "b-2"))
    staff(pg_engine, "ship_orders")
    pg_engine.fire("order", first.id, "ship_offline", ANA, SHIPMENT)

    with lifecycle.open(pg_url, clock=clock) as elsewhere:
        elsewhere.fire("subaccount", "s-1:ana", "disable", OWNER)
    before = rows(pg_engine)

    with pytest.raises(lifecycle.Forbidden, match="sub-account s-1/ana is disabled"):
        pg_engine.fire("order", second.id, "book_pickup", ANA, PICKUP)

    assert rows(pg_engine) == before
    assert pg_engine.sees_money(ANA) is False
