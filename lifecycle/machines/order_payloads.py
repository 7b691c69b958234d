"""What the order's triggers take (SPEC §4): strict payload models, and the words of shipping.

The shipping words — service levels, tracking statuses, exception kinds — are the domain's; the
carrier port (`lifecycle.adapters.ports`) speaks them too and imports them from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StringConstraints

from lifecycle.errors import InvalidPayload
from lifecycle.machines.payloads import (
    Amount,
    Code,
    Country,
    Currency,
    LongText,
    Payload,
    Text,
    Waybill,
)
from lifecycle.money import check_amount, exponent

ServiceLevel = Literal["express", "standard", "economy"]
"""The logistics service a buyer chooses and a carrier offers."""

TrackingStatus = Literal[
    "info_received", "in_transit", "out_for_delivery", "delivered", "exception", "returned_to_sender"
]
"""What a carrier's scan says happened to a parcel."""

ExceptionKind = Literal["lost", "customs_hold", "delay", "other"]
"""What went wrong, by a carrier's ``exception`` scan."""

TrackingExceptionKind = Literal[ExceptionKind, "returned_to_sender"]
"""An exception recorded on an order: a carrier's kinds, and the parcel going back to the
sender (its own status on the carrier's side)."""

NOT_RECEIVED_REASONS = (
    "invalid_tracking", "wrong_address", "still_in_transit", "customs_detention", "returned_to_sender",
)
RECEIVED_REASONS = ("not_as_described", "quality", "damage", "short_shipment", "counterfeit")

class Line(Payload):
    sku: Code
    quantity: Annotated[int, Field(strict=True, ge=1, le=100_000)]
    unit_price: Amount
    model: Text | None = None
    specification: Text | None = None
    colour: Text | None = None


class Consignee(Payload):
    name: Text
    address: LongText
    country: Country
    phone: Text | None = None


class Logistics(Payload):
    carrier: Code
    service: ServiceLevel
    shipping_fee: Amount
    # At most the policy's delivery_window_max: the DELIVERY_WITHIN_WINDOW guard checks it.
    delivery_days: Annotated[int, Field(strict=True, ge=1)]


class PlaceOrder(Payload):
    seller: Code
    lines: Annotated[list[Line], Field(min_length=1, max_length=200)]
    currency: Currency
    consignee: Consignee
    logistics: Logistics
    sample: StrictBool = False
    coupon: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None

    def check(self, data: Mapping[str, Any]) -> None:
        """Amounts must fit the currency: no float dust, nothing zero or negative."""
        exponent(self.currency)
        for n, line in enumerate(self.lines):
            check_amount(line.unit_price, self.currency, f"lines.{n}.unit_price")
        check_amount(self.logistics.shipping_fee, self.currency, "logistics.shipping_fee",
                     allow_zero=True)

    def goods_total(self) -> Decimal:
        return sum((line.unit_price * line.quantity for line in self.lines), Decimal(0))


class Pay(Payload):
    payment_ref: Text | None = None
    amount: Amount | None = None
    currency: Currency | None = None

    def check(self, data: Mapping[str, Any]) -> None:
        if self.currency is not None and self.currency != data["currency"]:
            raise InvalidPayload("currency", f"the order is in {data['currency']}, "
                                             f"not {self.currency}")
        if self.amount is not None:
            check_amount(self.amount, data["currency"], "amount")


class Checklist(Payload):
    """What the seller confirms before handing the parcel over (SPEC §4)."""

    quantity: StrictBool
    model: StrictBool
    specification: StrictBool
    colour: StrictBool


Size = Annotated[Decimal, Field(gt=0, le=100_000, allow_inf_nan=False)]


class Parcel(Payload):
    """Actual weight and outer dimensions, for the carrier's price and pickup."""

    weight_kg: Size
    length_cm: Size
    width_cm: Size
    height_cm: Size


class BookPickup(Payload):
    checklist: Checklist
    parcel: Parcel


class ConfirmPickup(Payload):
    waybill: Waybill | None = None


class ShipOffline(Payload):
    checklist: Checklist
    carrier: Code
    waybill: Waybill


class TrackingEvent(Payload):
    event_id: Text | None = None
    status: TrackingStatus | None = None
    reported_at: datetime | None = None
    location: Text | None = None
    detail: LongText | None = None


class TrackingException(Payload):
    kind: TrackingExceptionKind
    event_id: Text | None = None
    reported_at: datetime | None = None
    location: Text | None = None
    detail: LongText | None = None


class OpenDispute(Payload):
    type: Literal["not_received", "received"]
    reason: Code
    refund_amount: Amount
    return_goods: StrictBool = False
    evidence: Annotated[list[LongText], Field(default_factory=list, max_length=20)]

    def check(self, data: Mapping[str, Any]) -> None:
        check_amount(self.refund_amount, data["currency"], "refund_amount")
        reasons = NOT_RECEIVED_REASONS if self.type == "not_received" else RECEIVED_REASONS
        if self.reason not in reasons:
            raise InvalidPayload("reason", f"a {self.type} dispute gives one of {', '.join(reasons)}")


class CloseDispute(Payload):
    dispute: Code
    refund_amount: Amount
