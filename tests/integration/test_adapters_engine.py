"""The engine and its adapters: captures, refunds, payouts, pickups, waybills, callbacks, pushes."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any, cast

import pytest

import lifecycle
from lifecycle.adapters.ports import PaymentEvent
from lifecycle.adapters.sandbox import SandboxCarrier, SandboxGateway
from lifecycle.adapters.webhooks import SignedMessage
from tests.builders import (
    CHECKLIST,
    PICKUP,
    SYSTEM,
    buyer,
    order_in,
    order_payload,
    rows,
    seller,
    seller_in,
    signed,
)

SECRET = b"test-secret"


@pytest.fixture
def gateway(clock: lifecycle.SimulatedClock) -> SandboxGateway:
    return SandboxGateway(clock=clock, secret=SECRET)


@pytest.fixture
def dhl(clock: lifecycle.SimulatedClock) -> SandboxCarrier:
    return SandboxCarrier("dhl", clock=clock, secret=SECRET)


@pytest.fixture
def engine(db_url: str, clock: lifecycle.SimulatedClock, gateway: SandboxGateway,
           dhl: SandboxCarrier) -> Iterator[lifecycle.Engine]:
    with lifecycle.open(db_url, clock=clock, payments=gateway, carriers={"dhl": dhl}) as opened:
        yield opened


def unpaid(engine: lifecycle.Engine) -> lifecycle.Aggregate:
    seller_in(engine, "active")
    return engine.create("order", buyer(), order_payload())


def test_paying_captures_once_and_keeps_the_reference(
    engine: lifecycle.Engine, gateway: SandboxGateway
) -> None:
    order = engine.fire("order", unpaid(engine).id, "pay", buyer())

    assert order.data["payment_ref"].startswith("pay_")
    assert gateway.total("capture") == Decimal("52.48")


def test_a_capture_that_times_out_is_charged_once_when_retried_with_the_same_key(
    engine: lifecycle.Engine, gateway: SandboxGateway
) -> None:
    order = unpaid(engine)
    gateway.fail_next("capture", "timeout")
    before = rows(engine)

    with pytest.raises(lifecycle.AdapterError) as timed_out:
        engine.fire("order", order.id, "pay", buyer(), idempotency_key="checkout-7")
    assert timed_out.value.timeout
    assert rows(engine) == before  # the money moved, the transition did not
    paid = engine.fire("order", order.id, "pay", buyer(), idempotency_key="checkout-7")

    assert paid.state == "paid"
    assert len([e for e in gateway.ledger if e.operation == "capture"]) == 1
    assert gateway.total("capture") == Decimal("52.48")


def test_a_declined_payment_is_refused_and_writes_nothing(
    engine: lifecycle.Engine, gateway: SandboxGateway
) -> None:
    order = unpaid(engine)
    gateway.fail_next("capture", "decline")
    before = rows(engine)

    with pytest.raises(lifecycle.PaymentDeclined):
        engine.fire("order", order.id, "pay", buyer())

    assert rows(engine) == before
    assert engine.get("order", order.id).state == "awaiting_payment"


def test_a_refund_failing_mid_transition_leaves_everything_unchanged(
    engine: lifecycle.Engine, gateway: SandboxGateway, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "cancel_requested")
    gateway.fail_next("refund", "error")
    before, deadlines = rows(engine), engine.deadlines(kind="order", id=order.id)

    with pytest.raises(lifecycle.AdapterError) as failed:
        engine.fire("order", order.id, "accept_cancel", seller())

    assert (failed.value.adapter, failed.value.operation) == ("sandbox", "refund")
    assert rows(engine) == before
    assert engine.deadlines(kind="order", id=order.id) == deadlines
    assert engine.balances("order", order.id)["USD"]["escrow"] == Decimal("52.48")
    assert engine.fire("order", order.id, "accept_cancel", seller()).state == "cancelled"
    assert gateway.total("refund") == Decimal("52.48")


def test_release_pays_the_seller_out_through_the_gateway(
    engine: lifecycle.Engine, gateway: SandboxGateway, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "funds_released")

    assert gateway.total("payout", "s-1") == Decimal(order.data["payout"]) == Decimal("50.23")
    assert gateway.total("charge_fee", "s-1") == Decimal("1000.00")


# --- shipping -------------------------------------------------------------------------------


def test_offline_shipping_refuses_a_waybill_with_a_wrong_check_digit(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "paid")
    before = rows(engine)

    with pytest.raises(lifecycle.InvalidWaybill) as invalid:
        engine.fire("order", order.id, "ship_offline", seller(),
                    {"checklist": CHECKLIST, "carrier": "dhl", "waybill": "1234567890"})

    assert "check digit" in str(invalid.value)
    assert rows(engine) == before


def test_offline_shipping_accepts_an_eleven_digit_dhl_waybill(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "paid")

    shipped = engine.fire("order", order.id, "ship_offline", seller(),
                          {"checklist": CHECKLIST, "carrier": "dhl", "waybill": "7389 1051 146"})

    assert shipped.state == "shipped"
    assert shipped.data["waybill"] == "73891051146"
    assert engine.history("order", order.id)[-1].trigger == "ship_offline"


def test_an_order_with_an_unknown_carrier_is_refused_naming_it(engine: lifecycle.Engine) -> None:
    # The buyer's choice is checked when the order is placed: the seller ships with that one.
    seller_in(engine, "active")
    before = rows(engine)
    logistics = {"carrier": "pigeon", "service": "express", "shipping_fee": "7.50",
                 "delivery_days": 20}

    with pytest.raises(lifecycle.InvalidPayload) as unknown:
        engine.create("order", buyer(), order_payload(logistics=logistics))

    assert "pigeon" in str(unknown.value)
    assert rows(engine) == before


def test_offline_shipping_with_an_unknown_carrier_is_refused_naming_the_buyers(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "paid")
    with pytest.raises(lifecycle.GuardFailed) as refused:
        engine.fire("order", order.id, "ship_offline", seller(),
                    {"checklist": CHECKLIST, "carrier": "pigeon", "waybill": "1234567891"})
    assert refused.value.rule == "shipping.buyers_carrier"
    assert "the buyer chose dhl" in str(refused.value)
    assert "pigeon" in str(refused.value)


def test_online_shipping_books_a_pickup_and_the_carriers_scans_move_the_order(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, dhl: SandboxCarrier
) -> None:
    order = order_in(engine, clock, "paid")
    booked = engine.fire("order", order.id, "book_pickup", seller(), PICKUP)
    assert booked.state == "awaiting_pickup"
    dhl.validate_waybill(booked.data["waybill"])

    clock.advance(timedelta(days=60))
    for push in dhl.take_pushes():
        engine.ingest_tracking("dhl", push.body, push.headers)

    delivered = engine.get("order", order.id)
    assert delivered.state == "delivered"
    moves = [h.trigger for h in engine.history("order", order.id) if h.source != h.dest]
    assert moves[-3:] == ["confirm_pickup", "tracking_in_transit", "tracking_delivered"]
    assert engine.check() == []


def shipped_offline(engine: lifecycle.Engine, clock: lifecycle.SimulatedClock,
                    dhl: SandboxCarrier) -> lifecycle.Aggregate:
    order = order_in(engine, clock, "shipped")
    dhl.register_shipment(order.data["waybill"], origin="CN", destination="PT")
    return order


def test_duplicate_pushes_are_ignored(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, dhl: SandboxCarrier
) -> None:
    shipped_offline(engine, clock, dhl)
    clock.advance(timedelta(days=2))
    pushes = dhl.take_pushes()
    for push in pushes:
        engine.ingest_tracking("dhl", push.body, push.headers)
    history = rows(engine)["history"]

    for push in pushes:
        assert engine.ingest_tracking("dhl", push.body, push.headers) == []

    assert rows(engine)["history"] == history


def test_a_late_scan_is_recorded_but_never_moves_the_order_back(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, dhl: SandboxCarrier
) -> None:
    order = shipped_offline(engine, clock, dhl)
    clock.advance(timedelta(days=60))
    pushes = list(dhl.take_pushes())
    statuses = [json.loads(p.body)["events"][0]["status"] for p in pushes]
    late = pushes[statuses.index("in_transit")]
    for push in [p for p in pushes if p is not late]:
        engine.ingest_tracking("dhl", push.body, push.headers)
    delivered = engine.get("order", order.id)
    assert delivered.state == "delivered"

    engine.ingest_tracking("dhl", late.body, late.headers)

    after = engine.get("order", order.id)
    assert after == delivered  # no transition: the same state, version and data
    last = engine.tracking(order.id)[-1]
    assert (last.status, last.moved) == ("in_transit", False)  # recorded as it came
    assert last.event_id == json.loads(late.body)["events"][0]["event_id"]
    assert engine.history("order", order.id)[-1].trigger == "tracking_delivered"


def test_a_lost_parcel_is_recorded_as_an_exception(
    db_url: str, clock: lifecycle.SimulatedClock, gateway: SandboxGateway
) -> None:
    from lifecycle.adapters.timelines import TrackingRates

    losing = SandboxCarrier("dhl", clock=clock, secret=SECRET, tracking=TrackingRates(lost=1.0))
    with lifecycle.open(db_url, clock=clock, payments=gateway, carriers={"dhl": losing}) as engine:
        order = shipped_offline(engine, clock, losing)
        clock.advance(timedelta(days=60))
        for push in losing.take_pushes():
            engine.ingest_tracking("dhl", push.body, push.headers)

        after = engine.get("order", order.id)
        assert after.state in ("shipped", "in_transit")
        assert any(e.exception_kind == "lost" for e in engine.tracking(order.id))
        assert after.data["exception_kinds"] == ["lost"]


def test_polling_applies_the_same_events_as_pushes(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, dhl: SandboxCarrier
) -> None:
    order = shipped_offline(engine, clock, dhl)
    clock.advance(timedelta(days=60))

    assert engine.track(order.id).state == "delivered"
    history = rows(engine)["history"]
    assert engine.track(order.id).state == "delivered"
    assert rows(engine)["history"] == history


# --- payment callbacks ------------------------------------------------------------------------


def callback_for_capture(gateway: SandboxGateway, order_id: str) -> SignedMessage:
    """A capture the gateway made on its own (a hosted checkout), and its signed callback."""
    from lifecycle.adapters.ports import Money

    gateway.capture(order_id, Money(Decimal("52.48"), "USD"), key=f"hosted-{order_id}")
    (callback,) = gateway.take_callbacks()
    return callback


def test_a_signed_capture_callback_pays_the_order_once(
    engine: lifecycle.Engine, gateway: SandboxGateway
) -> None:
    order = unpaid(engine)
    callback = callback_for_capture(gateway, order.id)

    paid = engine.ingest_payment_callback("sandbox", callback.body, callback.headers)
    assert paid is not None
    assert paid.state == "paid"
    history = rows(engine)["history"]
    replayed = engine.ingest_payment_callback("sandbox", callback.body, callback.headers)

    assert replayed is not None
    assert replayed.version == paid.version
    assert rows(engine)["history"] == history
    assert engine.history("order", order.id)[-1].actor == lifecycle.Actor("system", "sandbox")


@pytest.mark.parametrize("tamper", ["body", "signature", "unsigned"])
def test_a_tampered_or_unsigned_callback_is_refused_and_writes_nothing(
    engine: lifecycle.Engine, gateway: SandboxGateway, tamper: str
) -> None:
    order = unpaid(engine)
    callback = callback_for_capture(gateway, order.id)
    body, headers = callback.body, dict(callback.headers)
    if tamper == "body":
        body = body.replace(b"52.48", b"0.01")
    elif tamper == "signature":
        headers = {k: v[:-2] + "00" for k, v in headers.items()}
    else:
        headers = {}
    before = rows(engine)

    with pytest.raises(lifecycle.SignatureInvalid):
        engine.ingest_payment_callback("sandbox", body, headers)

    assert rows(engine) == before
    assert engine.get("order", order.id).state == "awaiting_payment"


def test_the_callback_of_a_capture_the_engine_made_changes_nothing(
    engine: lifecycle.Engine, gateway: SandboxGateway
) -> None:
    order = engine.fire("order", unpaid(engine).id, "pay", buyer())
    (callback,) = gateway.take_callbacks()
    history = rows(engine)["history"]

    again = engine.ingest_payment_callback("sandbox", callback.body, callback.headers)

    assert again is not None
    assert again.version == order.version
    assert rows(engine)["history"] == history


def test_payment_by_callback_as_system_needs_no_capture(
    engine: lifecycle.Engine, gateway: SandboxGateway
) -> None:
    order = unpaid(engine)
    paid = engine.fire("order", order.id, "pay", SYSTEM, {"payment_ref": "pay_external_1"})

    assert paid.data["payment_ref"] == "pay_external_1"
    assert gateway.total("capture") == 0
    assert cast(str, paid.state) == "paid"


# --- deliveries in any form frameworks use; anything else an AdapterError ----------------


def asgi(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """Headers as an ASGI server hands them over: lower-case byte pairs."""
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]


@pytest.mark.parametrize("form", ["bytes-mapping", "asgi-pairs", "str-pairs-upper-case"])
def test_a_callback_with_bytes_or_paired_headers_and_a_str_body_pays_the_order(
    engine: lifecycle.Engine, gateway: SandboxGateway, form: str
) -> None:
    order = unpaid(engine)
    callback = callback_for_capture(gateway, order.id)
    headers: Any = {
        "bytes-mapping": {k.encode(): v.encode() for k, v in callback.headers.items()},
        "asgi-pairs": asgi(callback.headers),
        "str-pairs-upper-case": [(k.upper(), v) for k, v in callback.headers.items()],
    }[form]

    paid = engine.ingest_payment_callback("sandbox", callback.body.decode(), headers)

    assert paid is not None
    assert paid.state == "paid"
    assert engine.history("order", order.id)[-1].actor == lifecycle.Actor("system", "sandbox")


def test_a_push_with_asgi_headers_and_a_str_body_moves_the_order(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, dhl: SandboxCarrier
) -> None:
    order = shipped_offline(engine, clock, dhl)
    clock.advance(timedelta(days=60))

    for push in dhl.take_pushes():
        engine.ingest_tracking("dhl", push.body.decode(), asgi(push.headers))

    assert engine.get("order", order.id).state == "delivered"


def deliver(engine: lifecycle.Engine, ingest: str, body: Any, headers: Any) -> Any:
    """A gateway's callback to the sandbox gateway, or a carrier's push from dhl."""
    if ingest == "callback":
        return engine.ingest_payment_callback("sandbox", body, headers)
    return engine.ingest_tracking("dhl", body, headers)


BAD_DELIVERIES = [
    pytest.param(None, {}, "body must be bytes or str", id="no-body"),
    pytest.param(12, {}, "body must be bytes or str", id="int-body"),
    pytest.param("\ud800", {}, "not text UTF-8 can carry", id="surrogate-body"),
    pytest.param(b"{}", None, "headers must be a mapping", id="no-headers"),
    pytest.param(b"{}", "x-lifecycle-signature: sha256=00", "headers must be a mapping", id="str"),
    pytest.param(b"{}", [(b"x-lifecycle-signature",)], "not a (name, value) pair", id="single"),
    pytest.param(b"{}", {"x-lifecycle-signature": 1}, "must be str or bytes", id="int-value"),
]


@pytest.mark.parametrize(("body", "headers", "says"), BAD_DELIVERIES)
@pytest.mark.parametrize("ingest", ["callback", "push"])
def test_a_delivery_in_no_readable_form_is_refused_and_writes_nothing(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, body: Any, headers: Any, says: str,
    ingest: str,
) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    before = rows(engine)

    with pytest.raises(lifecycle.AdapterError) as refused:
        deliver(engine, ingest, body, headers)

    assert says in str(refused.value)
    assert refused.value.operation == ("parse_callback" if ingest == "callback" else "parse_push")
    assert rows(engine) == before
    assert engine.get("order", order.id) == order


@pytest.mark.parametrize("ingest", ["callback", "push"])
def test_a_signed_100000_deep_delivery_is_an_adapter_error(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, ingest: str
) -> None:
    order_in(engine, clock, "awaiting_payment")
    body = b"[" * 100_000 + b"]" * 100_000
    headers = signed(body, clock, SECRET)
    before = rows(engine)

    with pytest.raises(lifecycle.AdapterError, match="malformed"):
        deliver(engine, ingest, body, headers)

    assert rows(engine) == before


def test_a_pushed_scan_with_a_nul_is_refused_before_its_waybill_is_looked_up(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, dhl: SandboxCarrier
) -> None:
    order = shipped_offline(engine, clock, dhl)
    event = {"event_id": "e-1", "waybill": order.data["waybill"] + "\x00", "status": "in_transit",
             "at": clock.now().isoformat()}
    body = json.dumps({"carrier": "dhl", "events": [event]}).encode()
    before = rows(engine)

    with pytest.raises(lifecycle.AdapterError, match="event #1: waybill holds a NUL"):
        engine.ingest_tracking("dhl", body, signed(body, clock, SECRET))

    assert rows(engine) == before


class BrittleGateway(SandboxGateway):
    """An outside gateway whose parser fails on a bad body with whatever it happens to raise."""

    def parse_callback(self, body: bytes, headers: Mapping[str, str]) -> PaymentEvent:
        raise ValueError("unexpected end of data")


def test_an_outside_gateways_own_failure_on_a_callback_is_an_adapter_error(
    db_url: str, clock: lifecycle.SimulatedClock
) -> None:
    with lifecycle.open(db_url, clock=clock, payments=BrittleGateway(clock=clock, secret=SECRET)) as engine:
        order_in(engine, clock, "awaiting_payment")
        before = rows(engine)

        with pytest.raises(lifecycle.AdapterError) as refused:
            engine.ingest_payment_callback("sandbox", b"{", {})

        assert str(refused.value) == ("sandbox parse_callback failed: unreadable: ValueError: "
                                      "unexpected end of data")
        assert rows(engine) == before


def test_tracking_from_a_carrier_named_by_no_string_is_an_invalid_payload(
    engine: lifecycle.Engine
) -> None:
    with pytest.raises(lifecycle.InvalidPayload) as refused:
        engine.ingest_tracking(["dhl"], b"{}", {})  # type: ignore[arg-type]

    assert refused.value.field == "carrier"
