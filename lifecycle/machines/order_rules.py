"""The order's rules (SPEC §4): the guards its triggers pass before anything moves.

Each is a named `Guard`; a refusal that names a number builds its words from the policy in force.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

from lifecycle.errors import InvalidPayload
from lifecycle.machines.coupon import voucher_value
from lifecycle.machines.definition import Aggregate, Context, Guard
from lifecycle.machines.standing import order_refusal
from lifecycle.policy import in_words

# Where the buyer has the goods: a "received" dispute opens only from these.
RECEIVED_STATES = ("delivered", "completed")


def money_of(ctx: Context, name: str) -> Decimal:
    """An amount the order keeps as text (``total``, ``refunded``, ...)."""
    return Decimal(ctx.data[name])


def refundable(ctx: Context) -> Decimal:
    """What is still in escrow for the buyer: paid less what was refunded before."""
    return money_of(ctx, "amount_paid") - money_of(ctx, "refunded")


def _seller_active(ctx: Context) -> bool:
    """The store takes new orders: its seller is active, and its penalty points (SPEC §12)
    have not reached the level that refuses them (`standing.order_refusal`, one load).

    The rule kept its name, so the order machine kept its version: what a store's standing
    refuses moves with the standing's policy values, as a wait moves with the policy."""
    seller = ctx.load("seller", ctx.payload.seller)
    if seller is None:
        raise InvalidPayload("seller", f"no seller with id {ctx.payload.seller!r}")
    return seller.state == "active" and order_refusal(ctx.load, ctx.payload.seller) is None


def _why_no_orders(ctx: Context) -> str:
    return (order_refusal(ctx.load, ctx.payload.seller)
            or "only an active seller receives new orders")


def _amount_matches(ctx: Context) -> bool:
    amount: Decimal | None = ctx.payload.amount
    return amount is None or amount == money_of(ctx, "total")


def _checklist_confirmed(ctx: Context) -> bool:
    checklist = ctx.payload.checklist
    return all((checklist.quantity, checklist.model, checklist.specification, checklist.colour))


def _refund_within_paid(ctx: Context) -> bool:
    amount: Decimal = ctx.payload.refund_amount
    return Decimal(0) < amount <= refundable(ctx)


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
    return ctx.payload.type != "received" or ctx.state in RECEIVED_STATES


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


def voucher_of(ctx: Context) -> Aggregate | None:
    """The voucher a ``place`` payload names, if any (None also when it does not exist)."""
    return ctx.load("voucher", ctx.payload.coupon) if ctx.payload.coupon else None


def _coupon_rule(check: Callable[[Context, Aggregate], bool]) -> Callable[[Context], bool]:
    """A rule about the order's coupon; an order without one passes it."""

    def rule(ctx: Context) -> bool:
        if not ctx.payload.coupon:
            return True
        voucher = voucher_of(ctx)
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


SELLER_ACTIVE = Guard("seller.active", _seller_active, _why_no_orders)
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
