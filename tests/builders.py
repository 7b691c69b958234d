"""Arrange helpers: sellers, orders and disputes walked to a given state through the public API."""

from __future__ import annotations

import copy
import hashlib
import itertools
import shutil
import sys
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine as Database
from sqlalchemy import insert, select, update

import lifecycle
from lifecycle import Actor
from lifecycle.adapter_calls import Adapters
from lifecycle.machines.coupon import voucher_id
from lifecycle.store.database import connect
from lifecycle.store.tables import aggregates, history, outbox

OPERATOR = Actor("operator", "op-1")
SYSTEM = Actor("system", "timer")


def buyer(id: str = "b-1") -> Actor:
    return Actor("buyer", id)


def seller(id: str = "s-1") -> Actor:
    return Actor("seller", id)


REGISTRATION = {
    "company_name": "Acme Trading Co., Ltd.",
    "entity_type": "company",
    "country": "CN",
    "registration_number": "91310000MA1FL4XX",
    "email": "owner@acme.example",
}
DOCUMENTS = {
    "business_licence": "licence-2026-001",
    "payment_account_authentication": "alipay-corp-778",
    "product_list": ["toy-robot", "toy-car"],
    "payment_method": "alipay-corp-778",
}
FEE = {"sales_plan": "standard", "category": "toys"}


def profile(domain: str = "acme") -> dict[str, Any]:
    return {"store_name": "Acme Toys", "domain": domain, "handling_time_days": 7}


def registered_seller(engine: lifecycle.Engine, id: str = "s-1") -> lifecycle.Aggregate:
    return engine.create("seller", seller(id), REGISTRATION)


def seller_in(engine: lifecycle.Engine, state: str, id: str = "s-1") -> lifecycle.Aggregate:
    """A seller walked along the happy path (or one step off it) to ``state``."""
    steps: dict[str, list[tuple[str, Actor, dict[str, Any]]]] = {
        "registered": [],
        "under_review": [("submit_documents", seller(id), DOCUMENTS)],
        "authentication_rejected": [
            ("submit_documents", seller(id), DOCUMENTS),
            ("reject", OPERATOR, {"reasons": ["licence unreadable"]}),
        ],
        "authenticated": [("submit_documents", seller(id), DOCUMENTS), ("approve", OPERATOR, {})],
    }
    steps["fee_paid"] = [*steps["authenticated"], ("pay_fee", seller(id), FEE)]
    steps["active"] = [*steps["fee_paid"], ("complete_profile", seller(id), profile(f"store-{id}"))]
    steps["suspended"] = [*steps["active"], ("suspend", OPERATOR, {"reason": "counterfeit listing"})]
    steps["fee_expired"] = [*steps["active"], ("fee_lapse", SYSTEM, {})]
    steps["closed"] = [("close", seller(id), {})]
    aggregate = registered_seller(engine, id)
    for trigger, actor, payload in steps[state]:
        aggregate = engine.fire("seller", id, trigger, actor, payload)
    assert aggregate.state == state
    return aggregate


def order_payload(seller_id: str = "s-1", **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "seller": seller_id,
        "lines": [
            {"sku": "toy-robot", "quantity": 2, "unit_price": "19.99", "colour": "red"},
            {"sku": "toy-car", "quantity": 1, "unit_price": "5.00"},
        ],
        "currency": "USD",
        "consignee": {"name": "Ana Silva", "address": "Rua A 1, Lisboa", "country": "PT"},
        "logistics": {"carrier": "dhl", "service": "express", "shipping_fee": "7.50",
                      "delivery_days": 20},
    }
    payload.update(changes)
    return payload


CHECKLIST = {"quantity": True, "model": True, "specification": True, "colour": True}
PARCEL = {"weight_kg": "1.2", "length_cm": "30", "width_cm": "20", "height_cm": "10"}
PICKUP = {"checklist": CHECKLIST, "parcel": PARCEL}
SHIPMENT = {"checklist": CHECKLIST, "carrier": "dhl", "waybill": "1234567891"}
ORDER_TOTAL = "52.48"  # 2 x 19.99 + 5.00 + 7.50 shipping


def order_in(
    engine: lifecycle.Engine,
    clock: lifecycle.SimulatedClock,
    state: str,
    *,
    buyer_id: str = "b-1",
    seller_id: str = "s-1",
) -> lifecycle.Aggregate:
    """An order (and its active seller, if missing) walked to ``state``.

    ``in_dispute`` is paused in ``delivered``; ``refunded`` went through a full-refund dispute.
    """
    if state in ("in_dispute", "refunded"):
        order, dispute = order_in_dispute(
            engine, clock, "delivered", buyer_id=buyer_id, seller_id=seller_id,
            refund_amount=ORDER_TOTAL if state == "refunded" else "20.00",
        )
        if state == "refunded":
            engine.fire("dispute", dispute.id, "accept_claim", seller(seller_id), {})
            order = engine.get("order", order.id)
        assert order.state == state
        return order
    try:
        engine.get("seller", seller_id)
    except lifecycle.NotFound:
        seller_in(engine, "active", seller_id)
    order = engine.create("order", buyer(buyer_id), order_payload(seller_id))
    b, s = buyer(buyer_id), seller(seller_id)
    paths: dict[str, list[tuple[str, Actor, dict[str, Any]]]] = {
        "awaiting_payment": [],
        "cancelled": [("cancel", b, {})],
        "paid": [("pay", b, {})],
        "cancel_requested": [("pay", b, {}), ("request_cancel", b, {"reason": "changed my mind"})],
        "awaiting_pickup": [("pay", b, {}), ("book_pickup", s, PICKUP)],
        "shipped": [("pay", b, {}), ("ship_offline", s, SHIPMENT)],
    }
    paths["in_transit"] = [*paths["shipped"], ("tracking_in_transit", SYSTEM, {})]
    paths["delivered"] = [*paths["in_transit"], ("tracking_delivered", SYSTEM, {})]
    paths["completed"] = [*paths["delivered"], ("confirm_receipt", b, {})]
    paths["funds_released"] = [*paths["completed"], ("release_funds", SYSTEM, {})]
    for trigger, actor, payload in paths[state]:
        order = engine.fire("order", order.id, trigger, actor, payload)
    assert order.state == state
    return order


def dispute_opened(
    engine: lifecycle.Engine,
    clock: lifecycle.SimulatedClock,
    *,
    type: str = "received",
    refund_amount: str = "20.00",
    return_goods: bool = False,
) -> tuple[lifecycle.Aggregate, lifecycle.Aggregate]:
    """A delivered order with a dispute open on it: (order, dispute)."""
    order = order_in(engine, clock, "delivered")
    reason = "quality" if type == "received" else "still_in_transit"
    if type == "not_received":
        clock.advance(timedelta(days=11))
    order = engine.fire("order", order.id, "open_dispute", buyer(order.data["buyer"]),
                        {"type": type, "reason": reason, "refund_amount": refund_amount,
                         "return_goods": return_goods})
    return order, engine.get("dispute", order.data["dispute"])


def open_dispute_payload(paused_in: str, refund_amount: str = "20.00",
                         return_goods: bool = False) -> dict[str, Any]:
    """A claim the buyer may make from ``paused_in``: not received before delivery, else received."""
    before_delivery = paused_in in ("shipped", "in_transit")
    return {
        "type": "not_received" if before_delivery else "received",
        "reason": "still_in_transit" if before_delivery else "quality",
        "refund_amount": refund_amount,
        "return_goods": return_goods,
    }


def order_in_dispute(
    engine: lifecycle.Engine,
    clock: lifecycle.SimulatedClock,
    paused_in: str = "delivered",
    *,
    refund_amount: str = "20.00",
    return_goods: bool = False,
    buyer_id: str = "b-1",
    seller_id: str = "s-1",
) -> tuple[lifecycle.Aggregate, lifecycle.Aggregate]:
    """An order in ``paused_in`` on which the buyer opened a dispute: (order, dispute).

    Before delivery the claim is ``not_received``, so the clock first runs the 10-day wait.
    """
    order = order_in(engine, clock, paused_in, buyer_id=buyer_id, seller_id=seller_id)
    claim = open_dispute_payload(paused_in, refund_amount, return_goods)
    if claim["type"] == "not_received":
        clock.advance(NOT_RECEIVED_WAIT)
    order = engine.fire("order", order.id, "open_dispute", buyer(buyer_id), claim)
    assert order.state == "in_dispute"
    return order, engine.get("dispute", order.data["dispute"])


NOT_RECEIVED_WAIT = timedelta(days=10)
ESCALATION_WAIT = timedelta(days=3)  # the buyer may escalate from the 4th day after opening
OFFER = {"refund_amount": "10.00", "return_goods": False, "note": "half, keep the goods"}
RETURN_SHIPMENT = {"carrier": "postal", "waybill": "RR123456785CN"}


def dispute_in(
    engine: lifecycle.Engine,
    clock: lifecycle.SimulatedClock,
    state: str,
    *,
    return_goods: bool = False,
    offer_return_goods: bool = False,
    paused_in: str = "delivered",
    buyer_id: str = "b-1",
    seller_id: str = "s-1",
) -> lifecycle.Aggregate:
    """A dispute walked to ``state``.

    ``return_goods``: the buyer's claim asks to send the goods back (accepting it then waits for
    the return); ``offer_return_goods``: so does the seller's counter-offer in ``negotiating``.
    """
    wants_return = return_goods or state in ("awaiting_return", "return_in_transit")
    _, dispute = order_in_dispute(engine, clock, paused_in, return_goods=wants_return,
                                  buyer_id=buyer_id, seller_id=seller_id)
    b, s = buyer(buyer_id), seller(seller_id)
    offer = {**OFFER, "return_goods": offer_return_goods}
    negotiating = [("counter_offer", s, offer)]
    paths: dict[str, list[tuple[str, Actor, dict[str, Any]]]] = {
        "awaiting_seller": [],
        "negotiating": negotiating,
        "under_arbitration": [*negotiating, ("escalate", s, {})],
        "awaiting_return": [("accept_claim", s, {})],
        "return_in_transit": [("accept_claim", s, {}), ("ship_return", b, RETURN_SHIPMENT)],
        "resolved_refund": [("accept_claim", s, {})],
        "resolved_no_refund": [("withdraw", b, {})],
    }
    for trigger, actor, payload in paths[state]:
        dispute = engine.fire("dispute", dispute.id, trigger, actor, payload)
    assert dispute.state == state
    return dispute


def active_seller(engine: lifecycle.Engine, id: str = "s-1") -> lifecycle.Aggregate:
    """Seller ``id``, opened if it does not exist yet."""
    try:
        return engine.get("seller", id)
    except lifecycle.NotFound:
        return seller_in(engine, "active", id)


COUPON_VALIDITY = timedelta(days=30)


def coupon_terms(clock: lifecycle.SimulatedClock, **changes: Any) -> dict[str, Any]:
    """Ten off a forty-dollar spend on every product, valid for 30 days from now."""
    terms: dict[str, Any] = {
        "title": "Ten off forty",
        "currency": "USD",
        "denomination": "10.00",
        "threshold": "40.00",
        "starts_at": clock.now().isoformat(),
        "ends_at": (clock.now() + COUPON_VALIDITY).isoformat(),
        "copies": 100,
        "products": "all",
    }
    terms.update(changes)
    return terms


def coupon_in(engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, state: str,
              *, seller_id: str = "s-1") -> lifecycle.Aggregate:
    """A coupon of an active seller walked to ``state``."""
    active_seller(engine, seller_id)
    coupon = engine.create("coupon", seller(seller_id), coupon_terms(clock))
    activate = ("activate", seller(seller_id))
    paths: dict[str, list[tuple[str, Actor]]] = {
        "draft": [],
        "active": [activate],
        "deactivated": [activate, ("deactivate", seller(seller_id))],
        "expired": [("expire", SYSTEM)],
    }
    for trigger, actor in paths[state]:
        coupon = engine.fire("coupon", coupon.id, trigger, actor, {})
    assert coupon.state == state
    return coupon


def voucher_in(engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, state: str,
               *, buyer_id: str = "b-1", seller_id: str = "s-1") -> lifecycle.Aggregate:
    """A voucher claimed by ``buyer_id``; past ``available`` it is on an order (its data's
    ``order``) that was placed, paid, or paid out."""
    coupon = coupon_in(engine, clock, "active", seller_id=seller_id)
    engine.fire("coupon", coupon.id, "claim", buyer(buyer_id))
    voucher = engine.get("voucher", voucher_id(coupon.id, buyer_id))
    if state == "expired":
        voucher = engine.fire("voucher", voucher.id, "expire", SYSTEM, {})
    if state in ("reserved", "redeemed", "spent"):
        b, s = buyer(buyer_id), seller(seller_id)
        order = engine.create("order", b, order_payload(seller_id, coupon=voucher.id))
        paths: dict[str, list[tuple[str, Actor, dict[str, Any]]]] = {
            "reserved": [],
            "redeemed": [("pay", b, {})],
            "spent": [("pay", b, {}), ("ship_offline", s, SHIPMENT), ("confirm_receipt", b, {}),
                      ("release_funds", SYSTEM, {})],
        }
        for trigger, actor, payload in paths[state]:
            engine.fire("order", order.id, trigger, actor, payload)
        voucher = engine.get("voucher", voucher.id)
    assert voucher.state == state
    return voucher


def aggregate_in(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, kind: str, state: str
) -> lifecycle.Aggregate:
    """An aggregate of any kind (owned by b-1 and s-1) walked to ``state``."""
    if kind == "seller":
        return seller_in(engine, state)
    if kind == "order":
        return order_in(engine, clock, state)
    if kind == "dispute":
        return dispute_in(engine, clock, state)
    if kind == "coupon":
        return coupon_in(engine, clock, state)
    if kind == "voucher":
        return voucher_in(engine, clock, state)
    if kind == "unexpected_capture":
        return unexpected_capture_in(engine, state)
    if kind == "violation":
        return violation_in(engine, clock, state)
    if kind == "standing":
        return standing_in(engine, state)
    if kind == "points_account":
        return points_in(engine, state)
    if kind == "points_earning":
        points_in(engine, "open")
        engine.fire("points_account", "s-1", "earn", SYSTEM,
                    {"reason": "quotation_answered", "reference": "rfq-1"})
        return engine.get("points_earning", "quotation_answered:rfq-1")
    if kind == "message":
        return message_in(engine, clock, state)
    if kind == "subaccount":
        return subaccount_in(engine, state)
    if kind in ACCOUNT_BUILDERS:
        return ACCOUNT_BUILDERS[kind](engine, clock, state)
    raise ValueError(f"no builder for {kind}")


def violation_in(engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, state: str, *,
                 seller_id: str = "s-1", points: int = 2,
                 id: str | None = None) -> lifecycle.Aggregate:
    """A violation against the active seller ``seller_id`` walked to ``state``."""
    active_seller(engine, seller_id)
    violation = engine.create("violation", OPERATOR,
                              {"seller": seller_id, "type": "listing", "points": points}, id=id)
    appeal = ("appeal", seller(seller_id), {"reason": "the listing was right"})
    paths: dict[str, list[tuple[str, Actor, dict[str, Any]]]] = {
        "recorded": [],
        "appealed": [appeal],
        "final": [appeal, ("uphold", OPERATOR, {})],
        "overturned": [appeal, ("overturn", OPERATOR, {"reason": "recorded by mistake"})],
        "expired": [("expire", SYSTEM, {})],
    }
    for trigger, actor, payload in paths[state]:
        violation = engine.fire("violation", violation.id, trigger, actor, payload)
    assert violation.state == state
    return violation


#: the points a standing is walked to for each level (the default thresholds are 12, 24, 48)
STANDING_POINTS = {"clear": 4, "promotion_restricted": 12, "orders_refused": 24,
                   "store_suspended": 48}


def standing_in(engine: lifecycle.Engine, state: str, seller_id: str = "s-1") -> lifecycle.Aggregate:
    """The standing of the active seller ``seller_id`` walked to ``state`` by one violation
    (``closed``: that violation overturned, the seller's account closed)."""
    active_seller(engine, seller_id)
    points = STANDING_POINTS.get(state, 2)
    engine.create("violation", OPERATOR, {"seller": seller_id, "type": "listing",
                                          "points": points}, id=f"v-{seller_id}-first")
    if state == "closed":
        for trigger, actor, payload in [("appeal", seller(seller_id), {"reason": "not ours"}),
                                        ("overturn", OPERATOR, {"reason": "not theirs"})]:
            engine.fire("violation", f"v-{seller_id}-first", trigger, actor, payload)
        engine.fire("seller", seller_id, "close", OPERATOR, {})
        engine.fire("standing", seller_id, "close", OPERATOR, {})
    standing = engine.get("standing", seller_id)
    assert standing.state == state
    return standing


def points_in(engine: lifecycle.Engine, state: str, balance: int = 300) -> lifecycle.Aggregate:
    """Seller s-1's points account (its seller active): ``open`` holding ``balance`` points,
    or ``closed`` (at zero)."""
    seller_in(engine, "active")
    account = engine.create("points_account", seller(), {})
    if balance and state == "open":
        account = engine.fire("points_account", "s-1", "correct", OPERATOR,
                              {"points": balance, "reason": "opening bonus"})
    if state == "closed":
        account = engine.fire("points_account", "s-1", "close", OPERATOR, {"reason": "leaving"})
    assert account.state == state
    return account


def message_in(engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, state: str, *,
               sender: str = "buyer") -> lifecycle.Aggregate:
    """A message on a paid order of b-1 and s-1, from ``sender`` to the other side, walked to
    ``state`` (read by its recipient, or removed by an operator). Each side holds the label
    ``kept`` and the mark ``flagged`` on it (what an unlabel and an unmark take off)."""
    order = order_in(engine, clock, "paid")
    who = buyer() if sender == "buyer" else seller()
    message = engine.send_message(order.id, who, "is it shipped yet?")
    for side in (buyer(), seller()):
        engine.fire("message", message.id, "label", side, {"label": "kept"})
        message = engine.fire("message", message.id, "mark", side, {"mark": "flagged"})
    recipient = seller() if sender == "buyer" else buyer()
    paths: dict[str, list[tuple[str, Actor, dict[str, Any]]]] = {
        "unread": [],
        "read": [("read", recipient, {})],
        "removed": [("remove", OPERATOR, {"reason": "personal data"})],
    }
    for trigger, actor, payload in paths[state]:
        message = engine.fire("message", message.id, trigger, actor, payload)
    assert message.state == state
    return message


def subaccount_in(engine: lifecycle.Engine, state: str, id: str = "s-1:ana") -> lifecycle.Aggregate:
    """The active seller s-1's sub-account ``id`` (shipping orders), walked to ``state``."""
    store = id.rpartition(":")[0]
    active_seller(engine, store)
    owner = seller(store)
    made = engine.create("subaccount", owner, {"permissions": ["ship_orders"]}, id=id)
    if state in ("disabled", "removed"):
        made = engine.fire("subaccount", id, "disable", owner)
    if state == "removed":
        made = engine.fire("subaccount", id, "remove", owner)
    assert made.state == state
    return made


GATEWAY_ACTOR = Actor("system", "sandbox")
UNEXPECTED_CAPTURE = {"gateway": "sandbox", "event_id": "evt-9", "order": "o-gone",
                      "payment_ref": "psp-9", "amount": "52.48", "currency": "USD",
                      "reason": "there is no order o-gone"}


def unexpected_capture_in(engine: lifecycle.Engine, state: str) -> lifecycle.Aggregate:
    """A capture no order took, recorded (``refund_pending``) or given back (``refunded``)."""
    recorded = engine.create("unexpected_capture", GATEWAY_ACTOR, UNEXPECTED_CAPTURE)
    if state == "refunded":
        recorded = engine.fire("unexpected_capture", recorded.id, "refund", GATEWAY_ACTOR)
    assert recorded.state == state
    return recorded


def paid_orders(engine: lifecycle.Engine, orders: int) -> int:
    """An active seller and ``orders`` orders placed and paid, in batches: two outbox events an
    order, for the relay's tests and benchmark. Returns the unpublished backlog."""
    active_seller(engine)
    for start in range(0, orders, 250):
        with engine.batch():
            for _ in range(start, min(start + 250, orders)):
                order = engine.create("order", buyer(), order_payload())
                engine.fire("order", order.id, "pay", buyer())
    return engine.relay_status().backlog


def outbox_of(engine: lifecycle.Engine, kind: str, id: str) -> list[tuple[str, int]]:
    """(event, seq) of every outbox row written for one aggregate, oldest first."""
    database: Database = engine.database
    with database.connect() as conn:
        found = conn.execute(
            select(outbox.c.event, outbox.c.seq)
            .where(outbox.c.kind == kind, outbox.c.aggregate_id == id)
            .order_by(outbox.c.id)
        )
        return [(row.event, row.seq) for row in found]


def migrated_template(directory: Path) -> Path:
    """A SQLite file with the schema at head: copying it is much faster than migrating."""
    path = directory / "template.db"
    lifecycle.open(f"sqlite:///{path}").close()
    return path


def copy_of(template: Path, directory: Path, name: str = "lifecycle.db") -> str:
    """The URL of a fresh copy of ``template`` in ``directory``."""
    path = directory / name
    for suffix in ("", "-wal"):  # a WAL left behind holds committed rows too
        if Path(f"{template}{suffix}").exists():
            shutil.copyfile(f"{template}{suffix}", f"{path}{suffix}")
    return f"sqlite:///{path}"


def open_copy(migrated: Path, directory: Path, clock: lifecycle.SimulatedClock,
              adapters: Adapters | None = None) -> lifecycle.Engine:
    """An engine on a fresh copy of a migrated SQLite file.

    What `lifecycle.open` builds with its defaults (sandbox adapters), less its schema check:
    the copy is at head already, and Alembic's revision lookup costs more than most tests.
    """
    database = connect(copy_of(migrated, directory, f"engine-{next(_copies)}.db"))
    return lifecycle.Engine(database, clock, lifecycle.Policy(), adapters)


_copies = itertools.count()

Build = Callable[[lifecycle.Engine, lifecycle.SimulatedClock], lifecycle.Aggregate]


@dataclass(frozen=True)
class _Walk:
    path: Path
    aggregate: lifecycle.Aggregate
    clock: lifecycle.SimulatedClock
    adapters: Adapters


class Snapshots:
    """Arranged databases, built once through the public API and copied for each test.

    Walking a dispute to ``return_in_transit`` takes some fifteen triggers; a test that needs
    it starts from a copy of the database as it stood after the walk, with the clock where
    the walk left it and a copy of the sandbox adapters' memory (the pickup a carrier booked,
    the payment a gateway captured). Hundreds of cases share a handful of walks, and each
    still gets a database and adapters of its own.
    """

    def __init__(self, directory: Path):
        self.directory = directory
        self.template = migrated_template(directory)
        self.walks: dict[Hashable, _Walk] = {}

    def open(self, key: Hashable, build: Build, directory: Path,
             clock: lifecycle.SimulatedClock) -> tuple[lifecycle.Engine, lifecycle.Aggregate]:
        """An engine on a copy of what ``build`` left (``key`` names the walk), on ``clock``
        set to where the walk left it; and the aggregate the walk built."""
        if key not in self.walks:
            self.walks[key] = self._walk(build)
        walk = self.walks[key]
        clock.set(walk.clock.now())
        # The copied adapters tell the test's time: the memo maps the walk's clock to it.
        adapters = copy.deepcopy(walk.adapters, {id(walk.clock): clock})
        return open_copy(walk.path, directory, clock, adapters), walk.aggregate

    def _walk(self, build: Build) -> _Walk:
        clock = lifecycle.SimulatedClock()
        with open_copy(self.template, self.directory, clock) as engine:
            aggregate = build(engine, clock)
        path = Path(str(engine.database.url.database))
        return _Walk(path, aggregate, clock, engine.adapters)


def rows(engine: lifecycle.Engine) -> dict[str, int]:
    """Rows in every table: compare before and after a refusal."""
    with engine.store.reading() as records:
        return records.row_counts()


def console_script() -> str:
    """The installed ``lifecycle`` command, beside this interpreter or on the PATH."""
    beside = Path(sys.executable).with_name("lifecycle")
    if beside.exists():
        return str(beside)
    found = shutil.which("lifecycle")
    if found is None:
        pytest.skip("the lifecycle console script is not installed (pip install -e .)")
    return found


def signed(body: bytes, clock: lifecycle.Clock, secret: bytes | None = None,
           message_id: str | None = None) -> dict[str, str]:
    """Standard Webhooks headers signing ``body`` now on ``clock`` (the engine's, so within its
    tolerance), with the published sandbox secret unless told otherwise."""
    from lifecycle.adapter_calls import SANDBOX_SECRET
    from lifecycle.adapters import signed_headers

    message_id = message_id or f"msg_{hashlib.sha256(body).hexdigest()[:16]}"
    return signed_headers(secret if secret is not None else SANDBOX_SECRET, message_id, clock.now(), body)


def legacy_scans(engine: lifecycle.Engine, order: lifecycle.Aggregate,
                 n: int) -> lifecycle.Aggregate:
    """``n`` history rows of the retired ``record_tracking`` self-loop on ``order``, its version
    moved on with them, as a database written before issue #15's decision 2 holds them. Stamped
    when the order last moved, so that a reader's clock (a simulation's) stays where it was."""
    at = engine.history("order", order.id)[-1].at
    with engine.database.begin() as conn:
        for seq in range(order.version + 1, order.version + n + 1):
            conn.execute(insert(history).values(
                kind="order", aggregate_id=order.id, seq=seq, trigger="record_tracking",
                source=order.state, dest=order.state, actor_role="system", actor_id="dhl",
                payload={"event_id": f"old-{seq}", "status": "in_transit"},
                idempotency_key=None, at=at))
        conn.execute(update(aggregates).where(aggregates.c.kind == "order",
                                              aggregates.c.id == order.id)
                     .values(version=order.version + n))
    return engine.get("order", order.id)


# --- the seller's profile, contacts and avatars (issue #20) ---------------------------------

PERSONAL = {"name": "Ana Li", "procurement": {"industry": "toys"}}
EMAIL = "ana@acme.example"
#: what `Engine.upload_avatar` records of an image, for tests that need no bytes
AVATAR = {"sha256": "0" * 64, "size": 1234, "width": 64, "height": 64}


def sent_code(engine: lifecycle.Engine, contact: str) -> str:
    """The last code sent for a contact, read from its notification in the outbox as a
    notification service would."""
    codes = [event.body["payload"]["values"]["code"] for event in engine.events(limit=10_000)
             if event.kind == "notification"
             and event.body["payload"]["about"] == {"kind": "contact", "id": contact,
                                                   "seq": event.seq}]
    assert codes, f"no code was sent for {contact}"
    return str(codes[-1])


def profile_in(engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, state: str,
               id: str = "s-1", **fields: Any) -> lifecycle.Aggregate:
    try:
        engine.get("seller", id)
    except lifecycle.NotFound:
        registered_seller(engine, id)
    made = engine.create("profile", seller(id), {**PERSONAL, **fields})
    if state == "closed":
        made = engine.fire("profile", id, "close", seller(id), {})
    assert made.state == state
    return made


def contact_in(engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, state: str,
               id: str = "s-1") -> lifecycle.Aggregate:
    """The seller's email contact walked to ``state``."""
    profile_in(engine, clock, "active", id, email=EMAIL)
    contact = lifecycle.contact_id(id, "email")
    if state == "reissued":
        engine.fire("contact", contact, "resend", seller(id), {})
    elif state == "verified":
        engine.fire("contact", contact, "confirm", seller(id), {"code": sent_code(engine, contact)})
    elif state == "expired":
        clock.advance(engine.policy.contact_code_expiry)
        engine.run_due_timers()
    elif state == "closed":
        engine.fire("profile", id, "close", seller(id), {})
    made = engine.get("contact", contact)
    assert made.state == state
    return made


def avatar_in(engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, state: str,
              id: str = "s-1") -> lifecycle.Aggregate:
    """An avatar of the seller (id ``a-<seller>``) walked to ``state``; no image bytes."""
    profile_in(engine, clock, "active", id)
    avatar = engine.create("avatar", seller(id), AVATAR, id=f"a-{id}")
    steps = {"submitted": [], "under_review": [("review", {})], "overdue": [],
             "approved": [("review", {}), ("approve", {})],
             "rejected": [("review", {}), ("reject", {"reason": "blurry"})]}
    for trigger, payload in steps[state]:
        avatar = engine.fire("avatar", avatar.id, trigger, OPERATOR, payload)
    if state == "overdue":
        clock.advance(engine.policy.avatar_review_timeout)
        engine.run_due_timers()
        avatar = engine.get("avatar", avatar.id)
    assert avatar.state == state
    return avatar


ACCOUNT_BUILDERS: dict[str, Callable[[lifecycle.Engine, lifecycle.SimulatedClock, str],
                                     lifecycle.Aggregate]] = {
    "profile": profile_in, "contact": contact_in, "avatar": avatar_in,
}
