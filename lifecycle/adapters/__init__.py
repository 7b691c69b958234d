"""Adapters (SPEC §7): the ports a payment gateway and a carrier implement, the built-in sandbox
implementations, real waybill validators, and the registry that finds adapters by name.

    from lifecycle.adapters import registry
    dhl = registry.carrier("dhl", clock=clock, secret=b"...", seed=7)
    dhl.quote(Parcel(Decimal("2.5"), Decimal(40), Decimal(30), Decimal(20)), "CN", "DE")
"""

from __future__ import annotations

from lifecycle.adapters.errors import (
    AdapterError,
    DuplicateAdapter,
    InvalidWaybill,
    PaymentDeclined,
    SignatureInvalid,
    UnknownAdapter,
)
from lifecycle.adapters.ports import (
    Carrier,
    Money,
    Parcel,
    PaymentEvent,
    PaymentGateway,
    Quote,
    TrackingEvent,
)
from lifecycle.adapters.registry import carrier_names
from lifecycle.adapters.waybills import normalise_waybill

__all__ = [
    "AdapterError",
    "Carrier",
    "DuplicateAdapter",
    "InvalidWaybill",
    "Money",
    "Parcel",
    "PaymentDeclined",
    "PaymentEvent",
    "PaymentGateway",
    "Quote",
    "SignatureInvalid",
    "TrackingEvent",
    "UnknownAdapter",
    "carrier_names",
    "normalise_waybill",
]
