"""The sandbox adapters stay fast and small over a long simulation: ``take_pushes`` looks only at
parcels with an event due, a parcel whose events were all pushed keeps no timeline (it is planned
again when asked for), and a gateway that does not remember everything keeps totals, not a
ledger. None of it may change what the sandboxes answer or push."""

from __future__ import annotations

import gc
import json
import re
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import product

import pytest

from lifecycle.adapters.errors import AdapterError, PaymentDeclined
from lifecycle.adapters.ports import Money, Parcel, TrackingEvent
from lifecycle.adapters.sandbox import LedgerEntry, SandboxCarrier, SandboxGateway
from lifecycle.adapters.sandbox import carriers as sandbox
from lifecycle.adapters.timelines import Route, TrackingRates, plan
from lifecycle.adapters.webhooks import SignedMessage
from lifecycle.clock import SimulatedClock

SECRET = b"sandbox-secret"
PARCEL = Parcel(Decimal(1), Decimal(30), Decimal(20), Decimal(10))


def dhl(clock: SimulatedClock, tracking: TrackingRates | None = None) -> SandboxCarrier:
    return SandboxCarrier("dhl", clock=clock, secret=SECRET, seed=1, tracking=tracking)


def book(carrier: SandboxCarrier, n: int) -> str:
    return carrier.book_pickup(f"o-{n}", PARCEL, "CN", "DE", "express", f"pickup-o-{n}")


def pushed(carrier: SandboxCarrier, messages: list[SignedMessage]) -> list[tuple[str, str]]:
    """(waybill, status) of each pushed event, in delivery order."""
    return [(e.waybill, e.status) for m in messages for e in carrier.parse_push(m.body, m.headers)]


def usd(amount: str) -> Money:
    return Money(Decimal(amount), "USD")


@pytest.fixture
def plans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The waybills the carriers plan a timeline for, call by call."""
    planned: list[str] = []

    def counted(carrier: str, waybill: str, *args: object) -> tuple[TrackingEvent, ...]:
        planned.append(waybill)
        return plan(carrier, waybill, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(sandbox, "plan", counted)
    return planned


@pytest.fixture
def examined(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The waybills ``take_pushes`` looks into for due events (a seam on the parcel record)."""
    seen: list[str] = []
    take_due = sandbox._Shipment.take_due

    def counted(self: sandbox._Shipment, now: datetime) -> tuple[TrackingEvent, ...]:
        seen.append(self.waybill)
        return take_due(self, now)

    monkeypatch.setattr(sandbox._Shipment, "take_due", counted)
    return seen


# Memory is pinned by what matters and holds on any interpreter: which objects are kept (counted
# by type among the live ones), ratios of two costs measured in the same process, and no growth
# from calls that must not add anything (retries, reads, callbacks taken). Never a byte count:
# object sizes change between Python versions.


@contextmanager
def traced() -> Iterator[Callable[[], int]]:
    """Inside the block, a function giving the bytes allocated and still held since it began."""
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]

        def held() -> int:
            gc.collect()
            return tracemalloc.get_traced_memory()[0] - start

        yield held
    finally:
        tracemalloc.stop()


def alive(cls: type) -> int:
    """How many instances of ``cls`` are alive."""
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is cls)


# --- the cost of take_pushes ----------------------------------------------------------------


def test_take_pushes_looks_only_at_parcels_with_an_event_due(
    clock: SimulatedClock, examined: list[str]
) -> None:
    carrier = dhl(clock)
    for n in range(200):
        book(carrier, n)
    clock.advance(timedelta(days=10))  # every one delivered
    carrier.take_pushes()
    examined.clear()

    assert carrier.take_pushes() == []
    assert examined == []  # nothing due: not one of the 200 delivered parcels looked at
    fresh = book(carrier, 200)
    taken = carrier.take_pushes()

    assert examined == [fresh]
    assert pushed(carrier, taken) == [(fresh, "info_received")]


def test_a_delivered_parcel_is_never_pushed_again(clock: SimulatedClock) -> None:
    carrier = dhl(clock)
    first = book(carrier, 1)
    clock.advance(timedelta(days=10))
    taken = pushed(carrier, carrier.take_pushes())
    assert {waybill for waybill, _ in taken} == {first}
    assert (taken[0][1], taken[-1][1]) == ("info_received", "delivered")

    second = book(carrier, 2)
    clock.advance(timedelta(days=10))
    again = pushed(carrier, carrier.take_pushes())

    assert {waybill for waybill, _ in again} == {second}
    assert len(again) == len(taken)


def test_pushes_due_at_one_take_go_out_in_booking_order_not_time_order(clock: SimulatedClock) -> None:
    carrier = dhl(clock)
    first = book(carrier, 1)
    carrier.take_pushes()  # its info_received
    clock.advance(timedelta(hours=1))
    second = book(carrier, 2)
    clock.advance(timedelta(hours=4, minutes=30))  # first picked up at +4h, second at +5h

    taken = pushed(carrier, carrier.take_pushes())

    # The second parcel's info_received happened before the first one's pick-up, yet the
    # first parcel's pushes go first, as they always have: the simulation's runs depend on it.
    assert taken == [(first, "in_transit"), (second, "info_received"), (second, "in_transit")]


# --- a finished parcel keeps no timeline ----------------------------------------------------


def test_a_finished_parcel_is_tracked_and_timed_as_before_it_let_go_of_its_events(
    clock: SimulatedClock, plans: list[str]
) -> None:
    rates = TrackingRates(delay=0.5, customs_hold=0.5, returned=0.2)
    carrier = dhl(clock, rates)
    waybills = [book(carrier, n) for n in range(20)]
    clock.advance(timedelta(days=2))
    while_pushing = {w: (carrier.track(w), carrier.timeline(w)) for w in waybills}
    clock.advance(timedelta(days=60))
    at_the_end = [carrier.track(w) for w in waybills]
    carrier.take_pushes()  # everything pushed: the parcels let go of their timelines
    plans.clear()

    for waybill, (tracked, timeline) in while_pushing.items():
        assert carrier.timeline(waybill) == timeline
        assert carrier.track(waybill)[: len(tracked)] == tracked
    assert [carrier.track(w) for w in waybills] == at_the_end
    assert carrier.take_pushes() == []
    assert set(plans) == set(waybills)  # planned again, from what was kept


def test_a_parcel_that_let_go_of_its_events_still_refuses_a_late_cancel_with_its_pickup_time(
    clock: SimulatedClock,
) -> None:
    carrier = dhl(clock)
    waybill = book(carrier, 1)
    picked_up = carrier.timeline(waybill)[1].at
    clock.advance(timedelta(days=10))
    carrier.take_pushes()

    with pytest.raises(AdapterError, match=re.escape(f"already picked up at {picked_up.isoformat()}")):
        carrier.cancel_pickup(waybill, "cancel")


def test_a_missed_pickup_can_be_cancelled_after_its_only_event_was_pushed(clock: SimulatedClock) -> None:
    carrier = dhl(clock, TrackingRates(missed_pickup=1.0))
    waybill = book(carrier, 1)
    assert pushed(carrier, carrier.take_pushes()) == [(waybill, "info_received")]
    clock.advance(timedelta(days=5))

    carrier.cancel_pickup(waybill, "cancel")
    carrier.cancel_pickup(waybill, "cancel")  # again: nothing more to do
    clock.advance(timedelta(days=5))

    assert [e.status for e in carrier.track(waybill)] == ["info_received"]
    assert carrier.take_pushes() == []


def test_a_pickup_cancelled_before_any_push_pushes_its_info_received_once_and_stops(
    clock: SimulatedClock, examined: list[str]
) -> None:
    carrier = dhl(clock)
    waybill = book(carrier, 1)
    carrier.cancel_pickup(waybill, "cancel")
    clock.advance(timedelta(days=10))

    assert pushed(carrier, carrier.take_pushes()) == [(waybill, "info_received")]
    clock.advance(timedelta(days=10))
    examined.clear()
    assert carrier.take_pushes() == []
    assert examined == []  # its later events were dropped from the queue, not looked at again


def test_a_booking_retried_long_after_delivery_returns_its_waybill_and_books_nothing(
    clock: SimulatedClock,
) -> None:
    carrier = dhl(clock)
    waybill = book(carrier, 1)
    clock.advance(timedelta(days=10))
    carrier.take_pushes()

    assert book(carrier, 1) == waybill
    assert carrier.take_pushes() == []
    with pytest.raises(AdapterError, match="'pickup-o-1' was already used for a different request"):
        carrier.book_pickup("o-1", PARCEL, "CN", "FR", "express", "pickup-o-1")


def test_a_booked_waybill_first_seen_offline_replaces_it_and_keeps_its_place(clock: SimulatedClock) -> None:
    # Two carriers with the same seed issue the same waybills: the second sees the first's
    # number offline before booking it itself.
    waybill = book(dhl(clock), 1)
    carrier = dhl(clock)
    carrier.register_shipment("3318810025", origin="CN", destination="DE", service="express")
    carrier.register_shipment(waybill, origin="CN", destination="DE", service="express")
    assert pushed(carrier, carrier.take_pushes()) == [("3318810025", "info_received"),
                                                      (waybill, "info_received")]
    clock.advance(timedelta(hours=1))

    assert book(carrier, 1) == waybill
    clock.advance(timedelta(hours=5))
    taken = pushed(carrier, carrier.take_pushes())

    # The booking starts the waybill's timeline again (its scans repeat their event ids, which
    # the engine ignores); the parcel seen offline first still goes first.
    assert taken == [("3318810025", "in_transit"), (waybill, "info_received"), (waybill, "in_transit")]
    assert carrier.track(waybill)[0].at == clock.now() - timedelta(hours=5)
    clock.advance(timedelta(days=10))
    statuses = [s for w, s in pushed(carrier, carrier.take_pushes()) if w == waybill]
    assert statuses == ["in_transit", "in_transit", "out_for_delivery", "delivered"]


def test_timelines_are_in_time_order() -> None:
    # take_pushes relies on it: the events due are always the next ones after those pushed.
    start = SimulatedClock().now()
    rates = (TrackingRates(), TrackingRates(delay=1, customs_hold=1), TrackingRates(lost=1),
             TrackingRates(returned=1, delay=1, customs_hold=1), TrackingRates(missed_pickup=1))
    for rate, days, n in product(rates, (0, 1, 2, 7, 40), range(20)):
        events = plan("postal", f"RR{n:08d}CN", Route("CN", "DE", days), start, n, rate)
        assert [e.at for e in events] == sorted(e.at for e in events)


def test_a_delivered_parcel_keeps_no_timeline(clock: SimulatedClock) -> None:
    carrier = dhl(clock)
    waybills = [book(carrier, n) for n in range(300)]
    in_flight = alive(TrackingEvent)
    clock.advance(timedelta(days=10))
    delivered = {w for w, status in pushed(carrier, carrier.take_pushes()) if status == "delivered"}

    assert delivered == set(waybills)
    assert in_flight >= 3 * len(waybills)  # each held its timeline while in flight
    assert alive(TrackingEvent) == 0  # once delivered, none holds it


def test_a_delivered_parcel_costs_a_fraction_of_one_in_flight(clock: SimulatedClock) -> None:
    # What is kept of a delivered parcel (its booking, route and start, to answer a retry and
    # to plan its timeline again) is far less than the timeline it held while in flight.
    carrier = dhl(clock)
    with traced() as held:
        for n in range(300):
            book(carrier, n)
        in_flight = held()
        clock.advance(timedelta(days=10))
        taken = carrier.take_pushes()
        del taken
        delivered = held()

    assert delivered < in_flight / 2, (delivered, in_flight)


def test_reading_or_booking_again_keeps_nothing_more(clock: SimulatedClock) -> None:
    carrier = dhl(clock)
    with traced() as held:
        waybills = [book(carrier, n) for n in range(200)]
        clock.advance(timedelta(days=10))
        carrier.take_pushes()
        parcels = held()
        for _ in range(2):
            for n, waybill in enumerate(waybills):
                assert carrier.track(waybill)[-1].status == "delivered"  # planned again
                assert book(carrier, n) == waybill  # a retry with the booking's key
            assert carrier.take_pushes() == []
        more = held() - parcels

    assert more < parcels / 100, (more, parcels)
    assert alive(TrackingEvent) == 0


# --- the gateway --------------------------------------------------------------------------


@pytest.fixture
def forgetful() -> SandboxGateway:
    return SandboxGateway(clock=SimulatedClock(), secret=SECRET, seed=1, remembers_everything=False)


def test_a_gateway_that_does_not_remember_everything_keeps_totals_not_a_ledger(
    forgetful: SandboxGateway,
) -> None:
    first = forgetful.capture("o-1", usd("30.00"), "pay-1")
    forgetful.capture("o-2", usd("12.50"), "pay-2")
    forgetful.capture("o-2", usd("12.50"), "pay-2")  # a retry: nothing more
    forgetful.refund(first, usd("10.00"), "r-1")
    forgetful.payout("s-1", usd("20.00"), "po-1")

    assert forgetful.total("capture") == Decimal("42.50")
    assert forgetful.total("refund") == Decimal("10.00")
    assert forgetful.total("payout") == Decimal("20.00")
    assert forgetful.total("charge_fee") == Decimal(0)
    with pytest.raises(ValueError, match="keeps totals, not a ledger"):
        _ = forgetful.ledger
    with pytest.raises(ValueError, match="keeps totals, not a ledger"):
        forgetful.total("capture", "o-1")


def test_totals_in_several_currencies_need_a_subject(forgetful: SandboxGateway) -> None:
    forgetful.capture("o-1", usd("30.00"), "pay-1")
    forgetful.capture("o-2", Money(Decimal("30.00"), "EUR"), "pay-2")

    with pytest.raises(ValueError, match="capture entries are in several currencies"):
        forgetful.total("capture")


@pytest.mark.parametrize("remembers_everything", [True, False])
def test_refunds_are_counted_against_their_capture(remembers_everything: bool) -> None:
    gateway = SandboxGateway(clock=SimulatedClock(),
                             secret=SECRET, seed=1, remembers_everything=remembers_everything)
    ref = gateway.capture("o-1", usd("30.00"), "pay")
    for n in range(50):  # others' refunds do not count against this one
        gateway.refund(gateway.capture(f"o-{n + 2}", usd("30.00"), f"pay-{n}"), usd("30.00"), f"other-r-{n}")
    gateway.refund(ref, usd("10.00"), "r-1")
    gateway.refund(ref, usd("15.00"), "r-2")
    gateway.refund(ref, usd("15.00"), "r-2")  # a retry: counted once
    gateway.take_callbacks()

    with pytest.raises(AdapterError, match=r"exceeds what is left of the capture \(5.00 USD\)"):
        gateway.refund(ref, usd("5.01"), "r-3")
    gateway.refund(ref, usd("5.00"), "r-4")
    [refunded] = [json.loads(m.body) for m in gateway.take_callbacks()]
    assert (refunded["kind"], refunded["order_id"], refunded["payment_ref"]) == ("refunded", "o-1", ref)
    with pytest.raises(AdapterError, match=r"exceeds what is left of the capture \(0.00 USD\)"):
        gateway.refund(ref, usd("0.01"), "r-5")


def test_a_retry_after_many_other_payments_replays_what_its_key_did(forgetful: SandboxGateway) -> None:
    forgetful.fail_next("payout", "decline")
    with pytest.raises(PaymentDeclined):
        forgetful.payout("s-1", usd("20.00"), "po-declined")
    ref = forgetful.capture("o-1", usd("30.00"), "pay-1")
    for n in range(500):
        forgetful.capture(f"o-{n + 2}", usd("30.00"), f"pay-{n + 2}")

    assert forgetful.capture("o-1", usd("30.00"), "pay-1") == ref
    assert forgetful.total("capture") == Decimal(30 * 501)
    with pytest.raises(PaymentDeclined, match="payout declined"):
        forgetful.payout("s-1", usd("20.00"), "po-declined")
    assert forgetful.total("payout") == Decimal(0)
    with pytest.raises(AdapterError, match="'pay-1' was already used for a different request"):
        forgetful.capture("o-1", usd("30.01"), "pay-1")
    with pytest.raises(AdapterError, match="'pay-1' was already used for a different request"):
        forgetful.capture("o-9", usd("30.00"), "pay-1")


ORDERS = 600


def settle(gateway: SandboxGateway, orders: int) -> None:
    """Capture and pay out ``orders`` orders, taking the callbacks as they come."""
    amount = usd("10.00")
    for n in range(orders):
        gateway.capture(f"o-{n}", amount, f"pay-{n}")
        gateway.payout("s-1", amount, f"po-{n}")
        gateway.take_callbacks()


def test_a_forgetful_gateway_keeps_no_entry_per_operation(forgetful: SandboxGateway) -> None:
    remembering = SandboxGateway(clock=SimulatedClock(), secret=SECRET, seed=1)
    with traced() as held:
        settle(remembering, ORDERS)
        remembered = held()
    with traced() as held:
        settle(forgetful, ORDERS)
        kept = held()

    assert alive(LedgerEntry) == 2 * ORDERS  # the remembering gateway's ledger, and no more
    assert kept < remembered * 0.9, (kept, remembered)
    assert forgetful.total("capture") == forgetful.total("payout") == Decimal(10 * ORDERS)


def test_retrying_every_payment_keeps_nothing_more(forgetful: SandboxGateway) -> None:
    with traced() as held:
        settle(forgetful, ORDERS)
        settled = held()
        for _ in range(2):
            settle(forgetful, ORDERS)  # every key again, with the same request
        more = held() - settled

    assert more < settled / 100, (more, settled)
    assert forgetful.total("capture") == Decimal(10 * ORDERS)
    assert forgetful.take_callbacks() == []
