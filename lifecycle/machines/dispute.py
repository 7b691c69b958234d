"""Disputes (SPEC §5): goods not received, or received but not as described.

A dispute is created by the order's ``open_dispute`` and, when it resolves, fires the order's
internal ``close_dispute`` in the same transaction with the refund it settled on (zero when the
claim was rejected or withdrawn).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool

from lifecycle.errors import InvalidPayload
from lifecycle.machines.definition import (
    Call,
    Context,
    Deadline,
    Fire,
    Guard,
    MachineDefinition,
    Transition,
    sends,
)
from lifecycle.machines.payloads import (
    Amount,
    Code,
    Empty,
    LongText,
    Payload,
    Waybill,
    dump,
    iso,
)
from lifecycle.money import check_amount
from lifecycle.policy import in_words

BUYER, SELLER = frozenset({"buyer"}), frozenset({"seller"})
OPERATOR, SYSTEM = frozenset({"operator"}), frozenset({"system"})

STATES = (
    "awaiting_seller",
    "negotiating",
    "under_arbitration",
    "awaiting_return",
    "return_in_transit",
    "resolved_refund",
    "resolved_no_refund",
)
OPEN = ("awaiting_seller", "negotiating", "under_arbitration", "awaiting_return")


class Opened(Payload):
    """Written by the order's open_dispute; never sent by a caller."""

    order: Code
    buyer: Code
    seller: Code
    currency: str
    refundable: Amount
    type: Literal["not_received", "received"]
    reason: Code
    refund_amount: Amount
    return_goods: StrictBool = False
    evidence: Annotated[list[LongText], Field(default_factory=list, max_length=20)]


class Offer(Payload):
    refund_amount: Amount
    return_goods: StrictBool = False
    note: LongText | None = None

    def check(self, data: Mapping[str, Any]) -> None:
        check_amount(self.refund_amount, data["currency"], "refund_amount")


class Decision(Payload):
    decision: Literal["refund", "no_refund", "return_and_refund"]
    refund_amount: Amount | None = None
    note: LongText | None = None

    def check(self, data: Mapping[str, Any]) -> None:
        if self.decision == "no_refund":
            if self.refund_amount not in (None, Decimal(0)):
                raise InvalidPayload("refund_amount", "a no_refund decision refunds nothing")
        elif self.refund_amount is None:
            raise InvalidPayload("refund_amount", f"a {self.decision} decision names the amount")
        else:
            check_amount(self.refund_amount, data["currency"], "refund_amount")


class ReturnShipment(Payload):
    carrier: Code
    waybill: Waybill


# --- guards -------------------------------------------------------------------------------


def _within_refundable(ctx: Context) -> bool:
    amount = ctx.payload.refund_amount
    return amount is None or Decimal(0) <= amount <= Decimal(ctx.data["refundable"])


def _offer_open(ctx: Context) -> bool:
    offer = ctx.data.get("offer")
    return offer is not None and not offer.get("rejected")


def _buyer_waited(ctx: Context) -> bool:
    if ctx.actor.role != "buyer":
        return True
    return ctx.elapsed_since("opened_at") >= ctx.policy.escalate_from


WITHIN_REFUNDABLE = Guard(
    "dispute.refund_within_paid",
    _within_refundable,
    "the refund may not exceed what the buyer paid and was not refunded",
)
OFFER_OPEN = Guard(
    "dispute.offer_open", _offer_open, "there is no open offer to answer", uses_payload=False
)
def _escalates_from(ctx: Context) -> str:
    wait = ctx.policy.escalate_from
    if wait % timedelta(days=1):
        return f"the buyer may escalate {in_words(wait)} after opening"
    return f"the buyer may escalate from the {_ordinal(wait.days + 1)} day after opening"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


BUYER_WAITED = Guard(
    # The name keeps the spec's default (a stable identifier); the wait is the policy's.
    "dispute.escalate_from_day_4",
    _buyer_waited,
    _escalates_from,
    uses_payload=False,
)


# --- effects ------------------------------------------------------------------------------


def _open(ctx: Context) -> None:
    ctx.data.update(dump(ctx.payload), opened_at=iso(ctx.now))


def _claimed(ctx: Context) -> Decimal:
    return Decimal(ctx.data["refund_amount"])


def _offered(ctx: Context) -> Decimal:
    return Decimal(ctx.data["offer"]["refund_amount"])


CLOSES_ORDER = ("order", "close_dispute")  # what every effect that ends a dispute sends


def _ask_return(amount_of: Any) -> Any:
    def ask_return(ctx: Context) -> None:
        ctx.data.update(settlement=str(amount_of(ctx)), return_requested_at=iso(ctx.now))

    return ask_return


def _refund(amount_of: Any) -> Any:
    @sends(CLOSES_ORDER)
    def refund(ctx: Context) -> None:
        _resolve(ctx, amount_of(ctx))

    return refund


@sends(CLOSES_ORDER)
def _refund_settled(ctx: Context) -> None:
    _resolve(ctx, Decimal(ctx.data["settlement"]))


@sends(CLOSES_ORDER)
def _no_refund(ctx: Context) -> None:
    _resolve(ctx, Decimal(0))


def _resolve(ctx: Context, amount: Decimal) -> None:
    """The dispute ends: the order continues or is refunded in the same transaction."""
    ctx.data.update(settlement=str(amount), resolved_at=iso(ctx.now), resolved_by=str(ctx.actor))
    ctx.follow_ups.append(
        Fire("order", ctx.data["order"], "close_dispute",
             {"dispute": ctx.id, "refund_amount": str(amount)})
    )


def _counter(ctx: Context) -> None:
    offer = {**dump(ctx.payload), "at": iso(ctx.now)}
    ctx.data["offer"] = offer
    ctx.data["offers"] = [*ctx.data.get("offers", []), offer]


def _reject_offer(ctx: Context) -> None:
    ctx.data["offer"] = {**ctx.data["offer"], "rejected": True}


def _escalate(ctx: Context) -> None:
    ctx.data.update(escalated_at=iso(ctx.now), escalated_by=str(ctx.actor))


def _ship_return(ctx: Context) -> None:
    ctx.follow_ups.append(Call("carrier", "validate_waybill", {"number": ctx.payload.waybill},
                               carrier=ctx.payload.carrier))
    ctx.data.update(return_shipment=dump(ctx.payload), return_shipped_at=iso(ctx.now))


def _wants_return(ctx: Context) -> bool:
    return bool(ctx.data.get("return_goods"))


def _offer_wants_return(ctx: Context) -> bool:
    return bool(ctx.data["offer"].get("return_goods"))


def _decided(name: str) -> Any:
    def check(ctx: Context) -> bool:
        return bool(ctx.payload.decision == name)

    check.__name__ = f"decided_{name}"
    return check


def _decided_amount(ctx: Context) -> Decimal:
    return ctx.payload.refund_amount or Decimal(0)


def _accepting(trigger: str, roles: frozenset[str]) -> tuple[Transition, ...]:
    """Accepting the buyer's claim: return the goods first if the buyer asked for that."""
    sources = ("awaiting_seller", "negotiating") if trigger == "accept_claim" else ("awaiting_seller",)
    return (
        Transition(trigger, sources, "awaiting_return", roles, Empty, (), _ask_return(_claimed),
                   when=_wants_return),
        Transition(trigger, sources, "resolved_refund", roles, Empty, (), _refund(_claimed)),
    )


DEFINITION = MachineDefinition(
    "dispute",
    states=STATES,
    terminal=frozenset({"resolved_refund", "resolved_no_refund"}),
    owners={"buyer": lambda id, data: data["buyer"], "seller": lambda id, data: data["seller"]},
    new_id=lambda actor: "",  # never used: a dispute's id comes from its order
    transitions=(
        Transition("open", (), "awaiting_seller", SYSTEM, Opened, (), _open, internal=True),
        *_accepting("accept_claim", SELLER),
        *_accepting("seller_response_timeout", SYSTEM),
        Transition("counter_offer", ("awaiting_seller", "negotiating"), "negotiating", SELLER,
                   Offer, (WITHIN_REFUNDABLE,), _counter),
        Transition("accept_offer", ("negotiating",), "awaiting_return", BUYER, Empty,
                   (OFFER_OPEN,), _ask_return(_offered), when=_offer_wants_return),
        Transition("accept_offer", ("negotiating",), "resolved_refund", BUYER, Empty,
                   (OFFER_OPEN,), _refund(_offered)),
        Transition("reject_offer", ("negotiating",), "negotiating", BUYER, Empty, (OFFER_OPEN,),
                   _reject_offer),
        Transition("escalate", ("negotiating",), "under_arbitration", BUYER | SELLER, Empty,
                   (BUYER_WAITED,), _escalate),
        Transition("negotiation_timeout", ("negotiating",), "under_arbitration", SYSTEM, Empty,
                   (), _escalate),
        Transition("arbitrate", ("under_arbitration",), "resolved_no_refund", OPERATOR, Decision,
                   (WITHIN_REFUNDABLE,), _no_refund, when=_decided("no_refund")),
        Transition("arbitrate", ("under_arbitration",), "awaiting_return", OPERATOR, Decision,
                   (WITHIN_REFUNDABLE,), _ask_return(_decided_amount),
                   when=_decided("return_and_refund")),
        Transition("arbitrate", ("under_arbitration",), "resolved_refund", OPERATOR, Decision,
                   (WITHIN_REFUNDABLE,), _refund(_decided_amount)),
        Transition("ship_return", ("awaiting_return",), "return_in_transit", BUYER,
                   ReturnShipment, (), _ship_return),
        Transition("return_timeout", ("awaiting_return",), "resolved_no_refund", SYSTEM, Empty,
                   (), _no_refund),
        Transition("confirm_return_received", ("return_in_transit",), "resolved_refund",
                   SELLER | OPERATOR, Empty, (), _refund_settled),
        Transition("withdraw", OPEN, "resolved_no_refund", BUYER, Empty, (), _no_refund),
    ),
    deadlines=(
        Deadline("awaiting_seller", "seller_response_timeout",
                 lambda p, d: p.seller_response_timeout, "opened_at"),
        Deadline("negotiating", "negotiation_timeout", lambda p, d: p.negotiation_timeout,
                 "opened_at"),
        Deadline("awaiting_return", "return_timeout", lambda p, d: p.return_timeout,
                 "return_requested_at"),
    ),
)
