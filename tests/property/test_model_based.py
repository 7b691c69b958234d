"""Model-based reliability (issue 9): random operations by random actors with random and
malformed payloads, a clock that jumps, timers that fire; nothing lost, nothing half-written.

A hypothesis `RuleBasedStateMachine` keeps a handful of sellers, orders, disputes, coupons and
vouchers, and fires at them: triggers their state allows (``external_triggers_from``) and any
other trigger (internal ones, creating ones, nonsense), by the right role and owner, the right
role and someone else, the wrong role, or no actor at all; with valid payloads, payloads with a
field dropped, added or swapped for junk (NaN, infinity, huge numbers, unicode and control
characters, SQL meta-characters), and arbitrary values; at known ids and at hostile ones. It
moves the simulated clock and runs the timer worker (now and then in a freshly opened engine),
and repeats idempotent requests, the same and altered.

Every call either succeeds or raises a `lifecycle.LifecycleError`; anything else fails the test.
After every step:

- ``engine.check() == []``: every history replays to its aggregate's state, the ledger holds;
- every deadline belongs to its aggregate's current state (a paused one to an order in dispute,
  for the state it was paused in), and every state that has deadlines has them;
- outbox rows match history rows one for one, and subscribers (one fails on every cancellation)
  heard of each committed transition once;
- a refused step changed no row count; a trigger that succeeded was in ``engine.allowed``
  beforehand, and one that ``allowed`` listed is refused, if at all, only for its payload.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from sqlalchemy import select

import lifecycle
from lifecycle.actor import ROLES
from lifecycle.machines import DEFINITIONS
from lifecycle.store.tables import aggregates, deadlines, history, outbox
from tests.builders import (
    CHECKLIST,
    DOCUMENTS,
    FEE,
    PARCEL,
    REGISTRATION,
    RETURN_SHIPMENT,
    copy_of,
    migrated_template,
    rows,
    seller_in,
)

BUYERS = ("b-1", "b-2", "b-3")
SELLERS = ("s-1", "s-2", "s-3")
KINDS = ("seller", "order", "dispute", "coupon", "voucher")
ALL_TRIGGERS = sorted({t.trigger for d in DEFINITIONS.values() for t in d.transitions})

# SQL meta-characters, control characters, unicode, lookalikes of numbers and nulls, long text.
# (Lone surrogates and ids over 200 characters are left out of the ids an aggregate is created
# with: the regression tests at the end pin their refusal.)
HOSTILE = (
    "'; DROP TABLE aggregates; --",
    '" OR "1"="1',
    "o-1%' OR 1=1 --",
    "%",
    "_",
    "\\",
    "a\x00b",
    "\x1b[2J\x07",
    "\u202eevil",
    "💸💥",
    "Ünïcödé ñ 漢字",
    "\t\n\r",
    " ",
    "",
    "NULL",
    "None",
    "-1",
    "1e309",
    "NaN",
    "Infinity",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "x" * 201,
    "y" * 5000,
)
JUNK: tuple[Any, ...] = (
    None, True, False, 0, -1, 2**63, 10**30, -(10**30), float("nan"), float("inf"),
    float("-inf"), 1e308, 0.1, "", "NaN", "Infinity", "-Infinity", "1e999", "-0.00", "0.001",
    "12.345", "1E+5", [], {}, [1, "a"], {"a": {"b": None}}, *HOSTILE[:12],
)
# What moves an aggregate on towards its end (and through disputes): `move_along` favours these.
ONWARDS = {
    ("order", "awaiting_payment"): ("pay",),
    ("order", "paid"): ("ship_offline", "book_pickup"),
    ("order", "cancel_requested"): ("reject_cancel",),
    ("order", "awaiting_pickup"): ("confirm_pickup",),
    ("order", "shipped"): ("tracking_in_transit", "tracking_delivered", "open_dispute"),
    ("order", "in_transit"): ("tracking_delivered", "open_dispute"),
    ("order", "delivered"): ("open_dispute", "confirm_receipt"),
    ("order", "completed"): ("open_dispute", "release_funds"),
    ("dispute", "awaiting_seller"): ("counter_offer", "accept_claim"),
    ("dispute", "negotiating"): ("accept_offer", "counter_offer", "escalate"),
    ("dispute", "under_arbitration"): ("arbitrate",),
    ("dispute", "awaiting_return"): ("ship_return",),
    ("dispute", "return_in_transit"): ("confirm_return_received",),
    ("coupon", "active"): ("claim",),
}
REASONS = {
    "not_received": ("invalid_tracking", "wrong_address", "still_in_transit", "customs_detention",
                     "returned_to_sender"),
    "received": ("not_as_described", "quality", "damage", "short_shipment", "counterfeit"),
}
WAYBILLS = (  # (carrier, waybill): valid ones, and some a carrier refuses
    ("dhl", "1234567891"), ("dhl", "3318810025"), ("ups", "1Z999AA10123456784"),
    ("fedex", "986578788855"), ("postal", "RA123456785GB"), ("dhl", "1234567890"),
    ("ups", "1Z999AA10123456785"), ("nope", "1234567891"),
)


def _subclasses(cls: type) -> set[type]:
    found = {cls}
    subclasses: list[type] = cls.__subclasses__()
    for sub in subclasses:
        found |= _subclasses(sub)
    return found


ERROR_NAMES = {cls.__name__ for cls in _subclasses(lifecycle.LifecycleError)}
# Refusals a trigger that `allowed` listed may still meet: its payload, and its adapters.
PAYLOAD_REFUSALS = (lifecycle.GuardFailed, lifecycle.InvalidPayload, lifecycle.AdapterError)


def usd(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def cents(amount: Any) -> int:
    return int(Decimal(str(amount)) * 100)


@functools.cache
def template() -> Path:
    """A migrated database with active sellers s-1 and s-2 and a registered s-3, built once per
    process and copied for every run of the machine."""
    directory = Path(tempfile.mkdtemp(prefix="lifecycle-model-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    path = migrated_template(directory)
    with lifecycle.open(f"sqlite:///{path}", clock=lifecycle.SimulatedClock()) as engine:
        seller_in(engine, "active", "s-1")
        seller_in(engine, "active", "s-2")
        seller_in(engine, "registered", "s-3")
    return path


# --- payloads ---------------------------------------------------------------------------------

Strategy = st.SearchStrategy[Any]
text = st.sampled_from(("changed my mind", "box crushed", "Ünïcödé ñ", *HOSTILE[:6]))


def money(upto: int) -> Strategy:
    """An amount in USD around ``upto`` cents: exactly it, below it, or a little above."""
    return st.one_of(st.just(upto), st.integers(1, max(upto, 1)), st.integers(upto, upto + 500)
                     ).map(usd)


def order_payload(seller: str, voucher: str | None) -> Strategy:
    line = st.fixed_dictionaries({
        "sku": st.sampled_from(("toy-robot", "toy-car", "kite")),
        "quantity": st.integers(1, 4),
        "unit_price": st.integers(1, 20_000).map(usd),
    })
    logistics = st.fixed_dictionaries({
        "carrier": st.sampled_from(("dhl", "ups", "postal")),
        "service": st.sampled_from(("express", "standard", "economy")),
        "shipping_fee": st.integers(0, 3_000).map(usd),
        "delivery_days": st.integers(1, 60),
    })
    optional = {"coupon": st.just(voucher)} if voucher else {}
    return st.fixed_dictionaries({
        "seller": st.just(seller),
        "lines": st.lists(line, min_size=1, max_size=3),
        "currency": st.just("USD"),
        "consignee": st.just({"name": "Ana Silva", "address": "Rua A 1, Lisboa", "country": "PT"}),
        "logistics": logistics,
    }, optional=optional)


def moment(now: datetime, days: Strategy) -> Strategy:
    """``now`` plus some days, written in some time zone (UTC-12 to UTC+14)."""
    zones = st.integers(-12, 14).map(lambda hours: timezone(timedelta(hours=hours)))
    return st.tuples(days, zones).map(
        lambda dz: (now + timedelta(days=dz[0])).astimezone(dz[1]).isoformat())


def coupon_terms(now: Any) -> Strategy:
    return st.fixed_dictionaries({
        "title": st.sampled_from(("Ten off", "x" * 61, "Ünïcödé")),
        "currency": st.sampled_from(("USD", "USD", "EUR")),
        "denomination": st.integers(400, 2_000).map(usd),
        "starts_at": moment(now, st.integers(-2, 2)),
        "ends_at": moment(now, st.integers(1, 70)),
        "copies": st.integers(1, 3) | st.just(10_001),
    }, optional={
        "threshold": st.integers(0, 5_000).map(usd),
        "products": st.just("all") | st.lists(st.sampled_from(("toy-robot", "kite")), min_size=1),
    })


def good_coupon_terms(now: Any) -> Strategy:
    """Terms that break no rule of SPEC §6."""
    return st.fixed_dictionaries({
        "title": st.just("Ten off"),
        "currency": st.just("USD"),
        "denomination": st.integers(500, 1_500).map(usd),
        "starts_at": moment(now, st.just(0)),
        "ends_at": moment(now, st.integers(1, 62)),
        "copies": st.integers(1, 3),
    }, optional={"threshold": st.integers(2_000, 5_000).map(usd)})


def valid_payload(kind: str, trigger: str, data: dict[str, Any]) -> Strategy:
    """A well-formed payload for ``trigger`` on an aggregate with ``data`` (guards may still
    refuse it: amounts over the limit, an unconfirmed checklist, a taken domain)."""
    empty: Strategy = st.just({}) | st.just({"note": "by the book"})
    refundable = cents(data.get("refundable") or 0) or (
        cents(data.get("amount_paid") or 0) - cents(data.get("refunded") or 0))
    waybill = st.sampled_from(WAYBILLS).map(lambda cw: {"carrier": cw[0], "waybill": cw[1]})
    checklist = st.sampled_from((CHECKLIST, CHECKLIST, CHECKLIST, {**CHECKLIST, "colour": False}))
    # Mostly a valid waybill of the carrier the buyer chose: any other carrier is refused.
    chosen = (data.get("logistics") or {}).get("carrier")
    own_waybill = next((cw for cw in WAYBILLS if cw[0] == chosen), WAYBILLS[0])
    claim_type = "received" if data.get("delivered_at") else "not_received"
    found: dict[tuple[str, str], Strategy] = {
        ("seller", "submit_documents"): st.just(DOCUMENTS) | st.just({**DOCUMENTS, "branded": True}),
        ("seller", "resubmit"): st.just(DOCUMENTS),
        ("seller", "reject"): st.lists(text, min_size=1, max_size=2).map(lambda r: {"reasons": r}),
        ("seller", "pay_fee"): st.just(FEE) | st.just({**FEE, "sales_plan": "premium"}),
        ("seller", "complete_profile"): st.fixed_dictionaries({
            "store_name": st.just("Acme Toys"),
            "domain": st.sampled_from(("store-s-1", "zeta", "beta", "Beta")),
            "handling_time_days": st.integers(2, 11),
        }),
        ("seller", "suspend"): text.map(lambda r: {"reason": r}),
        ("seller", "renew_fee"): st.just({}),
        ("order", "pay"): st.just({}) | money(cents(data.get("total") or 0)).map(
            lambda a: {"amount": a}),
        ("order", "request_cancel"): text.map(lambda r: {"reason": r}),
        ("order", "book_pickup"): st.fixed_dictionaries({"checklist": checklist,
                                                         "parcel": st.just(PARCEL)}),
        ("order", "confirm_pickup"): st.just({}),
        ("order", "ship_offline"): st.tuples(checklist, st.just(own_waybill) | st.sampled_from(
            WAYBILLS)).map(lambda p: {"checklist": p[0], "carrier": p[1][0], "waybill": p[1][1]}),
        ("order", "tracking_in_transit"): st.just({}) | st.just({"location": "Leipzig hub"}),
        ("order", "tracking_delivered"): st.just({}) | st.just({"event_id": "scan-1"}),
        ("order", "tracking_exception"): st.sampled_from(
            ("lost", "customs_hold", "returned_to_sender", "delay", "other")).map(
            lambda k: {"kind": k}),
        ("order", "open_dispute"): st.sampled_from(
            (claim_type, claim_type, "not_received", "received")).flatmap(
            lambda type: st.fixed_dictionaries({
                "type": st.just(type),
                "reason": st.sampled_from(REASONS[type]) | st.sampled_from(REASONS["received"]),
                "refund_amount": money(refundable),
                "return_goods": st.booleans(),
            })),
        ("dispute", "counter_offer"): st.fixed_dictionaries({
            "refund_amount": money(refundable), "return_goods": st.booleans()}),
        ("dispute", "arbitrate"): st.one_of(
            st.just({"decision": "no_refund"}),
            st.fixed_dictionaries({"decision": st.sampled_from(("refund", "return_and_refund")),
                                   "refund_amount": money(refundable)})),
        ("dispute", "ship_return"): st.just(RETURN_SHIPMENT) | waybill,
        ("coupon", "raise"): st.integers(0, 12_000).map(lambda n: {"copies": n}),
        ("coupon", "lower"): st.integers(0, 12_000).map(lambda n: {"copies": n}),
    }
    return found.get((kind, trigger), empty)


def mutated(payload: Any) -> Strategy:
    """The payload with one field dropped, added, or swapped for junk."""
    if not isinstance(payload, dict) or not payload:
        return st.sampled_from(JUNK).map(lambda junk: {"unexpected": junk})
    keys = sorted(payload)
    return st.one_of(
        st.sampled_from(keys).map(lambda k: {n: v for n, v in payload.items() if n != k}),
        st.sampled_from(JUNK).map(lambda junk: {**payload, "unexpected": junk}),
        st.tuples(st.sampled_from(keys), st.sampled_from(JUNK)).map(
            lambda kj: {**payload, kj[0]: kj[1]}),
    )


ANYTHING = st.recursive(
    st.sampled_from(JUNK) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=3),
    max_leaves=6,
)


def draw_payload(data: st.DataObject, valid: Strategy, label: str = "payload") -> tuple[Any, bool]:
    """Mostly a valid payload; else one with a field dropped, added or swapped for junk; else
    anything at all, not even an object. Returns it, and whether it was drawn valid."""
    how = data.draw(st.sampled_from(["valid"] * 7 + ["mutated"] * 2 + ["anything"]),
                    label=f"{label} is")
    if how == "anything":
        return data.draw(ANYTHING, label=label), False
    payload = data.draw(valid, label=label)
    if how == "mutated":
        return data.draw(mutated(payload), label=f"{label} mutated"), False
    return payload, True


# --- the machine ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Remembered:
    """A request that succeeded with an idempotency key: again, and again but different."""

    again: Callable[[], lifecycle.Aggregate]
    different: Callable[[], lifecycle.Aggregate]
    result: lifecycle.Aggregate


def actor_of(spec: tuple[str, str] | Any) -> Any:
    """An Actor from (role, id), built inside the call so a bad role is that call's refusal."""
    if isinstance(spec, tuple):
        return lifecycle.Actor(*spec)
    return spec  # not an Actor at all


class Lifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.TemporaryDirectory()
        self.clock = lifecycle.SimulatedClock()  # the instant the template was built at
        self.url = copy_of(template(), Path(self.directory.name))
        self.engine = self.open()
        self.ids: dict[str, list[str]] = {"seller": list(SELLERS), "order": [], "dispute": [],
                                          "coupon": [], "voucher": []}
        self.remembered: list[Remembered] = []
        self.keys = 0
        self.published: list[tuple[str, str, int]] = []  # what subscribers were told
        self.before = self.outbox()  # the template's own rows, never published here

    def open(self) -> lifecycle.Engine:
        engine = lifecycle.open(self.url, clock=self.clock)
        engine.subscribe("*", lambda e: self.published.append((e["kind"], e["aggregate_id"], e["seq"])))
        engine.subscribe("order.cancelled", self.broken_subscriber)
        return engine

    @staticmethod
    def broken_subscriber(event: Any) -> None:
        # A subscriber failing after commit must not undo or hide the transition (SPEC §2).
        raise RuntimeError("the broker is down")

    def outbox(self) -> list[tuple[str, str, int]]:
        with self.engine.database.connect() as conn:
            return sorted(tuple(r) for r in conn.execute(
                select(outbox.c.kind, outbox.c.aggregate_id, outbox.c.seq)))

    def teardown(self) -> None:
        self.engine.close()
        self.directory.cleanup()

    # --- drawing --------------------------------------------------------------------------

    def peek(self, kind: Any, id: Any) -> lifecycle.Aggregate | None:
        if kind not in KINDS or not isinstance(id, str) or id not in self.ids[kind]:
            return None
        return self.engine.get(kind, id)

    def draw_target(self, data: st.DataObject) -> tuple[Any, Any]:
        # Orders and disputes are where the money is: they are picked most.
        weights = {"order": 5, "dispute": 4, "coupon": 1, "voucher": 1, "seller": 1}
        kinds = [kind for kind in KINDS if self.ids[kind] for _ in range(weights[kind])]
        kind = data.draw(st.sampled_from([*kinds, "hostile"]), label="kind")
        if kind != "hostile":
            return kind, data.draw(st.sampled_from(self.ids[kind]), label="id")
        return data.draw(st.tuples(
            st.sampled_from((*KINDS, "onboarding", "ORDER", "nope", "", None, 7)),
            st.sampled_from(("o-0000000000000000", "s-9", *HOSTILE, None, 42)),
        ), label="target")

    def draw_trigger(self, data: st.DataObject, kind: Any,
                     aggregate: lifecycle.Aggregate | None) -> Any:
        anything = st.sampled_from((*ALL_TRIGGERS, "", "DROP TABLE history", "__init__", None))
        if aggregate is None:
            return data.draw(anything, label="trigger")
        allowed_here = DEFINITIONS[aggregate.kind].external_triggers_from(aggregate.state)
        if not allowed_here:
            return data.draw(anything, label="trigger")
        return data.draw(st.one_of(*[st.sampled_from(allowed_here)] * 5, anything),
                         label="trigger")

    def right_actor(self, data: st.DataObject, kind: Any, aggregate: lifecycle.Aggregate | None,
                    trigger: Any) -> tuple[str, str]:
        """A role that may fire ``trigger`` there, and the owner of the aggregate in that role."""
        definition = DEFINITIONS.get(kind) if isinstance(kind, str) else None
        step = definition.step(aggregate.state, trigger) if definition and aggregate and \
            isinstance(trigger, str) else None
        role = data.draw(st.sampled_from(sorted(step.roles) if step else ROLES), label="role")
        owner = None
        if definition is not None and aggregate is not None:
            owner = definition.owner_of(role, aggregate.id, aggregate.data)
        if owner is None and role == "buyer":  # a coupon: any buyer may claim it
            owner = data.draw(st.sampled_from(BUYERS), label="buyer")
        default = {"buyer": "b-1", "seller": "s-1", "operator": "op-1", "system": "timer"}[role]
        return role, owner or default

    def draw_actor(self, data: st.DataObject, kind: Any, aggregate: lifecycle.Aggregate | None,
                   trigger: Any) -> Any:
        right = self.right_actor(data, kind, aggregate, trigger)
        role = right[0]
        someone = st.tuples(st.sampled_from(ROLES),
                            st.sampled_from((*BUYERS, *SELLERS, "op-1", "timer", *HOSTILE[:8])))
        return data.draw(st.one_of(
            *[st.just(right)] * 6,
            st.sampled_from((*BUYERS, *SELLERS)).map(lambda id: (role, id)),  # wrong owner
            someone,  # any role, anyone
            st.sampled_from((("admin", "root"), ("", "b-1"), ("buyer", ""), ("buyer", " "))),
            st.sampled_from(("buyer:b-1", {"role": "buyer", "id": "b-1"}, None)),  # not an Actor
        ), label="actor")

    def key(self, data: st.DataObject) -> str | None:
        if data.draw(st.integers(0, 4), label="with key") != 0:
            return None
        self.keys += 1
        return f"key-{self.keys}"

    # --- doing ----------------------------------------------------------------------------

    def attempt(self, call: Callable[[], lifecycle.Aggregate]
                ) -> tuple[lifecycle.Aggregate | None, lifecycle.LifecycleError | None]:
        """Run one call: a success, or a LifecycleError that wrote nothing. Anything else
        propagates and fails the test."""
        before = rows(self.engine)
        try:
            return call(), None
        except lifecycle.LifecycleError as error:
            refusal = error
        assert rows(self.engine) == before, f"refused ({refusal!r}) yet rows changed"
        return None, refusal

    def learn(self, result: lifecycle.Aggregate) -> None:
        """Remember what a success created: the aggregate, a dispute, a voucher."""
        event(f"reached {result.kind} {result.state}")
        if result.id not in self.ids[result.kind]:
            self.ids[result.kind].append(result.id)
        stored = self.engine.get(result.kind, result.id)
        assert (stored.state, stored.version) == (result.state, result.version)
        if result.kind == "order" and result.data.get("dispute"):
            self.learn(self.engine.get("dispute", result.data["dispute"]))
        if result.kind == "coupon":
            for buyer in BUYERS:  # a claim creates the buyer's voucher
                voucher = f"{result.id}:{buyer}"
                if voucher not in self.ids["voucher"] and self._exists("voucher", voucher):
                    self.ids["voucher"].append(voucher)

    def _exists(self, kind: str, id: str) -> bool:
        try:
            self.engine.get(kind, id)
        except lifecycle.NotFound:
            return False
        return True

    def remember(self, key: str | None, result: lifecycle.Aggregate | None,
                 call: Callable[[str], lifecycle.Aggregate],
                 different: Callable[[str], lifecycle.Aggregate]) -> None:
        if key is not None and result is not None:
            self.remembered.append(Remembered(lambda: call(key), lambda: different(key), result))

    # --- rules ----------------------------------------------------------------------------

    @initialize(data=st.data(), orders=st.integers(1, 3))
    def open_for_business(self, data: st.DataObject, orders: int) -> None:
        """Every run starts with a coupon on offer, claimed by b-1, and a few good orders:
        hypothesis switches whole rules off in some runs, and the orders should be there
        whichever rules are left."""
        coupon = self.engine.create("coupon", lifecycle.Actor("seller", "s-1"),
                                    data.draw(good_coupon_terms(self.clock.now()), label="terms"))
        self.learn(self.engine.fire("coupon", coupon.id, "activate",
                                    lifecycle.Actor("seller", "s-1")))
        self.learn(self.engine.fire("coupon", coupon.id, "claim", lifecycle.Actor("buyer", "b-1")))
        for n in range(orders):
            buyer, seller = BUYERS[n], ("s-1", "s-2")[n % 2]
            voucher = data.draw(st.sampled_from((None, *self.ids["voucher"])), label="coupon")
            payload = data.draw(order_payload(seller, voucher), label="order")
            result, _ = self.attempt(functools.partial(
                self.engine.create, "order", lifecycle.Actor("buyer", buyer), payload))
            if result is not None:
                self.learn(result)

    @precondition(lambda self: len(self.ids["order"]) < 4)
    @rule(data=st.data())
    def place_order(self, data: st.DataObject) -> None:
        """A buyer places an order: mostly a good one, else from a hostile buyer, at a seller
        who cannot sell, with a malformed payload or with an id of the caller's choosing."""
        careful = data.draw(st.integers(0, 3), label="careless") < 3
        buyer = data.draw(st.sampled_from(BUYERS if careful else HOSTILE[:8]), label="buyer")
        seller = data.draw(st.sampled_from(("s-1", "s-2") if careful else ("s-1", "s-3", "s-9")),
                           label="seller")
        voucher = data.draw(st.sampled_from([None, *self.ids["voucher"]]), label="coupon")
        if careful:
            payload = data.draw(order_payload(seller, voucher), label="order")
            id = None
        else:
            payload, _ = draw_payload(data, order_payload(seller, voucher), "order")
            id = data.draw(st.sampled_from((None, "o-fixed", "o-'; --", "Ünï 漢",
                                            *self.ids["order"][:1])), label="id")
        key = self.key(data)

        def place(key: str | None) -> lifecycle.Aggregate:
            return self.engine.create("order", actor_of(("buyer", buyer)), payload, id=id,
                                      idempotency_key=key)

        result, _ = self.attempt(lambda: place(key))
        if result is not None:
            assert result.state == "awaiting_payment"
            self.learn(result)
            if voucher is not None and result.data.get("coupon"):
                assert self.engine.get("voucher", voucher).state == "reserved"
        self.remember(key, result, place, lambda key: self.engine.create(
            "order", actor_of(("buyer", buyer)), {**(payload if isinstance(payload, dict) else {}),
                                                  "sample": True}, id=id, idempotency_key=key))

    @precondition(lambda self: len(self.ids["coupon"]) < 2)
    @rule(data=st.data())
    def create_coupon(self, data: st.DataObject) -> None:
        seller = data.draw(st.sampled_from(SELLERS), label="seller")
        if data.draw(st.integers(0, 2), label="careless") < 2:
            terms = data.draw(good_coupon_terms(self.clock.now()), label="terms")
        else:
            terms, _ = draw_payload(data, coupon_terms(self.clock.now()), "terms")
        result, _ = self.attempt(lambda: self.engine.create("coupon", actor_of(("seller", seller)),
                                                            terms))
        if result is not None:
            self.learn(result)
            activated, _ = self.attempt(lambda: self.engine.fire(
                "coupon", result.id, "activate", actor_of(("seller", seller))))
            if activated is not None:
                self.learn(activated)

    @precondition(lambda self: len(self.ids["seller"]) < 5)
    @rule(data=st.data())
    def register_seller(self, data: st.DataObject) -> None:
        id = data.draw(st.sampled_from(("s-4", "s-5", "s-1", "s-'; --", "Ünï")), label="seller")
        registration = st.just(REGISTRATION) | st.just({**REGISTRATION,
                                                         "entity_type": "self_employed"})
        payload, _ = draw_payload(data, registration, "registration")
        as_who = data.draw(st.sampled_from((("seller", id), ("seller", "s-2"), ("buyer", id))),
                           label="actor")
        result, _ = self.attempt(lambda: self.engine.create("seller", actor_of(as_who), payload))
        if result is not None:
            assert result.id == id
            self.learn(result)

    @rule(data=st.data())
    def fire_anything(self, data: st.DataObject) -> None:
        """Any trigger, at any target, by anyone, with any payload."""
        kind, id = self.draw_target(data)
        self.fire_once(data, kind, id, careful=False)

    @rule(data=st.data(), moves=st.integers(1, 6))
    def move_along(self, data: st.DataObject, moves: int) -> None:
        """A few triggers its state allows, by the right party, with well-formed payloads: so
        that orders get paid, shipped, disputed and released, not only poked at."""
        live = [(kind, id) for kind in ("order", "dispute", "coupon") for id in self.ids[kind]
                if self.engine.get(kind, id).state not in DEFINITIONS[kind].terminal]
        if not live:
            return
        kind, id = data.draw(st.sampled_from(live), label="moving")
        for _ in range(moves):
            self.fire_once(data, kind, id, careful=True)

    def fire_once(self, data: st.DataObject, kind: Any, id: Any, *, careful: bool) -> None:
        aggregate = self.peek(kind, id)
        if careful:
            assert aggregate is not None
            choices = DEFINITIONS[kind].external_triggers_from(aggregate.state)
            if not choices:
                return
            onwards = [t for t in ONWARDS.get((kind, aggregate.state), ()) if t in choices]
            trigger = data.draw(st.sampled_from([*onwards * 3, *choices]), label="trigger")
            actor = self.right_actor(data, kind, aggregate, trigger)
            payload = data.draw(valid_payload(kind, trigger, dict(aggregate.data)),
                                label="payload")
            well_formed = True
        else:
            trigger = self.draw_trigger(data, kind, aggregate)
            actor = self.draw_actor(data, kind, aggregate, trigger)
            valid = valid_payload(str(kind), str(trigger),
                                  dict(aggregate.data) if aggregate else {})
            payload, well_formed = draw_payload(data, valid)
        key = self.key(data)
        listed = self._allowed(kind, id, actor)

        def fire(key: str | None) -> lifecycle.Aggregate:
            return self.engine.fire(kind, id, trigger, actor_of(actor), payload,
                                    idempotency_key=key)

        result, refusal = self.attempt(lambda: fire(key))
        if result is not None:
            assert aggregate is not None
            assert trigger in listed, f"{trigger} succeeded but allowed() listed {listed}"
            assert result.version == aggregate.version + 1
            last = self.engine.history(kind, id)[-1]
            assert (last.seq, last.trigger, last.source) == (result.version, trigger,
                                                             aggregate.state)
            self.learn(result)
        elif trigger in listed and well_formed:
            assert isinstance(refusal, PAYLOAD_REFUSALS), (
                f"allowed() listed {trigger}, yet it was refused with {refusal!r}")
        self.remember(key, result, fire, lambda key: self.engine.fire(
            kind, id, trigger, actor_of(actor), {"note": "another request"}, idempotency_key=key))

    def _allowed(self, kind: Any, id: Any, actor: Any) -> list[str]:
        if self.peek(kind, id) is None:
            return []
        try:
            return self.engine.allowed(kind, id, actor_of(actor))
        except lifecycle.InvalidPayload:  # not an actor
            return []

    @rule(data=st.data())
    def repeat_with_the_same_key(self, data: st.DataObject) -> None:
        """SPEC §2: the same key and request returns the first result and writes nothing; the
        same key with a different request is an error."""
        if not self.remembered:
            return
        request = data.draw(st.sampled_from(self.remembered), label="request")
        before = rows(self.engine)
        if data.draw(st.booleans(), label="same request"):
            again = request.again()
            assert (again.kind, again.id, again.state, again.version) == (
                request.result.kind, request.result.id, request.result.state,
                request.result.version)
            # The record keeps a reference, not a copy: the data is the aggregate's as it is now.
            assert again.data == self.engine.get(again.kind, again.id).data
        else:
            with pytest.raises(lifecycle.IdempotencyMismatch):
                request.different()
        assert rows(self.engine) == before

    @rule(seconds=st.one_of(st.integers(1, 3_600), st.integers(3_600, 3 * 86_400),
                            st.integers(86_400, 70 * 86_400)),
          restart=st.integers(0, 3).map(lambda n: n == 3))
    def time_passes(self, seconds: int, restart: bool) -> None:
        """The clock moves and the timer worker runs, sometimes in a new process: deadlines,
        idempotency records and all the rest live in the database, not in the engine."""
        self.clock.advance(timedelta(seconds=seconds))
        if restart:
            self.engine.close()
            self.engine = self.open()
        self._hold_a_later_deadline()
        fired = self.engine.run_due_timers()
        event(f"timers fired: {min(fired, 3)}{'+' if fired > 3 else ''}")

    def _hold_a_later_deadline(self) -> None:
        """Work around the SQLite deadline-id bug (tests/property/test_ledger_invariants.py::
        test_a_deadline_fired_into_a_state_with_its_own_deadline_keeps_it): a draft coupon that
        expires in ten years holds a deadline id above every one about to fire, so no deadline
        scheduled by a fired one takes a fired one's id. Drop this once that bug is fixed."""
        starts = self.clock.now() + timedelta(days=3650)
        self.engine.create("coupon", lifecycle.Actor("seller", "s-1"), {
            "title": "Bystander", "currency": "USD", "denomination": "5.00", "copies": 1,
            "starts_at": starts.isoformat(), "ends_at": (starts + timedelta(days=1)).isoformat(),
        })

    # --- invariants -----------------------------------------------------------------------

    @invariant()
    def histories_replay_and_the_ledger_holds(self) -> None:
        assert self.engine.check() == []

    @invariant()
    def deadlines_belong_to_the_current_state(self) -> None:
        """A pending (or failed) deadline is one of its aggregate's state's; a paused one is
        one of the state its order was in when the dispute opened; and every state that has
        deadlines has them."""
        with self.engine.database.connect() as conn:
            found = conn.execute(select(deadlines.c.kind, deadlines.c.aggregate_id,
                                        deadlines.c.state, deadlines.c.trigger,
                                        deadlines.c.status, deadlines.c.last_error)).all()
            stored = conn.execute(select(aggregates.c.kind, aggregates.c.id, aggregates.c.state,
                                         aggregates.c.data)).all()
        by_aggregate: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
        for kind, id, state, trigger, status, last_error in found:
            by_aggregate.setdefault((kind, id), []).append((status, state, trigger))
            if last_error is not None:  # a timer may fail only the way the API does
                assert last_error.split(":")[0] in ERROR_NAMES, last_error
        for kind, id, state, data in stored:
            definition = DEFINITIONS[kind]
            have = sorted(by_aggregate.pop((kind, id), []))
            if state in definition.pausing:
                paused_in = data["paused_state"]
                assert have == sorted(("paused", paused_in, d.trigger)
                                      for d in definition.deadlines_for(paused_in)), (kind, id)
                continue
            assert [status for status, _, _ in have if status == "paused"] == [], (kind, id)
            assert [(s, t) for _, s, t in have] == sorted(
                (state, d.trigger) for d in definition.deadlines_for(state)), (kind, id)
        assert by_aggregate == {}  # no deadline of an aggregate that does not exist

    @invariant()
    def outbox_matches_history_one_for_one(self) -> None:
        with self.engine.database.connect() as conn:
            written = sorted(tuple(r) for r in conn.execute(
                select(history.c.kind, history.c.aggregate_id, history.c.seq)))
        events = self.outbox()
        assert events == written
        # and subscribers heard of each committed transition once, of nothing else
        assert sorted(self.published) == sorted(set(events) - set(self.before))


Lifecycle.TestCase.settings = settings(max_examples=30, stateful_step_count=40, deadline=None)
TestModel = Lifecycle.TestCase


@pytest.mark.slow
def test_model_long_run() -> None:
    """The long variant: ``pytest -m slow tests/property``."""
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(Lifecycle, settings=settings(
        max_examples=300, stateful_step_count=80, deadline=None))


# --- hostile input, one case at a time: most of it the machine leaves out, because the engine
# --- mishandles it today ---------------------------------------------------------------------


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[lifecycle.Engine]:
    """An engine on a copy of the machine's template: active sellers s-1 and s-2."""
    with lifecycle.open(copy_of(template(), tmp_path), clock=lifecycle.SimulatedClock()) as opened:
        yield opened


def _refused_without_writing(engine: lifecycle.Engine, call: Callable[[], Any]) -> None:
    before = rows(engine)
    with pytest.raises(lifecycle.InvalidPayload):
        call()
    assert rows(engine) == before


@pytest.mark.parametrize("where", ["id", "actor", "key"])
def test_text_utf8_cannot_encode_is_refused_as_a_payload_error(
    shop: lifecycle.Engine, where: str
) -> None:
    lone = "o-\ud800"
    calls: dict[str, Callable[[], Any]] = {
        "id": lambda: shop.fire("order", lone, "pay", lifecycle.Actor("buyer", "b-1")),
        "actor": lambda: shop.create("order", lifecycle.Actor("buyer", lone),
                                     order_payload_for("s-1")),
        "key": lambda: shop.create("order", lifecycle.Actor("buyer", "b-1"),
                                   order_payload_for("s-1"), idempotency_key=lone),
    }
    _refused_without_writing(shop, calls[where])


def test_an_unhashable_kind_is_an_unknown_kind(shop: lifecycle.Engine) -> None:
    _refused_without_writing(shop, lambda: shop.get(["order"], "o-1"))  # type: ignore[arg-type]


@pytest.mark.parametrize("id", ["o-" + "x" * 199, 12345], ids=["201 characters", "an int"])
def test_create_refuses_an_id_get_and_fire_would_refuse(shop: lifecycle.Engine, id: Any) -> None:
    _refused_without_writing(shop, lambda: shop.create(
        "order", lifecycle.Actor("buyer", "b-1"), order_payload_for("s-1"), id=id))


# --- claims: a model of the coupon predicts each claim's answer, and the engine must give it ---

LONGEST_BUYER = "b" * 100  # the longest id an Actor accepts
CLAIMANTS = ("b-1", "b-2", "b-3", LONGEST_BUYER)
ID_LIMIT = 200  # what get, fire and an order's coupon field accept


@dataclass
class CouponModel:
    """What SPEC §4 and §6 say a claim on an active coupon meets: one copy per buyer, while
    copies are left, within the coupon's validity; once its expire deadline has fired (at
    ``ends``), the coupon and its unspent vouchers are expired and nothing can be claimed."""

    id: str
    starts: datetime
    ends: datetime
    copies: int
    claimed: list[str]
    expired: bool = False

    def answer(self, buyer: str, now: datetime) -> str:
        """``claimed``, else the name of the refusal: a rule, or InvalidTransition/-Payload."""
        if self.expired:
            return "InvalidTransition"
        if not self.starts <= now < self.ends:
            return "coupon.in_validity"
        if len(self.claimed) >= self.copies:
            return "coupon.copies_left"
        if buyer in self.claimed:
            return "coupon.one_per_buyer"
        if len(f"{self.id}:{buyer}") > ID_LIMIT:  # a voucher nobody could read or spend
            return "InvalidPayload"
        return "claimed"

    def timers_ran(self, now: datetime) -> None:
        self.expired = self.expired or now >= self.ends


def refusal_name(error: lifecycle.LifecycleError) -> str:
    return error.rule if isinstance(error, lifecycle.GuardFailed) else type(error).__name__


def claim_as_predicted(engine: lifecycle.Engine, model: CouponModel, buyer: str) -> str:
    """One claim by ``buyer``: the engine's answer, its ``allowed`` and what it wrote must be
    the model's. Returns the answer."""
    expected = model.answer(buyer, engine.clock.now())
    actor = lifecycle.Actor("buyer", buyer)
    offered = "claim" in engine.allowed("coupon", model.id, actor)
    before = rows(engine)
    refused: lifecycle.LifecycleError | None = None
    try:
        coupon = engine.fire("coupon", model.id, "claim", actor)
    except lifecycle.LifecycleError as error:
        refused = error
    if refused is not None:
        assert refusal_name(refused) == expected, f"refused {refused!r}; the model said {expected}"
        assert rows(engine) == before
        # allowed() checks what does not depend on a payload: all of a claim's rules
        assert offered == (expected == "InvalidPayload"), (offered, expected)
        return expected
    assert expected == "claimed", f"claimed by {buyer}; the model said {expected}"
    assert offered
    model.claimed.append(buyer)
    assert coupon.state == "active"
    assert coupon.data["claimed"] == len(model.claimed)
    voucher = engine.get("voucher", f"{model.id}:{buyer}")
    assert (voucher.state, voucher.data["buyer"], voucher.data["coupon"]) == (
        "available", buyer, model.id)
    return expected


def offer_coupon(engine: lifecycle.Engine, *, starts_in: timedelta, lasts: timedelta,
                 copies: int, id: str | None = None) -> CouponModel:
    now = engine.clock.now()
    starts, ends = now + starts_in, now + starts_in + lasts
    coupon = engine.create("coupon", lifecycle.Actor("seller", "s-1"), {
        "title": "Ten off", "currency": "USD", "denomination": "10.00", "copies": copies,
        "starts_at": starts.isoformat(), "ends_at": ends.isoformat()}, id=id)
    engine.fire("coupon", coupon.id, "activate", lifecycle.Actor("seller", "s-1"))
    return CouponModel(coupon.id, starts, ends, copies, [])


@settings(max_examples=30, deadline=None)
@given(copies=st.integers(1, 2), starts_in=st.integers(0, 3), lasts=st.integers(1, 4),
       steps=st.lists(st.tuples(st.sampled_from(CLAIMANTS), st.integers(0, 2), st.booleans()),
                      min_size=1, max_size=10))
# every answer once: not started yet, claimed, a second copy, the last copy, none left, ended
# (the timer has not run yet), expired
@example(copies=2, starts_in=1, lasts=2, steps=[
    ("b-1", 0, False), ("b-1", 1, False), ("b-1", 0, False), (LONGEST_BUYER, 0, False),
    ("b-3", 0, False), ("b-2", 2, False), ("b-2", 0, True)])
def test_each_claim_is_answered_as_the_coupon_model_predicts(
    copies: int, starts_in: int, lasts: int, steps: list[tuple[str, int, bool]]
) -> None:
    """Claims by a few buyers (the longest id among them) while the clock moves by whole days
    over the coupon's validity (it starts in 0-3 days, lasts 1-4), with or without the timer
    worker running: accepted exactly when the model says, else refused by the rule it names."""
    with tempfile.TemporaryDirectory() as directory, lifecycle.open(
            copy_of(template(), Path(directory)), clock=lifecycle.SimulatedClock()) as engine:
        clock = engine.clock
        assert isinstance(clock, lifecycle.SimulatedClock)
        model = offer_coupon(engine, starts_in=timedelta(days=starts_in),
                             lasts=timedelta(days=lasts), copies=copies)
        for buyer, days, timers in steps:
            clock.advance(timedelta(days=days))
            if timers:
                engine.run_due_timers()
                model.timers_ran(clock.now())
            assert engine.get("coupon", model.id).state == ("expired" if model.expired
                                                            else "active")
            event(claim_as_predicted(engine, model, buyer))
        for buyer in model.claimed:
            voucher = engine.get("voucher", f"{model.id}:{buyer}")
            assert voucher.state == ("expired" if model.expired else "available")


def test_the_longest_buyer_id_claims_a_voucher_it_can_spend(shop: lifecycle.Engine) -> None:
    # A voucher's id is "<coupon id>:<buyer id>": with a generated coupon id even the longest
    # buyer id leaves it within the 200 characters get, fire and an order's coupon field accept.
    model = offer_coupon(shop, starts_in=timedelta(0), lasts=timedelta(days=30), copies=5)
    assert model.answer(LONGEST_BUYER, shop.clock.now()) == "claimed"

    claim_as_predicted(shop, model, LONGEST_BUYER)
    voucher = f"{model.id}:{LONGEST_BUYER}"
    order = shop.create("order", lifecycle.Actor("buyer", LONGEST_BUYER),
                        {**order_payload_for("s-1"), "coupon": voucher})

    assert order.data["coupon"] == voucher
    assert shop.get("voucher", voucher).state == "reserved"


def test_a_claim_whose_voucher_id_could_not_be_read_is_refused(shop: lifecycle.Engine) -> None:
    model = offer_coupon(shop, starts_in=timedelta(0), lasts=timedelta(days=30), copies=5,
                         id="c-" + "x" * 148)
    assert model.answer(LONGEST_BUYER, shop.clock.now()) == "InvalidPayload"

    claim_as_predicted(shop, model, LONGEST_BUYER)


def test_a_coupon_given_in_another_time_zone_expires_at_its_instant(
    shop: lifecycle.Engine
) -> None:
    clock = shop.clock
    assert isinstance(clock, lifecycle.SimulatedClock)
    coupon = shop.create("coupon", lifecycle.Actor("seller", "s-1"), {
        "title": "Ten off", "currency": "USD", "denomination": "10.00", "copies": 5,
        "starts_at": "2026-01-01T00:00:00+00:00", "ends_at": "2026-01-10T00:00:00+05:00"})
    shop.fire("coupon", coupon.id, "activate", lifecycle.Actor("seller", "s-1"))

    clock.set(datetime(2026, 1, 9, 19, 0, tzinfo=UTC))  # 2026-01-10T00:00+05:00
    shop.run_due_timers()

    assert shop.get("coupon", coupon.id).state == "expired"


def test_a_failing_subscriber_does_not_fail_the_trigger(shop: lifecycle.Engine) -> None:
    heard: list[str] = []

    def broker_down(event: Any) -> None:
        raise RuntimeError("the broker is down")

    shop.subscribe("order.*", broker_down)
    shop.subscribe("order.*", lambda event: heard.append(event["name"]))

    order = shop.create("order", lifecycle.Actor("buyer", "b-1"), order_payload_for("s-1"))

    assert [e.trigger for e in shop.history("order", order.id)] == ["place"]
    assert heard == ["order.awaiting_payment"]


def order_payload_for(seller: str) -> dict[str, Any]:
    return {
        "seller": seller,
        "lines": [{"sku": "toy-robot", "quantity": 1, "unit_price": "19.99"}],
        "currency": "USD",
        "consignee": {"name": "Ana Silva", "address": "Rua A 1, Lisboa", "country": "PT"},
        "logistics": {"carrier": "dhl", "service": "express", "shipping_fee": "7.50",
                      "delivery_days": 20},
    }
