"""The sandbox gateway and carriers: idempotent by key, signed webhooks, injected failures, quotes
that follow weight, volume, destination and service level, and timelines fixed by the seed."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from lifecycle.adapters.errors import (
    AdapterError,
    EventsRejected,
    InvalidWaybill,
    PaymentDeclined,
    SignatureInvalid,
)
from lifecycle.adapters.faults import FaultRates
from lifecycle.adapters.ports import Money, Parcel, Quote
from lifecycle.adapters.sandbox import SANDBOX_CARRIERS, SandboxCarrier, SandboxGateway
from lifecycle.adapters.timelines import TrackingRates
from lifecycle.adapters.webhooks import SIGNATURE_HEADER, DeliveryRates, SignedMessage
from lifecycle.clock import SimulatedClock
from lifecycle.errors import InvalidPayload
from tests.builders import signed

SECRET = b"sandbox-secret"


def usd(amount: str) -> Money:
    return Money(Decimal(amount), "USD")


def parcel(kg: str, length: int = 30, width: int = 20, height: int = 10) -> Parcel:
    return Parcel(Decimal(kg), Decimal(length), Decimal(width), Decimal(height))


@pytest.fixture
def gateway(clock: SimulatedClock) -> SandboxGateway:
    return SandboxGateway(clock=clock, secret=SECRET, seed=1)


def carrier(
    name: str,
    clock: SimulatedClock,
    seed: int = 1,
    tracking: TrackingRates | None = None,
    pushes: DeliveryRates | None = None,
) -> SandboxCarrier:
    return SandboxCarrier(name, clock=clock, secret=SECRET, seed=seed, tracking=tracking, pushes=pushes)


# --- money values -------------------------------------------------------------------------


def test_money_refuses_floats_and_sub_cent_amounts() -> None:
    with pytest.raises(InvalidPayload, match="must be a Decimal, got float"):
        Money(1.5, "USD")  # type: ignore[arg-type]
    with pytest.raises(InvalidPayload, match="USD allows 2 decimal places"):
        usd("1.001")
    with pytest.raises(InvalidPayload, match="greater than zero"):
        usd("0")


def test_parcel_refuses_floats_and_non_positive_sizes() -> None:
    with pytest.raises(InvalidPayload, match=r"parcel\.weight_kg"):
        Parcel(2.0, Decimal(1), Decimal(1), Decimal(1))  # type: ignore[arg-type]
    with pytest.raises(InvalidPayload, match=r"parcel\.height_cm: must be greater than zero"):
        parcel("1", height=0)


# --- payments: idempotency and faults -----------------------------------------------------


def test_capture_that_times_out_then_succeeds_on_retry_with_the_same_key_is_charged_once(
    gateway: SandboxGateway,
) -> None:
    gateway.fail_next("capture", "timeout")  # the gateway charges, the reply is lost

    with pytest.raises(AdapterError) as timed_out:
        gateway.capture("o-1", usd("25.00"), "pay-o-1")
    ref = gateway.capture("o-1", usd("25.00"), "pay-o-1")

    assert timed_out.value.timeout
    assert timed_out.value.retryable
    assert timed_out.value.adapter == "sandbox"
    assert timed_out.value.operation == "capture"
    assert gateway.attempts("capture", "pay-o-1") == 2
    assert [(e.operation, e.ref, e.amount) for e in gateway.ledger] == [("capture", ref, usd("25.00"))]
    assert gateway.total("capture", "o-1") == Decimal("25.00")
    callbacks = gateway.take_callbacks()
    assert len(callbacks) == 1
    assert gateway.parse_callback(callbacks[0].body, callbacks[0].headers).payment_ref == ref


def test_capture_timing_out_before_it_arrives_charges_nothing_until_the_retry(
    gateway: SandboxGateway,
) -> None:
    gateway.fail_next("capture", "timeout_unprocessed")

    with pytest.raises(AdapterError, match="timed out before the provider received"):
        gateway.capture("o-1", usd("25.00"), "pay-o-1")
    assert gateway.ledger == ()
    gateway.capture("o-1", usd("25.00"), "pay-o-1")

    assert gateway.total("capture") == Decimal("25.00")


def test_same_key_returns_the_same_reference_and_never_captures_twice(gateway: SandboxGateway) -> None:
    first = gateway.capture("o-1", usd("10.00"), "k-1")
    again = gateway.capture("o-1", usd("10.00"), "k-1")
    other = gateway.capture("o-1", usd("10.00"), "k-2")

    assert first == again != other
    assert len(gateway.ledger) == 2
    assert gateway.total("capture", "o-1") == Decimal("20.00")


def test_same_key_for_a_different_request_is_refused(gateway: SandboxGateway) -> None:
    gateway.capture("o-1", usd("10.00"), "k-1")

    with pytest.raises(AdapterError, match="'k-1' was already used for a different request"):
        gateway.capture("o-1", usd("11.00"), "k-1")
    assert gateway.total("capture") == Decimal("10.00")


def test_a_decline_is_replayed_to_a_retry_with_the_same_key(gateway: SandboxGateway) -> None:
    gateway.fail_next("capture", "decline")

    with pytest.raises(PaymentDeclined, match="card declined"):
        gateway.capture("o-1", usd("10.00"), "k-1")
    with pytest.raises(PaymentDeclined):
        gateway.capture("o-1", usd("10.00"), "k-1")

    assert gateway.ledger == ()
    [failed] = [gateway.parse_callback(m.body, m.headers) for m in gateway.take_callbacks()]
    assert (failed.kind, failed.order_id, failed.payment_ref) == ("failed", "o-1", None)
    assert failed.reason == "card declined by the issuer"


def test_a_server_error_is_retryable_and_moves_no_money(gateway: SandboxGateway) -> None:
    gateway.fail_next("payout", "error")

    with pytest.raises(AdapterError) as failed:
        gateway.payout("s-1", usd("95.00"), "po-1")

    assert failed.value.retryable
    assert not failed.value.timeout
    assert gateway.ledger == ()


def test_refunds_never_exceed_the_capture_and_retries_refund_once(gateway: SandboxGateway) -> None:
    ref = gateway.capture("o-1", usd("30.00"), "pay")
    gateway.refund(ref, usd("10.00"), "r-1")
    gateway.fail_next("refund", "timeout")
    with pytest.raises(AdapterError, match="timed out waiting for the provider's reply"):
        gateway.refund(ref, usd("15.00"), "r-2")  # the money moved; only the reply was lost
    gateway.refund(ref, usd("15.00"), "r-2")

    with pytest.raises(AdapterError, match=r"exceeds what is left of the capture \(5.00 USD\)"):
        gateway.refund(ref, usd("5.01"), "r-3")
    with pytest.raises(AdapterError, match="no capture with reference 'pay_nope'"):
        gateway.refund("pay_nope", usd("1.00"), "r-4")
    with pytest.raises(AdapterError, match="refund in EUR of a capture in USD"):
        gateway.refund(ref, Money(Decimal("1.00"), "EUR"), "r-5")
    assert gateway.total("refund", ref) == Decimal("25.00")


def test_payouts_and_fees_are_idempotent_by_key(gateway: SandboxGateway) -> None:
    gateway.payout("s-1", usd("95.00"), "po-1")
    gateway.payout("s-1", usd("95.00"), "po-1")
    fee = gateway.charge_fee("s-1", usd("1000.00"), "fee-2026")

    assert fee == gateway.charge_fee("s-1", usd("1000.00"), "fee-2026")
    assert gateway.total("payout", "s-1") == Decimal("95.00")
    assert gateway.total("charge_fee", "s-1") == Decimal("1000.00")


def test_seeded_fault_rates_give_the_same_failures_for_the_same_seed() -> None:
    def outcomes(seed: int) -> list[str]:
        gateway = SandboxGateway(clock=SimulatedClock(),
                                 secret=SECRET, seed=seed, faults=FaultRates(decline=0.2, timeout=0.3))
        results = []
        for n in range(40):
            try:
                gateway.capture(f"o-{n}", usd("10.00"), f"k-{n}")
                results.append("ok")
            except AdapterError as exc:
                results.append(type(exc).__name__ + ("/timeout" if exc.timeout else ""))
        return results

    assert outcomes(7) == outcomes(7)
    assert {"ok", "PaymentDeclined", "AdapterError/timeout"} <= set(outcomes(7))


def test_references_and_event_ids_are_fixed_by_seed_and_key() -> None:
    one = SandboxGateway(clock=SimulatedClock(), secret=SECRET, seed=3).capture("o-1", usd("1.00"), "k")
    two = SandboxGateway(clock=SimulatedClock(), secret=SECRET, seed=3).capture("o-1", usd("1.00"), "k")
    other = SandboxGateway(clock=SimulatedClock(), secret=SECRET, seed=4).capture("o-1", usd("1.00"), "k")

    assert one == two != other


# --- payment callbacks --------------------------------------------------------------------


def test_a_valid_callback_parses_to_the_event(gateway: SandboxGateway) -> None:
    ref = gateway.capture("o-1", usd("25.00"), "pay-o-1")
    [message] = gateway.take_callbacks()

    event = gateway.parse_callback(message.body, message.headers)

    assert (event.kind, event.order_id, event.payment_ref) == ("captured", "o-1", ref)
    assert event.money == usd("25.00")
    assert event.event_id.startswith("evt_")


def test_a_replayed_callback_parses_to_the_same_event_id(gateway: SandboxGateway) -> None:
    gateway.inject_callback(duplicate=True)
    gateway.capture("o-1", usd("25.00"), "pay-o-1")

    first, second = gateway.take_callbacks()

    assert first == second
    replayed = gateway.parse_callback(second.body, second.headers)
    assert gateway.parse_callback(first.body, first.headers) == replayed


def test_a_tampered_callback_is_refused(gateway: SandboxGateway) -> None:
    gateway.capture("o-1", usd("25.00"), "pay-o-1")
    [message] = gateway.take_callbacks()
    tampered = message.body.replace(b'"25.00"', b'"2500.00"')

    with pytest.raises(SignatureInvalid, match="no signature matches the body") as refused:
        gateway.parse_callback(tampered, message.headers)
    assert refused.value.operation == "parse_callback"


def test_an_unsigned_callback_is_refused(gateway: SandboxGateway) -> None:
    gateway.capture("o-1", usd("25.00"), "pay-o-1")
    [message] = gateway.take_callbacks()

    with pytest.raises(SignatureInvalid,
                       match="unsigned: no webhook-id, webhook-timestamp, webhook-signature header"):
        gateway.parse_callback(message.body, {})
    with pytest.raises(SignatureInvalid, match="malformed webhook-signature"):
        gateway.parse_callback(message.body, {**message.headers, SIGNATURE_HEADER: "md5=abc"})


def test_a_callback_signed_with_another_secret_is_refused(
    gateway: SandboxGateway, clock: SimulatedClock
) -> None:
    body = json.dumps({"event_id": "evt_x", "kind": "captured"}).encode()

    with pytest.raises(SignatureInvalid):
        gateway.parse_callback(body, signed(body, clock, b"someone-else"))


def test_signature_header_name_is_case_insensitive(gateway: SandboxGateway) -> None:
    gateway.capture("o-1", usd("25.00"), "pay-o-1")
    [message] = gateway.take_callbacks()

    event = gateway.parse_callback(message.body, {k.lower(): v for k, v in message.headers.items()})

    assert event.kind == "captured"


def test_a_signed_but_malformed_callback_is_an_adapter_error(
    gateway: SandboxGateway, clock: SimulatedClock
) -> None:
    body = b'{"kind": "captured"}'

    with pytest.raises(AdapterError, match="malformed callback"):
        gateway.parse_callback(body, signed(body, clock, SECRET))


def header_forms(headers: dict[str, str]) -> dict[str, Any]:
    """The same headers in the forms web frameworks hand them over."""
    return {
        "str-mapping": headers,
        "bytes-mapping": {k.encode(): v.encode() for k, v in headers.items()},
        "asgi-pairs": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "str-pairs": [(k.upper(), v) for k, v in headers.items()],
        "generator": ((k, v) for k, v in headers.items()),
    }


@pytest.mark.parametrize("form", ["str-mapping", "bytes-mapping", "asgi-pairs", "str-pairs",
                                  "generator"])
@pytest.mark.parametrize("as_text", [False, True])
def test_a_callback_is_read_from_any_header_form_and_a_str_body(
    gateway: SandboxGateway, form: str, as_text: bool
) -> None:
    ref = gateway.capture("o-1", usd("25.00"), "pay-o-1")
    [message] = gateway.take_callbacks()
    body = message.body.decode() if as_text else message.body

    event = gateway.parse_callback(body, header_forms(dict(message.headers))[form])

    assert (event.kind, event.order_id, event.payment_ref) == ("captured", "o-1", ref)


@pytest.mark.parametrize("form", ["str-mapping", "bytes-mapping", "asgi-pairs", "str-pairs"])
def test_a_push_is_read_from_any_header_form_and_a_str_body(clock: SimulatedClock, form: str) -> None:
    dhl = carrier("dhl", clock)
    dhl.register_shipment("3318810025", origin="CN", destination="PT")
    clock.advance(timedelta(days=30))
    pushes = dhl.take_pushes()

    events = [event for push in pushes
              for event in dhl.parse_push(push.body.decode(), header_forms(dict(push.headers))[form])]

    assert events
    assert {event.waybill for event in events} == {"3318810025"}


BAD_DELIVERIES = [
    pytest.param(42, {}, "the body must be bytes or str, got int", id="int-body"),
    pytest.param(None, {}, "the body must be bytes or str, got NoneType", id="no-body"),
    pytest.param({"events": []}, {}, "the body must be bytes or str, got dict", id="dict-body"),
    pytest.param("\ud800", {}, "the body is not text UTF-8 can carry", id="surrogate-body"),
    pytest.param(b"{}", None, "the headers must be a mapping or (name, value) pairs, got NoneType",
                 id="no-headers"),
    pytest.param(b"{}", "webhook-signature: v1,AA==", "got str", id="str-headers"),
    pytest.param(b"{}", b"raw", "got bytes", id="bytes-headers"),
    pytest.param(b"{}", 7, "got int", id="int-headers"),
    pytest.param(b"{}", [("a", "b", "c")], "a header is not a (name, value) pair", id="triple"),
    pytest.param(b"{}", ["ab"], "a header is not a (name, value) pair", id="not-a-pair"),
    pytest.param(b"{}", {"webhook-signature": 5}, "must be str or bytes, got int", id="int-value"),
    pytest.param(b"{}", {None: "x"}, "must be str or bytes, got NoneType", id="none-name"),
]


@pytest.mark.parametrize(("body", "headers", "says"), BAD_DELIVERIES)
def test_a_delivery_in_no_readable_form_is_an_adapter_error(
    gateway: SandboxGateway, clock: SimulatedClock, body: Any, headers: Any, says: str
) -> None:
    parsers = {"parse_callback": gateway.parse_callback, "parse_push": carrier("dhl", clock).parse_push}
    for operation, parse in parsers.items():
        with pytest.raises(AdapterError) as refused:
            parse(body, headers)
        assert refused.value.operation == operation
        assert type(refused.value) is AdapterError
        assert "malformed delivery: " in str(refused.value)
        assert says in str(refused.value)


def test_a_repeated_signature_header_is_read_as_all_its_signatures(
    gateway: SandboxGateway, clock: SimulatedClock
) -> None:
    gateway.capture("o-1", usd("25.00"), "pay-o-1")
    [message] = gateway.take_callbacks()
    genuine = message.headers[SIGNATURE_HEADER]
    forged = signed(message.body, clock, b"someone-else")[SIGNATURE_HEADER]
    others = [(name, value) for name, value in message.headers.items() if name != SIGNATURE_HEADER]

    # Standard Webhooks: one matching signature is enough (a sender rotating signs with both),
    # wherever it stands; forged ones around it change nothing, and forged ones alone fail.
    for pair in ((forged, genuine), (genuine, forged)):
        sent = [*others, *((SIGNATURE_HEADER, value) for value in pair)]
        assert gateway.parse_callback(message.body, sent).kind == "captured"
    with pytest.raises(SignatureInvalid, match="no signature matches"):
        gateway.parse_callback(message.body, [*others, (SIGNATURE_HEADER, forged),
                                              (SIGNATURE_HEADER.upper(), forged)])


@pytest.mark.parametrize("nesting", ["[", '{"events": '])
def test_a_signed_50000_deep_push_is_an_adapter_error(clock: SimulatedClock, nesting: str) -> None:
    body = (nesting * 50_000).encode()  # deep, and within the body cap

    with pytest.raises(AdapterError, match="malformed push"):
        carrier("dhl", clock).parse_push(body, signed(body, clock, SECRET))


def test_a_signed_100000_deep_callback_is_an_adapter_error(
    gateway: SandboxGateway, clock: SimulatedClock
) -> None:
    body = b"[" * 100_000 + b"]" * 100_000

    with pytest.raises(AdapterError, match="malformed callback"):
        gateway.parse_callback(body, signed(body, clock, SECRET))


@pytest.mark.parametrize("events", ['"not a list"', "{}", "null"])
def test_a_signed_push_whose_events_are_not_events_is_an_adapter_error(
    clock: SimulatedClock, events: str
) -> None:
    body = f'{{"events": {events}}}'.encode()

    with pytest.raises(AdapterError, match="malformed push"):
        carrier("dhl", clock).parse_push(body, signed(body, clock, SECRET))


@pytest.mark.parametrize("events", ["[1]", '[["a"]]'])
def test_a_signed_push_of_items_that_are_not_events_rejects_each_one(
    clock: SimulatedClock, events: str
) -> None:
    body = f'{{"events": {events}}}'.encode()

    with pytest.raises(EventsRejected, match="1 of 1 events rejected") as refused:
        carrier("dhl", clock).parse_push(body, signed(body, clock, SECRET))
    assert refused.value.events == []


def test_a_late_callback_arrives_after_a_later_one(gateway: SandboxGateway) -> None:
    gateway.inject_callback(late=True)
    ref = gateway.capture("o-1", usd("25.00"), "pay-o-1")

    assert gateway.take_callbacks() == []
    gateway.refund(ref, usd("25.00"), "refund-o-1")
    kinds = [gateway.parse_callback(m.body, m.headers).kind for m in gateway.take_callbacks()]

    assert kinds == ["refunded", "captured"]


def test_duplicate_and_late_rates_are_drawn_from_the_seed() -> None:
    def deliveries(seed: int) -> list[SignedMessage]:
        gateway = SandboxGateway(clock=SimulatedClock(),
                                 secret=SECRET, seed=seed, callbacks=DeliveryRates(duplicate=0.3, late=0.3))
        taken = []
        for n in range(20):
            gateway.capture(f"o-{n}", usd("1.00"), f"k-{n}")
            taken += gateway.take_callbacks()
        return taken + gateway.flush_callbacks()

    first = deliveries(5)
    orders = [int(json.loads(m.body)["order_id"].removeprefix("o-")) for m in first]
    assert first == deliveries(5)
    assert len(orders) > len(set(orders)) == 20  # some twice, none lost
    assert orders != sorted(orders)  # some late


# --- quotes -------------------------------------------------------------------------------


def quote(
    name: str, clock: SimulatedClock, p: Parcel, to: str = "DE", service: str | None = None
) -> Quote:
    quotes = carrier(name, clock).quote(p, "CN", to)
    return next(q for q in quotes if service in (None, q.service))


def test_a_heavier_parcel_costs_more(clock: SimulatedClock) -> None:
    light, heavy = quote("ups", clock, parcel("1")), quote("ups", clock, parcel("10"))

    assert heavy.service == light.service
    assert heavy.price > light.price


def test_volumetric_weight_dominates_for_a_light_bulky_parcel(clock: SimulatedClock) -> None:
    bulky = quote("dhl", clock, parcel("1", 60, 50, 40))  # 120 000 cm³ / 5000 = 24 kg
    dense = quote("dhl", clock, parcel("24"))

    assert bulky.chargeable_weight == Decimal(24)
    assert bulky.price == dense.price


def test_express_is_faster_and_dearer_than_economy(clock: SimulatedClock) -> None:
    express = quote("fedex", clock, parcel("2"), service="express")
    economy = quote("fedex", clock, parcel("2"), service="economy")

    assert express.transit_days < economy.transit_days
    assert express.price > economy.price


def test_sea_freight_is_the_cheapest_way_to_ship_500_kg(clock: SimulatedClock) -> None:
    pallet = parcel("500", 120, 100, 100)
    offers = [q for name in SANDBOX_CARRIERS for q in carrier(name, clock).quote(pallet, "CN", "US")]

    cheapest = min(offers, key=lambda q: q.price)
    fastest = min(offers, key=lambda q: q.transit_days)

    assert (cheapest.carrier, cheapest.service) == ("sea_freight", "economy")
    assert cheapest.transit_days == max(q.transit_days for q in offers)
    assert fastest.carrier != "sea_freight"
    assert {q.carrier for q in offers} == {"sea_freight", "air_freight", "tnt"}  # the rest cap at 70 kg


def test_a_small_parcel_goes_cheapest_by_post_and_fastest_by_express(clock: SimulatedClock) -> None:
    offers = [q for name in SANDBOX_CARRIERS for q in carrier(name, clock).quote(parcel("0.5"), "CN", "FR")]

    assert min(offers, key=lambda q: q.price).carrier == "postal"
    assert min(offers, key=lambda q: q.transit_days).service == "express"


def test_further_destinations_cost_more_and_take_longer(clock: SimulatedClock) -> None:
    # same country, same region (east Asia), another listed region, rest of the world
    destinations = ("CN", "JP", "DE", "ZW")
    domestic, region, abroad, remote = (quote("dhl", clock, parcel("2"), to) for to in destinations)

    assert domestic.price < region.price < abroad.price < remote.price
    assert domestic.transit_days < region.transit_days < abroad.transit_days < remote.transit_days


def test_quotes_are_decimal_and_cheapest_first(clock: SimulatedClock) -> None:
    quotes = carrier("postal", clock).quote(parcel("1.5"), "CN", "BR")

    assert [q.price for q in quotes] == sorted(q.price for q in quotes)
    assert all(isinstance(q.price, Decimal) and q.currency == "USD" for q in quotes)


def test_an_unknown_country_is_refused(clock: SimulatedClock) -> None:
    with pytest.raises(InvalidPayload, match="destination: 'XX' is not an ISO 3166-1 alpha-2 country code"):
        carrier("dhl", clock).quote(parcel("1"), "CN", "XX")


# --- pickups ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SANDBOX_CARRIERS)
def test_a_booked_waybill_passes_the_carriers_own_validator(name: str, clock: SimulatedClock) -> None:
    dhl = carrier(name, clock)
    service = dhl.quote(parcel("1"), "CN", "DE")[0].service

    waybill = dhl.book_pickup("o-1", parcel("1"), "CN", "DE", service, "pickup-o-1")

    dhl.validate_waybill(waybill)


def test_booking_is_idempotent_by_key(clock: SimulatedClock) -> None:
    ups = carrier("ups", clock)
    ups.fail_next("book_pickup", "timeout")

    with pytest.raises(AdapterError, match="timed out") as timed_out:
        ups.book_pickup("o-1", parcel("1"), "CN", "DE", "express", "pickup-o-1")
    first = ups.book_pickup("o-1", parcel("1"), "CN", "DE", "express", "pickup-o-1")
    other = ups.book_pickup("o-2", parcel("1"), "CN", "DE", "express", "pickup-o-2")

    assert timed_out.value.timeout
    assert first != other
    with pytest.raises(AdapterError, match="already used for a different request"):
        ups.book_pickup("o-1", parcel("2"), "CN", "DE", "express", "pickup-o-1")


def test_booking_a_service_not_offered_is_refused(clock: SimulatedClock) -> None:
    with pytest.raises(AdapterError, match="economy is not offered for this parcel and route; offered: ex"):
        carrier("dhl", clock).book_pickup("o-1", parcel("1"), "CN", "DE", "economy", "k")
    with pytest.raises(AdapterError, match=r"offered: nothing \(too heavy\)"):
        carrier("dhl", clock).book_pickup("o-1", parcel("90"), "CN", "DE", "express", "k")


def test_a_pickup_cancelled_before_collection_is_never_scanned_again(clock: SimulatedClock) -> None:
    fedex = carrier("fedex", clock)
    waybill = fedex.book_pickup("o-1", parcel("1"), "CN", "DE", "express", "pickup")

    fedex.cancel_pickup(waybill, "cancel")
    fedex.cancel_pickup(waybill, "cancel")  # again: nothing more to do
    clock.advance(timedelta(days=30))

    assert [e.status for e in fedex.track(waybill)] == ["info_received"]


def test_a_pickup_already_collected_cannot_be_cancelled(clock: SimulatedClock) -> None:
    fedex = carrier("fedex", clock)
    waybill = fedex.book_pickup("o-1", parcel("1"), "CN", "DE", "express", "pickup")
    clock.advance(timedelta(hours=5))

    with pytest.raises(AdapterError, match="was already picked up"):
        fedex.cancel_pickup(waybill, "cancel")
    fedex.register_shipment("123456789012")  # shipped offline: nothing was booked
    with pytest.raises(AdapterError, match="no pickup booked for waybill"):
        fedex.cancel_pickup("123456789012", "cancel-2")
    with pytest.raises(AdapterError, match="invalid"):
        fedex.cancel_pickup("not-a-waybill", "cancel-3")


def test_a_pickup_booked_through_another_process_is_cancelled_on_trust(clock: SimulatedClock) -> None:
    booking_process, timer_worker = carrier("fedex", clock), carrier("fedex", clock)
    waybill = booking_process.book_pickup("o-1", parcel("1"), "CN", "DE", "express", "pickup")

    timer_worker.cancel_pickup(waybill, "cancel")  # does not raise: the carrier has the booking
    timer_worker.cancel_pickup(waybill, "cancel")  # nor again

    assert timer_worker.attempts("cancel_pickup", "cancel") == 2
    # Trust goes only as far as the number is one of this carrier's: a DHL number is not.
    with pytest.raises(AdapterError, match="invalid"):
        timer_worker.cancel_pickup("1234567891", "cancel-dhl")


# --- tracking -----------------------------------------------------------------------------


def booked(
    name: str, clock: SimulatedClock, seed: int = 1, tracking: TrackingRates | None = None
) -> tuple[SandboxCarrier, str]:
    sandbox = carrier(name, clock, seed, tracking)
    return sandbox, sandbox.book_pickup("o-1", parcel("1"), "CN", "DE", "express", "pickup-o-1")


def test_a_plain_timeline_runs_from_info_received_to_delivered_over_the_transit_days(
    clock: SimulatedClock,
) -> None:
    start = clock.now()
    dhl, waybill = booked("dhl", clock)

    assert [e.status for e in dhl.track(waybill)] == ["info_received"]
    clock.advance(timedelta(days=3))  # DHL Express CN → DE: 3 days
    events = dhl.track(waybill)

    assert [e.status for e in events] == [
        "info_received", "in_transit", "in_transit", "in_transit", "out_for_delivery", "delivered",
    ]
    assert events[0].at == start
    assert events[-1].at == start + timedelta(days=3)
    assert [e.at for e in events] == sorted(e.at for e in events)
    assert len({e.event_id for e in events}) == len(events)


def test_tracking_timelines_are_deterministic_for_a_seed(clock: SimulatedClock) -> None:
    rates = TrackingRates(delay=0.3, customs_hold=0.3, lost=0.1, returned=0.1)

    def timelines(seed: int) -> list[list[tuple[str, str | None]]]:
        sandbox = carrier("postal", SimulatedClock(clock.now()), seed, tracking=rates)
        waybills = [
            sandbox.book_pickup(f"o-{n}", parcel("1"), "CN", "DE", "standard", f"k-{n}") for n in range(30)
        ]
        return [[(e.status, e.exception_kind) for e in sandbox.timeline(w)] for w in waybills]

    assert timelines(11) == timelines(11)
    assert timelines(11) != timelines(12)


def test_a_lost_parcel_ends_in_an_exception_and_is_never_delivered(clock: SimulatedClock) -> None:
    tnt, waybill = booked("tnt", clock, tracking=TrackingRates(lost=1.0))
    clock.advance(timedelta(days=90))

    events = tnt.track(waybill)

    assert (events[-1].status, events[-1].exception_kind) == ("exception", "lost")
    assert "delivered" not in {e.status for e in events}


def test_a_returned_parcel_ends_returned_to_sender(clock: SimulatedClock) -> None:
    ups, waybill = booked("ups", clock, tracking=TrackingRates(returned=1.0))
    clock.advance(timedelta(days=90))

    statuses = [e.status for e in ups.track(waybill)]

    assert statuses[-1] == "returned_to_sender"
    assert "delivered" not in statuses


def test_a_customs_hold_and_a_delay_postpone_delivery(clock: SimulatedClock) -> None:
    plain_dhl, plain = booked("dhl", clock)
    held_dhl, held = booked("dhl", clock, tracking=TrackingRates(customs_hold=1.0, delay=1.0))

    held_events = held_dhl.timeline(held)

    kinds = [e.exception_kind for e in held_events if e.status == "exception"]
    assert kinds == ["delay", "customs_hold"]
    assert held_events[-1].status == "delivered"
    assert held_events[-1].at > plain_dhl.timeline(plain)[-1].at


def test_a_missed_pickup_never_gets_past_info_received(clock: SimulatedClock) -> None:
    dhl, waybill = booked("dhl", clock, tracking=TrackingRates(missed_pickup=1.0))
    clock.advance(timedelta(days=10))

    assert [e.status for e in dhl.track(waybill)] == ["info_received"]


def test_an_offline_waybill_starts_its_timeline_when_first_seen(clock: SimulatedClock) -> None:
    clock.advance(timedelta(days=2))
    dhl = carrier("dhl", clock)

    events = dhl.track("3318810025")

    assert [(e.status, e.at) for e in events] == [("info_received", clock.now())]
    with pytest.raises(InvalidWaybill, match="bad check digit"):
        dhl.track("3318810026")


# --- tracking pushes ----------------------------------------------------------------------


def test_pushes_are_signed_and_parse_to_the_events_so_far(clock: SimulatedClock) -> None:
    dhl, waybill = booked("dhl", clock)
    clock.advance(timedelta(days=1))

    pushed = [e for m in dhl.take_pushes() for e in dhl.parse_push(m.body, m.headers)]

    assert pushed == dhl.track(waybill)
    assert dhl.take_pushes() == []  # nothing new happened


def test_a_duplicate_push_carries_the_same_event_id(clock: SimulatedClock) -> None:
    dhl, _ = booked("dhl", clock)
    dhl.inject_push(duplicate=True)

    first, second = (dhl.parse_push(m.body, m.headers)[0] for m in dhl.take_pushes())

    assert first.event_id == second.event_id
    assert first == second


def test_a_late_push_arrives_after_a_later_event(clock: SimulatedClock) -> None:
    dhl, _ = booked("dhl", clock)
    dhl.inject_push(late=True)  # info_received is held back
    assert dhl.take_pushes() == []
    clock.advance(timedelta(days=3))

    statuses = [dhl.parse_push(m.body, m.headers)[0].status for m in dhl.take_pushes()]

    assert statuses[-1] == "info_received"
    assert statuses[-2] == "delivered"


def test_tampered_and_unsigned_pushes_are_refused(clock: SimulatedClock) -> None:
    dhl, _ = booked("dhl", clock)
    [message] = dhl.take_pushes()

    with pytest.raises(SignatureInvalid, match="no signature matches") as refused:
        dhl.parse_push(message.body.replace(b"info_received", b"delivered"), message.headers)
    with pytest.raises(SignatureInvalid, match="unsigned"):
        dhl.parse_push(message.body, {})
    assert (refused.value.adapter, refused.value.operation) == ("dhl", "parse_push")


def test_push_rates_are_drawn_from_the_seed(clock: SimulatedClock) -> None:
    def deliveries() -> list[SignedMessage]:
        local = SimulatedClock(clock.now())
        sandbox = carrier("ups", local, 9, pushes=DeliveryRates(duplicate=0.2, late=0.2))
        for n in range(5):
            sandbox.book_pickup(f"o-{n}", parcel("1"), "CN", "DE", "express", f"k-{n}")
        taken = []
        for _ in range(10):
            local.advance(timedelta(hours=12))
            taken += sandbox.take_pushes()
        return taken + sandbox.flush_pushes()

    assert deliveries() == deliveries()
