"""Durable deadlines: every timeout of the spec fires once, on time, as the system actor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest

import lifecycle
from lifecycle import timers
from lifecycle.adapters.sandbox import SandboxCarrier
from lifecycle.adapters.timelines import TrackingRates
from lifecycle.pipeline import Pipeline
from tests.builders import (
    OPERATOR,
    SYSTEM,
    buyer,
    dispute_opened,
    order_in,
    rows,
    seller,
    seller_in,
)

TICK = timedelta(microseconds=1)

Build = Callable[[lifecycle.Engine, lifecycle.SimulatedClock], lifecycle.Aggregate]


def _negotiating(engine: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> lifecycle.Aggregate:
    _, dispute = dispute_opened(engine, clock)
    return engine.fire("dispute", dispute.id, "counter_offer", seller(), {"refund_amount": "5.00"})


def _awaiting_return(engine: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> lifecycle.Aggregate:
    _, dispute = dispute_opened(engine, clock, return_goods=True)
    return engine.fire("dispute", dispute.id, "accept_claim", seller())


@dataclass(frozen=True)
class Case:
    name: str
    build: Build
    trigger: str
    after: timedelta
    then: str
    missed_pickup: bool = False  # the carrier never comes, so the booking can be cancelled


CASES = [
    Case("fee_lapse", lambda e, c: seller_in(e, "active"), "fee_lapse", timedelta(days=365),
         "fee_expired"),
    Case("payment_timeout", lambda e, c: order_in(e, c, "awaiting_payment"), "payment_timeout",
         timedelta(hours=24), "cancelled"),
    Case("ship_deadline", lambda e, c: order_in(e, c, "paid"), "ship_deadline", timedelta(days=7),
         "cancelled"),
    Case("cancel_request_timeout", lambda e, c: order_in(e, c, "cancel_requested"),
         "cancel_request_timeout", timedelta(hours=48), "cancelled"),
    Case("pickup_timeout", lambda e, c: order_in(e, c, "awaiting_pickup"), "pickup_timeout",
         timedelta(days=3), "paid", missed_pickup=True),
    Case("auto_confirm_shipped", lambda e, c: order_in(e, c, "shipped"), "auto_confirm",
         timedelta(days=20), "completed"),
    Case("auto_confirm_in_transit", lambda e, c: order_in(e, c, "in_transit"), "auto_confirm",
         timedelta(days=20), "completed"),
    Case("auto_confirm_delivered", lambda e, c: order_in(e, c, "delivered"), "auto_confirm",
         timedelta(days=5), "completed"),
    Case("release_funds", lambda e, c: order_in(e, c, "completed"), "release_funds",
         timedelta(days=15), "funds_released"),
    Case("seller_response_timeout", lambda e, c: dispute_opened(e, c)[1],
         "seller_response_timeout", timedelta(days=5), "resolved_refund"),
    Case("negotiation_timeout", _negotiating, "negotiation_timeout", timedelta(days=15),
         "under_arbitration"),
    Case("return_timeout", _awaiting_return, "return_timeout", timedelta(days=10),
         "resolved_no_refund"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_deadline_fires_once_when_due_and_not_a_moment_before(
    db_url: str, clock: lifecycle.SimulatedClock, case: Case
) -> None:
    carriers = {}
    if case.missed_pickup:
        carriers["dhl"] = SandboxCarrier("dhl", clock=clock, secret=b"s",
                                         tracking=TrackingRates(missed_pickup=1.0))
    engine = lifecycle.open(db_url, clock=clock, carriers=carriers)
    aggregate = case.build(engine, clock)
    entered = clock.now()

    clock.set(entered + case.after - TICK)
    assert engine.run_due_timers() == 0
    assert engine.get(aggregate.kind, aggregate.id).state == aggregate.state

    clock.set(entered + case.after)
    assert engine.run_due_timers() == 1
    moved = engine.get(aggregate.kind, aggregate.id)
    last = engine.history(aggregate.kind, aggregate.id)[-1]
    assert moved.state == case.then
    assert (last.trigger, last.actor.role) == (case.trigger, "system")
    assert engine.replay(aggregate.kind, aggregate.id) == case.then
    before = rows(engine)
    assert engine.run_due_timers() == 0
    assert rows(engine)["history"] == before["history"]


def test_handling_time_is_the_sellers(engine: lifecycle.Engine,
                                      clock: lifecycle.SimulatedClock) -> None:
    seller_in(engine, "fee_paid", "s-9")
    engine.fire("seller", "s-9", "complete_profile", seller("s-9"),
                {"store_name": "Nine", "domain": "nine", "handling_time_days": 3})
    order = order_in(engine, clock, "paid", seller_id="s-9")

    clock.advance(timedelta(days=3))
    assert engine.run_due_timers() == 1
    assert engine.get("order", order.id).state == "cancelled"


def test_policy_overrides_a_default_duration(db_url: str, clock: lifecycle.SimulatedClock) -> None:
    policy = lifecycle.Policy().with_overrides(payment_timeout=timedelta(hours=2))
    with lifecycle.open(db_url, clock=clock, policy=policy) as engine:
        order = order_in(engine, clock, "awaiting_payment")
        clock.advance(timedelta(hours=2))
        engine.run_due_timers()
        assert engine.get("order", order.id).state == "cancelled"


def test_leaving_the_state_first_cancels_its_deadline(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    engine.fire("order", order.id, "pay", buyer())
    assert [d.trigger for d in engine.deadlines(kind="order", id=order.id)] == ["ship_deadline"]

    clock.advance(timedelta(hours=25))
    assert engine.run_due_timers() == 0
    assert engine.get("order", order.id).state == "paid"


def test_rejected_cancel_request_keeps_the_original_ship_deadline(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "paid")
    paid_at = clock.now()
    clock.advance(timedelta(days=1))
    engine.fire("order", order.id, "request_cancel", buyer(), {"reason": "too slow"})
    engine.fire("order", order.id, "reject_cancel", seller())

    (deadline,) = engine.deadlines(kind="order", id=order.id)
    assert deadline.due_at == paid_at + timedelta(days=7)


def test_dispute_pauses_order_deadlines_and_resumes_with_the_time_left(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "delivered")  # auto_confirm due in 5 days
    clock.advance(timedelta(days=2))
    order = engine.fire("order", order.id, "open_dispute", buyer(),
                        {"type": "received", "reason": "damage", "refund_amount": "10.00"})
    (paused,) = engine.deadlines(kind="order", id=order.id)
    assert (paused.status, paused.remaining) == ("paused", timedelta(days=3))

    clock.advance(timedelta(days=1))  # the dispute takes a day; the order's clock stands still
    engine.fire("dispute", order.data["dispute"], "counter_offer", seller(),
                {"refund_amount": "4.00"})
    engine.fire("dispute", order.data["dispute"], "accept_offer", buyer())
    resumed_at = clock.now()
    assert engine.get("order", order.id).state == "delivered"
    (resumed,) = engine.deadlines(kind="order", id=order.id)
    assert (resumed.status, resumed.due_at) == ("pending", resumed_at + timedelta(days=3))

    clock.set(resumed_at + timedelta(days=3) - TICK)
    assert engine.run_due_timers() == 0
    clock.advance(TICK)
    assert engine.run_due_timers() == 1
    assert engine.get("order", order.id).state == "completed"


def test_auto_confirm_keeps_the_time_a_dispute_paused_when_the_order_moves_in_transit(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "shipped")  # auto_confirm due 20 days after shipping
    shipped_at = clock.now()
    clock.advance(timedelta(days=10))  # a not_received dispute opens 10 days after shipping
    order = engine.fire("order", order.id, "open_dispute", buyer(),
                        {"type": "not_received", "reason": "still_in_transit",
                         "refund_amount": "10.00"})
    clock.advance(timedelta(days=4))  # four days in dispute: the order's clock stands still
    engine.fire("dispute", order.data["dispute"], "counter_offer", seller(),
                {"refund_amount": "4.00"})
    engine.fire("dispute", order.data["dispute"], "accept_offer", buyer())
    assert engine.get("order", order.id).state == "shipped"

    engine.fire("order", order.id, "tracking_in_transit", SYSTEM, {"event_id": "late-scan"})

    (deadline,) = engine.deadlines(kind="order", id=order.id)
    assert (deadline.trigger, deadline.state) == ("auto_confirm", "in_transit")
    assert deadline.due_at == shipped_at + timedelta(days=20 + 4)


def test_full_refund_drops_the_paused_deadlines(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order, dispute = dispute_opened(engine, clock, refund_amount="52.48")
    engine.fire("dispute", dispute.id, "accept_claim", seller())

    assert engine.get("order", order.id).state == "refunded"
    assert engine.deadlines(kind="order", id=order.id) == []


def test_a_new_engine_fires_what_the_old_one_scheduled(db_url: str) -> None:
    clock = lifecycle.SimulatedClock()
    with lifecycle.open(db_url, clock=clock) as first:
        order = order_in(first, clock, "awaiting_payment")
    later = lifecycle.SimulatedClock(clock.now() + timedelta(days=2))
    with lifecycle.open(db_url, clock=later) as second:
        assert second.run_due_timers() == 1
        assert second.get("order", order.id).state == "cancelled"


def test_a_deadline_whose_trigger_is_refused_is_discarded(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    # An operator cancels by hand; simulate a stale row by re-adding the old deadline.
    engine.fire("order", order.id, "cancel", OPERATOR)
    with engine.store.transaction() as records:
        records.schedule("order", order.id, "awaiting_payment", "payment_timeout",
                         clock.now(), clock.now())

    assert engine.run_due_timers() == 0
    assert engine.deadlines(kind="order", id=order.id) == []
    assert engine.get("order", order.id).state == "cancelled"


def test_run_due_timers_stops_at_the_limit(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    orders = [order_in(engine, clock, "awaiting_payment") for _ in range(3)]
    clock.advance(timedelta(days=1))

    assert engine.run_due_timers(limit=2) == 2
    assert len(engine.deadlines(due=True)) == 1
    assert engine.run_due_timers() == 1
    assert {engine.get("order", o.id).state for o in orders} == {"cancelled"}


def test_a_failing_deadline_is_retried_with_backoff_then_parked(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    real_fire = Pipeline.fire_in

    def gateway_down(self: Pipeline, unit: object, definition: object, request: object,
                     *args: object) -> object:
        if getattr(request, "trigger", None) == "payment_timeout":
            raise ConnectionError("gateway unreachable")
        return real_fire(self, unit, definition, request, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Pipeline, "fire_in", gateway_down)
    clock.advance(timedelta(hours=24))
    waits = []
    for attempt in range(1, timers.MAX_ATTEMPTS + 1):
        assert engine.run_due_timers() == 0
        (deadline,) = engine.deadlines(kind="order", id=order.id)
        assert deadline.attempts == attempt
        assert "gateway unreachable" in (deadline.last_error or "")
        waits.append(deadline.due_at - clock.now())
        clock.set(max(deadline.due_at, clock.now()))

    assert deadline.status == "failed"
    assert waits[:4] == [timedelta(minutes=m) for m in (1, 2, 4, 8)]
    assert [d.id for d in engine.deadlines(failed=True)] == [deadline.id]
    assert engine.get("order", order.id).state == "awaiting_payment"
    assert [e.trigger for e in engine.history("order", order.id)] == ["place"]

    monkeypatch.setattr(Pipeline, "fire_in", real_fire)
    clock.advance(timedelta(days=1))
    assert engine.run_due_timers() == 0  # parked: only an operator brings it back


def test_a_pickup_booked_by_one_process_lapses_in_the_timer_worker_of_another(
    db_url: str, clock: lifecycle.SimulatedClock
) -> None:
    service = lifecycle.open(db_url, clock=clock)
    order = order_in(service, clock, "awaiting_pickup")
    worker = lifecycle.open(db_url, clock=clock)  # its own sandbox carriers, as a process has
    clock.advance(timedelta(days=3))

    assert worker.run_due_timers() == 1

    lapsed = worker.get("order", order.id)
    assert lapsed.state == "paid"
    assert "waybill" not in lapsed.data
    assert worker.deadlines(failed=True) == []
    service.close()
    worker.close()
