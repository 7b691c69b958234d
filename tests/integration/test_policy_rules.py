"""Each rule with a number has one source, the policy in force (issue #14, "one source per rule").

A policy that differs from the defaults must change the rule and the words of its refusal
together: a seller's handling time bounds and default, the longest promised delivery, the
not-received wait, the coupon limits, the escalation day.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

import lifecycle
from lifecycle import Policy
from tests.builders import (
    buyer,
    coupon_terms,
    dispute_in,
    order_in,
    order_payload,
    profile,
    rows,
    seller,
    seller_in,
)


def opened(db_url: str, clock: lifecycle.SimulatedClock, **values: Any) -> lifecycle.Engine:
    return lifecycle.open(db_url, clock=clock, policy=Policy().with_overrides(**values))


@pytest.fixture
def short_handling(db_url: str, clock: lifecycle.SimulatedClock) -> Iterator[lifecycle.Engine]:
    with opened(db_url, clock, handling_time_min=timedelta(days=2),
                handling_time=timedelta(days=4), handling_time_max=timedelta(days=5)) as engine:
        yield engine


def invalid(engine: lifecycle.Engine, fire: Any) -> lifecycle.InvalidPayload:
    """Fire, expect `InvalidPayload`, and check that nothing was written."""
    counts = rows(engine)
    with pytest.raises(lifecycle.InvalidPayload) as refused:
        fire()
    assert rows(engine) == counts
    return refused.value


# --- a seller's handling time --------------------------------------------------------------


def test_a_handling_time_above_the_policys_maximum_is_refused_naming_it(
        short_handling: lifecycle.Engine) -> None:
    seller_in(short_handling, "fee_paid")

    refused = invalid(short_handling, lambda: short_handling.fire(
        "seller", "s-1", "complete_profile", seller(), {**profile(), "handling_time_days": 7}))

    assert refused.field == "handling_time_days"
    assert "2 to 5 days" in refused.message
    assert "handling_time_max" in refused.message
    assert refused.message.endswith("got 7")
    assert short_handling.get("seller", "s-1").state == "fee_paid"


def test_a_handling_time_below_the_policys_minimum_is_refused(
        short_handling: lifecycle.Engine) -> None:
    seller_in(short_handling, "fee_paid")

    refused = invalid(short_handling, lambda: short_handling.fire(
        "seller", "s-1", "complete_profile", seller(), {**profile(), "handling_time_days": 1}))

    assert (refused.field, "2 to 5 days" in refused.message) == ("handling_time_days", True)


def test_the_policys_bounds_admit_what_the_defaults_refuse(
        db_url: str, clock: lifecycle.SimulatedClock) -> None:
    with opened(db_url, clock, handling_time_max=timedelta(days=14)) as engine:
        seller_in(engine, "fee_paid")
        engine.fire("seller", "s-1", "complete_profile", seller(),
                    {**profile(), "handling_time_days": 12})
        order = order_in(engine, clock, "paid")

        clock.advance(timedelta(days=12))
        assert engine.run_due_timers() == 1
        assert engine.get("order", order.id).state == "cancelled"


def test_a_profile_without_a_handling_time_takes_the_policys(
        short_handling: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    seller_in(short_handling, "fee_paid")
    without = {k: v for k, v in profile().items() if k != "handling_time_days"}

    opened_store = short_handling.fire("seller", "s-1", "complete_profile", seller(), without)
    order = order_in(short_handling, clock, "paid")

    assert opened_store.data["handling_time_days"] == 4
    assert order.data["handling_time_days"] == 4
    clock.advance(timedelta(days=4) - timedelta(seconds=1))
    assert short_handling.run_due_timers() == 0
    clock.advance(timedelta(seconds=1))
    assert short_handling.run_due_timers() == 1
    assert short_handling.get("order", order.id).state == "cancelled"


def test_a_profile_without_a_handling_time_takes_seven_days_by_default(
        engine: lifecycle.Engine) -> None:
    seller_in(engine, "fee_paid")
    without = {k: v for k, v in profile().items() if k != "handling_time_days"}

    assert engine.fire("seller", "s-1", "complete_profile", seller(),
                       without).data["handling_time_days"] == 7


def test_a_null_handling_time_is_refused_not_taken_as_the_default(
        engine: lifecycle.Engine) -> None:
    seller_in(engine, "fee_paid")

    refused = invalid(engine, lambda: engine.fire(
        "seller", "s-1", "complete_profile", seller(), {**profile(), "handling_time_days": None}))

    assert refused.field == "handling_time_days"


# --- the longest promised delivery ---------------------------------------------------------


def test_a_promised_delivery_past_the_policys_window_is_refused_naming_it(
        db_url: str, clock: lifecycle.SimulatedClock) -> None:
    with opened(db_url, clock, delivery_window_max=timedelta(days=30)) as engine:
        seller_in(engine, "active")
        logistics = {**order_payload()["logistics"], "delivery_days": 31}

        refused = invalid(engine, lambda: engine.create(
            "order", buyer(), order_payload(logistics=logistics)))

        assert refused.field == "logistics.delivery_days"
        assert "at most 30 days" in refused.message
        assert "delivery_window_max" in refused.message


def test_a_longer_window_admits_a_delivery_the_default_refuses(
        db_url: str, clock: lifecycle.SimulatedClock) -> None:
    with opened(db_url, clock, delivery_window_max=timedelta(days=90)) as engine:
        seller_in(engine, "active")
        logistics = {**order_payload()["logistics"], "delivery_days": 75}

        order = engine.create("order", buyer(), order_payload(logistics=logistics))

        assert order.data["logistics"]["delivery_days"] == 75


def test_the_default_window_refuses_61_days_naming_60(engine: lifecycle.Engine) -> None:
    seller_in(engine, "active")
    logistics = {**order_payload()["logistics"], "delivery_days": 61}

    refused = invalid(engine, lambda: engine.create(
        "order", buyer(), order_payload(logistics=logistics)))

    assert (refused.field, "at most 60 days" in refused.message) == (
        "logistics.delivery_days", True)


# --- the not-received wait -----------------------------------------------------------------

NOT_RECEIVED = {"type": "not_received", "reason": "still_in_transit", "refund_amount": "10.00"}


def test_a_twelve_day_not_received_wait_says_twelve_days(
        db_url: str, clock: lifecycle.SimulatedClock) -> None:
    with opened(db_url, clock, not_received_after=timedelta(days=12)) as engine:
        order = order_in(engine, clock, "shipped")
        clock.advance(timedelta(days=11))

        with pytest.raises(lifecycle.GuardFailed) as refused:
            engine.fire("order", order.id, "open_dispute", buyer(), NOT_RECEIVED)

        assert refused.value.rule == "dispute.not_received_wait"
        assert "opens 12 days after shipping" in refused.value.message
        clock.advance(timedelta(days=1))
        assert engine.fire("order", order.id, "open_dispute", buyer(),
                           NOT_RECEIVED).state == "in_dispute"


def test_the_default_not_received_wait_says_ten_days(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order = order_in(engine, clock, "shipped")

    with pytest.raises(lifecycle.GuardFailed) as refused:
        engine.fire("order", order.id, "open_dispute", buyer(), NOT_RECEIVED)

    assert refused.value.message == ("a not_received dispute opens 10 days after shipping, or "
                                     "at once after return to sender")


# --- the escalation day --------------------------------------------------------------------


def test_an_escalation_wait_of_five_days_says_the_6th_day(
        db_url: str, clock: lifecycle.SimulatedClock) -> None:
    with opened(db_url, clock, escalate_from=timedelta(days=5)) as engine:
        dispute = dispute_in(engine, clock, "negotiating")
        clock.advance(timedelta(days=4))

        with pytest.raises(lifecycle.GuardFailed) as refused:
            engine.fire("dispute", dispute.id, "escalate", buyer())

        assert refused.value.rule == "dispute.escalate_from_day_4"  # the rule's stable name
        assert refused.value.message == "the buyer may escalate from the 6th day after opening"


def test_the_default_escalation_wait_says_the_4th_day(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    dispute = dispute_in(engine, clock, "negotiating")

    with pytest.raises(lifecycle.GuardFailed) as refused:
        engine.fire("dispute", dispute.id, "escalate", buyer())

    assert refused.value.message == "the buyer may escalate from the 4th day after opening"


# --- the coupon limits ---------------------------------------------------------------------

COUPON_LIMITS = Policy().with_overrides(
    coupon_title_max=20, coupon_max_validity=timedelta(days=10), coupon_max_copies=100,
    coupon_max_products=3, coupon_min_denomination={"EUR": Policy().coupon_min_denomination["USD"],
                                                    "USD": Policy().coupon_min_denomination["USD"]
                                                    * 2},
)


@pytest.mark.parametrize(("terms", "rule", "message"), [
    ({"title": "x" * 21}, "coupon.title_max_60", "a coupon title has at most 20 characters"),
    ({"copies": 101}, "coupon.copies_max_10000", "at most 100 copies are issued per coupon"),
    ({"products": ["a", "b", "c", "d"]}, "coupon.products_max_50",
     "a coupon applies to all products or to at most 3 specific products"),
    ({"denomination": "9.00", "threshold": None}, "coupon.denomination_min_5_usd",
     "a coupon is worth at least 5 EUR or 10 USD (and is issued in EUR or USD)"),
    ({"currency": "GBP", "threshold": None}, "coupon.denomination_min_5_usd",
     "a coupon is worth at least 5 EUR or 10 USD (and is issued in EUR or USD)"),
    ({"days": 11}, "coupon.validity_max_62_days", "a coupon is valid for at most 10 days"),
])
def test_coupon_limits_come_from_the_policy_and_so_do_their_words(
        db_url: str, clock: lifecycle.SimulatedClock, terms: dict[str, Any], rule: str,
        message: str) -> None:
    with lifecycle.open(db_url, clock=clock, policy=COUPON_LIMITS) as engine:
        seller_in(engine, "active")
        days = terms.pop("days", 5)  # within the 10 days, unless the case is about them
        payload = coupon_terms(clock, **terms)
        payload["ends_at"] = (clock.now() + timedelta(days=days)).isoformat()

        with pytest.raises(lifecycle.GuardFailed) as refused:
            engine.create("coupon", seller(), payload)

        assert (refused.value.rule, refused.value.message) == (rule, message)


def test_the_default_coupon_minimum_says_5_usd(engine: lifecycle.Engine,
                                               clock: lifecycle.SimulatedClock) -> None:
    seller_in(engine, "active")

    with pytest.raises(lifecycle.GuardFailed) as refused:
        engine.create("coupon", seller(), coupon_terms(clock, denomination="4.99", threshold=None))

    assert refused.value.message == "a coupon is worth at least 5 USD (and is issued in USD)"

