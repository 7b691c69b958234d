"""Sandbox tracking timelines: the scans a shipment will produce, decided once from the seed.

A timeline runs info_received → in_transit (picked up, departed, arrived) → out_for_delivery →
delivered over the service's transit days. At the configured rates it instead includes a delay
or a customs hold (an exception, then it carries on, later), ends lost (an exception, never
delivered), ends returned_to_sender after a failed delivery, or never gets picked up.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from lifecycle.adapters.ports import ExceptionKind, TrackingEvent, TrackingStatus


@dataclass(frozen=True, slots=True)
class TrackingRates:
    """Probability (0 to 1) per shipment of each mishap. ``lost + returned`` is at most 1.

    ``missed_pickup``: the courier never comes; only info_received is ever scanned (the order's
    pickup_timeout path).
    """

    delay: float = 0.0
    customs_hold: float = 0.0
    lost: float = 0.0
    returned: float = 0.0
    missed_pickup: float = 0.0

    def __post_init__(self) -> None:
        rates = (self.delay, self.customs_hold, self.lost, self.returned, self.missed_pickup)
        if any(not 0 <= rate <= 1 for rate in rates) or self.lost + self.returned > 1:
            raise ValueError("tracking rates are probabilities in [0, 1]; lost + returned at most 1")


@dataclass(frozen=True, slots=True)
class Route:
    """What a timeline needs about a shipment: where from, where to, how long it should take."""

    origin: str | None
    destination: str | None
    transit_days: int


class _Timeline:
    """Collects events with ids numbered in order."""

    def __init__(self, carrier: str, waybill: str):
        self.carrier, self.waybill = carrier, waybill
        self.events: list[TrackingEvent] = []

    def add(self, status: TrackingStatus, at: datetime, location: str, detail: str,
            exception_kind: ExceptionKind | None = None) -> None:
        self.events.append(TrackingEvent(
            event_id=f"{self.carrier}-{self.waybill}-{len(self.events) + 1:02d}",
            waybill=self.waybill,
            status=status,
            at=at,
            location=location,
            detail=detail,
            exception_kind=exception_kind,
        ))


def plan(carrier: str, waybill: str, route: Route, start: datetime, seed: int,
         rates: TrackingRates) -> tuple[TrackingEvent, ...]:
    """Every event the shipment will ever produce, oldest first; the same inputs, the same plan."""
    # A string seed: random.Random hashes it with SHA-512, so it is stable across processes.
    rng = random.Random(f"{seed}:{carrier}:{waybill}")
    outcome = rng.random()
    lost, returned = outcome < rates.lost, rates.lost <= outcome < rates.lost + rates.returned
    delay_days = rng.randint(1, 4) if rng.random() < rates.delay else 0
    cross_border = route.origin != route.destination
    hold_days = rng.randint(1, 5) if rng.random() < rates.customs_hold and cross_border else 0
    missed_pickup = rng.random() < rates.missed_pickup

    origin = route.origin or "origin facility"
    destination = route.destination or "destination facility"
    span = timedelta(days=max(route.transit_days, 1))
    timeline = _Timeline(carrier, waybill)
    timeline.add("info_received", start, origin, "shipment information received")
    if missed_pickup:
        return tuple(timeline.events)
    timeline.add("in_transit", start + timedelta(hours=4), origin, "picked up")
    departed = start + span * 35 / 100
    timeline.add("in_transit", departed, origin, "departed origin facility")
    if lost:
        timeline.add("exception", departed + timedelta(days=1), origin, "parcel lost in transit", "lost")
        return tuple(timeline.events)

    arrived = start + span * 70 / 100
    shift = timedelta(0)
    if delay_days:
        timeline.add("exception", departed + timedelta(hours=2), origin,
                     f"delayed in transit by about {delay_days} day(s)", "delay")
        shift += timedelta(days=delay_days)
    timeline.add("in_transit", arrived + shift, destination, "arrived at destination facility")
    if hold_days:
        timeline.add("exception", arrived + shift + timedelta(hours=2), destination, "held by customs",
                     "customs_hold")
        shift += timedelta(days=hold_days)
        timeline.add("in_transit", arrived + shift, destination, "released by customs")

    end = start + span + shift
    timeline.add("out_for_delivery", end - timedelta(hours=5), destination, "out for delivery")
    if returned:
        timeline.add("exception", end, destination, "delivery failed: consignee not available", "other")
        timeline.add("returned_to_sender", end + timedelta(days=3), destination, "returned to sender")
    else:
        timeline.add("delivered", end, destination, "delivered")
    return tuple(timeline.events)
