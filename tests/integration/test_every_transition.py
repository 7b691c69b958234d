"""Every arrow of every machine, taken and refused.

The cases are generated from `lifecycle.machines.DEFINITIONS`: a transition added to a machine
shows up here as new cases, and fails until `SCENARIOS` (or `CAUSES` for internal triggers,
`CREATIONS` for creating ones) says how to arrange it. Each arrow is fired by each role allowed
to fire it, from each of its source states, and the tests check state, version, history, outbox
and replay. Each (state, trigger) is also refused from a wrong state, by every wrong role and by
someone else's buyer or seller id; a refusal writes nothing.

Aggregates are walked to their source state once per module (`Snapshots`) and each test gets
its own copy of that database.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import lifecycle
from lifecycle import Actor, Aggregate, Engine, SimulatedClock
from lifecycle.actor import ROLES
from lifecycle.machines import DEFINITIONS
from lifecycle.machines.coupon import voucher_id
from lifecycle.machines.standing import LEVELS
from tests.builders import (
    AVATAR,
    CHECKLIST,
    COUPON_VALIDITY,
    DOCUMENTS,
    EMAIL,
    ESCALATION_WAIT,
    FEE,
    GATEWAY_ACTOR,
    NOT_RECEIVED_WAIT,
    OFFER,
    OPERATOR,
    ORDER_TOTAL,
    PARCEL,
    PERSONAL,
    REGISTRATION,
    RETURN_SHIPMENT,
    SHIPMENT,
    SYSTEM,
    UNEXPECTED_CAPTURE,
    Snapshots,
    active_seller,
    aggregate_in,
    avatar_in,
    buyer,
    contact_in,
    coupon_in,
    coupon_terms,
    dispute_in,
    message_in,
    open_copy,
    open_dispute_payload,
    order_in,
    order_in_dispute,
    order_payload,
    outbox_of,
    points_in,
    profile,
    profile_in,
    registered_seller,
    rows,
    seller,
    seller_in,
    sent_code,
    standing_in,
    violation_in,
    voucher_in,
)
from tests.builders import Build as SnapshotBuild


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> Snapshots:
    return Snapshots(tmp_path_factory.mktemp("snapshots"))


@pytest.fixture
def engine(tmp_path: Path, snapshots: Snapshots, clock: SimulatedClock) -> Iterator[Engine]:
    with open_copy(snapshots.template, tmp_path, clock) as opened:
        yield opened


Start = Callable[[Hashable, SnapshotBuild], tuple[Engine, Aggregate]]


@pytest.fixture
def start(snapshots: Snapshots, tmp_path: Path, clock: SimulatedClock) -> Iterator[Start]:
    """``start(key, build)``: an engine on a database where ``build`` has run, and its aggregate."""
    opened: list[Engine] = []

    def start(key: Hashable, build: SnapshotBuild) -> tuple[Engine, Aggregate]:
        engine, aggregate = snapshots.open(key, build, tmp_path, clock)
        opened.append(engine)
        return engine, aggregate

    yield start
    for engine in opened:
        engine.close()


# --- the arrows, read from the definitions ------------------------------------------------


@dataclass(frozen=True)
class Arrow:
    """One route of one (state, trigger): where it starts, what fires it, where it ends."""

    kind: str
    source: str
    trigger: str
    dest: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.source}-{self.trigger}->{self.dest}"


def _arrows(*, internal: bool) -> Iterator[Arrow]:
    for kind, definition in DEFINITIONS.items():
        for (source, trigger), step in definition.steps.items():
            if step.internal == internal:
                for dest in step.dests:
                    yield Arrow(kind, source, trigger, dest)


def _steps(*, internal: bool) -> Iterator[tuple[str, str, str]]:
    for kind, definition in DEFINITIONS.items():
        for (source, trigger), step in definition.steps.items():
            if step.internal == internal:
                yield kind, source, trigger


def _first_arrow(kind: str, source: str, trigger: str) -> Arrow:
    step = DEFINITIONS[kind].step(source, trigger)
    assert step is not None
    return Arrow(kind, source, trigger, step.dests[0])


def actor_for(role: str, aggregate: Aggregate, *, other: bool = False) -> Actor:
    """An actor of ``role``: the aggregate's own buyer or seller, or (``other``) a stranger."""
    owner = DEFINITIONS[aggregate.kind].owner_of(role, aggregate.id, aggregate.data)
    if role == "buyer":
        return buyer("b-2" if other else owner or "b-1")
    if role == "seller":
        return seller("s-2" if other else owner or "s-1")
    return OPERATOR if role == "operator" else SYSTEM


@dataclass(frozen=True)
class Act:
    """One public call: create an aggregate (``id`` None) or fire a trigger on one."""

    kind: str
    id: str | None
    trigger: str
    actor: Actor
    payload: Mapping[str, Any] = field(default_factory=dict)

    def run(self, engine: Engine) -> Aggregate:
        if self.id is None:
            return engine.create(self.kind, self.actor, self.payload)
        return engine.fire(self.kind, self.id, self.trigger, self.actor, self.payload)


# --- how to arrange each external arrow ---------------------------------------------------

Build = Callable[[Engine, SimulatedClock, Arrow], Aggregate]
Payload = Callable[[Arrow], dict[str, Any]]


def in_source(engine: Engine, clock: SimulatedClock, arrow: Arrow) -> Aggregate:
    return aggregate_in(engine, clock, arrow.kind, arrow.source)


@dataclass(frozen=True)
class Scenario:
    """The payload an arrow is fired with, and how to build its aggregate in the source state."""

    payload: Payload
    build: Build = in_source
    # A build for the role that fires the arrow, where who may take it depends on the aggregate
    # (a message is read by the side it is addressed to): used by the test of allowed roles.
    build_for: Callable[[str], Build] | None = None


def sends(payload: Mapping[str, Any], build: Build = in_source) -> Scenario:
    return Scenario(lambda arrow: dict(payload), build)


def dispute_wanting_return(engine: Engine, clock: SimulatedClock, arrow: Arrow) -> Aggregate:
    """Accepting the claim returns the goods first when the buyer asked for that."""
    return dispute_in(engine, clock, arrow.source, return_goods=arrow.dest == "awaiting_return")


def offer_wanting_return(engine: Engine, clock: SimulatedClock, arrow: Arrow) -> Aggregate:
    return dispute_in(engine, clock, arrow.source,
                      offer_return_goods=arrow.dest == "awaiting_return")


def disputable_order(engine: Engine, clock: SimulatedClock, arrow: Arrow) -> Aggregate:
    order = order_in(engine, clock, arrow.source)
    if open_dispute_payload(arrow.source)["type"] == "not_received":
        clock.advance(NOT_RECEIVED_WAIT)
    return order


def negotiated_for_days(engine: Engine, clock: SimulatedClock, arrow: Arrow) -> Aggregate:
    dispute = in_source(engine, clock, arrow)
    clock.advance(ESCALATION_WAIT)  # the buyer may escalate from the 4th day
    return dispute


# --- the seller's profile, contacts and avatars (issue #20) -------------------------------

#: the codes sent to the contacts a scenario built, by what it built them for
CODES: dict[Hashable, str] = {}
CONTACT = lifecycle.contact_id("s-1", "email")


def contact_with_code(engine: Engine, clock: SimulatedClock, arrow: Arrow) -> Aggregate:
    contact = contact_in(engine, clock, arrow.source)
    CODES[arrow] = sent_code(engine, contact.id)
    return contact


def profile_awaiting_code(engine: Engine, clock: SimulatedClock, arrow: Arrow) -> Aggregate:
    contact_in(engine, clock, "unverified")
    CODES[arrow] = sent_code(engine, CONTACT)
    return engine.get("profile", "s-1")


def profile_with_avatar_in_review(engine: Engine, clock: SimulatedClock, arrow: Arrow) -> Aggregate:
    avatar_in(engine, clock, "under_review")
    return engine.get("profile", "s-1")


def contact_of_arrow(engine: Engine, clock: SimulatedClock, arrow: Arrow) -> Aggregate:
    return contact_in(engine, clock, arrow.source)


ACCOUNT_SCENARIOS: dict[tuple[str, str], Scenario] = {
    ("profile", "update"): sends({"name": "Ana Wu", "procurement": {"frequency": "monthly"}}),
    ("profile", "set_privacy"): sends({"personal": "all_users"}),
    ("profile", "set_subscriptions"): sends({"notifications": False}),
    ("profile", "close"): sends({}),
    ("contact", "resend"): sends({}),
    ("contact", "confirm"): Scenario(lambda arrow: {"code": CODES.get(arrow, "000000")},
                                     contact_with_code),
    ("contact", "expire"): sends({}),
    ("avatar", "review"): sends({}),
    ("avatar", "overdue"): sends({}),
    ("avatar", "approve"): sends({}),
    ("avatar", "reject"): sends({"reason": "blurry"}),
}


DECISIONS = {
    "resolved_no_refund": {"decision": "no_refund"},
    "awaiting_return": {"decision": "return_and_refund", "refund_amount": "15.00"},
    "resolved_refund": {"decision": "refund", "refund_amount": "15.00"},
}

SCENARIOS: dict[tuple[str, str], Scenario] = {
    ("seller", "submit_documents"): sends(DOCUMENTS),
    ("seller", "approve"): sends({"note": "licence verified"}),
    ("seller", "reject"): sends({"reasons": ["licence unreadable"]}),
    ("seller", "resubmit"): sends(DOCUMENTS),
    ("seller", "pay_fee"): sends(FEE),
    ("seller", "complete_profile"): sends(profile("acme")),
    ("seller", "suspend"): sends({"reason": "counterfeit listing"}),
    ("seller", "reinstate"): sends({}),
    ("seller", "fee_lapse"): sends({}),
    ("seller", "renew_fee"): sends({"payment_ref": "fee-2027"}),
    ("seller", "close"): sends({}),
    ("order", "pay"): sends({"amount": ORDER_TOTAL}),
    ("order", "cancel"): sends({}),
    ("order", "payment_timeout"): sends({}),
    ("order", "request_cancel"): sends({"reason": "ordered twice"}),
    ("order", "accept_cancel"): sends({}),
    ("order", "reject_cancel"): sends({}),
    ("order", "cancel_request_timeout"): sends({}),
    ("order", "ship_deadline"): sends({}),
    ("order", "book_pickup"): sends({"checklist": CHECKLIST, "parcel": PARCEL}),
    ("order", "pickup_timeout"): sends({}),
    ("order", "confirm_pickup"): sends({"waybill": "1234567891"}),
    ("order", "ship_offline"): sends(SHIPMENT),
    ("order", "tracking_in_transit"): sends({"event_id": "ev-1", "location": "Shenzhen"}),
    ("order", "tracking_delivered"): sends({"event_id": "ev-2", "location": "Lisboa"}),
    ("order", "tracking_exception"): sends({"kind": "customs_hold", "detail": "held at customs"}),
    ("order", "confirm_receipt"): sends({}),
    ("order", "auto_confirm"): sends({}),
    ("order", "release_funds"): sends({}),
    ("order", "open_dispute"): Scenario(lambda arrow: open_dispute_payload(arrow.source),
                                        disputable_order),
    ("dispute", "accept_claim"): sends({}, dispute_wanting_return),
    ("dispute", "seller_response_timeout"): sends({}, dispute_wanting_return),
    ("dispute", "counter_offer"): sends({**OFFER, "refund_amount": "12.00"}),
    ("dispute", "accept_offer"): sends({}, offer_wanting_return),
    ("dispute", "reject_offer"): sends({}),
    ("dispute", "escalate"): sends({}, negotiated_for_days),
    ("dispute", "negotiation_timeout"): sends({}),
    ("dispute", "arbitrate"): Scenario(lambda arrow: DECISIONS[arrow.dest]),
    ("dispute", "ship_return"): sends(RETURN_SHIPMENT),
    ("dispute", "return_timeout"): sends({}),
    ("dispute", "confirm_return_received"): sends({}),
    ("dispute", "withdraw"): sends({}),
    ("coupon", "activate"): sends({}),
    ("coupon", "raise"): sends({"copies": 150}),
    ("coupon", "lower"): sends({"copies": 50}),
    ("coupon", "deactivate"): sends({}),
    ("coupon", "claim"): sends({}),
    ("coupon", "expire"): sends({}),
    ("voucher", "expire"): sends({}),
    ("unexpected_capture", "refund"): sends({}),
    ("violation", "appeal"): sends({"reason": "the listing was right"}),
    ("violation", "finalise"): sends({}),
    ("violation", "uphold"): sends({}),
    ("violation", "overturn"): sends({"reason": "recorded by mistake"}),
    ("violation", "expire"): sends({}),
    ("standing", "close"): sends({}, lambda engine, clock, arrow: closable_standing(engine, clock)),
    ("points_account", "earn"): sends({"reason": "quotation_answered", "reference": "rfq-1"}),
    ("points_account", "redeem"): sends({"item": "quotation_rights"}),
    ("points_account", "correct"): sends({"points": 10, "reason": "goodwill"}),
    ("points_account", "penalise"): sends({"points": 5, "reason": "late answers"}),
    ("points_account", "close"): sends({"reason": "leaving"}, lambda engine, clock, arrow:
                                       points_in(engine, arrow.source, balance=0)),
    ("message", "read"): Scenario(lambda arrow: {}, build_for=lambda role: message_to(role)),
    ("message", "label"): sends({"label": "refund"}),
    ("message", "unlabel"): sends({"label": "kept"}),
    ("message", "mark"): sends({"mark": "starred"}),
    ("message", "unmark"): sends({"mark": "flagged"}),
    ("message", "remove"): sends({"reason": "abuse"}),
    ("subaccount", "set_permissions"): sends({"permissions": ["answer_disputes", "view_money"]}),
    ("subaccount", "disable"): sends({}),
    ("subaccount", "enable"): sends({}),
    ("subaccount", "remove"): sends({}),
    **ACCOUNT_SCENARIOS,
}


def closable_standing(engine: Engine, clock: SimulatedClock) -> Aggregate:
    """A standing with nothing active whose seller's account is closed."""
    violation_in(engine, clock, "overturned")
    engine.fire("seller", "s-1", "close", OPERATOR, {})
    return engine.get("standing", "s-1")


def message_to(role: str) -> Build:
    """A message the side ``role`` has not read yet: one the other side sent."""
    def message_to_role(engine: Engine, clock: SimulatedClock, arrow: Arrow) -> Aggregate:
        return message_in(engine, clock, arrow.source,
                          sender="seller" if role == "buyer" else "buyer")

    message_to_role.__name__ = f"message_to_{role}"
    return message_to_role


def scenario(kind: str, trigger: str) -> Scenario:
    found = SCENARIOS.get((kind, trigger))
    if found is None:
        pytest.fail(f"{kind} {trigger} has no scenario: add one to SCENARIOS in {__name__}")
    return found


def in_state(start: Start, kind: str, state: str) -> tuple[Engine, Aggregate]:
    return start(("in", kind, state), lambda engine, clock: aggregate_in(engine, clock, kind, state))


def arranged(start: Start, how: Scenario, arrow: Arrow,
             role: str | None = None) -> tuple[Engine, Aggregate]:
    """An engine with the arrow's aggregate in its source state, as the scenario builds it
    (for ``role``, when the scenario builds per role)."""
    if role is not None and how.build_for is not None:
        build = how.build_for(role)
        return start((build.__name__, arrow), lambda engine, clock: build(engine, clock, arrow))
    if how.build is in_source:
        return in_state(start, arrow.kind, arrow.source)
    return start((how.build.__name__, arrow), lambda engine, clock: how.build(engine, clock, arrow))


# --- how to reach each internal arrow through its public cause ----------------------------

#: how each destination of the order's close_dispute is reached: the dispute walked to a state,
#: then resolved by a public trigger; and the refund the order records
RESOLUTIONS: dict[str, tuple[str, str, Actor, dict[str, Any], str]] = {
    "refunded": ("awaiting_seller", "accept_claim", seller(), {}, ORDER_TOTAL),
    "shipped": ("awaiting_seller", "withdraw", buyer(), {}, "0"),
    "in_transit": ("under_arbitration", "arbitrate", OPERATOR,
                   {"decision": "refund", "refund_amount": "15.00"}, "15.00"),
    "delivered": ("negotiating", "accept_offer", buyer(), {}, str(OFFER["refund_amount"])),
    "completed": ("return_in_transit", "confirm_return_received", seller(), {}, "20.00"),
}


def order_awaiting_resolution(engine: Engine, clock: SimulatedClock, arrow: Arrow) -> Aggregate:
    """An order whose dispute is one public trigger away from resolving towards ``arrow.dest``."""
    if arrow.dest == "refunded":
        order, _ = order_in_dispute(engine, clock, "delivered", refund_amount=ORDER_TOTAL)
        return order
    dispute = dispute_in(engine, clock, RESOLUTIONS[arrow.dest][0], paused_in=arrow.dest)
    return engine.get("order", dispute.data["order"])


def dispute_resolution(order: Aggregate, arrow: Arrow) -> Act:
    _, trigger, actor, payload, _ = RESOLUTIONS[arrow.dest]
    return Act("dispute", order.data["dispute"], trigger, actor, payload)


def voucher_on_an_order(engine: Engine, clock: SimulatedClock, arrow: Arrow) -> Aggregate:
    """A voucher in the arrow's source state; for ``spend`` its order is completed, and for a
    lapsing ``release`` the coupon's validity is over."""
    voucher = voucher_in(engine, clock, arrow.source)
    if arrow.trigger == "spend":
        order = voucher.data["order"]
        for trigger, actor, payload in [("ship_offline", seller(), SHIPMENT),
                                        ("confirm_receipt", buyer(), {})]:
            engine.fire("order", order, trigger, actor, payload)
    if arrow.dest == "expired":
        clock.advance(COUPON_VALIDITY + timedelta(days=1))
    return voucher


def order_moving_the_voucher(voucher: Aggregate, arrow: Arrow) -> Act:
    """The order trigger that reserves, redeems, releases or spends the voucher."""
    if arrow.trigger == "reserve":
        return Act("order", None, "place", buyer(), order_payload(coupon=voucher.id))
    order = voucher.data["order"]
    if arrow.trigger == "redeem":
        return Act("order", order, "pay", buyer())
    if arrow.trigger == "spend":
        return Act("order", order, "release_funds", SYSTEM)
    if arrow.source == "reserved":  # released by cancelling the unpaid order
        return Act("order", order, "cancel", buyer())
    return Act("order", order, "ship_deadline", SYSTEM)  # a paid order cancelled by its timer


@dataclass(frozen=True)
class Internal:
    """How an internal arrow is reached: its aggregate just before, the public cause, and the
    payload a caller would send when firing the internal trigger directly."""

    build: Build
    cause: Callable[[Aggregate, Arrow], Act]
    direct: Callable[[Aggregate], dict[str, Any]]


def _to_order(voucher: Aggregate) -> dict[str, Any]:
    return {"order": voucher.data.get("order", "o-1")}


def thresholds_landing(engine: Engine, points: int, level: str) -> None:
    """Set the penalty thresholds so that ``points`` reach ``level``: a standing moves from any
    level to any other when the policy changed in between."""
    below = LEVELS.index(level)  # how many thresholds ``points`` reach
    at = [points - (below - n) if n <= below else points + (n - below) for n in (1, 2, 3)]
    engine.set_policy(engine.policy.with_overrides(
        penalty_promotion_restricted_at=at[0], penalty_orders_refused_at=at[1],
        penalty_store_suspended_at=at[2]))


def standing_before_a_violation(engine: Engine, clock: SimulatedClock, arrow: Arrow) -> Aggregate:
    standing = standing_in(engine, arrow.source)
    thresholds_landing(engine, standing.data["points"] + 1, arrow.dest)
    return standing


def standing_before_an_overturn(engine: Engine, clock: SimulatedClock, arrow: Arrow) -> Aggregate:
    standing_in(engine, arrow.source)
    violation_in(engine, clock, "appealed", points=1, id="v-undone")
    standing = engine.get("standing", "s-1")
    thresholds_landing(engine, standing.data["points"] - 1, arrow.dest)
    return standing


COUNTED = {"violation": "v-direct", "type": "listing", "points": 1,
           "recorded_at": "2026-01-01T00:00:00+00:00", "expires_at": "2027-01-01T00:00:00+00:00"}

ACCOUNT_CAUSES: dict[tuple[str, str], Internal] = {
    ("contact", "change"): Internal(
        contact_of_arrow,
        lambda contact, arrow: Act("profile", "s-1", "update", seller(),
                                   {"email": "new@acme.example"}),
        lambda contact: {"seller": "s-1", "channel": "email", "address": "x@acme.example"}),
    ("contact", "close"): Internal(
        contact_of_arrow, lambda contact, arrow: Act("profile", "s-1", "close", seller()),
        lambda contact: {}),
    ("profile", "apply_contact"): Internal(
        profile_awaiting_code,
        lambda profile, arrow: Act("contact", CONTACT, "confirm", seller(),
                                   {"code": CODES[arrow]}),
        lambda profile: {"channel": "email", "address": "x@acme.example"}),
    ("profile", "show_avatar"): Internal(
        profile_with_avatar_in_review,
        lambda profile, arrow: Act("avatar", "a-s-1", "approve", OPERATOR),
        lambda profile: {"avatar": "a-s-1"}),
}


CAUSES: dict[tuple[str, str], Internal] = {
    ("standing", "add_violation"): Internal(
        standing_before_a_violation,
        lambda standing, arrow: Act("violation", None, "record", OPERATOR,
                                    {"seller": "s-1", "type": "listing", "points": 1}),
        lambda standing: COUNTED,
    ),
    ("standing", "remove_violation"): Internal(
        standing_before_an_overturn,
        lambda standing, arrow: Act("violation", "v-undone", "overturn", OPERATOR,
                                    {"reason": "recorded by mistake"}),
        lambda standing: {"violation": "v-direct", "why": "expired"},
    ),
    ("order", "close_dispute"): Internal(
        order_awaiting_resolution, dispute_resolution,
        lambda order: {"dispute": order.data.get("dispute", f"{order.id}-d1"),
                       "refund_amount": "20.00"},
    ),
    **{("voucher", trigger): Internal(voucher_on_an_order, order_moving_the_voucher, _to_order)
       for trigger in ("reserve", "redeem", "release", "spend")},
    **ACCOUNT_CAUSES,
}


def internal(kind: str, trigger: str) -> Internal:
    found = CAUSES.get((kind, trigger))
    if found is None:
        pytest.fail(f"internal {kind} {trigger} has no cause: add one to CAUSES in {__name__}")
    return found


# --- how each kind is created -------------------------------------------------------------


def _register(engine: Engine, clock: SimulatedClock) -> tuple[Act, Callable[[Aggregate], str]]:
    return Act("seller", None, "register", seller("s-9"), REGISTRATION), lambda made: made.id


def _place(engine: Engine, clock: SimulatedClock) -> tuple[Act, Callable[[Aggregate], str]]:
    active_seller(engine)
    return Act("order", None, "place", buyer("b-7"), order_payload()), lambda made: made.id


def _open(engine: Engine, clock: SimulatedClock) -> tuple[Act, Callable[[Aggregate], str]]:
    order = order_in(engine, clock, "delivered")
    act = Act("order", order.id, "open_dispute", buyer(), open_dispute_payload("delivered"))
    return act, lambda order: str(order.data["dispute"])


def _create_coupon(engine: Engine, clock: SimulatedClock) -> tuple[Act, Callable[[Aggregate], str]]:
    active_seller(engine)
    return Act("coupon", None, "create", seller(), coupon_terms(clock)), lambda made: made.id


def _issue(engine: Engine, clock: SimulatedClock) -> tuple[Act, Callable[[Aggregate], str]]:
    coupon = coupon_in(engine, clock, "active")
    return Act("coupon", coupon.id, "claim", buyer("b-7")), lambda c: voucher_id(c.id, "b-7")


def _record_capture(engine: Engine, clock: SimulatedClock) -> tuple[Act, Callable[[Aggregate], str]]:
    return (Act("unexpected_capture", None, "record", GATEWAY_ACTOR, UNEXPECTED_CAPTURE),
            lambda made: made.id)


def _record_violation(engine: Engine, clock: SimulatedClock) -> tuple[Act, Callable[[Aggregate], str]]:
    standing_in(engine, "clear")  # not the store's first violation: it opens no standing
    act = Act("violation", None, "record", OPERATOR, {"seller": "s-1", "type": "listing"})
    return act, lambda made: made.id


def _first_violation(engine: Engine, clock: SimulatedClock) -> tuple[Act, Callable[[Aggregate], str]]:
    active_seller(engine)
    act = Act("violation", None, "record", OPERATOR, {"seller": "s-1", "type": "listing"})
    return act, lambda violation: str(violation.data["seller"])


#: kinds whose public cause creates another aggregate with them: a store's first violation
#: opens its standing
CREATED_WITH = {"standing": 1}


def _open_points(engine: Engine, clock: SimulatedClock) -> tuple[Act, Callable[[Aggregate], str]]:
    active_seller(engine)
    return Act("points_account", None, "open", seller(), {}), lambda made: made.id


def _earn_points(engine: Engine, clock: SimulatedClock) -> tuple[Act, Callable[[Aggregate], str]]:
    points_in(engine, "open")
    act = Act("points_account", "s-1", "earn", SYSTEM,
              {"reason": "quotation_answered", "reference": "rfq-1"})
    return act, lambda account: "quotation_answered:rfq-1"


def _send_message(engine: Engine, clock: SimulatedClock) -> tuple[Act, Callable[[Aggregate], str]]:
    order = order_in(engine, clock, "paid")
    return (Act("message", None, "send", buyer(), {"order": order.id, "text": "hello"}),
            lambda made: made.id)


def _create_subaccount(engine: Engine, clock: SimulatedClock) -> tuple[Act, Callable[[Aggregate], str]]:
    active_seller(engine)
    return (Act("subaccount", None, "create", seller(), {"permissions": ["ship_orders"]}),
            lambda made: made.id)
def _create_profile(engine: Engine, clock: SimulatedClock) -> tuple[Act, Callable[[Aggregate], str]]:
    registered_seller(engine)
    return Act("profile", None, "create", seller(), PERSONAL), lambda made: made.id


def _request_contact(engine: Engine, clock: SimulatedClock) -> tuple[Act, Callable[[Aggregate], str]]:
    profile_in(engine, clock, "active")
    return (Act("profile", "s-1", "update", seller(), {"email": EMAIL}),
            lambda made: lifecycle.contact_id(made.id, "email"))


def _upload_avatar(engine: Engine, clock: SimulatedClock) -> tuple[Act, Callable[[Aggregate], str]]:
    profile_in(engine, clock, "active")
    return Act("avatar", None, "upload", seller(), AVATAR), lambda made: made.id


ACCOUNT_CREATIONS = {"profile": _create_profile, "contact": _request_contact,
                     "avatar": _upload_avatar}


#: per kind: arrange what creating one needs, and return the public act that creates it with
#: a way to find the created aggregate's id from what the act returned
CREATIONS: dict[str, Callable[[Engine, SimulatedClock], tuple[Act, Callable[[Aggregate], str]]]] = {
    "seller": _register,
    "order": _place,
    "dispute": _open,
    "coupon": _create_coupon,
    "voucher": _issue,
    "unexpected_capture": _record_capture,
    "violation": _record_violation,
    "standing": _first_violation,
    "points_account": _open_points,
    "points_earning": _earn_points,
    "message": _send_message,
    "subaccount": _create_subaccount,
    **ACCOUNT_CREATIONS,
}


def creation(kind: str) -> Callable[[Engine, SimulatedClock], tuple[Act, Callable[[Aggregate], str]]]:
    found = CREATIONS.get(kind)
    if found is None:
        pytest.fail(f"{kind} has no creation: add one to CREATIONS in {__name__}")
    return found


# --- shared assertions --------------------------------------------------------------------


def assert_took(engine: Engine, before: Aggregate, arrow: Arrow, actor: Actor,
                events_before: int) -> Aggregate:
    """The aggregate took ``arrow`` once: state, version, history, outbox and replay agree."""
    after = engine.get(arrow.kind, before.id)
    assert (after.state, after.version) == (arrow.dest, before.version + 1)
    history = engine.history(arrow.kind, before.id)
    assert len(history) == before.version + 1
    last = history[-1]
    assert (last.seq, last.trigger, last.source, last.dest, last.actor) == (
        after.version, arrow.trigger, arrow.source, arrow.dest, actor
    )
    event = arrow.dest if arrow.dest != arrow.source else arrow.trigger
    events = outbox_of(engine, arrow.kind, before.id)
    assert len(events) == events_before + 1
    assert events[-1] == (f"{arrow.kind}.{event}", after.version)
    assert engine.replay(arrow.kind, before.id) == arrow.dest
    return after


def assert_nothing_written(engine: Engine, counts: dict[str, int], before: Aggregate) -> None:
    assert rows(engine) == counts
    assert engine.get(before.kind, before.id) == before


# --- creating transitions -----------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(DEFINITIONS))
def test_creating_transition_makes_version_one_in_the_initial_state(
    engine: Engine, clock: SimulatedClock, kind: str
) -> None:
    definition = DEFINITIONS[kind]
    act, created_id = creation(kind)(engine, clock)
    assert (act.kind == kind) != definition.creation.internal  # internal ones have a cause
    aggregates_before = rows(engine)["aggregates"]

    id = created_id(act.run(engine))

    created = engine.get(kind, id)
    assert (created.state, created.version) == (definition.initial, 1)
    [entry] = engine.history(kind, id)
    assert (entry.seq, entry.trigger, entry.source, entry.dest, entry.actor) == (
        1, definition.creation.trigger, None, definition.initial, act.actor
    )
    assert outbox_of(engine, kind, id) == [(f"{kind}.{definition.initial}", 1)]
    assert rows(engine)["aggregates"] == aggregates_before + 1 + CREATED_WITH.get(kind, 0)
    assert engine.replay(kind, id) == definition.initial


def _creation_role_cases() -> Iterator[Any]:
    for kind, definition in DEFINITIONS.items():
        roles = set(ROLES) if definition.creation.internal else set(ROLES) - definition.creation.roles
        for role in sorted(roles):
            yield pytest.param(kind, role, id=f"{kind}-by-{role}")


@pytest.mark.parametrize(("kind", "role"), list(_creation_role_cases()))
def test_creating_by_a_role_not_listed_is_forbidden(
    engine: Engine, clock: SimulatedClock, kind: str, role: str
) -> None:
    """Internal creations (a dispute, a voucher) are refused to every role, system included."""
    definition = DEFINITIONS[kind]
    act, _ = creation(kind)(engine, clock)
    counts = rows(engine)
    payload = act.payload if act.kind == kind else {}

    with pytest.raises(lifecycle.Forbidden) as refused:
        engine.create(kind, Actor(role, "x-1"), payload, id="x-1")

    assert (refused.value.role, refused.value.trigger) == (role, definition.creation.trigger)
    assert rows(engine) == counts
    with pytest.raises(lifecycle.NotFound):
        engine.get(kind, "x-1")


def test_a_seller_may_not_register_someone_else(engine: Engine) -> None:
    with pytest.raises(lifecycle.Forbidden) as refused:
        engine.create("seller", seller("s-1"), REGISTRATION, id="s-2")

    assert (refused.value.actor_id, refused.value.trigger) == ("s-1", "register")
    assert rows(engine)["aggregates"] == 0
    assert engine.find("seller") == []


def test_registering_twice_is_refused(engine: Engine) -> None:
    registered = seller_in(engine, "registered")
    counts = rows(engine)

    with pytest.raises(lifecycle.AlreadyExists):
        engine.create("seller", seller("s-1"), REGISTRATION)

    assert_nothing_written(engine, counts, registered)


# --- every external arrow, by every allowed role ------------------------------------------


def _role_cases() -> Iterator[Any]:
    for arrow in _arrows(internal=False):
        step = DEFINITIONS[arrow.kind].step(arrow.source, arrow.trigger)
        assert step is not None
        for role in sorted(step.roles):
            yield pytest.param(arrow, role, id=f"{arrow}-by-{role}")


@pytest.mark.parametrize(("arrow", "role"), list(_role_cases()))
def test_allowed_role_takes_the_arrow(start: Start, arrow: Arrow, role: str) -> None:
    how = scenario(arrow.kind, arrow.trigger)
    engine, before = arranged(start, how, arrow, role)
    actor = actor_for(role, before)
    events_before = len(outbox_of(engine, arrow.kind, before.id))

    moved = engine.fire(arrow.kind, before.id, arrow.trigger, actor, how.payload(arrow))

    assert (moved.state, moved.version) == (arrow.dest, before.version + 1)
    assert_took(engine, before, arrow, actor, events_before)


# --- internal arrows: reached through their public cause, refused when fired directly -----


@pytest.mark.parametrize("arrow", list(_arrows(internal=True)), ids=str)
def test_internal_arrow_is_taken_through_its_public_cause(start: Start, arrow: Arrow) -> None:
    how = internal(arrow.kind, arrow.trigger)
    engine, before = start(("cause", arrow), lambda engine, clock: how.build(engine, clock, arrow))
    cause = how.cause(before, arrow)
    events_before = len(outbox_of(engine, arrow.kind, before.id))

    result = cause.run(engine)

    assert_took(engine, before, arrow, cause.actor, events_before)
    assert engine.replay(cause.kind, result.id) == engine.get(cause.kind, result.id).state


@pytest.mark.parametrize("dest", sorted(RESOLUTIONS))
def test_a_resolved_dispute_records_its_refund_on_the_order(start: Start, dest: str) -> None:
    arrow = Arrow("order", "in_dispute", "close_dispute", dest)
    how = internal("order", "close_dispute")
    engine, before = start(("cause", arrow), lambda engine, clock: how.build(engine, clock, arrow))

    how.cause(before, arrow).run(engine)

    after = engine.get("order", before.id)
    assert (after.state, after.data["refunded"]) == (dest, RESOLUTIONS[dest][-1])
    assert "dispute" not in after.data  # free for another dispute


def test_a_released_voucher_is_off_its_order(start: Start) -> None:
    arrow = Arrow("voucher", "redeemed", "release", "available")
    how = internal("voucher", "release")
    engine, before = start(("cause", arrow), lambda engine, clock: how.build(engine, clock, arrow))

    how.cause(before, arrow).run(engine)

    assert "order" not in engine.get("voucher", before.id).data
    assert engine.get("order", before.data["order"]).state == "cancelled"


@pytest.mark.parametrize(("kind", "source", "trigger"), list(_steps(internal=True)))
def test_internal_trigger_fired_directly_is_refused(
    start: Start, kind: str, source: str, trigger: str
) -> None:
    how, arrow = internal(kind, trigger), _first_arrow(kind, source, trigger)
    engine, before = start(("cause", arrow), lambda engine, clock: how.build(engine, clock, arrow))
    counts = rows(engine)

    with pytest.raises(lifecycle.InvalidTransition) as refused:
        engine.fire(kind, before.id, trigger, SYSTEM, how.direct(before))

    assert (refused.value.state, refused.value.trigger) == (source, trigger)
    assert trigger not in refused.value.allowed
    assert_nothing_written(engine, counts, before)


# --- refusals: wrong state, wrong role, someone else's aggregate --------------------------


def _wrong_state_cases() -> Iterator[Any]:
    for kind, definition in DEFINITIONS.items():
        triggers = dict.fromkeys(trigger for (_, trigger) in definition.steps)
        for trigger in triggers:
            sources = {s for (s, t) in definition.steps if t == trigger}
            wrong = next(s for s in definition.states if s not in sources)
            yield pytest.param(kind, trigger, wrong, id=f"{kind}:{trigger}-from-{wrong}")


@pytest.mark.parametrize(("kind", "trigger", "wrong_state"), list(_wrong_state_cases()))
def test_trigger_from_a_state_without_it_is_an_invalid_transition(
    start: Start, kind: str, trigger: str, wrong_state: str
) -> None:
    definition = DEFINITIONS[kind]
    source = next(s for (s, t) in definition.steps if t == trigger)
    step = definition.step(source, trigger)
    assert step is not None
    engine, before = in_state(start, kind, wrong_state)
    counts = rows(engine)
    actor = actor_for(sorted(step.roles)[0], before)
    arrow = _first_arrow(kind, source, trigger)
    payload = internal(kind, trigger).direct(before) if step.internal else \
        scenario(kind, trigger).payload(arrow)

    with pytest.raises(lifecycle.InvalidTransition) as refused:
        engine.fire(kind, before.id, trigger, actor, payload)

    allowed = tuple(sorted(definition.external_triggers_from(wrong_state)))
    assert (refused.value.kind, refused.value.id) == (kind, before.id)
    assert (refused.value.state, refused.value.trigger, refused.value.allowed) == (
        wrong_state, trigger, allowed
    )
    message = str(refused.value)
    assert all(word in message for word in (wrong_state, trigger, *allowed))
    assert_nothing_written(engine, counts, before)


def refusal(engine: Engine, kind: str, id: str, trigger: str, actor: Actor,
            payload: Mapping[str, Any]) -> tuple[str, str, str, str, bool]:
    """How firing was refused: (error, role, actor id, trigger, message names role and trigger).

    ("fired", ...) when it was not refused at all.
    """
    try:
        engine.fire(kind, id, trigger, actor, payload)
    except lifecycle.Forbidden as error:
        names_them = error.role in str(error) and error.trigger in str(error)
        return "Forbidden", error.role, error.actor_id, error.trigger, names_them
    except lifecycle.LifecycleError as error:
        return type(error).__name__, actor.role, actor.id, trigger, False
    return "fired", actor.role, actor.id, trigger, False


def _wrong_roles(kind: str, roles: frozenset[str]) -> list[str]:
    return sorted(set(ROLES) - roles)


def _other_owners(kind: str, roles: frozenset[str]) -> list[str]:
    """Roles that own what they act on: buyers and sellers, unless the kind is public to them."""
    return sorted(roles & {"buyer", "seller"} - DEFINITIONS[kind].public)


def _step_cases(roles_of: Callable[[str, frozenset[str]], list[str]]) -> Iterator[Any]:
    for kind, source, trigger in _steps(internal=False):
        step = DEFINITIONS[kind].step(source, trigger)
        assert step is not None
        if roles_of(kind, step.roles):
            yield pytest.param(kind, source, trigger, id=f"{kind}:{source}-{trigger}")


@pytest.mark.parametrize(("kind", "source", "trigger"), list(_step_cases(_wrong_roles)))
def test_roles_not_listed_on_the_transition_are_forbidden(
    start: Start, kind: str, source: str, trigger: str
) -> None:
    arrow = _first_arrow(kind, source, trigger)
    step = DEFINITIONS[kind].step(source, trigger)
    assert step is not None
    how = scenario(kind, trigger)
    engine, before = arranged(start, how, arrow)
    counts = rows(engine)
    # Buyers and sellers act as the aggregate's own, so only their role is wrong.
    actors = [actor_for(role, before) for role in _wrong_roles(kind, step.roles)]

    refusals = [refusal(engine, kind, before.id, trigger, actor, how.payload(arrow))
                for actor in actors]

    assert refusals == [("Forbidden", actor.role, actor.id, trigger, True) for actor in actors]
    assert_nothing_written(engine, counts, before)
    # SPEC §8: the refusal names the state and what that actor may fire there instead (an
    # actor who cannot own the aggregate, a buyer on a seller account, learns neither).
    for actor in (a for a in actors if DEFINITIONS[kind].owns(a, before.id, before.data)):
        with pytest.raises(lifecycle.Forbidden) as refused:
            engine.fire(kind, before.id, trigger, actor, how.payload(arrow))
        offered = tuple(sorted(engine.allowed(kind, before.id, actor)))
        assert (refused.value.kind, refused.value.id, refused.value.state, refused.value.allowed) == (
            kind, before.id, before.state, offered)
        message = str(refused.value)
        assert message.startswith(f"{kind} {before.id} is {before.state}: {actor.role} {actor.id} "
                                  f"may not {trigger}: only ")
        assert message.endswith(f"; allowed for {actor.role}: {', '.join(offered) or 'none'}")


@pytest.mark.parametrize(("kind", "source", "trigger"), list(_step_cases(_other_owners)))
def test_buyer_or_seller_of_another_aggregate_is_forbidden(
    start: Start, kind: str, source: str, trigger: str
) -> None:
    arrow = _first_arrow(kind, source, trigger)
    step = DEFINITIONS[kind].step(source, trigger)
    assert step is not None
    how = scenario(kind, trigger)
    engine, before = arranged(start, how, arrow)
    counts = rows(engine)
    strangers = [actor_for(role, before, other=True) for role in _other_owners(kind, step.roles)]
    assert not set(strangers) & {actor_for(s.role, before) for s in strangers}

    refusals = [refusal(engine, kind, before.id, trigger, stranger, how.payload(arrow))
                for stranger in strangers]

    assert refusals == [("Forbidden", s.role, s.id, trigger, True) for s in strangers]
    assert_nothing_written(engine, counts, before)


def _terminal_cases() -> Iterator[Any]:
    for kind, definition in DEFINITIONS.items():
        for state in sorted(definition.terminal):
            yield pytest.param(kind, state, id=f"{kind}:{state}")


@pytest.mark.parametrize(("kind", "state"), list(_terminal_cases()))
def test_terminal_state_refuses_every_trigger(start: Start, kind: str, state: str) -> None:
    definition = DEFINITIONS[kind]
    engine, before = in_state(start, kind, state)
    counts = rows(engine)
    triggers = sorted({t.trigger for t in definition.transitions})

    for trigger in triggers:
        with pytest.raises(lifecycle.InvalidTransition) as refused:
            engine.fire(kind, before.id, trigger, SYSTEM, {})
        assert (refused.value.state, refused.value.allowed) == (state, ())

    assert engine.allowed(kind, before.id, OPERATOR) == []
    assert_nothing_written(engine, counts, before)


def test_every_arrangement_names_a_trigger_of_its_machine() -> None:
    defined = {(kind, t) for kind, d in DEFINITIONS.items() for (_, t) in d.steps}
    internal_ones = {(kind, t) for kind, d in DEFINITIONS.items()
                     for (_, t), step in d.steps.items() if step.internal}

    assert set(SCENARIOS) == defined - internal_ones
    assert set(CAUSES) == internal_ones
    assert set(CREATIONS) == set(DEFINITIONS)


def _states_only_internal_triggers_leave() -> Iterator[Any]:
    for kind, definition in DEFINITIONS.items():
        for state in definition.states:
            if state not in definition.terminal and not definition.external_triggers_from(state):
                yield pytest.param(kind, state, id=f"{kind}:{state}")


@pytest.mark.parametrize(("kind", "state"), list(_states_only_internal_triggers_leave()))
def test_refusal_in_a_state_left_only_by_internal_triggers_does_not_call_it_terminal(
    start: Start, kind: str, state: str
) -> None:
    engine, before = in_state(start, kind, state)
    trigger = next(t.trigger for t in DEFINITIONS[kind].transitions
                   if t.source and state not in t.source)

    with pytest.raises(lifecycle.InvalidTransition) as refused:
        engine.fire(kind, before.id, trigger, SYSTEM, {})

    assert (refused.value.state, refused.value.allowed) == (state, ())
    assert "terminal" not in str(refused.value)
