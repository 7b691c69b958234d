"""Merchant coupons (SPEC §6) and the vouchers buyers claim from them (SPEC §4).

A seller defines a coupon (``draft → active → deactivated | expired``); a buyer claims one copy,
which becomes that buyer's voucher. An order reserves the voucher when placed, redeems it when
paid, gives it back when cancelled while the coupon is still valid, and spends it for good when
the order ends in a release or a refund.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from lifecycle.errors import InvalidPayload
from lifecycle.machines.definition import (
    Context,
    Create,
    Deadline,
    Guard,
    MachineDefinition,
    Transition,
    sends,
)
from lifecycle.machines.payloads import Amount, Code, Currency, Empty, Payload, dump, iso
from lifecycle.money import check_amount
from lifecycle.policy import in_words

BUYER, SELLER = frozenset({"buyer"}), frozenset({"seller"})
OPERATOR, SYSTEM = frozenset({"operator"}), frozenset({"system"})

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class CouponTerms(Payload):
    title: Title
    currency: Currency
    denomination: Amount
    threshold: Amount | None = None
    starts_at: datetime
    ends_at: datetime
    copies: Annotated[int, Field(strict=True, ge=1)]
    products: Literal["all"] | Annotated[list[Code], Field(min_length=1)] = "all"

    def check(self, data: Any) -> None:
        check_amount(self.denomination, self.currency, "denomination")
        if self.threshold is not None:
            check_amount(self.threshold, self.currency, "threshold")
        for name in ("starts_at", "ends_at"):
            if getattr(self, name).tzinfo is None:
                raise InvalidPayload(name, "needs a time zone (for example 2026-12-01T00:00:00Z)")


class Copies(Payload):
    copies: Annotated[int, Field(strict=True, ge=1)]


# --- coupon rules: each its own error -------------------------------------------------------


def _title_short(ctx: Context) -> bool:
    return len(ctx.payload.title) <= ctx.policy.coupon_title_max


def _validity_ordered(ctx: Context) -> bool:
    return bool(ctx.payload.ends_at > ctx.payload.starts_at)


def _validity_short(ctx: Context) -> bool:
    span: timedelta = ctx.payload.ends_at - ctx.payload.starts_at
    return span <= ctx.policy.coupon_max_validity


def _copies_within_max(ctx: Context) -> bool:
    return bool(ctx.payload.copies <= ctx.policy.coupon_max_copies)


def _products_within_max(ctx: Context) -> bool:
    products = ctx.payload.products
    return products == "all" or len(products) <= ctx.policy.coupon_max_products


def _denomination_enough(ctx: Context) -> bool:
    minimum = ctx.policy.coupon_min_denomination.get(ctx.payload.currency)
    return minimum is not None and ctx.payload.denomination >= minimum


def _threshold_above_denomination(ctx: Context) -> bool:
    threshold = ctx.payload.threshold
    return threshold is None or threshold > ctx.payload.denomination


def _raises(ctx: Context) -> bool:
    return bool(ctx.payload.copies > ctx.data["copies"])


def _not_below_claimed(ctx: Context) -> bool:
    return bool(ctx.payload.copies >= ctx.data["claimed"])


def _not_ended(ctx: Context) -> bool:
    return ctx.now < datetime.fromisoformat(ctx.data["ends_at"])


def _in_validity(ctx: Context) -> bool:
    starts, ends = (datetime.fromisoformat(ctx.data[k]) for k in ("starts_at", "ends_at"))
    return starts <= ctx.now < ends


def _first_copy(ctx: Context) -> bool:
    return ctx.load("voucher", voucher_id(ctx.id, ctx.actor.id)) is None


def voucher_id(coupon: str, buyer: str) -> str:
    # One copy per buyer: the voucher's id is unique, so even a concurrent second claim fails.
    return f"{coupon}:{buyer}"


def _copies_left(ctx: Context) -> bool:
    return bool(ctx.data["claimed"] < ctx.data["copies"])


def _at_most_title(ctx: Context) -> str:
    return f"a coupon title has at most {ctx.policy.coupon_title_max} characters"


def _at_most_validity(ctx: Context) -> str:
    return f"a coupon is valid for at most {in_words(ctx.policy.coupon_max_validity)}"


def _at_most_copies(ctx: Context) -> str:
    return f"at most {ctx.policy.coupon_max_copies:,} copies are issued per coupon"


def _at_most_products(ctx: Context) -> str:
    return ("a coupon applies to all products or to at most "
            f"{ctx.policy.coupon_max_products} specific products")


def _at_least_denomination(ctx: Context) -> str:
    minimums = sorted(ctx.policy.coupon_min_denomination.items())
    worth = " or ".join(f"{amount} {currency}" for currency, amount in minimums)
    issued = " or ".join(currency for currency, _amount in minimums)
    return f"a coupon is worth at least {worth} (and is issued in {issued})"


# The rule names keep the spec's default numbers: they are stable identifiers callers match on;
# the limits themselves, and the words of each refusal, are the policy's.
COPIES_MAX = Guard("coupon.copies_max_10000", _copies_within_max, _at_most_copies)
TERMS = (
    Guard("coupon.title_max_60", _title_short, _at_most_title),
    Guard("coupon.validity_order", _validity_ordered, "a coupon must end after it starts"),
    Guard("coupon.validity_max_62_days", _validity_short, _at_most_validity),
    COPIES_MAX,
    Guard("coupon.products_max_50", _products_within_max, _at_most_products),
    Guard("coupon.denomination_min_5_usd", _denomination_enough, _at_least_denomination),
    Guard("coupon.threshold_above_denomination", _threshold_above_denomination,
          "a spend threshold must be more than the coupon's denomination"),
)
RAISE_ONLY = Guard("coupon.raise_only", _raises,
                   "an active coupon's copies may only be raised; deactivate it to lower them")
LOWER_ABOVE_CLAIMED = Guard("coupon.lower_above_claimed", _not_below_claimed,
                            "copies cannot be lowered below the number already claimed")
NOT_ENDED = Guard("coupon.not_ended", _not_ended, "the coupon's validity has ended",
                  uses_payload=False)
IN_VALIDITY = Guard("coupon.in_validity", _in_validity,
                    "the coupon can be claimed only within its validity", uses_payload=False)
ONE_PER_BUYER = Guard("coupon.one_per_buyer", _first_copy, "a buyer claims one copy of a coupon",
                      uses_payload=False)
COPIES_LEFT = Guard("coupon.copies_left", _copies_left, "every copy of this coupon is claimed",
                    uses_payload=False)


def _define(ctx: Context) -> None:
    ctx.data.update(dump(ctx.payload), seller=ctx.actor.id, claimed=0, defined_at=iso(ctx.now))


def _set_copies(ctx: Context) -> None:
    ctx.data["copies"] = ctx.payload.copies


@sends(("voucher", "issue"))
def _claim(ctx: Context) -> None:
    buyer = ctx.actor.id
    ctx.data["claimed"] += 1
    terms: dict[str, Any] = {k: ctx.data[k] for k in ("currency", "denomination", "threshold", "starts_at",
                                      "ends_at", "products", "seller", "title") if k in ctx.data}
    ctx.follow_ups.append(Create("voucher", voucher_id(ctx.id, buyer),
                                 {**terms, "coupon": ctx.id, "buyer": buyer}))


def _stamp(field_name: str) -> Any:
    def stamp(ctx: Context) -> None:
        ctx.data[field_name] = iso(ctx.now)

    return stamp


UNEXPIRED = ("draft", "active", "deactivated")  # each expires at the end of its validity

COUPON = MachineDefinition(
    "coupon",
    states=(*UNEXPIRED, "expired"),
    terminal=frozenset({"expired"}),
    owners={"seller": lambda id, data: data["seller"]},
    public=BUYER,  # any buyer may claim a copy
    new_id=lambda actor: f"c-{uuid.uuid4().hex[:12]}",
    transitions=(
        Transition("create", (), "draft", SELLER, CouponTerms, TERMS, _define),
        Transition("activate", ("draft", "deactivated"), "active", SELLER, Empty, (NOT_ENDED,),
                   _stamp("activated_at")),
        Transition("raise", ("active",), "active", SELLER, Copies, (RAISE_ONLY, COPIES_MAX),
                   _set_copies),
        Transition("lower", ("deactivated",), "deactivated", SELLER, Copies,
                   (LOWER_ABOVE_CLAIMED, COPIES_MAX), _set_copies),
        Transition("deactivate", ("active",), "deactivated", SELLER | OPERATOR, Empty, (),
                   _stamp("deactivated_at")),
        Transition("claim", ("active",), "active", BUYER, Empty,
                   (IN_VALIDITY, COPIES_LEFT, ONE_PER_BUYER), _claim),
        Transition("expire", UNEXPIRED, "expired", SYSTEM, Empty),
    ),
    deadlines=tuple(
        Deadline(state, "expire", lambda policy, data: timedelta(0), "ends_at")
        for state in UNEXPIRED
    ),
)


# --- vouchers: one claimed copy in a buyer's hands -----------------------------------------


class VoucherIssued(Payload):
    """Written by the coupon's claim; never sent by a caller."""

    coupon: str
    buyer: str
    seller: str
    title: str
    currency: str
    denomination: Amount
    threshold: Amount | None = None
    starts_at: datetime
    ends_at: datetime
    products: Literal["all"] | list[str]


class OrderRef(Payload):
    order: Code


def _issue(ctx: Context) -> None:
    ctx.data.update(dump(ctx.payload), claimed_at=iso(ctx.now))


def _valid(ctx: Context) -> bool:
    return ctx.now < datetime.fromisoformat(ctx.data["ends_at"])


def _bind(ctx: Context) -> None:
    ctx.data["order"] = ctx.payload.order


def _free(ctx: Context) -> None:
    ctx.data.pop("order", None)


def _internal(trigger: str, source: tuple[str, ...], dest: str, effect: Any = None,
              when: Any = None) -> Transition:
    return Transition(trigger, source, dest, SYSTEM, OrderRef, (), effect, when=when,
                      internal=True)


VOUCHER = MachineDefinition(
    "voucher",
    states=("available", "reserved", "redeemed", "spent", "expired"),
    terminal=frozenset({"spent", "expired"}),
    owners={"buyer": lambda id, data: data["buyer"], "seller": lambda id, data: data["seller"]},
    new_id=lambda actor: "",  # never used: a voucher's id is its coupon's and its buyer's
    transitions=(
        Transition("issue", (), "available", SYSTEM, VoucherIssued, (), _issue, internal=True),
        _internal("reserve", ("available",), "reserved", _bind),
        _internal("redeem", ("reserved",), "redeemed"),
        # A cancelled order gives the voucher back while the coupon is valid; else it lapses.
        _internal("release", ("reserved", "redeemed"), "available", _free, when=_valid),
        _internal("release", ("reserved", "redeemed"), "expired", _free),
        _internal("spend", ("redeemed",), "spent"),
        Transition("expire", ("available",), "expired", SYSTEM, Empty),
    ),
    deadlines=(Deadline("available", "expire", lambda policy, data: timedelta(0), "ends_at"),),
)


def voucher_value(voucher: Any, lines: list[Any]) -> tuple[Decimal, Decimal]:
    """(the goods subtotal the voucher applies to, what it deducts from it)."""
    products = voucher.data["products"]
    eligible = sum(
        (line.unit_price * line.quantity for line in lines
         if products == "all" or line.sku in products),
        Decimal(0),
    )
    return eligible, min(Decimal(voucher.data["denomination"]), eligible)

