"""Guards refuse with the rule's name and write nothing; bad payloads name the field.

Each rule is pinned on the side that fails and, where the boundary matters, on the side that
passes, so a guard that refuses everything does not look correct.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import lifecycle
from lifecycle import Aggregate, Engine, SimulatedClock
from tests.builders import (
    CHECKLIST,
    DOCUMENTS,
    ESCALATION_WAIT,
    NOT_RECEIVED_WAIT,
    OFFER,
    OPERATOR,
    ORDER_TOTAL,
    PICKUP,
    REGISTRATION,
    SHIPMENT,
    SYSTEM,
    aggregate_in,
    buyer,
    dispute_in,
    migrated_template,
    open_copy,
    open_dispute_payload,
    order_in,
    order_in_dispute,
    order_payload,
    profile,
    rows,
    seller,
    seller_in,
)


@pytest.fixture(scope="module")
def schema_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_template(tmp_path_factory.mktemp("schema"))


@pytest.fixture
def engine(tmp_path: Path, schema_template: Path, clock: SimulatedClock) -> Iterator[Engine]:
    with open_copy(schema_template, tmp_path, clock) as opened:
        yield opened


def refused_by(engine: Engine, rule: str, fire: Callable[[], Aggregate],
               unchanged: Aggregate | None = None) -> lifecycle.GuardFailed:
    """Fire, expect `GuardFailed` naming ``rule``, and check that nothing was written."""
    counts = rows(engine)
    with pytest.raises(lifecycle.GuardFailed) as refused:
        fire()
    assert refused.value.rule == rule
    assert rule in str(refused.value)
    assert rows(engine) == counts
    if unchanged is not None:
        assert engine.get(unchanged.kind, unchanged.id) == unchanged
    return refused.value


def not_received(refund_amount: str = "20.00") -> dict[str, Any]:
    return open_dispute_payload("shipped", refund_amount)


def received(refund_amount: str = "20.00") -> dict[str, Any]:
    return open_dispute_payload("delivered", refund_amount)


# --- seller onboarding --------------------------------------------------------------------


def test_self_employed_applicant_is_refused_at_registration(engine: Engine) -> None:
    refused = refused_by(engine, "registration.company_only", lambda: engine.create(
        "seller", seller(), {**REGISTRATION, "entity_type": "self_employed"}))

    assert refused.trigger == "register"
    assert engine.find("seller") == []


@pytest.mark.parametrize(("trigger", "state"), [
    ("submit_documents", "registered"),
    ("resubmit", "authentication_rejected"),
])
def test_branded_documents_without_brand_authorisation_are_refused(
    engine: Engine, trigger: str, state: str
) -> None:
    account = seller_in(engine, state)

    refused_by(engine, "documents.brand_authorisation", lambda: engine.fire(
        "seller", account.id, trigger, seller(), {**DOCUMENTS, "branded": True}), account)


def test_branded_documents_with_brand_authorisation_go_to_review(engine: Engine) -> None:
    account = seller_in(engine, "registered")

    reviewed = engine.fire("seller", account.id, "submit_documents", seller(),
                           {**DOCUMENTS, "branded": True, "brand_authorisation": "tm-8841"})

    assert reviewed.state == "under_review"
    assert reviewed.data["documents"]["brand_authorisation"] == "tm-8841"


def test_two_sellers_cannot_claim_the_same_domain(engine: Engine) -> None:
    seller_in(engine, "fee_paid", "s-1")
    engine.fire("seller", "s-1", "complete_profile", seller("s-1"), profile("acme"))
    second = seller_in(engine, "fee_paid", "s-2")

    counts = rows(engine)

    with pytest.raises(lifecycle.GuardFailed) as refused:
        engine.fire("seller", "s-2", "complete_profile", seller("s-2"), profile(" acme "))

    assert refused.value.rule == "store_domain.unique"
    assert rows(engine) == counts
    assert engine.get("seller", "s-2") == second


def test_a_domain_typed_in_capitals_is_kept_in_lower_case(engine: Engine) -> None:
    seller_in(engine, "fee_paid")

    opened = engine.fire("seller", "s-1", "complete_profile", seller(), profile("Acme-Toys"))

    assert (opened.state, opened.data["domain"]) == ("active", "acme-toys")


def test_taken_domain_refusal_names_the_trigger_and_current_state(engine: Engine) -> None:
    seller_in(engine, "fee_paid", "s-1")
    engine.fire("seller", "s-1", "complete_profile", seller("s-1"), profile("acme"))
    second = seller_in(engine, "fee_paid", "s-2")

    refused = refused_by(engine, "store_domain.unique", lambda: engine.fire(
        "seller", "s-2", "complete_profile", seller("s-2"), profile("acme")), second)

    assert (refused.trigger, refused.state) == ("complete_profile", "fee_paid")
    assert str(refused).startswith("seller s-2 is fee_paid: complete_profile refused by rule "
                                   "store_domain.unique: store_domain 'acme' is taken; allowed for "
                                   "seller: ")
    assert refused.allowed is not None
    assert "complete_profile" in refused.allowed


def test_a_guard_refusal_names_the_state_and_what_the_actor_may_fire(
    engine: Engine, clock: SimulatedClock
) -> None:
    order = order_in(engine, clock, "paid")
    payload = {**SHIPMENT, "checklist": {**CHECKLIST, "colour": False}}

    refused = refused_by(engine, "shipping.checklist", lambda: engine.fire(
        "order", order.id, "ship_offline", seller(), payload), order)

    assert (refused.kind, refused.id, refused.state, refused.role) == ("order", order.id, "paid", "seller")
    assert refused.allowed == ("book_pickup", "ship_offline")
    assert str(refused) == (
        f"order {order.id} is paid: ship_offline refused by rule shipping.checklist: confirm "
        "quantity, model, specification and colour before shipping; allowed for seller: "
        "book_pickup, ship_offline")


def test_a_role_refusal_names_the_state_and_what_the_actor_may_fire(
    engine: Engine, clock: SimulatedClock
) -> None:
    order = order_in(engine, clock, "paid")
    before = rows(engine)

    with pytest.raises(lifecycle.Forbidden) as refused:
        engine.fire("order", order.id, "ship_offline", buyer(), SHIPMENT)

    error = refused.value
    assert (error.role, error.actor_id, error.trigger) == ("buyer", "b-1", "ship_offline")
    assert (error.kind, error.id, error.state, error.allowed) == ("order", order.id, "paid",
                                                                  ("request_cancel",))
    assert str(error) == (f"order {order.id} is paid: buyer b-1 may not ship_offline: only seller "
                          "may ship_offline; allowed for buyer: request_cancel")
    assert rows(engine) == before


def test_a_refusal_because_it_is_not_theirs_does_not_tell_the_state(
    engine: Engine, clock: SimulatedClock
) -> None:
    order = order_in(engine, clock, "paid")

    with pytest.raises(lifecycle.Forbidden) as refused:
        engine.fire("order", order.id, "ship_offline", seller("s-2"), SHIPMENT)

    assert (refused.value.state, refused.value.allowed) == ("", None)
    assert str(refused.value) == f"seller s-2 may not ship_offline: order {order.id} is not theirs"
    assert "paid" not in str(refused.value)


# --- placing and paying -------------------------------------------------------------------

@pytest.mark.parametrize("state", [
    "registered", "under_review", "authentication_rejected", "authenticated", "fee_paid",
    "suspended", "fee_expired", "closed",
])
def test_only_an_active_seller_receives_orders(engine: Engine, state: str) -> None:
    seller_in(engine, state)

    refused = refused_by(engine, "seller.active",
                         lambda: engine.create("order", buyer(), order_payload()))

    assert refused.trigger == "place"
    assert engine.find("order") == []


def test_a_reinstated_seller_receives_orders_again(engine: Engine) -> None:
    seller_in(engine, "suspended")
    engine.fire("seller", "s-1", "reinstate", OPERATOR, {})

    placed = engine.create("order", buyer(), order_payload())

    assert placed.state == "awaiting_payment"


@pytest.mark.parametrize("amount", ["52.47", "52.49", "0.01"])
def test_payment_of_another_amount_than_the_total_is_refused(
    engine: Engine, clock: SimulatedClock, amount: str
) -> None:
    order = order_in(engine, clock, "awaiting_payment")

    refused_by(engine, "payment.amount",
               lambda: engine.fire("order", order.id, "pay", SYSTEM, {"amount": amount}), order)


def test_payment_of_the_total_is_taken(engine: Engine, clock: SimulatedClock) -> None:
    order = order_in(engine, clock, "awaiting_payment")

    paid = engine.fire("order", order.id, "pay", SYSTEM, {"amount": "52.480"})

    assert (paid.state, Decimal(paid.data["amount_paid"])) == ("paid", Decimal(ORDER_TOTAL))


@pytest.mark.parametrize("unchecked", ["quantity", "model", "specification", "colour"])
@pytest.mark.parametrize("trigger", ["book_pickup", "ship_offline"])
def test_shipping_without_the_full_checklist_is_refused(
    engine: Engine, clock: SimulatedClock, trigger: str, unchecked: str
) -> None:
    order = order_in(engine, clock, "paid")
    shipment = PICKUP if trigger == "book_pickup" else SHIPMENT
    payload = {**shipment, "checklist": {**CHECKLIST, unchecked: False}}

    refused_by(engine, "shipping.checklist",
               lambda: engine.fire("order", order.id, trigger, seller(), payload), order)


@pytest.mark.parametrize("carrier", ["ups", "fedex"])
def test_shipping_offline_with_another_carrier_than_the_buyers_is_refused_naming_it(
    engine: Engine, clock: SimulatedClock, carrier: str
) -> None:
    order = order_in(engine, clock, "paid")  # the buyer chose dhl
    valid = {"ups": "1Z999AA10123456784", "fedex": "986578788855"}[carrier]

    refused = refused_by(engine, "shipping.buyers_carrier", lambda: engine.fire(
        "order", order.id, "ship_offline", seller(),
        {**SHIPMENT, "carrier": carrier, "waybill": valid}), order)

    assert refused.state == "paid"
    assert refused.trigger == "ship_offline"
    assert refused.message == f"the buyer chose dhl: hand the parcel to dhl, not {carrier}"


def test_shipping_offline_with_the_buyers_carrier_passes_the_rule(
    engine: Engine, clock: SimulatedClock
) -> None:
    order = order_in(engine, clock, "paid")

    shipped = engine.fire("order", order.id, "ship_offline", seller(), SHIPMENT)

    assert (shipped.state, shipped.data["carrier"]) == ("shipped", order.data["logistics"]["carrier"])


# --- opening a dispute (order side) -------------------------------------------------------


@pytest.mark.parametrize("amount", ["52.49", "100.00"])
def test_dispute_refund_over_what_was_paid_is_refused_on_the_order(
    engine: Engine, clock: SimulatedClock, amount: str
) -> None:
    order = order_in(engine, clock, "delivered")

    refused_by(engine, "dispute.refund_within_paid", lambda: engine.fire(
        "order", order.id, "open_dispute", buyer(), received(amount)), order)


def test_dispute_refund_of_everything_paid_is_allowed(
    engine: Engine, clock: SimulatedClock
) -> None:
    order = order_in(engine, clock, "delivered")

    disputed = engine.fire("order", order.id, "open_dispute", buyer(), received(ORDER_TOTAL))

    assert disputed.state == "in_dispute"


def test_second_dispute_may_claim_only_what_was_not_refunded(
    engine: Engine, clock: SimulatedClock
) -> None:
    order, dispute = order_in_dispute(engine, clock, "delivered", refund_amount="20.00")
    engine.fire("dispute", dispute.id, "accept_claim", seller(), {})
    order = engine.get("order", order.id)
    assert (order.state, order.data["refunded"]) == ("delivered", "20.00")

    refused_by(engine, "dispute.refund_within_paid", lambda: engine.fire(
        "order", order.id, "open_dispute", buyer(), received("32.49")), order)
    again = engine.fire("order", order.id, "open_dispute", buyer(), received("32.48"))
    assert engine.get("dispute", again.data["dispute"]).data["refundable"] == "32.48"


@pytest.mark.parametrize("state", ["shipped", "in_transit"])
def test_not_received_dispute_before_ten_days_is_refused(
    engine: Engine, clock: SimulatedClock, state: str
) -> None:
    order = order_in(engine, clock, state)
    clock.advance(NOT_RECEIVED_WAIT - timedelta(seconds=1))

    refused_by(engine, "dispute.not_received_wait", lambda: engine.fire(
        "order", order.id, "open_dispute", buyer(), not_received()), order)


@pytest.mark.parametrize("state", ["shipped", "in_transit"])
def test_not_received_dispute_opens_once_ten_days_have_passed(
    engine: Engine, clock: SimulatedClock, state: str
) -> None:
    order = order_in(engine, clock, state)
    clock.advance(NOT_RECEIVED_WAIT)

    disputed = engine.fire("order", order.id, "open_dispute", buyer(), not_received())

    assert (disputed.state, disputed.data["paused_state"]) == ("in_dispute", state)


def test_not_received_dispute_opens_at_once_after_return_to_sender(
    engine: Engine, clock: SimulatedClock
) -> None:
    order = order_in(engine, clock, "in_transit")
    engine.fire("order", order.id, "tracking_exception", SYSTEM, {"kind": "returned_to_sender"})
    claim = {**not_received(), "reason": "returned_to_sender"}

    disputed = engine.fire("order", order.id, "open_dispute", buyer(), claim)

    assert disputed.state == "in_dispute"


@pytest.mark.parametrize("kind", ["lost", "customs_hold", "delay", "other"])
def test_other_tracking_exceptions_do_not_shorten_the_not_received_wait(
    engine: Engine, clock: SimulatedClock, kind: str
) -> None:
    order = order_in(engine, clock, "shipped")
    order = engine.fire("order", order.id, "tracking_exception", SYSTEM, {"kind": kind})

    refused_by(engine, "dispute.not_received_wait", lambda: engine.fire(
        "order", order.id, "open_dispute", buyer(), not_received()), order)


@pytest.mark.parametrize("state", ["shipped", "in_transit"])
def test_received_dispute_before_delivery_is_refused(
    engine: Engine, clock: SimulatedClock, state: str
) -> None:
    order = order_in(engine, clock, state)
    clock.advance(NOT_RECEIVED_WAIT)  # only the type is wrong, not the timing

    refused_by(engine, "dispute.received_after_delivery", lambda: engine.fire(
        "order", order.id, "open_dispute", buyer(), received()), order)


# --- inside a dispute ---------------------------------------------------------------------


def test_counter_offer_over_what_was_paid_is_refused(engine: Engine, clock: SimulatedClock) -> None:
    dispute = dispute_in(engine, clock, "awaiting_seller")
    offer = {**OFFER, "refund_amount": "52.49"}

    refused_by(engine, "dispute.refund_within_paid",
               lambda: engine.fire("dispute", dispute.id, "counter_offer", seller(), offer), dispute)


@pytest.mark.parametrize("decision", ["refund", "return_and_refund"])
def test_arbitrated_refund_over_what_was_paid_is_refused(
    engine: Engine, clock: SimulatedClock, decision: str
) -> None:
    dispute = dispute_in(engine, clock, "under_arbitration")
    payload = {"decision": decision, "refund_amount": "52.49"}

    refused_by(engine, "dispute.refund_within_paid",
               lambda: engine.fire("dispute", dispute.id, "arbitrate", OPERATOR, payload), dispute)


def test_arbitrated_refund_of_everything_paid_refunds_the_order(
    engine: Engine, clock: SimulatedClock
) -> None:
    dispute = dispute_in(engine, clock, "under_arbitration")

    resolved = engine.fire("dispute", dispute.id, "arbitrate", OPERATOR,
                           {"decision": "refund", "refund_amount": ORDER_TOTAL})

    order = engine.get("order", dispute.data["order"])
    assert (resolved.state, order.state, order.data["refunded"]) == (
        "resolved_refund", "refunded", ORDER_TOTAL
    )


@pytest.mark.parametrize("amount", ["0", "0.00", "-1.00"])
@pytest.mark.parametrize(("kind", "state", "trigger", "actor", "payload"), [
    pytest.param("order", "delivered", "open_dispute", buyer(), received(), id="open-dispute"),
    pytest.param("dispute", "awaiting_seller", "counter_offer", seller(), OFFER,
                 id="counter-offer"),
    pytest.param("dispute", "under_arbitration", "arbitrate", OPERATOR, {"decision": "refund"},
                 id="arbitrate-refund"),
    pytest.param("dispute", "under_arbitration", "arbitrate", OPERATOR,
                 {"decision": "return_and_refund"}, id="arbitrate-return-and-refund"),
])
def test_zero_or_negative_refund_names_the_field(
    engine: Engine, clock: SimulatedClock, kind: str, state: str, trigger: str,
    actor: lifecycle.Actor, payload: dict[str, Any], amount: str
) -> None:
    """A refund is more than nothing; a rejected claim is the no_refund decision."""
    before = aggregate_in(engine, clock, kind, state)
    counts = rows(engine)

    with pytest.raises(lifecycle.InvalidPayload) as refused:
        engine.fire(kind, before.id, trigger, actor, {**payload, "refund_amount": amount})

    assert refused.value.field == "refund_amount"
    assert rows(engine) == counts
    assert engine.get(kind, before.id) == before


@pytest.mark.parametrize("trigger", ["accept_offer", "reject_offer"])
def test_answering_a_rejected_offer_is_refused(
    engine: Engine, clock: SimulatedClock, trigger: str
) -> None:
    dispute = dispute_in(engine, clock, "negotiating")
    dispute = engine.fire("dispute", dispute.id, "reject_offer", buyer(), {})
    assert dispute.state == "negotiating"

    refused_by(engine, "dispute.offer_open",
               lambda: engine.fire("dispute", dispute.id, trigger, buyer(), {}), dispute)
    assert trigger not in engine.allowed("dispute", dispute.id, buyer())


def test_a_new_offer_after_a_rejection_can_be_accepted(
    engine: Engine, clock: SimulatedClock
) -> None:
    dispute = dispute_in(engine, clock, "negotiating")
    engine.fire("dispute", dispute.id, "reject_offer", buyer(), {})
    engine.fire("dispute", dispute.id, "counter_offer", seller(), {**OFFER, "refund_amount": "15.00"})

    resolved = engine.fire("dispute", dispute.id, "accept_offer", buyer(), {})

    assert (resolved.state, resolved.data["settlement"]) == ("resolved_refund", "15.00")
    assert engine.get("order", dispute.data["order"]).data["refunded"] == "15.00"


def test_buyer_may_not_escalate_before_the_fourth_day(
    engine: Engine, clock: SimulatedClock
) -> None:
    dispute = dispute_in(engine, clock, "negotiating")
    clock.advance(ESCALATION_WAIT - timedelta(seconds=1))

    refused_by(engine, "dispute.escalate_from_day_4",
               lambda: engine.fire("dispute", dispute.id, "escalate", buyer(), {}), dispute)
    assert "escalate" not in engine.allowed("dispute", dispute.id, buyer())


def test_buyer_may_escalate_from_the_fourth_day(engine: Engine, clock: SimulatedClock) -> None:
    dispute = dispute_in(engine, clock, "negotiating")
    clock.advance(ESCALATION_WAIT)

    escalated = engine.fire("dispute", dispute.id, "escalate", buyer(), {})

    assert (escalated.state, escalated.data["escalated_by"]) == ("under_arbitration", "buyer:b-1")


def test_seller_may_escalate_at_once(engine: Engine, clock: SimulatedClock) -> None:
    dispute = dispute_in(engine, clock, "negotiating")

    escalated = engine.fire("dispute", dispute.id, "escalate", seller(), {})

    assert escalated.state == "under_arbitration"


# --- malformed payloads -------------------------------------------------------------------


def line(**changes: Any) -> dict[str, Any]:
    return {"sku": "toy-robot", "quantity": 2, "unit_price": "19.99", **changes}


def without(payload: dict[str, Any], *path: str) -> dict[str, Any]:
    """A deep copy of ``payload`` with the field at ``path`` removed."""
    copy: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in payload.items()}
    copy["lines"] = [dict(x) for x in payload["lines"]]
    target: Any = copy
    for part in path[:-1]:
        target = target[int(part)] if isinstance(target, list) else target[part]
    del target[path[-1]]
    return copy


ORDER = order_payload()

BAD_ORDERS = [
    pytest.param(without(ORDER, "seller"), "seller", id="missing-seller"),
    pytest.param(without(ORDER, "lines"), "lines", id="missing-lines"),
    pytest.param(without(ORDER, "currency"), "currency", id="missing-currency"),
    pytest.param(without(ORDER, "consignee"), "consignee", id="missing-consignee"),
    pytest.param(without(ORDER, "logistics"), "logistics", id="missing-logistics"),
    pytest.param(without(ORDER, "lines", "0", "sku"), "lines.0.sku", id="missing-sku"),
    pytest.param(without(ORDER, "lines", "1", "unit_price"), "lines.1.unit_price",
                 id="missing-unit-price"),
    pytest.param(without(ORDER, "consignee", "country"), "consignee.country",
                 id="missing-consignee-country"),
    pytest.param(order_payload(lines=[line(quantity="2")]), "lines.0.quantity",
                 id="quantity-as-string"),
    pytest.param(order_payload(lines=[line(quantity=2.5)]), "lines.0.quantity",
                 id="fractional-quantity"),
    pytest.param(order_payload(lines=[line(quantity=2.0)]), "lines.0.quantity",
                 id="quantity-as-float"),
    pytest.param(order_payload(lines=[line(quantity=True)]), "lines.0.quantity",
                 id="quantity-as-bool"),
    pytest.param(order_payload(lines=[line(quantity=-1)]), "lines.0.quantity",
                 id="negative-quantity"),
    pytest.param(order_payload(lines=[line(quantity=0)]), "lines.0.quantity", id="zero-quantity"),
    pytest.param(order_payload(lines=[]), "lines", id="empty-lines"),
    pytest.param(order_payload(lines=[line(), line(unit_price="-1.00")]), "lines.1.unit_price",
                 id="negative-unit-price"),
    pytest.param(order_payload(lines=[line(unit_price="0")]), "lines.0.unit_price",
                 id="zero-unit-price"),
    pytest.param(order_payload(lines=[line(unit_price="19.999")]), "lines.0.unit_price",
                 id="three-decimals-in-usd"),
    pytest.param(order_payload(currency="JPY"), "lines.0.unit_price", id="decimals-in-jpy"),
    pytest.param(order_payload(lines=[line(unit_price="NaN")]), "lines.0.unit_price", id="nan"),
    pytest.param(order_payload(lines=[line(unit_price="sNaN")]), "lines.0.unit_price",
                 id="signalling-nan"),
    pytest.param(order_payload(lines=[line(unit_price=float("nan"))]), "lines.0.unit_price",
                 id="float-nan"),
    pytest.param(order_payload(lines=[line(unit_price="Infinity")]), "lines.0.unit_price",
                 id="infinity"),
    pytest.param(order_payload(lines=[line(unit_price="-Infinity")]), "lines.0.unit_price",
                 id="negative-infinity"),
    pytest.param(order_payload(lines=[line(unit_price=float("inf"))]), "lines.0.unit_price",
                 id="float-infinity"),
    pytest.param(order_payload(lines=[line(unit_price="1E+30")]), "lines.0.unit_price",
                 id="absurd-unit-price"),
    pytest.param(order_payload(logistics={**ORDER["logistics"], "shipping_fee": "-0.01"}),
                 "logistics.shipping_fee", id="negative-shipping-fee"),
    pytest.param(order_payload(logistics={**ORDER["logistics"], "shipping_fee": "Infinity"}),
                 "logistics.shipping_fee", id="infinite-shipping-fee"),
    pytest.param(order_payload(logistics={**ORDER["logistics"], "delivery_days": 61}),
                 "logistics.delivery_days", id="delivery-over-60-days"),
    pytest.param(order_payload(sample="yes"), "sample", id="sample-flag-as-string"),
    pytest.param(order_payload(sample=1), "sample", id="sample-flag-as-number"),
    pytest.param(order_payload(discount="5.00"), "discount", id="unknown-field"),
    pytest.param(order_payload(lines=[line(discount=1)]), "lines.0.discount",
                 id="unknown-field-in-line"),
    pytest.param(order_payload(currency="XYZ"), "currency", id="unknown-currency"),
    pytest.param(order_payload(currency="usd"), "currency", id="lower-case-currency"),
    pytest.param(order_payload("s-404"), "seller", id="unknown-seller"),
    pytest.param(order_payload("no such seller!"), "seller", id="malformed-seller-id"),
]


@pytest.mark.parametrize(("payload", "field"), BAD_ORDERS)
def test_bad_order_payload_names_the_field(
    engine: Engine, payload: dict[str, Any], field: str
) -> None:
    seller_in(engine, "active")
    counts = rows(engine)

    with pytest.raises(lifecycle.InvalidPayload) as refused:
        engine.create("order", buyer(), payload)

    assert refused.value.field == field
    assert field in str(refused.value)
    assert rows(engine) == counts
    assert engine.find("order") == []


def test_good_order_payload_is_placed_with_its_totals(engine: Engine) -> None:
    seller_in(engine, "active")

    placed = engine.create("order", buyer(), order_payload(currency="EUR"))

    assert (placed.data["goods_total"], placed.data["total"], placed.data["currency"]) == (
        "44.98", ORDER_TOTAL, "EUR"
    )


BAD_REGISTRATIONS = [
    pytest.param({k: v for k, v in REGISTRATION.items() if k != "email"}, "email",
                 id="missing-email"),
    pytest.param({**REGISTRATION, "entity_type": "partnership"}, "entity_type",
                 id="unknown-entity-type"),
    pytest.param({**REGISTRATION, "country": "China"}, "country", id="country-not-a-code"),
    pytest.param({**REGISTRATION, "email": "not-an-address"}, "email", id="malformed-email"),
    pytest.param({**REGISTRATION, "company_name": "   "}, "company_name", id="blank-name"),
    pytest.param({**REGISTRATION, "vat": "x"}, "vat", id="unknown-field"),
]


@pytest.mark.parametrize(("payload", "field"), BAD_REGISTRATIONS)
def test_bad_registration_names_the_field(
    engine: Engine, payload: dict[str, Any], field: str
) -> None:
    before = rows(engine)  # a new database holds only its policy
    with pytest.raises(lifecycle.InvalidPayload) as refused:
        engine.create("seller", seller(), payload)

    assert refused.value.field == field
    assert rows(engine) == before


BAD_TRIGGER_PAYLOADS = [
    pytest.param("seller", "under_review", "approve", OPERATOR, {"score": 5}, "score",
                 id="approve-unknown-field"),
    pytest.param("seller", "under_review", "reject", OPERATOR, {}, "reasons",
                 id="reject-without-reasons"),
    pytest.param("seller", "under_review", "reject", OPERATOR, {"reasons": []}, "reasons",
                 id="reject-with-no-reasons"),
    pytest.param("seller", "authenticated", "pay_fee", seller(),
                 {"sales_plan": "gold", "category": "toys"}, "sales_plan", id="unknown-plan"),
    pytest.param("seller", "fee_paid", "complete_profile", seller(),
                 profile("-bad-domain-"), "domain", id="malformed-domain"),
    pytest.param("seller", "fee_paid", "complete_profile", seller(),
                 {**profile(), "handling_time_days": 2}, "handling_time_days",
                 id="handling-time-under-3-days"),
    pytest.param("seller", "fee_paid", "complete_profile", seller(),
                 {**profile(), "handling_time_days": "7"}, "handling_time_days",
                 id="handling-time-as-string"),
    pytest.param("seller", "active", "suspend", OPERATOR, {}, "reason",
                 id="suspend-without-reason"),
    pytest.param("order", "awaiting_payment", "pay", SYSTEM, {"amount": "NaN"}, "amount",
                 id="pay-nan"),
    pytest.param("order", "awaiting_payment", "pay", SYSTEM, {"amount": "lots"}, "amount",
                 id="pay-not-a-number"),
    pytest.param("order", "paid", "ship_offline", seller(), {"checklist": CHECKLIST},
                 "carrier", id="ship-offline-without-carrier"),
    pytest.param("order", "paid", "book_pickup", seller(),
                 {**PICKUP, "checklist": {**CHECKLIST, "colour": "red"}}, "checklist.colour",
                 id="checklist-not-a-bool"),
    pytest.param("order", "paid", "book_pickup", seller(),
                 {**PICKUP, "checklist": {**CHECKLIST, "colour": "true"}}, "checklist.colour",
                 id="checklist-as-string"),
    pytest.param("order", "delivered", "open_dispute", buyer(),
                 {**received(), "return_goods": "yes"}, "return_goods",
                 id="return-goods-as-string"),
    pytest.param("order", "shipped", "tracking_exception", SYSTEM, {"kind": "stolen"}, "kind",
                 id="unknown-exception-kind"),
    pytest.param("order", "delivered", "open_dispute", buyer(),
                 {**received(), "reason": "still_in_transit"}, "reason",
                 id="received-dispute-with-not-received-reason"),
    pytest.param("order", "delivered", "open_dispute", buyer(),
                 {**received(), "type": "other"}, "type", id="unknown-dispute-type"),
    pytest.param("order", "delivered", "open_dispute", buyer(),
                 {**received(), "refund_amount": "Infinity"}, "refund_amount",
                 id="infinite-refund"),
    pytest.param("order", "delivered", "open_dispute", buyer(),
                 {k: v for k, v in received().items() if k != "refund_amount"}, "refund_amount",
                 id="dispute-without-refund-amount"),
    pytest.param("dispute", "under_arbitration", "arbitrate", OPERATOR, {"decision": "refund"},
                 "refund_amount", id="refund-decision-without-amount"),
    pytest.param("dispute", "under_arbitration", "arbitrate", OPERATOR,
                 {"decision": "no_refund", "refund_amount": "5.00"}, "refund_amount",
                 id="no-refund-decision-with-amount"),
    pytest.param("dispute", "under_arbitration", "arbitrate", OPERATOR,
                 {"decision": "split", "refund_amount": "5.00"}, "decision",
                 id="unknown-decision"),
    pytest.param("dispute", "awaiting_return", "ship_return", buyer(), {"carrier": "dhl"},
                 "waybill", id="return-without-waybill"),
]


@pytest.mark.parametrize(("kind", "state", "trigger", "actor", "payload", "field"),
                         BAD_TRIGGER_PAYLOADS)
def test_bad_trigger_payload_names_the_field(
    engine: Engine, clock: SimulatedClock, kind: str, state: str, trigger: str,
    actor: lifecycle.Actor, payload: dict[str, Any], field: str
) -> None:
    before = aggregate_in(engine, clock, kind, state)
    counts = rows(engine)

    with pytest.raises(lifecycle.InvalidPayload) as refused:
        engine.fire(kind, before.id, trigger, actor, payload)

    assert refused.value.field == field
    assert rows(engine) == counts
    assert engine.get(kind, before.id) == before


@pytest.mark.parametrize(("kind", "state", "trigger", "actor", "payload"), [
    pytest.param("order", "delivered", "open_dispute", buyer(), received("10.001"),
                 id="open-dispute"),
    pytest.param("dispute", "awaiting_seller", "counter_offer", seller(),
                 {**OFFER, "refund_amount": "10.005"}, id="counter-offer"),
    pytest.param("dispute", "under_arbitration", "arbitrate", OPERATOR,
                 {"decision": "refund", "refund_amount": "1.001"}, id="arbitrate"),
])
def test_refund_with_three_decimals_in_usd_names_the_field(
    engine: Engine, clock: SimulatedClock, kind: str, state: str, trigger: str,
    actor: lifecycle.Actor, payload: dict[str, Any]
) -> None:
    before = aggregate_in(engine, clock, kind, state)
    counts = rows(engine)

    with pytest.raises(lifecycle.InvalidPayload) as refused:
        engine.fire(kind, before.id, trigger, actor, payload)

    assert refused.value.field == "refund_amount"
    assert rows(engine) == counts
    assert engine.get(kind, before.id) == before
