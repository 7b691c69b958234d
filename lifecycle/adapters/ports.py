"""The ports (SPEC §7): what the engine asks of a payment gateway and of a carrier, and the values
that cross them. Implementations live elsewhere (the sandbox, or an installed package).

Money crossing a port is ``Decimal`` with an ISO currency, never a float. Every call that moves
money or books something takes an idempotency key: the same key returns the first result and
never acts twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, Protocol, get_args

from lifecycle.errors import InvalidPayload
from lifecycle.machines.order_payloads import ExceptionKind as ExceptionKind
from lifecycle.machines.order_payloads import ServiceLevel as ServiceLevel
from lifecycle.machines.order_payloads import TrackingStatus as TrackingStatus
from lifecycle.money import check_amount

# The words of shipping (ServiceLevel, TrackingStatus, ExceptionKind) are the domain's, homed
# with the order's payloads that take them; the port speaks them and re-exports them.

PaymentEventKind = Literal["captured", "refunded", "failed"]

TRACKING_STATUSES: tuple[TrackingStatus, ...] = get_args(TrackingStatus)
EXCEPTION_KINDS: tuple[ExceptionKind, ...] = get_args(ExceptionKind)
PAYMENT_EVENT_KINDS: tuple[PaymentEventKind, ...] = get_args(PaymentEventKind)
SERVICE_LEVELS: tuple[ServiceLevel, ...] = get_args(ServiceLevel)


def _decimal(value: object, field: str) -> Decimal:
    """``value`` as a Decimal; ints are exact and welcome, floats are refused."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise InvalidPayload(field, f"must be a Decimal, got {type(value).__name__}")
    return Decimal(value)


@dataclass(frozen=True, slots=True)
class Money:
    """A positive amount in an ISO 4217 currency: ``Money(Decimal("12.34"), "USD")``."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        amount = _decimal(self.amount, "amount")
        object.__setattr__(self, "amount", check_amount(amount, self.currency, "amount"))

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


@dataclass(frozen=True, slots=True)
class Parcel:
    """What is shipped: actual weight in kilograms and outer dimensions in centimetres."""

    weight_kg: Decimal
    length_cm: Decimal
    width_cm: Decimal
    height_cm: Decimal

    def __post_init__(self) -> None:
        for name in ("weight_kg", "length_cm", "width_cm", "height_cm"):
            value = _decimal(getattr(self, name), f"parcel.{name}")
            if not value.is_finite() or value <= 0:
                raise InvalidPayload(f"parcel.{name}", "must be greater than zero")
            object.__setattr__(self, name, value)

    @property
    def volume_cm3(self) -> Decimal:
        return self.length_cm * self.width_cm * self.height_cm


@dataclass(frozen=True, slots=True)
class Quote:
    """One way to ship a parcel: a carrier's service level, its price and its transit time.

    ``chargeable_weight`` is what the price was computed from: the larger of the actual and the
    volumetric weight (kg).
    """

    carrier: str
    service: ServiceLevel
    price: Decimal
    currency: str
    transit_days: int
    chargeable_weight: Decimal


@dataclass(frozen=True, slots=True)
class TrackingEvent:
    """A carrier's scan, normalised. ``exception_kind`` is set exactly when status is exception.

    ``event_id`` is the carrier's own id: a duplicate push carries the same one, so the engine
    can ignore it.
    """

    event_id: str
    waybill: str
    status: TrackingStatus
    at: datetime
    location: str | None = None
    detail: str = ""
    exception_kind: ExceptionKind | None = None

    def __post_init__(self) -> None:
        if self.status not in TRACKING_STATUSES:
            raise InvalidPayload("status", f"{self.status!r} is not one of {', '.join(TRACKING_STATUSES)}")
        if self.at.tzinfo is None:
            raise InvalidPayload("at", "must be an aware datetime")
        if (self.status == "exception") != (self.exception_kind is not None):
            raise InvalidPayload("exception_kind", "is given exactly when the status is exception")
        if self.exception_kind is not None and self.exception_kind not in EXCEPTION_KINDS:
            raise InvalidPayload("exception_kind", f"is one of {', '.join(EXCEPTION_KINDS)}")

    def to_json(self) -> dict[str, str | None]:
        """JSON-able form, as pushed on the wire and as the engine may keep it on the order."""
        return {
            "event_id": self.event_id,
            "waybill": self.waybill,
            "status": self.status,
            "at": self.at.isoformat(),
            "location": self.location,
            "detail": self.detail,
            "exception_kind": self.exception_kind,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrackingEvent:
        """The inverse of `to_json`; a malformed event is an `InvalidPayload`."""
        try:
            return cls(
                event_id=str(data["event_id"]),
                waybill=str(data["waybill"]),
                status=data["status"],
                at=datetime.fromisoformat(data["at"]),
                location=data.get("location"),
                detail=str(data.get("detail") or ""),
                exception_kind=data.get("exception_kind"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidPayload("tracking event", f"malformed: {exc}") from None


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """A gateway's callback, verified and parsed. ``event_id`` repeats on a replayed callback.

    ``payment_ref`` is the capture's reference (None when a capture failed before one existed);
    ``reason`` says why a payment failed.
    """

    event_id: str
    kind: PaymentEventKind
    order_id: str
    payment_ref: str | None
    amount: Decimal
    currency: str
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in PAYMENT_EVENT_KINDS:
            raise InvalidPayload("kind", f"{self.kind!r} is not one of {', '.join(PAYMENT_EVENT_KINDS)}")
        check_amount(_decimal(self.amount, "amount"), self.currency, "amount")

    @property
    def money(self) -> Money:
        return Money(self.amount, self.currency)


class PaymentGateway(Protocol):
    """Captures into escrow, refunds, pays sellers out, charges their fees (SPEC §7).

    Each method returns the gateway's reference for what it did. The same ``key`` for the same
    operation returns the same reference and never moves money twice; the same key with a
    different request raises `AdapterError`. Failures raise `AdapterError` (its ``timeout`` flag
    set when the outcome is unknown) or `PaymentDeclined`.
    """

    @property
    def name(self) -> str: ...

    def capture(self, order_id: str, amount: Money, key: str) -> str:
        """Capture ``amount`` for the order into escrow; returns the payment reference."""
        ...

    def refund(self, payment_ref: str, amount: Money, key: str) -> str:
        """Refund part or all of a capture; returns the refund reference."""
        ...

    def payout(self, seller_id: str, amount: Money, key: str) -> str:
        """Pay a seller; returns the payout reference."""
        ...

    def charge_fee(self, seller_id: str, amount: Money, key: str) -> str:
        """Charge a seller a fee (the store's annual fee); returns the charge reference."""
        ...

    def parse_callback(self, body: bytes, headers: Mapping[str, str]) -> PaymentEvent:
        """Verify the callback's Standard Webhooks signature, then parse it.

        `lifecycle.adapters.verify` does the checking: the ``webhook-id``, ``webhook-timestamp``
        and ``webhook-signature`` headers, any of the adapter's configured secrets matching, the
        timestamp within `TOLERANCE` of the engine's clock (the one the adapter was built
        with), and the body within `MAX_BODY_BYTES`. A missing, malformed, stale or wrong
        signature raises `SignatureInvalid` before the body is read; a body too large or that
        cannot be read, an `AdapterError`. Parse with `lifecycle.loads_json`, which refuses
        duplicate keys. The engine hands over the body as bytes
        and the headers with lower-case names (`webhooks.delivery`).
        """
        ...


class Carrier(Protocol):
    """A logistics carrier: quotes, pickups, waybill validation and tracking (SPEC §4, §7).

    ``origin`` and ``destination`` are ISO 3166 alpha-2 country codes.
    """

    @property
    def name(self) -> str: ...

    def quote(self, parcel: Parcel, origin: str, destination: str) -> list[Quote]:
        """Every service this carrier offers for the parcel on this route, cheapest first."""
        ...

    def book_pickup(
        self, order_id: str, parcel: Parcel, origin: str, destination: str, service: ServiceLevel, key: str
    ) -> str:
        """Book a door-to-door pickup (online shipping); returns the waybill number."""
        ...

    def cancel_pickup(self, waybill: str, key: str) -> None:
        """Cancel a booked pickup that did not happen (the order's ``pickup_timeout``)."""
        ...

    def validate_waybill(self, number: str) -> None:
        """Return if the carrier would accept ``number``; else raise `InvalidWaybill` saying why."""
        ...

    def track(self, waybill: str) -> list[TrackingEvent]:
        """Poll: every event so far for the waybill, oldest first."""
        ...

    def parse_push(self, body: bytes, headers: Mapping[str, str]) -> list[TrackingEvent]:
        """Verify a pushed update's Standard Webhooks signature, then parse its events.

        `lifecycle.adapters.verify` does the checking: the ``webhook-id``, ``webhook-timestamp``
        and ``webhook-signature`` headers, any of the adapter's configured secrets matching, the
        timestamp within `TOLERANCE` of the engine's clock (the one the adapter was built
        with), and the body within `MAX_BODY_BYTES`. A missing, malformed, stale or wrong
        signature raises `SignatureInvalid` before the body is read; a body too large or that
        cannot be read, an `AdapterError`. Parse with `lifecycle.loads_json`, which refuses
        duplicate keys. The engine hands over the body as bytes
        and the headers with lower-case names (`webhooks.delivery`).
        """
        ...
