"""The order (SPEC §4): place, pay, ship online or offline, track, complete, release funds."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StringConstraints

from lifecycle.errors import InvalidPayload
from lifecycle.ledger import round_to, transfer
from lifecycle.machines.coupon import voucher_value
from lifecycle.machines.definition import (
    Aggregate,
    Call,
    Context,
    Create,
    Deadline,
    Fire,
    Guard,
    Index,
    MachineDefinition,
    Post,
    Scan,
    Transition,
)
from lifecycle.machines.payloads import (
    Amount,
    Code,
    Empty,
    LongText,
    Payload,
    Reason,
    Text,
    Waybill,
    dump,
    iso,
)
from lifecycle.money import check_amount, exponent
from lifecycle.policy import Policy, in_words

BUYER, SELLER = frozenset({"buyer"}), frozenset({"seller"})
OPERATOR, SYSTEM = frozenset({"operator"}), frozenset({"system"})

STATES = (
    "awaiting_payment",
    "paid",
    "cancel_requested",
    "awaiting_pickup",
    "shipped",
    "in_transit",
    "delivered",
    "in_dispute",
    "completed",
    "funds_released",
    "cancelled",
    "refunded",
)
DISPUTABLE = ("shipped", "in_transit", "delivered", "completed")
AFTER_SHIPPING = (*DISPUTABLE, "in_dispute")
NOT_RECEIVED_REASONS = (
    "invalid_tracking", "wrong_address", "still_in_transit", "customs_detention", "returned_to_sender",
)
RECEIVED_REASONS = ("not_as_described", "quality", "damage", "short_shipment", "counterfeit")

Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]


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
    service: Literal["express", "standard", "economy"]
    shipping_fee: Amount
    # At most the policy's delivery_window_max: the DELIVERY_WITHIN_WINDOW guard checks it.
    delivery_days: Annotated[int, Field(strict=True, ge=1)]


class PlaceOrder(Payload):
    seller: Code
    lines: Annotated[list[Line], Field(min_length=1, max_length=200)]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
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
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None

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


TrackingStatus = Literal[
    "info_received", "in_transit", "out_for_delivery", "delivered", "exception", "returned_to_sender"
]


class TrackingEvent(Payload):
    event_id: Text | None = None
    status: TrackingStatus | None = None
    reported_at: datetime | None = None
    location: Text | None = None
    detail: LongText | None = None


class TrackingException(Payload):
    kind: Literal["lost", "customs_hold", "returned_to_sender", "delay", "other"]
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


# --- guards -------------------------------------------------------------------------------


def _money(ctx: Context, name: str) -> Decimal:
    return Decimal(ctx.data[name])


def _refundable(ctx: Context) -> Decimal:
    """What is still in escrow for the buyer: paid less what was refunded before."""
    return _money(ctx, "amount_paid") - _money(ctx, "refunded")


def _amount_matches(ctx: Context) -> bool:
    amount: Decimal | None = ctx.payload.amount
    return amount is None or amount == _money(ctx, "total")


def _checklist_confirmed(ctx: Context) -> bool:
    checklist = ctx.payload.checklist
    return all((checklist.quantity, checklist.model, checklist.specification, checklist.colour))


def _refund_within_paid(ctx: Context) -> bool:
    amount: Decimal = ctx.payload.refund_amount
    return Decimal(0) < amount <= _refundable(ctx)


def _delivery_within_window(ctx: Context) -> bool:
    """The promised delivery time against the policy in force; out of it, the payload is
    malformed (`InvalidPayload` naming the field), as a value out of a static bound is."""
    days: int = ctx.payload.logistics.delivery_days
    longest = ctx.policy.delivery_window_max
    if days > longest / timedelta(days=1):
        raise InvalidPayload("logistics.delivery_days",
                             f"an order promises delivery in at most {in_words(longest)} "
                             f"(policy delivery_window_max), got {days}")
    return True


def _not_received_wait(ctx: Context) -> bool:
    if ctx.payload.type != "not_received" or ctx.data.get("returned_to_sender"):
        return True
    return ctx.elapsed_since("shipped_at") >= ctx.policy.not_received_after


def _received_after_delivery(ctx: Context) -> bool:
    return ctx.payload.type != "received" or ctx.state in ("delivered", "completed")


def _chosen_carrier(ctx: Context) -> str | None:
    return (ctx.data.get("logistics") or {}).get("carrier")


def _buyers_carrier(ctx: Context) -> bool:
    """The buyer chose the logistics service when ordering (SPEC §4): the seller hands the
    parcel to that carrier, not to one cheaper for the seller."""
    chosen = _chosen_carrier(ctx)
    return chosen is None or ctx.payload.carrier == chosen


def _not_buyers_carrier(ctx: Context) -> str:
    chosen = _chosen_carrier(ctx)
    return f"the buyer chose {chosen}: hand the parcel to {chosen}, not {ctx.payload.carrier}"


def _voucher(ctx: Context) -> Aggregate | None:
    return ctx.load("voucher", ctx.payload.coupon) if ctx.payload.coupon else None


def _coupon_rule(check: Callable[[Context, Aggregate], bool]) -> Callable[[Context], bool]:
    """A rule about the order's coupon; an order without one passes it."""

    def rule(ctx: Context) -> bool:
        if not ctx.payload.coupon:
            return True
        voucher = _voucher(ctx)
        return voucher is not None and check(ctx, voucher)

    return rule


def _voucher_available(ctx: Context, voucher: Aggregate) -> bool:
    return voucher.state == "available" and voucher.data["buyer"] == ctx.actor.id


def _voucher_in_validity(ctx: Context, voucher: Aggregate) -> bool:
    starts, ends = (datetime.fromisoformat(voucher.data[k]) for k in ("starts_at", "ends_at"))
    return starts <= ctx.now < ends


def _voucher_reaches_threshold(ctx: Context, voucher: Aggregate) -> bool:
    eligible, _deduction = voucher_value(voucher, ctx.payload.lines)
    threshold = voucher.data.get("threshold")
    return eligible > 0 and (threshold is None or eligible >= Decimal(threshold))


COUPON_RULES = (
    Guard("coupon.available", _coupon_rule(_voucher_available),
          "the coupon must be one of the buyer's own, claimed and not in use"),
    Guard("coupon.same_seller", _coupon_rule(lambda c, v: v.data["seller"] == c.payload.seller),
          "a coupon applies only to its own store's orders"),
    Guard("coupon.same_currency",
          _coupon_rule(lambda c, v: v.data["currency"] == c.payload.currency),
          "a coupon applies only to orders in its currency"),
    Guard("coupon.not_on_samples", _coupon_rule(lambda c, v: not c.payload.sample),
          "coupons do not apply to sample orders"),
    Guard("coupon.in_validity", _coupon_rule(_voucher_in_validity),
          "the coupon is not valid at this time"),
    Guard("coupon.threshold", _coupon_rule(_voucher_reaches_threshold),
          "the goods the coupon applies to do not reach its spend threshold (shipping excluded)"),
)

def _ref_from_gateway(ctx: Context) -> bool:
    return ctx.payload.payment_ref is None or ctx.actor.role == "system"


REF_FROM_GATEWAY = Guard(
    "payment.ref_from_gateway",
    _ref_from_gateway,
    "only the payment gateway (system) says a payment was captured elsewhere",
)
AMOUNT_MATCHES = Guard("payment.amount", _amount_matches, "the amount paid must equal the order total")
CHECKLIST = Guard(
    "shipping.checklist",
    _checklist_confirmed,
    "confirm quantity, model, specification and colour before shipping",
)

BUYERS_CARRIER = Guard("shipping.buyers_carrier", _buyers_carrier, _not_buyers_carrier)
REFUND_WITHIN_PAID = Guard(
    "dispute.refund_within_paid",
    _refund_within_paid,
    "the refund requested must be more than zero and at most what the buyer paid and was not refunded",
)
DELIVERY_WITHIN_WINDOW = Guard(
    "logistics.delivery_within_window",
    _delivery_within_window,
    "an order promises delivery within the policy's delivery_window_max",
)
NOT_RECEIVED_WAIT = Guard(
    "dispute.not_received_wait",
    _not_received_wait,
    lambda ctx: (f"a not_received dispute opens {in_words(ctx.policy.not_received_after)} after "
                 "shipping, or at once after return to sender"),
)
RECEIVED_AFTER_DELIVERY = Guard(
    "dispute.received_after_delivery",
    _received_after_delivery,
    "a received dispute opens only after delivery",
)


# --- effects ------------------------------------------------------------------------------


def _place(ctx: Context) -> None:
    """The coupon deducts from the goods only, never from shipping."""
    order: PlaceOrder = ctx.payload
    seller = ctx.load("seller", order.seller)
    goods = order.goods_total()
    shipping = order.logistics.shipping_fee
    voucher = _voucher(ctx)
    coupon = voucher_value(voucher, order.lines)[1] if voucher else Decimal(0)
    _call(ctx, "carrier", "resolve", carrier=order.logistics.carrier)  # an unknown one is refused
    if voucher:
        ctx.follow_ups.append(Fire("voucher", voucher.id, "reserve", {"order": ctx.id}))
    ctx.data.update(
        dump(order),
        buyer=ctx.actor.id,
        goods_total=str(goods),
        shipping_fee=str(shipping),
        total=str(goods - coupon + shipping),
        amount_paid="0",
        refunded="0",
        coupon_amount=str(coupon),
        handling_time_days=_handling_days(ctx, seller),
        placed_at=iso(ctx.now),
    )


def _handling_days(ctx: Context, seller: Aggregate | None) -> int:
    """The seller's handling time, in days: their profile's, else the policy's default."""
    chosen = seller.data.get("handling_time_days") if seller else None
    return int(chosen) if chosen is not None else ctx.policy.handling_time.days


def _seller_active(ctx: Context) -> bool:
    seller = ctx.load("seller", ctx.payload.seller)
    if seller is None:
        raise InvalidPayload("seller", f"no seller with id {ctx.payload.seller!r}")
    return seller.state == "active"


def _pay(ctx: Context) -> None:
    """The buyer's money, and the seller's coupon funding, go into escrow."""
    ctx.data.update(amount_paid=ctx.data["total"], paid_at=iso(ctx.now))
    _voucher_moves(ctx, "redeem")
    if ctx.payload.payment_ref:  # the gateway captured already; its callback says so
        ctx.data["payment_ref"] = ctx.payload.payment_ref
    elif _money(ctx, "total") > 0:  # a coupon can make an order free: nothing to capture
        _call(ctx, "payments", "capture", result="payment_ref", order_id=ctx.id,
              amount=ctx.data["total"], currency=ctx.data["currency"])
    _post(ctx, "payment",
          ("buyer", "escrow", _money(ctx, "amount_paid")),
          ("coupon_subsidy", "escrow", _money(ctx, "coupon_amount")))


def _cancel(ctx: Context) -> None:
    """Cancelled: whatever was captured goes back to the buyer in full."""
    ctx.data.update(cancelled_at=iso(ctx.now), cancelled_by=str(ctx.actor))
    _voucher_moves(ctx, "release")
    if ctx.data.get("paid_at"):  # paid, if only by the coupon's funding
        _refund_all(ctx, "cancellation")


def _refund_all(ctx: Context, kind: str) -> None:
    """Empty the escrow: the buyer gets back what they paid, the coupon funding goes back."""
    _refund(ctx, _refundable(ctx))
    _post(ctx, kind,
          ("escrow", "buyer", _refundable(ctx)),
          ("escrow", "coupon_subsidy", _money(ctx, "coupon_amount")))
    ctx.data["refunded"] = ctx.data["amount_paid"]


def _voucher_moves(ctx: Context, trigger: str) -> None:
    """The order's coupon follows it: redeemed on payment, released on cancellation, spent at
    the end (never returned on a refund)."""
    if ctx.data.get("coupon"):
        ctx.follow_ups.append(Fire("voucher", ctx.data["coupon"], trigger, {"order": ctx.id}))


def _post(ctx: Context, kind: str, *moves: tuple[str, str, Decimal]) -> None:
    ctx.follow_ups.append(Post(transfer(kind, ctx.data["currency"], *moves)))


def _call(ctx: Context, port: str, operation: str, *, result: str | None = None,
          carrier: str | None = None, **args: Any) -> None:
    ctx.follow_ups.append(Call(port, operation, args, carrier, result))


def _refund(ctx: Context, amount: Decimal) -> None:
    """Give money back through the gateway that captured it."""
    if amount > 0 and ctx.data.get("payment_ref"):
        _call(ctx, "payments", "refund", payment_ref=ctx.data["payment_ref"], amount=str(amount),
              currency=ctx.data["currency"])


def _waybill_key(data: Mapping[str, Any]) -> str:
    """How a carrier's push finds its orders: the carrier and the waybill (one parcel may
    carry several orders of one buyer)."""
    return f"{data['carrier']}:{data['waybill']}"


def _request_cancel(ctx: Context) -> None:
    ctx.data.update(cancel_requested_at=iso(ctx.now), cancel_reason=ctx.payload.reason)


def _book_pickup(ctx: Context) -> None:
    """Online shipping: the buyer's chosen carrier and service pick the parcel up at the door."""
    carrier = ctx.data["logistics"]["carrier"]
    seller = ctx.load("seller", ctx.data["seller"])
    ctx.data.update(pickup_booked_at=iso(ctx.now), checklist=dump(ctx.payload.checklist),
                    parcel=dump(ctx.payload.parcel), carrier=carrier)
    _call(ctx, "carrier", "book_pickup", carrier=carrier, result="waybill", order_id=ctx.id,
          parcel=dump(ctx.payload.parcel),
          origin=seller.data.get("country", "CN") if seller else "CN",
          destination=ctx.data["consignee"]["country"], service=ctx.data["logistics"]["service"])
    ctx.follow_ups.append(Index("waybill", _waybill_key))


def _pickup_lapsed(ctx: Context) -> None:
    """Nobody came: the booking is cancelled and the seller may ship again."""
    _call(ctx, "carrier", "cancel_pickup", carrier=ctx.data["carrier"],
          waybill=ctx.data["waybill"])
    ctx.data.pop("pickup_booked_at", None)
    ctx.data.pop("waybill", None)


def _confirm_pickup(ctx: Context) -> None:
    ctx.data.update(shipped_at=iso(ctx.now), shipping_method="online")


def _ship_offline(ctx: Context) -> None:
    """Offline shipping: the carrier must accept the waybill the seller typed."""
    _call(ctx, "carrier", "validate_waybill", carrier=ctx.payload.carrier,
          number=ctx.payload.waybill)
    ctx.data.update(
        shipped_at=iso(ctx.now),
        shipping_method="offline",
        carrier=ctx.payload.carrier,
        waybill=ctx.payload.waybill,
        checklist=dump(ctx.payload.checklist),
    )
    ctx.follow_ups.append(Index("waybill", _waybill_key))


def _track(status: str | None) -> Any:
    """Keep the scan as a tracking-event row; ``status`` None records it as it came (a late or
    out-of-order event that moves nothing). The order keeps only what its rules read: when it
    moved, the kinds of exception seen, and whether the parcel went back to the sender."""

    def record(ctx: Context) -> None:
        event = ctx.payload
        exception = getattr(event, "kind", None)
        reported = event.reported_at
        ctx.follow_ups.append(Scan(
            carrier=ctx.data["carrier"], waybill=ctx.data["waybill"], event_id=event.event_id,
            status=status or getattr(event, "status", None), exception_kind=exception,
            reported_at=iso(reported) if reported is not None else None,
            location=event.location, detail=event.detail,
            moved=status in ("in_transit", "delivered"),
        ))
        if status is not None:
            ctx.data.setdefault(f"{status}_at", iso(ctx.now))
        if exception is not None:
            ctx.data["exception_kinds"] = sorted({*ctx.data.get("exception_kinds", ()), exception})
        if exception == "returned_to_sender":
            ctx.data["returned_to_sender"] = True

    record.__name__ = f"track_{status or 'event'}"
    return record


def _complete(ctx: Context) -> None:
    ctx.data.update(completed_at=iso(ctx.now), confirmed_by=str(ctx.actor))


def _release(ctx: Context) -> None:
    """Pay the seller out of escrow, less the platform's commission on the goods they keep;
    the seller settles the coupon they funded."""
    kept_goods = max(_money(ctx, "goods_total") - _money(ctx, "refunded"), Decimal(0))
    commission = round_to(kept_goods * ctx.policy.commission_rate, ctx.data["currency"])
    held = _money(ctx, "amount_paid") + _money(ctx, "coupon_amount") - _money(ctx, "refunded")
    payout = held - commission
    _post(ctx, "payout",
          ("escrow", "seller", payout),
          ("escrow", "platform_fee", commission),
          ("seller", "coupon_subsidy", _money(ctx, "coupon_amount")))
    ctx.data.update(released_at=iso(ctx.now), commission=str(commission), payout=str(payout))
    if payout > 0:
        _call(ctx, "payments", "payout", result="payout_ref", seller_id=ctx.data["seller"],
              amount=str(payout), currency=ctx.data["currency"])
    _voucher_moves(ctx, "spend")


def _open_dispute(ctx: Context) -> None:
    claim: OpenDispute = ctx.payload
    count = int(ctx.data.get("dispute_count", 0)) + 1
    # The dispute's id starts with the order's: the two share a shard key (SPEC §11).
    dispute_id = f"{ctx.id}-d{count}"
    ctx.data.update(dispute_count=count, dispute=dispute_id, paused_state=ctx.state)
    ctx.follow_ups.append(
        Create(
            "dispute",
            dispute_id,
            {
                **dump(claim),
                "order": ctx.id,
                "buyer": ctx.data["buyer"],
                "seller": ctx.data["seller"],
                "currency": ctx.data["currency"],
                "refundable": str(_refundable(ctx)),
            },
        )
    )


def _close_dispute(ctx: Context) -> None:
    """The dispute settled on a partial refund (or none): the order goes back to where it was."""
    refund: Decimal = ctx.payload.refund_amount
    _refund(ctx, refund)
    _post(ctx, "dispute_refund", ("escrow", "buyer", refund))
    ctx.data["refunded"] = str(_money(ctx, "refunded") + refund)
    _end_dispute(ctx)


def _close_dispute_refunded(ctx: Context) -> None:
    """The dispute settled on everything the buyer paid: the order ends refunded."""
    _refund_all(ctx, "dispute_refund")
    _voucher_moves(ctx, "spend")
    _end_dispute(ctx)


def _end_dispute(ctx: Context) -> None:
    # `when` has already chosen the route back from paused_state; the pause is over.
    ctx.data.pop("paused_state", None)
    ctx.data.pop("dispute", None)


def _refunds_everything(ctx: Context) -> bool:
    return bool(ctx.payload.refund_amount >= _refundable(ctx))


def _paused_in(state: str) -> Any:
    def check(ctx: Context) -> bool:
        return bool(ctx.data.get("paused_state") == state)

    check.__name__ = f"paused_in_{state}"
    return check


def _days(data_field: str) -> Any:
    def duration(policy: Any, data: Any) -> timedelta:
        return timedelta(days=int(data[data_field]))

    return duration


def _promised_delivery(policy: Policy, data: Mapping[str, Any]) -> timedelta:
    """The buyer's confirmation window: the delivery time promised with the logistics service."""
    return min(timedelta(days=int(data["logistics"]["delivery_days"])), policy.delivery_window_max)


# --- the machine --------------------------------------------------------------------------

_BACK = tuple(
    Transition("close_dispute", ("in_dispute",), state, SYSTEM, CloseDispute, (), _close_dispute,
               when=_paused_in(state), internal=True)
    for state in DISPUTABLE
)

# What a carrier's scan does to an order in each state: the trigger it fires. A scan of any other
# status in a state after shipping is recorded as it came (``record_tracking``).
SCAN_MOVES: Mapping[tuple[str, str], str] = {
    ("awaiting_pickup", "in_transit"): "confirm_pickup",
    ("awaiting_pickup", "out_for_delivery"): "confirm_pickup",
    ("shipped", "in_transit"): "tracking_in_transit",
    ("shipped", "out_for_delivery"): "tracking_in_transit",
    ("shipped", "delivered"): "tracking_delivered",
    ("in_transit", "delivered"): "tracking_delivered",
    ("shipped", "exception"): "tracking_exception",
    ("in_transit", "exception"): "tracking_exception",
    ("shipped", "returned_to_sender"): "tracking_exception",
    ("in_transit", "returned_to_sender"): "tracking_exception",
}
RECORDED_SCAN_STATES = ("shipped", "in_transit", "delivered", "completed", "in_dispute")


def trigger_for_scan(state: str, status: str) -> str | None:
    """The order trigger a carrier scan of ``status`` fires in ``state``; None when the scan
    moves nothing (it is recorded, or ignored before shipping). Scans never move an order
    backwards: a late in_transit after delivery is only recorded."""
    return SCAN_MOVES.get((state, status))


DEFINITION = MachineDefinition(
    "order",
    states=STATES,
    terminal=frozenset({"funds_released", "cancelled", "refunded"}),
    pausing=frozenset({"in_dispute"}),  # an open dispute stops the order's clocks (SPEC §4)
    owners={"buyer": lambda id, data: data["buyer"], "seller": lambda id, data: data["seller"]},
    new_id=lambda actor: f"o-{uuid.uuid4().hex[:16]}",
    transitions=(
        Transition("place", (), "awaiting_payment", BUYER, PlaceOrder,
                   (DELIVERY_WITHIN_WINDOW, Guard("seller.active", _seller_active,
                          "only an active seller receives new orders"), *COUPON_RULES), _place),
        Transition("pay", ("awaiting_payment",), "paid", BUYER | SYSTEM, Pay,
                   (AMOUNT_MATCHES, REF_FROM_GATEWAY), _pay),
        Transition("cancel", ("awaiting_payment",), "cancelled", BUYER | OPERATOR, Empty, (),
                   _cancel),
        Transition("payment_timeout", ("awaiting_payment",), "cancelled", SYSTEM, Empty, (),
                   _cancel),
        Transition("request_cancel", ("paid",), "cancel_requested", BUYER, Reason, (),
                   _request_cancel),
        Transition("accept_cancel", ("cancel_requested",), "cancelled", SELLER, Empty, (),
                   _cancel),
        Transition("reject_cancel", ("cancel_requested",), "paid", SELLER, Empty),
        Transition("cancel_request_timeout", ("cancel_requested",), "cancelled", SYSTEM, Empty,
                   (), _cancel),
        Transition("ship_deadline", ("paid",), "cancelled", SYSTEM, Empty, (), _cancel),
        Transition("book_pickup", ("paid",), "awaiting_pickup", SELLER, BookPickup, (CHECKLIST,),
                   _book_pickup),
        Transition("pickup_timeout", ("awaiting_pickup",), "paid", SYSTEM, Empty, (),
                   _pickup_lapsed),
        Transition("confirm_pickup", ("awaiting_pickup",), "shipped", SELLER | SYSTEM,
                   ConfirmPickup, (), _confirm_pickup),
        Transition("ship_offline", ("paid",), "shipped", SELLER, ShipOffline,
                   (CHECKLIST, BUYERS_CARRIER),
                   _ship_offline),
        Transition("tracking_in_transit", ("shipped",), "in_transit", SYSTEM | OPERATOR,
                   TrackingEvent, (), _track("in_transit")),
        Transition("tracking_delivered", ("shipped", "in_transit"), "delivered",
                   SYSTEM | OPERATOR, TrackingEvent, (), _track("delivered")),
        Transition("tracking_exception", ("shipped", "in_transit"), None, SYSTEM | OPERATOR,
                   TrackingException, (), _track("exception")),
        Transition("record_tracking", AFTER_SHIPPING, None, SYSTEM | OPERATOR, TrackingEvent,
                   (), _track(None)),
        Transition("confirm_receipt", ("shipped", "in_transit", "delivered"), "completed", BUYER,
                   Empty, (), _complete),
        Transition("auto_confirm", ("shipped", "in_transit", "delivered"), "completed", SYSTEM,
                   Empty, (), _complete),
        Transition("release_funds", ("completed",), "funds_released", SYSTEM | OPERATOR, Empty,
                   (), _release),
        Transition("open_dispute", DISPUTABLE, "in_dispute", BUYER, OpenDispute,
                   (REFUND_WITHIN_PAID, NOT_RECEIVED_WAIT, RECEIVED_AFTER_DELIVERY),
                   _open_dispute),
        Transition("close_dispute", ("in_dispute",), "refunded", SYSTEM, CloseDispute, (),
                   _close_dispute_refunded, when=_refunds_everything, internal=True),
        *_BACK,
    ),
    deadlines=(
        Deadline("awaiting_payment", "payment_timeout", lambda p, d: p.payment_timeout,
                 "placed_at"),
        Deadline("paid", "ship_deadline", _days("handling_time_days"), "paid_at"),
        Deadline("cancel_requested", "cancel_request_timeout",
                 lambda p, d: p.cancel_request_timeout, "cancel_requested_at"),
        Deadline("awaiting_pickup", "pickup_timeout", lambda p, d: p.pickup_timeout,
                 "pickup_booked_at"),
        Deadline("shipped", "auto_confirm", _promised_delivery, "shipped_at"),
        Deadline("in_transit", "auto_confirm", _promised_delivery, "shipped_at",
                 continues_from=("shipped",)),
        Deadline("delivered", "auto_confirm", lambda p, d: p.auto_confirm_after_delivery,
                 "delivered_at"),
        Deadline("completed", "release_funds", lambda p, d: p.protection_period, "completed_at"),
    ),
)
