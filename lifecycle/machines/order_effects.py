"""What the order's transitions do (SPEC §4, §6): its data, its money, its follow-ups.

Effects run after the guards passed; they change the order's private copy of its data and ask
for follow-ups — adapter calls, ledger postings, the voucher's and the dispute's triggers — all
written, or none, with the transition.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from lifecycle.ledger import round_to, transfer
from lifecycle.machines.coupon import voucher_value
from lifecycle.machines.definition import (
    Aggregate,
    Call,
    Context,
    Create,
    Effect,
    Fire,
    Index,
    Post,
    Scan,
    sends,
)
from lifecycle.machines.order_payloads import OpenDispute, PlaceOrder
from lifecycle.machines.order_rules import money_of, refundable, voucher_of
from lifecycle.machines.payloads import dump, iso


@sends(("voucher", "reserve"))
def place(ctx: Context) -> None:
    """The coupon deducts from the goods only, never from shipping."""
    order: PlaceOrder = ctx.payload
    seller = ctx.load("seller", order.seller)
    goods = order.goods_total()
    shipping = order.logistics.shipping_fee
    voucher = voucher_of(ctx)
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


@sends(("voucher", "redeem"))
def pay(ctx: Context) -> None:
    """The buyer's money, and the seller's coupon funding, go into escrow."""
    ctx.data.update(amount_paid=ctx.data["total"], paid_at=iso(ctx.now))
    _voucher_moves(ctx, "redeem")
    if ctx.payload.payment_ref:  # the gateway captured already; its callback says so
        ctx.data["payment_ref"] = ctx.payload.payment_ref
    elif money_of(ctx, "total") > 0:  # a coupon can make an order free: nothing to capture
        _call(ctx, "payments", "capture", result="payment_ref", order_id=ctx.id,
              amount=ctx.data["total"], currency=ctx.data["currency"])
    _post(ctx, "payment",
          ("buyer", "escrow", money_of(ctx, "amount_paid")),
          ("coupon_subsidy", "escrow", money_of(ctx, "coupon_amount")))


@sends(("voucher", "release"))
def cancel(ctx: Context) -> None:
    """Cancelled: whatever was captured goes back to the buyer in full."""
    ctx.data.update(cancelled_at=iso(ctx.now), cancelled_by=str(ctx.actor))
    _voucher_moves(ctx, "release")
    if ctx.data.get("paid_at"):  # paid, if only by the coupon's funding
        _refund_all(ctx, "cancellation")


def _refund_all(ctx: Context, kind: str) -> None:
    """Empty the escrow: the buyer gets back what they paid, the coupon funding goes back."""
    _refund(ctx, refundable(ctx))
    _post(ctx, kind,
          ("escrow", "buyer", refundable(ctx)),
          ("escrow", "coupon_subsidy", money_of(ctx, "coupon_amount")))
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


def waybill_key(carrier: str, waybill: str) -> str:
    """How a carrier's push finds its orders: the carrier and the waybill (one parcel may
    carry several orders of one buyer). The ``waybill`` index holds it."""
    return f"{carrier}:{waybill}"


def _by_waybill(data: Mapping[str, Any]) -> str:
    return waybill_key(data["carrier"], data["waybill"])


def request_cancel(ctx: Context) -> None:
    ctx.data.update(cancel_requested_at=iso(ctx.now), cancel_reason=ctx.payload.reason)


def book_pickup(ctx: Context) -> None:
    """Online shipping: the buyer's chosen carrier and service pick the parcel up at the door."""
    carrier = ctx.data["logistics"]["carrier"]
    seller = ctx.load("seller", ctx.data["seller"])
    ctx.data.update(pickup_booked_at=iso(ctx.now), checklist=dump(ctx.payload.checklist),
                    parcel=dump(ctx.payload.parcel), carrier=carrier)
    _call(ctx, "carrier", "book_pickup", carrier=carrier, result="waybill", order_id=ctx.id,
          parcel=dump(ctx.payload.parcel),
          origin=seller.data.get("country", "CN") if seller else "CN",
          destination=ctx.data["consignee"]["country"], service=ctx.data["logistics"]["service"])
    ctx.follow_ups.append(Index("waybill", _by_waybill))


def pickup_lapsed(ctx: Context) -> None:
    """Nobody came: the booking is cancelled and the seller may ship again."""
    _call(ctx, "carrier", "cancel_pickup", carrier=ctx.data["carrier"],
          waybill=ctx.data["waybill"])
    ctx.data.pop("pickup_booked_at", None)
    ctx.data.pop("waybill", None)


def confirm_pickup(ctx: Context) -> None:
    ctx.data.update(shipped_at=iso(ctx.now), shipping_method="online")


def ship_offline(ctx: Context) -> None:
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
    ctx.follow_ups.append(Index("waybill", _by_waybill))


def track(status: str, *, moves: bool) -> Effect:
    """Keep a carrier's scan as a tracking-event row under ``status``; ``moves`` says whether
    the transition moves the order. The order keeps only what its rules read: when each status
    was first seen, the kinds of exception seen, and whether the parcel went back to the
    sender. (A scan that moves nothing is no transition: the ingestion records it.)"""

    def record(ctx: Context) -> None:
        event = ctx.payload
        exception = getattr(event, "kind", None)
        reported = event.reported_at
        ctx.follow_ups.append(Scan(
            carrier=ctx.data["carrier"], waybill=ctx.data["waybill"], event_id=event.event_id,
            status=status, exception_kind=exception,
            reported_at=iso(reported) if reported is not None else None,
            location=event.location, detail=event.detail, moved=moves,
        ))
        ctx.data.setdefault(f"{status}_at", iso(ctx.now))
        if exception is not None:
            ctx.data["exception_kinds"] = sorted({*ctx.data.get("exception_kinds", ()), exception})
        if exception == "returned_to_sender":
            ctx.data["returned_to_sender"] = True

    record.__name__ = f"track_{status}"
    return record


def complete(ctx: Context) -> None:
    ctx.data.update(completed_at=iso(ctx.now), confirmed_by=str(ctx.actor))


@sends(("voucher", "spend"))
def release(ctx: Context) -> None:
    """Pay the seller out of escrow, less the platform's commission on the goods they keep;
    the seller settles the coupon they funded."""
    kept_goods = max(money_of(ctx, "goods_total") - money_of(ctx, "refunded"), Decimal(0))
    commission = round_to(kept_goods * ctx.policy.commission_rate, ctx.data["currency"])
    held = money_of(ctx, "amount_paid") + money_of(ctx, "coupon_amount") - money_of(ctx, "refunded")
    payout = held - commission
    _post(ctx, "payout",
          ("escrow", "seller", payout),
          ("escrow", "platform_fee", commission),
          ("seller", "coupon_subsidy", money_of(ctx, "coupon_amount")))
    ctx.data.update(released_at=iso(ctx.now), commission=str(commission), payout=str(payout))
    if payout > 0:
        _call(ctx, "payments", "payout", result="payout_ref", seller_id=ctx.data["seller"],
              amount=str(payout), currency=ctx.data["currency"])
    _voucher_moves(ctx, "spend")


@sends(("dispute", "open"))
def open_dispute(ctx: Context) -> None:
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
                "refundable": str(refundable(ctx)),
            },
        )
    )


def close_dispute(ctx: Context) -> None:
    """The dispute settled on a partial refund (or none): the order goes back to where it was."""
    refund: Decimal = ctx.payload.refund_amount
    _refund(ctx, refund)
    _post(ctx, "dispute_refund", ("escrow", "buyer", refund))
    ctx.data["refunded"] = str(money_of(ctx, "refunded") + refund)
    _end_dispute(ctx)


@sends(("voucher", "spend"))
def close_dispute_refunded(ctx: Context) -> None:
    """The dispute settled on everything the buyer paid: the order ends refunded."""
    _refund_all(ctx, "dispute_refund")
    _voucher_moves(ctx, "spend")
    _end_dispute(ctx)


def _end_dispute(ctx: Context) -> None:
    # `when` has already chosen the route back from paused_state; the pause is over.
    ctx.data.pop("paused_state", None)
    ctx.data.pop("dispute", None)
