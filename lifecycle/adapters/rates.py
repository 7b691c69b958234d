"""Sandbox rate cards: price and transit time from chargeable weight, destination zone and service
level, so a buyer can choose by weight, volume, destination and timeliness (SPEC §7).

The shape follows how couriers and forwarders price: a base charge plus a rate per chargeable
kilogram, scaled by zone; chargeable weight is the larger of the actual weight and the volumetric
weight (L x W x H / 5000, centimetres to kilograms). Express couriers are fast and dear per
kilogram, postal services cheap for small parcels, sea freight cheapest and slowest for heavy
ones. The numbers are illustrative, not any carrier's tariff.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_UP, Decimal
from types import MappingProxyType

from lifecycle.adapters.countries import check_country
from lifecycle.adapters.ports import Parcel, Quote, ServiceLevel
from lifecycle.money import exponent

VOLUMETRIC_DIVISOR = Decimal(5000)  # cm³ per kg, the express couriers' convention

Zone = int  # 1 domestic, 2 same region, 3 another listed region, 4 rest of the world

# A small country → region table; a country not listed ships as rest of the world (zone 4).
REGIONS: Mapping[str, str] = MappingProxyType({
    **dict.fromkeys(("CN", "HK", "TW", "JP", "KR", "MO", "MN"), "east_asia"),
    **dict.fromkeys(("SG", "MY", "TH", "VN", "ID", "PH", "KH", "MM"), "southeast_asia"),
    **dict.fromkeys(("IN", "PK", "BD", "LK", "NP"), "south_asia"),
    **dict.fromkeys(
        ("DE", "FR", "GB", "IT", "ES", "NL", "BE", "PL", "SE", "AT", "CH", "IE", "PT", "DK", "FI",
         "NO", "CZ", "GR", "HU", "RO"),
        "europe",
    ),
    **dict.fromkeys(("RU", "UA", "BY", "KZ", "TR"), "eurasia"),
    **dict.fromkeys(("US", "CA", "MX"), "north_america"),
    **dict.fromkeys(("BR", "AR", "CL", "CO", "PE"), "south_america"),
    **dict.fromkeys(("AE", "SA", "IL", "QA", "KW", "EG"), "middle_east"),
    **dict.fromkeys(("AU", "NZ"), "oceania"),
    **dict.fromkeys(("ZA", "NG", "KE", "MA"), "africa"),
})

# How much dearer (and slower) each zone is than the same region.
ZONE_FACTOR: Mapping[Zone, Decimal] = MappingProxyType(
    {1: Decimal("0.6"), 2: Decimal("1.0"), 3: Decimal("1.4"), 4: Decimal("1.8")}
)


@dataclass(frozen=True, slots=True)
class Offering:
    """One service level on a carrier's rate card.

    ``transit_days`` per zone 1-4; ``max_weight`` caps the chargeable weight (kg) it accepts.
    """

    service: ServiceLevel
    base: Decimal
    per_kg: Decimal
    transit_days: tuple[int, int, int, int]
    max_weight: Decimal


def _offer(
    service: ServiceLevel, base: str, per_kg: str, days: tuple[int, int, int, int], max_kg: int
) -> Offering:
    return Offering(service, Decimal(base), Decimal(per_kg), days, Decimal(max_kg))


RATE_CARDS: Mapping[str, tuple[Offering, ...]] = MappingProxyType({
    "dhl": (_offer("express", "25", "9.0", (1, 2, 3, 4), 70),),
    "ups": (
        _offer("express", "24", "8.5", (1, 2, 3, 4), 70),
        _offer("standard", "14", "5.0", (2, 4, 6, 8), 70),
    ),
    "fedex": (
        _offer("express", "26", "8.8", (1, 2, 3, 4), 68),
        _offer("economy", "16", "5.5", (2, 5, 7, 9), 68),
    ),
    "tnt": (
        _offer("express", "22", "8.0", (1, 2, 3, 5), 70),
        _offer("economy", "12", "4.0", (2, 5, 8, 10), 500),
    ),
    "postal": (  # EMS, parcel post, registered small packet (UPU)
        _offer("express", "15", "7.0", (2, 5, 8, 12), 30),
        _offer("standard", "8", "4.0", (4, 10, 15, 25), 30),
        _offer("economy", "4", "3.5", (5, 12, 20, 30), 2),
    ),
    "air_freight": (_offer("standard", "120", "3.2", (3, 5, 7, 9), 10_000),),
    "sea_freight": (_offer("economy", "300", "0.6", (10, 25, 35, 45), 100_000),),
})


def zone(origin: str, destination: str) -> Zone:
    """1 within a country, 2 within a region, 3 between listed regions, 4 otherwise."""
    check_country(origin, "origin")
    check_country(destination, "destination")
    if origin == destination:
        return 1
    a, b = REGIONS.get(origin), REGIONS.get(destination)
    if a is None or b is None:
        return 4
    return 2 if a == b else 3


def chargeable_weight(parcel: Parcel) -> Decimal:
    """The larger of actual and volumetric weight, rounded up to the gram."""
    volumetric = parcel.volume_cm3 / VOLUMETRIC_DIVISOR
    return max(parcel.weight_kg, volumetric).quantize(Decimal("0.001"), rounding=ROUND_UP)


def price(offering: Offering, weight: Decimal, zone: Zone, currency: str) -> Decimal:
    """``(base + per_kg * weight) * zone factor``, to the currency's minor unit."""
    raw = (offering.base + offering.per_kg * weight) * ZONE_FACTOR[zone]
    return raw.quantize(Decimal(1).scaleb(-exponent(currency)), rounding=ROUND_HALF_EVEN)


def quotes(carrier: str, card: tuple[Offering, ...], parcel: Parcel, origin: str, destination: str,
           currency: str) -> list[Quote]:
    """Every offering on ``card`` that takes the parcel, cheapest first."""
    to_zone = zone(origin, destination)
    weight = chargeable_weight(parcel)
    found = [
        Quote(
            carrier=carrier,
            service=offering.service,
            price=price(offering, weight, to_zone, currency),
            currency=currency,
            transit_days=offering.transit_days[to_zone - 1],
            chargeable_weight=weight,
        )
        for offering in card
        if weight <= offering.max_weight
    ]
    return sorted(found, key=lambda q: (q.price, q.transit_days))
