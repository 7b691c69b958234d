"""Money: the ledger's postings to the cent, and merchant coupons with every rule of SPEC §6."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

import lifecycle
from tests.builders import (
    OPERATOR,
    SYSTEM,
    buyer,
    order_in,
    order_payload,
    rows,
    seller,
    seller_in,
)

D = Decimal


def coupon_terms(clock: lifecycle.SimulatedClock, **changes: Any) -> dict[str, Any]:
    terms: dict[str, Any] = {
        "title": "Ten off forty",
        "currency": "USD",
        "denomination": "10.00",
        "threshold": "40.00",
        "starts_at": clock.now().isoformat(),
        "ends_at": (clock.now() + timedelta(days=30)).isoformat(),
        "copies": 100,
        "products": "all",
    }
    terms.update(changes)
    return terms


def active_coupon(engine: lifecycle.Engine, clock: lifecycle.SimulatedClock,
                  **changes: Any) -> lifecycle.Aggregate:
    try:
        engine.get("seller", "s-1")
    except lifecycle.NotFound:
        seller_in(engine, "active")
    coupon = engine.create("coupon", seller(), coupon_terms(clock, **changes))
    return engine.fire("coupon", coupon.id, "activate", seller())


def claimed(engine: lifecycle.Engine, clock: lifecycle.SimulatedClock,
            buyer_id: str = "b-1", **changes: Any) -> lifecycle.Aggregate:
    coupon = active_coupon(engine, clock, **changes)
    engine.fire("coupon", coupon.id, "claim", buyer(buyer_id))
    return engine.get("voucher", lifecycle.voucher_id(coupon.id, buyer_id))


def balances(engine: lifecycle.Engine, order_id: str) -> dict[str, Decimal]:
    return {k: v for k, v in engine.balances("order", order_id)["USD"].items() if v}


def test_worked_example_threshold_coupon_shipping_partial_refund_release(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    voucher = claimed(engine, clock)
    order = engine.create("order", buyer(), order_payload(coupon=voucher.id))
    # goods 2 × 19.99 + 5.00 = 44.98 reach the 40.00 threshold; the coupon takes 10.00 off the
    # goods, never the 7.50 shipping.
    assert (order.data["goods_total"], order.data["coupon_amount"], order.data["total"]) == (
        "44.98", "10.00", "42.48")
    assert engine.get("voucher", voucher.id).state == "reserved"

    engine.fire("order", order.id, "pay", buyer(), {"amount": "42.48"})
    assert engine.get("voucher", voucher.id).state == "redeemed"
    assert balances(engine, order.id) == {"buyer": D("-42.48"), "coupon_subsidy": D("-10.00"),
                                          "escrow": D("52.48")}

    engine.fire("order", order.id, "ship_offline", seller(),
                {"checklist": {"quantity": True, "model": True, "specification": True,
                               "colour": True}, "carrier": "dhl", "waybill": "1234567891"})
    engine.fire("order", order.id, "tracking_delivered", SYSTEM)
    engine.fire("order", order.id, "open_dispute", buyer(),
                {"type": "received", "reason": "damage", "refund_amount": "20.00"})
    dispute = engine.get("order", order.id).data["dispute"]
    engine.fire("dispute", dispute, "counter_offer", seller(), {"refund_amount": "12.00"})
    engine.fire("dispute", dispute, "accept_offer", buyer())
    assert engine.get("order", order.id).state == "delivered"
    assert balances(engine, order.id)["escrow"] == D("40.48")

    engine.fire("order", order.id, "confirm_receipt", buyer())
    released = engine.fire("order", order.id, "release_funds", OPERATOR)

    # commission: 5% of the goods the seller keeps, (44.98 - 12.00) × 0.05 = 1.649 → 1.65
    assert (released.data["commission"], released.data["payout"]) == ("1.65", "38.83")
    assert balances(engine, order.id) == {
        "buyer": D("-30.48"),         # paid 42.48, refunded 12.00
        "seller": D("28.83"),         # payout 38.83 less the 10.00 coupon it funded
        "platform_fee": D("1.65"),
    }
    assert engine.get("voucher", voucher.id).state == "spent"
    assert engine.check() == []


def test_cancelled_paid_order_refunds_in_full_and_restores_a_valid_coupon(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    voucher = claimed(engine, clock)
    order = engine.create("order", buyer(), order_payload(coupon=voucher.id))
    engine.fire("order", order.id, "pay", buyer())
    engine.fire("order", order.id, "request_cancel", buyer(), {"reason": "ordered twice"})
    engine.fire("order", order.id, "accept_cancel", seller())

    assert balances(engine, order.id) == {}
    assert engine.get("voucher", voucher.id).state == "available"
    assert engine.check() == []


def test_cancellation_after_the_coupon_ended_lets_it_lapse(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    voucher = claimed(engine, clock, ends_at=(clock.now() + timedelta(days=1)).isoformat())
    order = engine.create("order", buyer(), order_payload(coupon=voucher.id))
    engine.fire("order", order.id, "pay", buyer())
    clock.advance(timedelta(days=2))
    engine.fire("order", order.id, "request_cancel", buyer(), {"reason": "too slow"})
    engine.fire("order", order.id, "accept_cancel", seller())

    assert engine.get("voucher", voucher.id).state == "expired"


def test_full_dispute_refund_does_not_return_the_coupon_amount(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    voucher = claimed(engine, clock)
    order = engine.create("order", buyer(), order_payload(coupon=voucher.id))
    engine.fire("order", order.id, "pay", buyer())
    engine.fire("order", order.id, "ship_offline", seller(),
                {"checklist": {"quantity": True, "model": True, "specification": True,
                               "colour": True}, "carrier": "dhl", "waybill": "1234567891"})
    engine.fire("order", order.id, "tracking_delivered", SYSTEM)
    with pytest.raises(lifecycle.GuardFailed) as too_much:
        engine.fire("order", order.id, "open_dispute", buyer(),
                    {"type": "received", "reason": "damage", "refund_amount": "52.48"})
    assert too_much.value.rule == "dispute.refund_within_paid"
    engine.fire("order", order.id, "open_dispute", buyer(),
                {"type": "received", "reason": "damage", "refund_amount": "42.48"})
    engine.fire("dispute", engine.get("order", order.id).data["dispute"], "accept_claim", seller())

    assert engine.get("order", order.id).state == "refunded"
    assert balances(engine, order.id) == {}  # the buyer got 42.48, what they paid
    assert engine.get("voucher", voucher.id).state == "spent"
    assert engine.check() == []


def test_release_without_coupon_posts_commission_on_goods_only(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "funds_released")

    # 5% of the 44.98 goods = 2.249 → 2.25 (half-even); shipping carries no commission
    assert balances(engine, order.id) == {"buyer": D("-52.48"), "seller": D("50.23"),
                                          "platform_fee": D("2.25")}


def test_store_fee_is_posted_on_the_seller(engine: lifecycle.Engine) -> None:
    seller_in(engine, "active")

    assert engine.balances("seller", "s-1") == {"USD": {"seller": D("-1000.00"),
                                                        "platform_fee": D("1000.00")}}


# --- coupon definition rules --------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"title": "x" * 61}, "coupon.title_max_60"),
        ({"copies": 10_001}, "coupon.copies_max_10000"),
        ({"products": [f"sku-{n}" for n in range(51)]}, "coupon.products_max_50"),
        ({"denomination": "4.99", "threshold": None}, "coupon.denomination_min_5_usd"),
        ({"currency": "EUR"}, "coupon.denomination_min_5_usd"),
        ({"threshold": "10.00"}, "coupon.threshold_above_denomination"),
        ("63 days", "coupon.validity_max_62_days"),
        ("backwards", "coupon.validity_order"),
    ],
)
def test_each_coupon_rule_refuses_on_its_own(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, change: Any, rule: str
) -> None:
    seller_in(engine, "active")
    if change == "63 days":
        change = {"ends_at": (clock.now() + timedelta(days=63)).isoformat()}
    elif change == "backwards":
        change = {"ends_at": (clock.now() - timedelta(days=1)).isoformat()}
    before = rows(engine)

    with pytest.raises(lifecycle.GuardFailed) as refused:
        engine.create("coupon", seller(), coupon_terms(clock, **change))

    assert refused.value.rule == rule
    assert rows(engine) == before


def test_62_days_50_products_and_10000_copies_are_allowed(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    seller_in(engine, "active")
    coupon = engine.create("coupon", seller(), coupon_terms(
        clock, ends_at=(clock.now() + timedelta(days=62)).isoformat(), copies=10_000,
        products=[f"sku-{n}" for n in range(50)], title="x" * 60))
    assert coupon.state == "draft"


def test_copies_raise_while_active_and_lower_only_after_deactivating(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    coupon = active_coupon(engine, clock)
    assert engine.fire("coupon", coupon.id, "raise", seller(), {"copies": 150}).data["copies"] == 150
    with pytest.raises(lifecycle.GuardFailed) as lowering:
        engine.fire("coupon", coupon.id, "raise", seller(), {"copies": 50})
    assert lowering.value.rule == "coupon.raise_only"
    with pytest.raises(lifecycle.InvalidTransition):
        engine.fire("coupon", coupon.id, "lower", seller(), {"copies": 50})
    with pytest.raises(lifecycle.GuardFailed) as too_many:
        engine.fire("coupon", coupon.id, "raise", seller(), {"copies": 10_001})
    assert too_many.value.rule == "coupon.copies_max_10000"

    engine.fire("coupon", coupon.id, "deactivate", seller())
    lowered = engine.fire("coupon", coupon.id, "lower", seller(), {"copies": 50})
    assert (lowered.state, lowered.data["copies"]) == ("deactivated", 50)


def test_claims_stop_when_copies_run_out_and_one_per_buyer(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    coupon = active_coupon(engine, clock, copies=2)
    engine.fire("coupon", coupon.id, "claim", buyer("b-1"))
    with pytest.raises(lifecycle.GuardFailed) as twice:
        engine.fire("coupon", coupon.id, "claim", buyer("b-1"))
    assert twice.value.rule == "coupon.one_per_buyer"
    engine.fire("coupon", coupon.id, "claim", buyer("b-2"))
    before = rows(engine)

    with pytest.raises(lifecycle.GuardFailed) as gone:
        engine.fire("coupon", coupon.id, "claim", buyer("b-3"))

    assert gone.value.rule == "coupon.copies_left"
    assert rows(engine) == before
    assert engine.get("coupon", coupon.id).data["claimed"] == 2


def test_coupon_expires_at_the_end_of_its_validity(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    voucher = claimed(engine, clock)
    clock.advance(timedelta(days=30))
    engine.run_due_timers()

    assert engine.get("coupon", voucher.data["coupon"]).state == "expired"
    assert engine.get("voucher", voucher.id).state == "expired"


# --- coupon rules on orders ------------------------------------------------------------------


def test_an_order_below_the_threshold_is_refused_shipping_not_counted(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    voucher = claimed(engine, clock, threshold="45.00")  # goods 44.98 + shipping 7.50
    before = rows(engine)
    with pytest.raises(lifecycle.GuardFailed) as refused:
        engine.create("order", buyer(), order_payload(coupon=voucher.id))
    assert refused.value.rule == "coupon.threshold"
    assert rows(engine) == before


@pytest.mark.parametrize(
    ("arrange", "rule"),
    [
        ("sample", "coupon.not_on_samples"),
        ("someone_elses", "coupon.available"),
        ("in_use", "coupon.available"),
        ("other_store", "coupon.same_seller"),
        ("expired", "coupon.in_validity"),
        ("other_products", "coupon.threshold"),
    ],
)
def test_coupon_refused_on_an_order(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, arrange: str, rule: str
) -> None:
    products = ["other-sku"] if arrange == "other_products" else "all"
    voucher = claimed(engine, clock, products=products)
    payload = order_payload(coupon=voucher.id)
    who = buyer()
    if arrange == "sample":
        payload["sample"] = True
    elif arrange == "someone_elses":
        who = buyer("b-2")
    elif arrange == "in_use":
        engine.create("order", buyer(), order_payload(coupon=voucher.id))
    elif arrange == "other_store":
        seller_in(engine, "active", "s-2")
        payload = order_payload("s-2", coupon=voucher.id)
    elif arrange == "expired":
        clock.advance(timedelta(days=31))
    before = rows(engine)

    with pytest.raises(lifecycle.GuardFailed) as refused:
        engine.create("order", who, payload)

    assert refused.value.rule == rule
    assert rows(engine) == before
