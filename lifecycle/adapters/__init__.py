"""Adapters (SPEC §7): the ports a payment gateway and a carrier implement, the built-in sandbox
implementations, real waybill validators, and the registry that finds adapters by name.

    from lifecycle.adapters import registry
    dhl = registry.carrier("dhl", clock=clock, secrets=["whsec_..."], seed=7)
    dhl.quote(Parcel(Decimal("2.5"), Decimal(40), Decimal(30), Decimal(20)), "CN", "DE")

Webhooks follow Standard Webhooks: an adapter verifies a delivery with `verify` (several keys
for rotation, the engine's clock for the tolerance); a provider or a test signs one with
`signed_headers`; `webhook_key` reads a ``whsec_<base64>`` secret.
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
from lifecycle.adapters.faults import FaultRates
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
from lifecycle.adapters.sandbox import SANDBOX_CARRIERS, SandboxCarrier, SandboxGateway
from lifecycle.adapters.timelines import TrackingRates
from lifecycle.adapters.waybills import (
    air_waybill_number,
    bill_of_lading_number,
    dhl_express_number,
    fedex_number,
    normalise_waybill,
    s10_number,
    tnt_number,
    ups_number,
)
from lifecycle.adapters.webhooks import (
    MAX_BODY_BYTES,
    TOLERANCE,
    DeliveryRates,
    sign,
    signed_headers,
    verify,
    webhook_key,
)

# The sandboxes with their fault, tracking and delivery settings, and the waybill numbers their
# validators accept, are public too: simulations and tests drive the engine through them.
__all__ = [
    "MAX_BODY_BYTES",
    "SANDBOX_CARRIERS",
    "TOLERANCE",
    "AdapterError",
    "Carrier",
    "DeliveryRates",
    "DuplicateAdapter",
    "FaultRates",
    "InvalidWaybill",
    "Money",
    "Parcel",
    "PaymentDeclined",
    "PaymentEvent",
    "PaymentGateway",
    "Quote",
    "SandboxCarrier",
    "SandboxGateway",
    "SignatureInvalid",
    "TrackingEvent",
    "TrackingRates",
    "UnknownAdapter",
    "air_waybill_number",
    "bill_of_lading_number",
    "carrier_names",
    "dhl_express_number",
    "fedex_number",
    "normalise_waybill",
    "s10_number",
    "sign",
    "signed_headers",
    "tnt_number",
    "ups_number",
    "verify",
    "webhook_key",
]
