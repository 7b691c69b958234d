"""Violations (SPEC §12): one per breach of the platform's rules an operator records against a
store, with its penalty points.

``recorded → appealed → final | overturned``; ``recorded → final`` when the seller lets the
appeal window pass. A violation's points count against its store from the moment it is
recorded (an appeal does not pause them) until it is overturned or its points period ends
(``expire``, a deadline). Each step that adds or removes points moves the store's standing
(`lifecycle.machines.standing`) in the same transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, get_args

from pydantic import Field

from lifecycle.errors import InvalidPayload
from lifecycle.machines import standing
from lifecycle.machines.definition import (
    Context,
    Create,
    Deadline,
    Fire,
    Guard,
    Index,
    MachineDefinition,
    Transition,
    sends,
)
from lifecycle.machines.payloads import Code, Empty, LongText, Payload, Reason, dump, iso
from lifecycle.policy import Policy, in_words

SELLER, OPERATOR, SYSTEM = frozenset({"seller"}), frozenset({"operator"}), frozenset({"system"})

KIND = "violation"
STATES = ("recorded", "appealed", "final", "overturned", "expired")
#: the states whose points count against the store
ACTIVE = ("recorded", "appealed", "final")
#: the lookup that finds a store's violations (`Engine.violations`)
STORE_INDEX = "store_violations"

#: the closed list of what an operator records; each type's default points are the policy's
#: ``violation_points_<type>``
ViolationType = Literal[
    "intellectual_property",  # selling goods that infringe a trademark, copyright or patent
    "listing",  # misleading or duplicated listings, wrong category, keyword stuffing
    "prohibited_goods",  # goods the platform forbids or restricts
    "fulfilment",  # orders not shipped or delivered as promised, fake waybills
    "fraud",  # fake orders, manipulated reviews or sales, deceiving buyers
]
TYPES: tuple[str, ...] = get_args(ViolationType)
#: a bound on what an operator can type, far above the highest threshold's default
MAX_POINTS = 1000


class Recording(Payload):
    """What an operator records: against which store, what it was, how many points."""

    seller: Code
    type: ViolationType
    # None: the type's default points (`Policy.violation_points_<type>`).
    points: Annotated[int, Field(strict=True, ge=1, le=MAX_POINTS)] | None = None
    note: LongText | None = None


def default_points(policy: Policy, violation_type: str) -> int:
    """The points a violation of ``violation_type`` carries when the operator names none."""
    points: int = getattr(policy, f"violation_points_{violation_type}")
    return points


# --- guards -------------------------------------------------------------------------------


def _known_seller(ctx: Context) -> bool:
    if ctx.load("seller", ctx.payload.seller) is None:
        raise InvalidPayload("seller", f"no seller with id {ctx.payload.seller!r}")
    return True


def _store_not_closed(ctx: Context) -> bool:
    seller = ctx.load("seller", ctx.payload.seller)
    return seller is None or seller.state != "closed"


def _store_closed_words(ctx: Context) -> str:
    return f"seller {ctx.payload.seller} is closed: a closed store collects no violations"


def _default_points_positive(ctx: Context) -> bool:
    """A policy may set a type's default to 0; a violation still needs points, so the
    operator must name them."""
    if ctx.payload.points is None and default_points(ctx.policy, ctx.payload.type) < 1:
        raise InvalidPayload("points", f"the policy gives {ctx.payload.type} no default points "
                                       f"(violation_points_{ctx.payload.type} is 0): name them")
    return True


def _within_appeal_window(ctx: Context) -> bool:
    return ctx.now < datetime.fromisoformat(ctx.data["appeal_until"])


def _appeal_window_words(ctx: Context) -> str:
    window = (datetime.fromisoformat(ctx.data["appeal_until"])
              - datetime.fromisoformat(ctx.data["recorded_at"]))
    return (f"a seller may appeal within {in_words(window)} of the violation being recorded; "
            f"the window closed at {ctx.data['appeal_until']}")


KNOWN_SELLER = Guard("violation.known_seller", _known_seller,
                     "a violation is recorded against an existing seller")
STORE_NOT_CLOSED = Guard("violation.store_not_closed", _store_not_closed, _store_closed_words)
POINTS_GIVEN = Guard("violation.points_given", _default_points_positive,
                     "a violation carries at least 1 penalty point")
# The name keeps the spec's default (a stable identifier); the window is the policy's.
APPEAL_WINDOW = Guard("violation.appeal_within_7_days", _within_appeal_window,
                      _appeal_window_words, uses_payload=False)


# --- effects ------------------------------------------------------------------------------


@sends(("standing", "open"), ("standing", "add_violation"))
def _record(ctx: Context) -> None:
    recording: Recording = ctx.payload
    points = recording.points or default_points(ctx.policy, recording.type)
    ctx.data.update(
        dump(recording),
        points=points,
        recorded_at=iso(ctx.now),
        recorded_by=str(ctx.actor),
        appeal_until=iso(ctx.now + ctx.policy.violation_appeal_window),
        expires_at=iso(ctx.now + ctx.policy.violation_points_period),
    )
    seller = recording.seller
    counted = {"violation": ctx.id, "type": recording.type, "points": points,
               "recorded_at": ctx.data["recorded_at"], "expires_at": ctx.data["expires_at"]}
    # The standing is opened by the store's first violation, counting it; a second operator
    # opening it at the same moment loses the race on its id, a retryable conflict. A creation
    # lands in `clear`: a first violation that reaches a level is counted again (a violation
    # counts once, by its id) to move the standing there.
    first = ctx.load("standing", seller) is None
    if first:
        ctx.follow_ups.append(Create("standing", seller, {"seller": seller, "first": counted}))
    if not first or standing.level_of(points, ctx.policy) != "clear":
        ctx.follow_ups.append(Fire("standing", seller, "add_violation", counted))
    ctx.follow_ups.append(Index(STORE_INDEX, seller))


def _appeal(ctx: Context) -> None:
    ctx.data.update(appeal_reason=ctx.payload.reason, appealed_at=iso(ctx.now))


def _decided(decision: str) -> Any:
    def decide(ctx: Context) -> None:
        ctx.data.update(decision=decision, decided_at=iso(ctx.now), decided_by=str(ctx.actor))
        note = getattr(ctx.payload, "reason", None) or getattr(ctx.payload, "note", None)
        if note:
            ctx.data["decision_note"] = note

    return decide


_uphold = _decided("upheld")
_record_overturn = _decided("overturned")


@sends(("standing", "remove_violation"))
def _overturn(ctx: Context) -> None:
    _record_overturn(ctx)
    _points_removed(ctx, "overturned")


@sends(("standing", "remove_violation"))
def _expire(ctx: Context) -> None:
    ctx.data["expired_at"] = iso(ctx.now)
    _points_removed(ctx, "expired")


def _points_removed(ctx: Context, why: str) -> None:
    ctx.follow_ups.append(Fire("standing", ctx.data["seller"], "remove_violation",
                               {"violation": ctx.id, "why": why}))


def _at_anchor(policy: Policy, data: Any) -> timedelta:
    """Due at the time the anchor field holds, fixed when the violation was recorded: a
    policy changed later moves no violation's appeal window or expiry."""
    return timedelta(0)


DEFINITION = MachineDefinition(
    KIND,
    states=STATES,
    terminal=frozenset({"overturned", "expired"}),
    owners={"seller": lambda id, data: data["seller"]},
    new_id=lambda actor: f"v-{uuid.uuid4().hex[:12]}",
    transitions=(
        Transition("record", (), "recorded", OPERATOR, Recording,
                   (KNOWN_SELLER, STORE_NOT_CLOSED, POINTS_GIVEN), _record),
        Transition("appeal", ("recorded",), "appealed", SELLER, Reason, (APPEAL_WINDOW,),
                   _appeal),
        Transition("finalise", ("recorded",), "final", SYSTEM, Empty),
        Transition("uphold", ("appealed",), "final", OPERATOR, Empty, (), _uphold),
        Transition("overturn", ("appealed",), "overturned", OPERATOR, Reason, (), _overturn),
        Transition("expire", ACTIVE, "expired", SYSTEM, Empty, (), _expire),
    ),
    deadlines=(
        Deadline("recorded", "finalise", _at_anchor, "appeal_until"),
        *(Deadline(state, "expire", _at_anchor, "expires_at") for state in ACTIVE),
    ),
)
