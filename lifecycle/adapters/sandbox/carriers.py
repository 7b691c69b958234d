"""The sandbox carriers: seven couriers, posts and freight lines in memory, each with its real
waybill format, its rate card, tracking timelines revealed as the clock moves, signed pushes and
seeded failures."""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from lifecycle.adapters.errors import AdapterError, EventsRejected, UnknownAdapter
from lifecycle.adapters.faults import Fault, FaultPlan, FaultRates, digest
from lifecycle.adapters.ports import Parcel, Quote, ServiceLevel, TrackingEvent
from lifecycle.adapters.rates import RATE_CARDS, quotes, zone
from lifecycle.adapters.sandbox.calls import failure, fingerprint, keys
from lifecycle.adapters.timelines import Route, TrackingRates, plan
from lifecycle.adapters.waybills import (
    VALIDATORS,
    air_waybill_number,
    bill_of_lading_number,
    dhl_express_number,
    fedex_number,
    s10_number,
    tnt_number,
    ups_number,
)
from lifecycle.adapters.webhooks import (
    DeliveryRates,
    Mailbox,
    Secret,
    SignedMessage,
    delivery,
    verify,
)
from lifecycle.clock import Clock
from lifecycle.errors import InvalidPayload
from lifecycle.strict_json import loads_json

# How each carrier numbers what it books: (serial, origin country, service) → waybill.
Issuer = Callable[[int, str, ServiceLevel], str]

_UPS_SERVICE = {"express": "66", "standard": "11", "economy": "03"}
_S10_SERVICE = {"express": "EE", "standard": "CP", "economy": "RR"}  # EMS, parcel, registered

ISSUERS: Mapping[str, Issuer] = {
    "dhl": lambda serial, _origin, _service: dhl_express_number(serial % 10**9),
    "ups": lambda serial, _origin, service: ups_number("SBX001", _UPS_SERVICE[service], serial % 10**7),
    "fedex": lambda serial, _origin, _service: fedex_number(serial % 10**11),
    "tnt": lambda serial, _origin, _service: tnt_number(serial % 10**8),
    "postal": lambda serial, origin, service: s10_number(_S10_SERVICE[service], serial % 10**8, origin),
    "air_freight": lambda serial, _origin, _service: air_waybill_number(990, serial % 10**7),
    "sea_freight": lambda serial, _origin, _service: bill_of_lading_number("SBOX", serial % 10**9),
}

# The one list of the sandbox's carriers, in the order simulations walk them. Each needs an
# issuer above, a rate card (`rates.RATE_CARDS`) and a waybill validator (`waybills.VALIDATORS`).
SANDBOX_CARRIERS: tuple[str, ...] = ("dhl", "ups", "fedex", "tnt", "postal", "sea_freight", "air_freight")


@dataclass(slots=True)
class _Shipment:
    """What a carrier keeps of one parcel. Its events are `plan`'s, a pure function of the
    route and the start (with the carrier's name, seed and rates): they are held only while
    some are still to be pushed, and planned again when asked for after that, so that a
    finished parcel costs a few fields rather than its whole timeline."""

    waybill: str
    route: Route
    start: datetime
    seq: int  # the order it was registered in: pushes due at the same take go out in this order
    booked: bool  # issued by book_pickup, so its pickup can be cancelled
    cancelled_at: datetime | None = None
    pushed: int = 0  # how many of its events were pushed already
    events: tuple[TrackingEvent, ...] | None = None  # the plan, until everything is pushed

    def due(self, events: tuple[TrackingEvent, ...], now: datetime) -> list[TrackingEvent]:
        """Of its ``events``, those that happened by ``now`` (a cancelled pickup stops them)."""
        end = self._end(now)
        return [event for event in events if event.at <= end]

    def next_push(self) -> datetime | None:
        """When the next event still to push happens; None when there is none left."""
        if self.events is None or self.pushed == len(self.events):
            return None
        at = self.events[self.pushed].at
        return at if self.cancelled_at is None or at <= self.cancelled_at else None

    def take_due(self, now: datetime) -> tuple[TrackingEvent, ...]:
        """The events due by ``now`` not pushed yet, which count as pushed from here on. A plan
        is in time order, so they are the next few after those already pushed."""
        events, end = self.events or (), self._end(now)
        first = last = self.pushed
        while last < len(events) and events[last].at <= end:
            last += 1
        self.pushed = last
        return events[first:last]

    def _end(self, now: datetime) -> datetime:
        return now if self.cancelled_at is None else min(now, self.cancelled_at)


@dataclass(frozen=True, slots=True)
class _Booking:
    """A booking, kept to answer a retry with the same key: the waybill, and the request's
    `fingerprint` to tell a retry from a key reused for another request."""

    request: int
    waybill: str


class SandboxCarrier:
    """A carrier in memory: ``SandboxCarrier("dhl", clock=clock, secret=b"...")``. Implements
    `Carrier` for each of `SANDBOX_CARRIERS`.

    Quotes come from `rates`; waybills pass the carrier's real validator; tracking timelines come
    from `timelines`, anchored when the pickup is booked (or when an offline waybill is first
    seen) and revealed as the clock moves. ``take_pushes`` hands over the signed pushes due now.
    ``secrets`` (or ``secret=`` for one) sign and verify pushes as the gateway's do.
    """

    def __init__(
        self,
        name: str,
        *,
        clock: Clock,
        secrets: Secret | Sequence[Secret] | None = None,
        secret: Secret | None = None,
        seed: int = 0,
        currency: str = "USD",
        faults: FaultRates | None = None,
        tracking: TrackingRates | None = None,
        pushes: DeliveryRates | None = None,
    ):
        if name not in SANDBOX_CARRIERS:
            raise UnknownAdapter("carrier", name, SANDBOX_CARRIERS)
        self._name, self._clock, self._seed = name, clock, seed
        self._keys = keys(secrets, secret)
        self._currency = currency
        self._faults = FaultPlan(seed, faults or FaultRates())
        self._tracking = tracking or TrackingRates()
        self._mailbox = Mailbox(self._keys[0], seed, pushes or DeliveryRates(), clock)
        self._bookings: dict[str, _Booking] = {}  # by idempotency key
        self._shipments: dict[str, _Shipment] = {}
        # (when, seq, waybill) of each parcel's next event to push: take_pushes looks only at
        # what is due, not at every parcel ever shipped.
        self._pending: list[tuple[datetime, int, str]] = []
        self._routes: dict[Route, Route] = {}  # one object per distinct route, shared by parcels
        # Serials start at a seed-dependent point and count up: unique within the run.
        self._next_serial = int(digest(seed, name, size=10), 16)

    @property
    def name(self) -> str:
        return self._name

    # --- the port -------------------------------------------------------------------------

    def quote(self, parcel: Parcel, origin: str, destination: str) -> list[Quote]:
        """Every service level that takes the parcel on this route, cheapest first."""
        return quotes(self._name, RATE_CARDS[self._name], parcel, origin, destination, self._currency)

    def book_pickup(
        self, order_id: str, parcel: Parcel, origin: str, destination: str, service: ServiceLevel, key: str
    ) -> str:
        """Book a pickup; the same key returns the same waybill and books nothing more."""
        fault = self._faults.draw("book_pickup", key)
        if fault in ("timeout_unprocessed", "error"):
            raise failure(self._name, "book_pickup", fault)
        request = (order_id, parcel, origin, destination, service)
        booking = self._bookings.get(key)
        if booking is None:
            if fault == "decline":
                raise failure(self._name, "book_pickup", fault)
            booking = self._book(key, request)
        elif booking.request != fingerprint(*request):
            raise AdapterError(self._name, "book_pickup",
                               f"idempotency key {key!r} was already used for a different request")
        if fault == "timeout":
            raise failure(self._name, "book_pickup", fault)
        return booking.waybill

    def cancel_pickup(self, waybill: str, key: str) -> None:
        """Cancel a pickup not yet made; cancelling again is a no-op."""
        fault = self._faults.draw("cancel_pickup", key)
        if fault is not None and fault != "timeout":
            raise failure(self._name, "cancel_pickup", fault)
        shipment = self._shipments.get(waybill)
        if shipment is None:
            # Booked through another process's sandbox (a service books, the timer worker's
            # pickup_timeout cancels): a carrier keeps its bookings, not the caller's process,
            # so a well-formed waybill of ours is cancelled on trust, as the gateway refunds a
            # capture it did not see.
            self.validate_waybill(waybill)
            if fault == "timeout":
                raise failure(self._name, "cancel_pickup", fault)
            return
        if not shipment.booked:
            raise AdapterError(self._name, "cancel_pickup", f"no pickup booked for waybill {waybill!r}")
        now = self._clock.now()
        if shipment.cancelled_at is None:
            # Its entry in _pending stays: take_pushes lets go of it once nothing is left to push.
            picked = [e for e in shipment.due(self._events(shipment), now) if e.status != "info_received"]
            if picked:
                raise AdapterError(self._name, "cancel_pickup",
                                   f"waybill {waybill} was already picked up at {picked[0].at.isoformat()}")
            shipment.cancelled_at = now
        if fault == "timeout":
            raise failure(self._name, "cancel_pickup", fault)

    def validate_waybill(self, number: str) -> None:
        """The carrier's real format and check-digit rules (see `waybills`)."""
        VALIDATORS[self._name](number)

    def track(self, waybill: str) -> list[TrackingEvent]:
        """Every event so far, oldest first. An unknown but valid waybill starts its timeline now."""
        shipment = self._shipment(waybill)
        return shipment.due(self._events(shipment), self._clock.now())

    def parse_push(self, body: bytes, headers: Mapping[str, str]) -> list[TrackingEvent]:
        """Verify the signature, then parse the pushed events. Body and headers may come in
        any form `webhooks.delivery` reads."""
        body, headers = delivery(body, headers, adapter=self._name, operation="parse_push")
        verify(self._keys, body, headers, now=self._clock.now(), adapter=self._name,
               operation="parse_push")
        try:
            pushed = loads_json(body)["events"]
            if not isinstance(pushed, list):
                raise TypeError(f"events must be a list, got {type(pushed).__name__}")
        # ValueError: loads_json refuses duplicate keys and deep nesting, which a signed body may hold.
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AdapterError(self._name, "parse_push", f"malformed push: {exc}") from None
        events, rejected = [], []
        for n, item in enumerate(pushed):
            try:
                events.append(TrackingEvent.from_json(item))
            except (InvalidPayload, AttributeError, TypeError) as exc:
                event_id = item.get("event_id") if isinstance(item, dict) else None
                rejected.append((n, str(event_id) if event_id is not None else None, str(exc)))
        if rejected:
            raise EventsRejected(self._name, "parse_push", events, rejected, len(pushed))
        return events

    # --- sandbox controls -----------------------------------------------------------------

    def register_shipment(self, waybill: str, *, origin: str | None = None, destination: str | None = None,
                          service: ServiceLevel | None = None, at: datetime | None = None) -> None:
        """Start tracking a waybill shipped offline; its timeline begins ``at`` (default now)."""
        self.validate_waybill(waybill)
        if waybill in self._shipments:
            return
        offerings = RATE_CARDS[self._name]
        offering = next((o for o in offerings if o.service == service), offerings[0])
        # Without a route, assume the common cross-border case: between two listed regions.
        to_zone = zone(origin, destination) if origin is not None and destination is not None else 3
        route = Route(origin, destination, offering.transit_days[to_zone - 1])
        self._start(waybill, route, at or self._clock.now())

    def timeline(self, waybill: str) -> tuple[TrackingEvent, ...]:
        """The whole planned timeline, future events included (for tests and simulations)."""
        return self._events(self._shipment(waybill))

    def take_pushes(self) -> list[SignedMessage]:
        """Signed pushes for every event that happened since the last call, in delivery order."""
        now = self._clock.now()
        for shipment in self._due(now):
            for event in shipment.take_due(now):
                body = {"carrier": self._name, "events": [event.to_json()]}
                self._mailbox.post(json.dumps(body, sort_keys=True).encode(), event.event_id)
            self._schedule(shipment)
        return self._mailbox.take()

    def flush_pushes(self) -> list[SignedMessage]:
        """Every push still waiting, late ones included (nothing new is scanned)."""
        return self._mailbox.flush()

    def inject_push(self, *, duplicate: bool = False, late: bool = False) -> None:
        """Make the next push arrive twice and/or late (after later ones)."""
        self._mailbox.inject(duplicate=duplicate, late=late)

    def fail_next(
        self, operation: Literal["book_pickup", "cancel_pickup"], fault: Fault, times: int = 1
    ) -> None:
        """Make the next ``times`` calls of ``operation`` fail with ``fault``."""
        self._faults.inject(operation, fault, times)

    def attempts(self, operation: str, key: str) -> int:
        """How many calls were made for ``operation`` with ``key``, failed ones included."""
        return self._faults.attempts(operation, key)

    # --- inside ---------------------------------------------------------------------------

    def _book(self, key: str, request: tuple[Any, ...]) -> _Booking:
        _order_id, parcel, origin, destination, service = request
        offered = {q.service: q for q in self.quote(parcel, origin, destination)}
        if service not in offered:
            raise AdapterError(
                self._name, "book_pickup",
                f"{service} is not offered for this parcel and route; offered: "
                f"{', '.join(offered) or 'nothing (too heavy)'}",
            )
        waybill = ISSUERS[self._name](self._next_serial, origin, service)
        self._next_serial += 1
        booking = _Booking(fingerprint(*request), waybill)
        self._bookings[key] = booking
        route = Route(origin, destination, offered[service].transit_days)
        self._start(waybill, route, self._clock.now(), booked=True)
        return booking

    def _start(self, waybill: str, route: Route, start: datetime, *, booked: bool = False) -> None:
        # A booked waybill may repeat one first seen offline: the booking replaces that parcel
        # but keeps its place in the order pushes go out in (a stale _pending entry is skipped).
        earlier = self._shipments.get(waybill)
        seq = earlier.seq if earlier is not None else len(self._shipments)
        shipment = _Shipment(waybill, self._routes.setdefault(route, route), start, seq, booked)
        shipment.events = self._events(shipment)
        self._shipments[waybill] = shipment
        self._schedule(shipment)

    def _events(self, shipment: _Shipment) -> tuple[TrackingEvent, ...]:
        """The parcel's whole timeline: the one held while pushing, or the same planned again."""
        if shipment.events is not None:
            return shipment.events
        return plan(self._name, shipment.waybill, shipment.route, shipment.start, self._seed, self._tracking)

    def _schedule(self, shipment: _Shipment) -> None:
        """Queue the parcel's next push; once nothing is left to push, let go of its events."""
        at = shipment.next_push()
        if at is None:
            shipment.events = None
        else:
            heapq.heappush(self._pending, (at, shipment.seq, shipment.waybill))

    def _due(self, now: datetime) -> list[_Shipment]:
        """The parcels with an event due by ``now``, taken off the queue, in the order they were
        registered in (the order their pushes have always gone out in)."""
        due: dict[int, _Shipment] = {}
        while self._pending and self._pending[0][0] <= now:
            at, seq, waybill = heapq.heappop(self._pending)
            shipment = self._shipments[waybill]
            next_push = shipment.next_push()
            if next_push == at:
                due[seq] = shipment
            elif next_push is None:  # its pickup was cancelled before this event
                shipment.events = None
            # else: the entry of a parcel a booking replaced (see _start); the new one has its own
        return [due[seq] for seq in sorted(due)]

    def _shipment(self, waybill: str) -> _Shipment:
        shipment = self._shipments.get(waybill)
        if shipment is None:
            self.register_shipment(waybill)
            shipment = self._shipments[waybill]
        return shipment
