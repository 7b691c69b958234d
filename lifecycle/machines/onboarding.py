"""Seller onboarding (SPEC §3): register, authenticate, pay the store fee, open the store."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, StringConstraints, field_validator

from lifecycle.errors import InvalidPayload
from lifecycle.ledger import transfer
from lifecycle.machines.definition import (
    Call,
    Claim,
    Context,
    Deadline,
    Guard,
    MachineDefinition,
    Post,
    Transition,
)
from lifecycle.machines.payloads import (
    Code,
    Country,
    Empty,
    LongText,
    Payload,
    Reason,
    Text,
    dump,
    iso,
)

SELLER, OPERATOR, SYSTEM = frozenset({"seller"}), frozenset({"operator"}), frozenset({"system"})

STATES = (
    "registered",
    "under_review",
    "authentication_rejected",
    "authenticated",
    "fee_paid",
    "active",
    "suspended",
    "fee_expired",
    "closed",
)

# A second-level domain label: letters, digits and inner hyphens, 1 to 63 characters.
DOMAIN_LABEL = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
# Lower-cased before the pattern is checked: people type "Acme-Toys".
Domain = Annotated[
    str,
    BeforeValidator(lambda v: v.strip().lower() if isinstance(v, str) else v),
    StringConstraints(pattern=DOMAIN_LABEL),
]


class Register(Payload):
    company_name: Text
    entity_type: Literal["company", "self_employed"]
    country: Country
    registration_number: Text
    email: Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=200)]


class Documents(Payload):
    business_licence: Text
    payment_account_authentication: Text
    product_list: Annotated[list[Text], Field(min_length=1, max_length=500)]
    branded: bool = False
    brand_authorisation: Text | None = None
    payment_method: Text


class Rejection(Payload):
    reasons: Annotated[list[LongText], Field(min_length=1, max_length=20)]


class FeePayment(Payload):
    sales_plan: Literal["basic", "standard", "premium"]
    category: Code
    payment_ref: Text | None = None


class Renewal(Payload):
    payment_ref: Text | None = None


class Profile(Payload):
    store_name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=64)]
    domain: Domain
    # Left out: the policy's handling_time. Its bounds are the policy's too, so the
    # HANDLING_TIME guard checks them, not this model.
    handling_time_days: Annotated[int, Field(strict=True)] | None = None

    @field_validator("handling_time_days", mode="before")
    @classmethod
    def _given_as_days(cls, value: object) -> object:
        # Only a value sent is validated: null is refused, as before there was a default.
        if value is None:
            raise ValueError("a whole number of days, or leave it out for the policy's default")
        return value


def _handling_time_within_policy(ctx: Context) -> bool:
    """A payload's value against the bounds of the policy in force: malformed like a value out
    of a model's static bounds, so `InvalidPayload` naming the field."""
    days = ctx.payload.handling_time_days
    if days is None:
        return True
    low, high = ctx.policy.handling_time_min.days, ctx.policy.handling_time_max.days
    if not low <= days <= high:
        raise InvalidPayload("handling_time_days", f"a seller's handling time is {low} to {high} "
                                                   f"days (policy handling_time_min to "
                                                   f"handling_time_max), got {days}")
    return True


def _is_company(ctx: Context) -> bool:
    return bool(ctx.payload.entity_type == "company")


def _brand_authorised(ctx: Context) -> bool:
    return not ctx.payload.branded or ctx.payload.brand_authorisation is not None


def _register(ctx: Context) -> None:
    ctx.data.update(dump(ctx.payload), registered_at=iso(ctx.now))


def _submit(ctx: Context) -> None:
    ctx.data["documents"] = dump(ctx.payload)
    ctx.data["submitted_at"] = iso(ctx.now)
    ctx.data.pop("rejection_reasons", None)


def _approve(ctx: Context) -> None:
    ctx.data["authenticated_at"] = iso(ctx.now)
    ctx.data["payment_method"] = ctx.data["documents"]["payment_method"]


def _reject(ctx: Context) -> None:
    ctx.data["rejection_reasons"] = list(ctx.payload.reasons)


def _pay_fee(ctx: Context) -> None:
    fee = ctx.policy.fee_for(ctx.payload.category)
    ctx.data.update(
        sales_plan=ctx.payload.sales_plan,
        category=ctx.payload.category,
        annual_fee=str(fee),
        fee_currency=ctx.policy.annual_fee_currency,
        fee_paid_at=iso(ctx.now),
    )
    _charge_fee(ctx, fee)


def _renew_fee(ctx: Context) -> None:
    ctx.data["fee_paid_at"] = iso(ctx.now)
    _charge_fee(ctx, Decimal(ctx.data["annual_fee"]))


def _charge_fee(ctx: Context, fee: Decimal) -> None:
    currency = ctx.data["fee_currency"]
    ctx.follow_ups.append(Call("payments", "charge_fee",
                               {"seller_id": ctx.id, "amount": str(fee), "currency": currency},
                               result="fee_payment_ref"))
    ctx.follow_ups.append(Post(transfer("store_fee", currency, ("seller", "platform_fee", fee))))


def _complete_profile(ctx: Context) -> None:
    days = ctx.payload.handling_time_days
    ctx.data.update(dump(ctx.payload),
                    handling_time_days=days if days is not None else ctx.policy.handling_time.days,
                    opened_at=iso(ctx.now))
    ctx.follow_ups.append(Claim("store_domain", ctx.payload.domain))


def _suspend(ctx: Context) -> None:
    ctx.data["suspension_reason"] = ctx.payload.reason


def _reinstate(ctx: Context) -> None:
    ctx.data.pop("suspension_reason", None)


COMPANY_ONLY = Guard(
    "registration.company_only",
    _is_company,
    "only legally registered companies may open a store; self-employed applicants are refused",
)
HANDLING_TIME = Guard(
    "profile.handling_time",
    _handling_time_within_policy,
    "a seller's handling time lies within the policy's handling_time_min and handling_time_max",
)
BRAND_AUTHORISED = Guard(
    "documents.brand_authorisation",
    _brand_authorised,
    "a branded category needs a trademark or brand authorisation",
)

TERMINAL = frozenset({"closed"})
LIVE = tuple(state for state in STATES if state not in TERMINAL)  # a seller may close from any

DEFINITION = MachineDefinition(
    "seller",
    states=STATES,
    terminal=TERMINAL,
    owners={"seller": lambda id, data: id},
    new_id=lambda actor: actor.id,  # a seller registers as themselves
    transitions=(
        Transition("register", (), "registered", SELLER, Register, (COMPANY_ONLY,), _register),
        Transition("submit_documents", ("registered",), "under_review", SELLER, Documents,
                   (BRAND_AUTHORISED,), _submit),
        Transition("approve", ("under_review",), "authenticated", OPERATOR, Empty, (), _approve),
        Transition("reject", ("under_review",), "authentication_rejected", OPERATOR, Rejection,
                   (), _reject),
        Transition("resubmit", ("authentication_rejected",), "under_review", SELLER, Documents,
                   (BRAND_AUTHORISED,), _submit),
        Transition("pay_fee", ("authenticated",), "fee_paid", SELLER, FeePayment, (), _pay_fee),
        Transition("complete_profile", ("fee_paid",), "active", SELLER, Profile,
                   (HANDLING_TIME,), _complete_profile),
        Transition("suspend", ("active",), "suspended", OPERATOR, Reason, (), _suspend),
        Transition("reinstate", ("suspended",), "active", OPERATOR, Empty, (), _reinstate),
        Transition("fee_lapse", ("active",), "fee_expired", SYSTEM, Empty),
        Transition("renew_fee", ("fee_expired",), "active", SELLER, Renewal, (), _renew_fee),
        Transition("close", LIVE, "closed", SELLER | OPERATOR, Empty),
    ),
    deadlines=(
        Deadline("active", "fee_lapse", lambda policy, data: policy.fee_period, "fee_paid_at"),
    ),
)
