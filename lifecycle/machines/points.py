"""The points centre (SPEC §12): a seller account's points, kept in a double-entry ledger.

A seller's points account (kind ``points_account``, id the seller's id) is ``open`` from its
first earning or from the seller opening it, until an operator closes it at a zero balance.
Every change of its balance is a balanced posting in the ledger, in whole points (unit
``PTS``, `lifecycle.ledger.POINTS`), between the seller's ``points`` account and the
platform's side of it: ``points_issued`` (earned and credited; negative), ``points_redeemed``
(spent on catalogue items) and ``points_forfeited`` (taken as penalties).

- ``earn`` (system, operator): an action the platform rewards, ``order_paid`` or
  ``quotation_answered``, named by its reference, earns the policy's points for it, once: the
  reference becomes a ``points_earning`` of its own, whose id is unique, so a second report of
  it is refused (`ONCE`), even from two processes at once. An order whose funds are released
  earns through the account's reaction to ``release_funds`` (`earned_for_order`), which opens
  the account when the seller has none and earns nothing twice.
- ``redeem`` (seller, operator): a catalogue item (`CATALOGUE`) at the policy's price; more
  than the balance is refused (`COVERED`).
- ``correct`` (operator): points added or taken back, with a reason; never below zero.
- ``penalise`` (operator, system): a penalty record (a violation's, say) with a reason; it
  takes the points asked for, or the whole balance when that is less, so the balance never goes
  negative and a penalty is never refused for want of points.

The account's records (earning, redemption, correction, penalty) with the balance after each
are `statement`'s, read by `Engine.points`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field

from lifecycle.actor import Actor
from lifecycle.errors import InvalidPayload
from lifecycle.ledger import POINTS, transfer
from lifecycle.machines.definition import (
    Context,
    Create,
    Fire,
    FollowUp,
    Guard,
    MachineDefinition,
    Post,
    Reaction,
    Transition,
    sends,
)
from lifecycle.machines.payloads import Code, Empty, LongText, Payload, Reason, dump, iso
from lifecycle.policy import Policy

KIND, EARNING = "points_account", "points_earning"
SELLER, OPERATOR, SYSTEM = frozenset({"seller"}), frozenset({"operator"}), frozenset({"system"})

#: the actions that earn points, each with the policy value of the points it earns
EARNED_BY = {"order_paid": "points_per_paid_order",
             "quotation_answered": "points_per_quotation"}
#: the catalogue (SPEC §12): each item with the policy value of its price in points
CATALOGUE = {"business_opportunity_package": "points_price_opportunities",
             "pay_per_click_credit": "points_price_click_credit",
             "quotation_rights": "points_price_quote_rights"}
#: the kind of record each trigger leaves on the account
RECORDS = {"earn": "earning", "redeem": "redemption", "correct": "correction",
           "penalise": "penalty"}

Points = Annotated[int, Field(strict=True, ge=1, le=1_000_000_000)]
SignedPoints = Annotated[int, Field(strict=True, ge=-1_000_000_000, le=1_000_000_000)]


class Earning(Payload):
    reason: Literal["order_paid", "quotation_answered"]
    reference: Code  # the order's id, the quotation's


class Redemption(Payload):
    item: Literal["business_opportunity_package", "pay_per_click_credit", "quotation_rights"]
    quantity: Annotated[int, Field(strict=True, ge=1, le=1000)] = 1


class Correction(Payload):
    points: SignedPoints  # added when positive, taken back when negative
    reason: LongText

    def check(self, data: Any) -> None:
        if self.points == 0:
            raise InvalidPayload("points", "a correction adds or takes back at least 1 point")


class Penalty(Payload):
    points: Points
    reason: LongText
    reference: Code | None = None  # the violation's id, say


def earning_id(reason: str, reference: str) -> str:
    """The id of the `points_earning` of one rewarded action: unique, so it earns once."""
    return f"{reason}:{reference}"


def earned_points(policy: Policy, reason: str) -> int:
    return int(getattr(policy, EARNED_BY[reason]))


def price(policy: Policy, item: str, quantity: int = 1) -> int:
    """What ``quantity`` of a catalogue item costs, in points."""
    return int(getattr(policy, CATALOGUE[item])) * quantity


def catalogue(policy: Policy) -> dict[str, int]:
    """Each catalogue item with its price in points."""
    return {item: price(policy, item) for item in CATALOGUE}


# --- rules: each its own error ------------------------------------------------------------


def _seller_exists(ctx: Context) -> bool:
    return ctx.load("seller", ctx.id) is not None


def _not_earned(ctx: Context) -> bool:
    return ctx.load(EARNING, earning_id(ctx.payload.reason, ctx.payload.reference)) is None


def _already_earned(ctx: Context) -> str:
    return (f"{ctx.payload.reason} {ctx.payload.reference} has already earned points; an "
            "action earns once")


def _covered(ctx: Context) -> bool:
    return bool(price(ctx.policy, ctx.payload.item, ctx.payload.quantity) <= ctx.data["balance"])


def _not_covered(ctx: Context) -> str:
    cost = price(ctx.policy, ctx.payload.item, ctx.payload.quantity)
    return (f"{ctx.payload.quantity} x {ctx.payload.item} costs {cost} points; the balance is "
            f"{ctx.data['balance']}")


def _stays_positive(ctx: Context) -> bool:
    return bool(ctx.data["balance"] + ctx.payload.points >= 0)


def _would_go_negative(ctx: Context) -> str:
    return (f"taking back {-ctx.payload.points} points would leave the balance below zero; "
            f"it is {ctx.data['balance']}")


def _empty(ctx: Context) -> bool:
    return bool(ctx.data["balance"] == 0)


SELLER_EXISTS = Guard("points.seller_exists", _seller_exists,
                      "a points account belongs to a seller account, and there is none with "
                      "this id", uses_payload=False)
ONCE = Guard("points.earned_once", _not_earned, _already_earned)
COVERED = Guard("points.balance_covers_redemption", _covered, _not_covered)
NOT_BELOW_ZERO = Guard("points.never_negative", _stays_positive, _would_go_negative)
EMPTY = Guard("points.closed_at_zero", _empty,
              "a points account closes only at a zero balance: take the points back first "
              "(correct)", uses_payload=False)


# --- effects: each change of the balance is a posting -------------------------------------


def _move(ctx: Context, posting: str, source: str, dest: str, points: int) -> None:
    """Move ``points`` from ``source`` to ``dest`` and keep the balance the guards read."""
    ctx.follow_ups.append(Post(transfer(posting, POINTS, (source, dest, Decimal(points)))))
    if dest == "points":
        ctx.data["balance"] += points
    if source == "points":
        ctx.data["balance"] -= points


def _open(ctx: Context) -> None:
    ctx.data.update(seller=ctx.id, balance=0, earned=0, redeemed=0, penalised=0, items={},
                    opened_at=iso(ctx.now))


@sends((EARNING, "record"))
def _earn(ctx: Context) -> None:
    reason, reference = ctx.payload.reason, ctx.payload.reference
    points = earned_points(ctx.policy, reason)
    _move(ctx, "earn", "points_issued", "points", points)
    ctx.data["earned"] += points
    ctx.follow_ups.append(Create(EARNING, earning_id(reason, reference), {
        "seller": ctx.id, "reason": reason, "reference": reference, "points": points}))


def _redeem(ctx: Context) -> None:
    item, quantity = ctx.payload.item, ctx.payload.quantity
    cost = price(ctx.policy, item, quantity)
    _move(ctx, "redeem", "points", "points_redeemed", cost)
    ctx.data["redeemed"] += cost
    ctx.data["items"] = {**ctx.data["items"], item: ctx.data["items"].get(item, 0) + quantity}


def _correct(ctx: Context) -> None:
    points = ctx.payload.points
    if points > 0:
        _move(ctx, "correction", "points_issued", "points", points)
    else:
        _move(ctx, "correction", "points", "points_issued", -points)


def _penalise(ctx: Context) -> None:
    taken = min(ctx.payload.points, ctx.data["balance"])
    if taken:
        _move(ctx, "penalty", "points", "points_forfeited", taken)
    ctx.data["penalised"] += taken


def _closed(ctx: Context) -> None:
    ctx.data["closed_at"] = iso(ctx.now)


def _new_id(actor: Actor) -> str:
    if actor.role != "seller":
        raise InvalidPayload("id", "name the seller whose points account to open")
    return actor.id


#: what an effect that calls `earned_for_order` declares: ``@sends(*EARN_SENDS)``
EARN_SENDS = ((KIND, "open"), (KIND, "earn"))


@sends(*EARN_SENDS)
def _earn_for_paid_order(ctx: Context) -> list[FollowUp]:
    """The account's reaction to an order's ``release_funds`` (SPEC §12: an order paid through
    the platform's protected payment earns its seller points).

    Every order is paid through the payment gateway into escrow; the protection is complete
    when the funds are released to the seller. Earning then, not at ``pay``: an order refunded
    in full or cancelled earns nothing, the payment itself never waits on a seller's points
    account (nor fails on one, when two buyers pay one seller at once), and one a coupon paid
    in full, charged nothing, earns none. A reaction, so the order machine, and its version,
    know nothing of points."""
    if Decimal(ctx.data.get("amount_paid", "0")) <= 0:
        return []
    return earned_for_order(ctx, ctx.data["seller"], ctx.id)


ACCOUNT = MachineDefinition(
    KIND,
    states=("open", "closed"),
    terminal=frozenset({"closed"}),
    owners={"seller": lambda id, data: id},
    new_id=_new_id,
    transitions=(
        Transition("open", (), "open", SELLER | OPERATOR | SYSTEM, Empty, (SELLER_EXISTS,),
                   _open),
        Transition("earn", ("open",), None, OPERATOR | SYSTEM, Earning, (ONCE,), _earn),
        Transition("redeem", ("open",), None, SELLER | OPERATOR, Redemption, (COVERED,),
                   _redeem),
        Transition("correct", ("open",), None, OPERATOR, Correction, (NOT_BELOW_ZERO,),
                   _correct),
        Transition("penalise", ("open",), None, OPERATOR | SYSTEM, Penalty, (), _penalise),
        Transition("close", ("open",), "closed", OPERATOR, Reason, (EMPTY,), _closed),
    ),
    reactions=(Reaction(("order", "release_funds"), _earn_for_paid_order),),
)


# --- the earning of one action: its reference, held once ----------------------------------


class Earned(Payload):
    """Written by the points account's earn; never sent by a caller."""

    seller: str
    reason: str
    reference: str
    points: int


def _record(ctx: Context) -> None:
    ctx.data.update(dump(ctx.payload), earned_at=iso(ctx.now))


EARNING_RECORD = MachineDefinition(
    EARNING,
    states=("earned",),
    terminal=frozenset({"earned"}),
    owners={"seller": lambda id, data: data["seller"]},
    new_id=lambda actor: "",  # never used: the id is the action's reason and reference
    transitions=(
        Transition("record", (), "earned", SYSTEM, Earned, (), _record, internal=True),
    ),
)


# --- what an order's release earns --------------------------------------------------------



def earned_for_order(ctx: Context, seller_id: str, order_id: str) -> list[FollowUp]:
    """The follow-ups that earn a paid order's points for its seller: open the seller's points
    account if there is none, then earn ``order_paid`` for the order. Nothing when the order
    has earned already, the account is closed or there is no such seller: it runs inside the
    order's ``release_funds``, and must never refuse it."""
    if ctx.load(EARNING, earning_id("order_paid", order_id)) is not None:
        return []
    if ctx.load("seller", seller_id) is None:
        return []
    account = ctx.load(KIND, seller_id)
    if account is not None and account.state != "open":
        return []
    opening: list[FollowUp] = [] if account is not None else [Create(KIND, seller_id, {})]
    return [*opening, Fire(KIND, seller_id, "earn",
                           {"reason": "order_paid", "reference": order_id})]


# --- the account's records ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PointsRecord:
    """One change of a points account: ``points`` is signed (what it added or took)."""

    seq: int
    at: datetime
    record: str  # earning, redemption, correction, penalty
    points: int
    balance: int  # after it
    actor: Actor
    reason: str | None = None
    reference: str | None = None
    item: str | None = None
    quantity: int | None = None
    asked: int | None = None  # a penalty's points asked for, when the balance held fewer


@dataclass(frozen=True, slots=True)
class PointsStatement:
    """A seller's points account as they read it: state, balance, and every record."""

    seller: str
    state: str
    balance: int
    records: tuple[PointsRecord, ...]


def statement(seller: str, state: str,
              steps: Iterable[tuple[int, str, Mapping[str, Any], Actor, datetime]],
              entries: Iterable[tuple[int, str, str, Decimal, str]]) -> PointsStatement:
    """The records of an account from its history ``(seq, trigger, payload, actor, at)`` and
    its ledger entries ``(seq, posting, account, amount, unit)``: each record's points are what
    its posting moved on the seller's ``points`` account (0 for a penalty of an empty one)."""
    moved: dict[int, int] = {}
    for seq, _posting, account, amount, unit in entries:
        if unit == POINTS and account == "points":
            moved[seq] = moved.get(seq, 0) + int(amount)
    balance, records = 0, []
    for seq, trigger, payload, actor, at in steps:
        if trigger not in RECORDS:
            continue
        points = moved.get(seq, 0)
        balance += points
        asked = payload.get("points") if trigger == "penalise" else None
        records.append(PointsRecord(
            seq, at, RECORDS[trigger], points, balance, actor, payload.get("reason"),
            payload.get("reference"), payload.get("item"), payload.get("quantity"),
            asked if asked is not None and asked != -points else None))
    return PointsStatement(seller, state, balance, tuple(records))

