"""A store's standing (SPEC §12): its active penalty points and the restriction they bring.

One aggregate per store, id = the seller's id, created with its first violation and moved
only by its violations (`lifecycle.machines.violation`), in their transactions, with the actor
of the violation's trigger: an operator's record or overturn, the system's expiry. Its state
is the level its points reach, by the policy's thresholds (by default):

    clear                 below 12
    promotion_restricted  12 or more: no promotion of new listings (recorded here; nothing
                          else in the engine promotes listings yet)
    orders_refused        24 or more: the store receives no new orders (`order_refusal`, the
                          order machine's guard from its version 2)
    store_suspended       48 or more: the seller is suspended through the onboarding machine

Reaching the suspension threshold on a new violation suspends an ``active`` seller with the
onboarding machine's ``suspend`` and keeps a note of it (``suspension``): the suspension is
the penalties'. When the points fall below the threshold again because an operator overturned
a violation, that suspension is lifted with ``reinstate`` in the same transaction. When they
fall because a violation expired, the system does not reinstate (``reinstate`` is an
operator's decision): the standing's level drops, the note says the suspension may be lifted
(``liftable_since``), and the store stays suspended until an operator reinstates it. A
suspension an operator made, or a seller moved by anyone since ours, is never lifted here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal

from lifecycle.machines.definition import (
    Aggregate,
    Context,
    Fire,
    Guard,
    MachineDefinition,
    Transition,
    sends,
)
from lifecycle.machines.payloads import Code, Empty, Payload, iso
from lifecycle.policy import Policy, in_words

OPERATOR, SYSTEM = frozenset({"operator"}), frozenset({"system"})

KIND = "standing"
#: the levels, mildest first; each a state
LEVELS = ("clear", "promotion_restricted", "orders_refused", "store_suspended")
STATES = (*LEVELS, "closed")
#: what each level restricts, in words (cumulative)
RESTRICTS = {
    "clear": "nothing",
    "promotion_restricted": "no promotion of new listings",
    "orders_refused": "no promotion of new listings; new orders are refused",
    "store_suspended": "no promotion of new listings; new orders are refused; store suspended",
}
#: the levels at which the store receives no new orders
REFUSING_ORDERS = frozenset({"orders_refused", "store_suspended"})


class Counted(Payload):
    """A violation whose points now count (written by the violation's record)."""

    violation: Code
    type: str
    points: int
    recorded_at: datetime
    expires_at: datetime


class Opened(Payload):
    """Written by a store's first violation, which it counts; never sent by a caller."""

    seller: Code
    first: Counted


class Dropped(Payload):
    """A violation whose points no longer count (written by its overturn or expiry)."""

    violation: Code
    why: Literal["overturned", "expired"]


def thresholds(policy: Policy) -> dict[str, int]:
    """The points at which each restricting level starts."""
    return {"promotion_restricted": policy.penalty_promotion_restricted_at,
            "orders_refused": policy.penalty_orders_refused_at,
            "store_suspended": policy.penalty_store_suspended_at}


def level_of(points: int, policy: Policy) -> str:
    """The level ``points`` reach under ``policy``."""
    reached = [level for level, at in thresholds(policy).items() if points >= at]
    return reached[-1] if reached else "clear"


def points_of(violations: Mapping[str, Mapping[str, Any]]) -> int:
    return sum(int(v["points"]) for v in violations.values())


def order_refusal(load: Callable[[str, str], Aggregate | None], seller_id: str) -> str | None:
    """Why the store ``seller_id`` may not receive a new order now, in words; None when it may.

    Read by the order machine's ``seller.active`` guard on ``place`` (`order_rules`): one
    aggregate load, the store's standing, whose level was set by the policy in force when its
    points last moved.
    """
    standing = load(KIND, seller_id)
    if standing is None or standing.state not in REFUSING_ORDERS:
        return None
    data = standing.data
    at = data["thresholds"]["orders_refused"]
    return (f"store {seller_id} has {data['points']} penalty points in the last "
            f"{data['period']} ({at} or more: new orders are refused)")




# --- the level a change of points lands on -------------------------------------------------


def _active_after(ctx: Context) -> dict[str, Any]:
    """The store's active violations once this trigger has counted or dropped one."""
    active = dict(ctx.data.get("violations", {}))
    if ctx.trigger == "add_violation":
        active.update(_entry(ctx.payload))
    else:
        active.pop(ctx.payload.violation, None)
    return active


def _entry(counted: Counted) -> dict[str, Any]:
    """A violation as its standing keeps it; counting it twice keeps it once."""
    return {counted.violation: {"type": counted.type, "points": counted.points,
                                "recorded_at": iso(counted.recorded_at),
                                "expires_at": iso(counted.expires_at)}}


def _lands_on(level: str) -> Callable[[Context], bool]:
    def lands(ctx: Context) -> bool:
        return level_of(points_of(_active_after(ctx)), ctx.policy) == level

    lands.__name__ = f"lands_on_{level}"
    return lands


def _settle(ctx: Context) -> int:
    """Keep the active violations, their points and the policy's words they were judged by
    (`order_refusal` reads them without a policy); the new points."""
    active = _active_after(ctx)
    points = points_of(active)
    ctx.data.update(violations=active, points=points, thresholds=thresholds(ctx.policy),
                    period=in_words(ctx.policy.violation_points_period), changed_at=iso(ctx.now))
    return points


# --- effects ------------------------------------------------------------------------------


def _open(ctx: Context) -> None:
    first: Counted = ctx.payload.first
    ctx.data.update(seller=ctx.payload.seller, points=first.points, violations=_entry(first),
                    opened_at=iso(ctx.now), changed_at=iso(ctx.now),
                    thresholds=thresholds(ctx.policy),
                    period=in_words(ctx.policy.violation_points_period))


@sends(("seller", "suspend"))
def _count(ctx: Context) -> None:
    points = _settle(ctx)
    at = ctx.policy.penalty_store_suspended_at
    if points < at:
        return
    seller = ctx.load("seller", ctx.id)
    # `suspend` is defined from active only; a seller suspended, lapsed or not yet open is
    # left as it is (the level still says what the points reached).
    if seller is None or seller.state != "active":
        return
    reason = (f"{points} penalty points in the last {ctx.data['period']} ({at} or more: the "
              f"store is suspended); latest violation {ctx.payload.violation}")
    ctx.follow_ups.append(Fire("seller", ctx.id, "suspend", {"reason": reason}))
    # The seller's version once suspended: if it moves on, the suspension is no longer ours.
    ctx.data["suspension"] = {"at": iso(ctx.now), "reason": reason,
                              "seller_version": seller.version + 1}


@sends(("seller", "reinstate"))
def _uncount(ctx: Context) -> None:
    points = _settle(ctx)
    suspension = ctx.data.get("suspension")
    at = ctx.policy.penalty_store_suspended_at
    if suspension is None or points >= at:
        return
    seller = ctx.load("seller", ctx.id)
    if (seller is None or seller.state != "suspended"
            or seller.version != suspension["seller_version"]):
        ctx.data.pop("suspension")  # reinstated, or suspended again by someone else: not ours
        return
    if ctx.actor.role != "operator":
        # An expiry: the system may not lift a suspension; an operator reinstates.
        ctx.data["suspension"] = {**suspension, "liftable_since": suspension.get(
            "liftable_since", iso(ctx.now))}
        return
    ctx.follow_ups.append(Fire("seller", ctx.id, "reinstate", {
        "note": f"penalty points fell to {points}, below {at} "
                f"(violation {ctx.payload.violation} {ctx.payload.why})"}))
    ctx.data.pop("suspension")


def _close(ctx: Context) -> None:
    ctx.data["closed_at"] = iso(ctx.now)


def _no_active_violations(ctx: Context) -> bool:
    return not ctx.data.get("violations")


def _seller_closed(ctx: Context) -> bool:
    seller = ctx.load("seller", ctx.id)
    return seller is None or seller.state == "closed"


NO_ACTIVE_VIOLATIONS = Guard("standing.no_active_violations", _no_active_violations,
                             "a standing with active violations stays open until they expire or "
                             "are overturned", uses_payload=False)
SELLER_CLOSED = Guard("standing.seller_closed", _seller_closed,
                      "a standing is closed only once its seller's account is closed",
                      uses_payload=False)


def _moves(trigger: str, payload: type[Payload], effect: Callable[[Context], None],
           ) -> tuple[Transition, ...]:
    """``trigger`` from every level to the level the new points reach, harshest first."""
    harsh_first = LEVELS[::-1]
    return tuple(
        Transition(trigger, LEVELS, level, SYSTEM, payload, (), effect,
                   when=_lands_on(level) if level != "clear" else None, internal=True)
        for level in harsh_first
    )


DEFINITION = MachineDefinition(
    KIND,
    states=STATES,
    terminal=frozenset({"closed"}),
    owners={"seller": lambda id, data: id},
    new_id=lambda actor: "",  # never used: a standing's id is its seller's
    transitions=(
        Transition("open", (), "clear", SYSTEM, Opened, (), _open, internal=True),
        *_moves("add_violation", Counted, _count),
        *_moves("remove_violation", Dropped, _uncount),
        Transition("close", ("clear",), "closed", OPERATOR, Empty,
                   (NO_ACTIVE_VIOLATIONS, SELLER_CLOSED), _close),
    ),
)
