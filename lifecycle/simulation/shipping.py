"""How goods travel in a run: the carrier and service a buyer picks from the quotes, and the
waybill numbers a seller shipping offline types in (some with a slip the validator catches)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from lifecycle.adapters import (
    Quote,
    air_waybill_number,
    bill_of_lading_number,
    dhl_express_number,
    fedex_number,
    s10_number,
    tnt_number,
    ups_number,
)

# What the seller ticks before handing the parcel over (SPEC §4).
CHECKLIST = {"quantity": True, "model": True, "specification": True, "colour": True}


def choose(quotes: Sequence[Quote], r: random.Random, longest_promise: int) -> dict[str, Any]:
    """What the buyer chooses among every carrier's quotes: most take the cheapest, some the
    fastest, some the best value; the delivery time promised is the transit time and some
    days more, at most ``longest_promise`` days."""
    taste = r.random()
    if taste < 0.6:
        best = min(quotes, key=lambda q: (q.price, q.transit_days, q.carrier))
    elif taste < 0.85:
        best = min(quotes, key=lambda q: (q.transit_days, q.price, q.carrier))
    else:
        best = min(quotes, key=lambda q: (q.price * (q.transit_days + 3), q.carrier))
    return {"carrier": best.carrier, "service": best.service, "shipping_fee": str(best.price),
            "delivery_days": min(longest_promise, best.transit_days + r.randint(5, 12))}


# Numbers each carrier's validator accepts, from ranges the sandbox never issues: (serial, origin).
OFFLINE_NUMBERS: dict[str, Callable[[int, str], str]] = {
    "dhl": lambda n, origin: dhl_express_number(500_000_000 + n % 400_000_000),
    "ups": lambda n, origin: ups_number("SIMOFF", "SM", n % 10**7),
    "fedex": lambda n, origin: fedex_number(70_000_000_000 + n),
    "tnt": lambda n, origin: tnt_number(70_000_000 + n % 29_999_999),
    "postal": lambda n, origin: s10_number("LZ", n % 10**8, origin),
    "air_freight": lambda n, origin: air_waybill_number(991, n % 10**7),
    "sea_freight": lambda n, origin: bill_of_lading_number("SIMU", n),
}


def offline_waybill(carrier: str, n: int, origin: str) -> str:
    """The waybill a seller shipping order ``n`` offline with ``carrier`` types in."""
    return OFFLINE_NUMBERS.get(carrier, OFFLINE_NUMBERS["sea_freight"])(n, origin)


def mistyped(carrier: str, waybill: str) -> str:
    """The kind of slip a validator catches: a wrong check digit (or, for a bill of lading, a
    digit in the shipping line's code)."""
    if carrier == "sea_freight":
        return "SIM0" + waybill[4:]
    position = 10 if carrier == "postal" else len(waybill) - 1
    digit = (int(waybill[position]) + 1) % 10
    return waybill[:position] + str(digit) + waybill[position + 1:]
