"""Money as a property (issue 4; SPEC §4 coupons on orders, §6 ledger).

Random orders (1-4 lines, random quantities and USD prices, shipping fee from zero up), with
and without a coupon claimed from an active merchant coupon of random denomination, threshold,
validity and products, walked along a random path: never paid, cancelled before or after
payment, cancel requests accepted, rejected or timed out, shipped online or offline, tracked,
delivered, disputed (any number of times) with partial and full refunds through accept_claim,
counter_offer + accept_offer, arbitrate, returns and timeouts, released.

After every step the order, its dispute, its voucher, its pending deadlines and every ledger
account match an independent model of the spec. After the whole path: ``engine.check()`` is
clean, escrow is empty at the terminal state, the buyer never got back more than they paid (so
never the coupon's amount), and every account sums to zero.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

import lifecycle
from lifecycle.adapters.sandbox import SandboxCarrier
from lifecycle.adapters.timelines import TrackingRates
from lifecycle.store.tables import ledger
from tests.builders import (
    CHECKLIST,
    OPERATOR,
    PARCEL,
    RETURN_SHIPMENT,
    SYSTEM,
    buyer,
    copy_of,
    migrated_template,
    order_payload,
    rows,
    seller,
    seller_in,
)

SKUS = ("sku-a", "sku-b", "sku-c", "sku-d")
TERMINAL = ("funds_released", "cancelled", "refunded")
ACCOUNTS = ("buyer", "escrow", "seller", "platform_fee", "coupon_subsidy")
NOT_RECEIVED_REASONS = ("invalid_tracking", "wrong_address", "still_in_transit",
                        "customs_detention", "returned_to_sender")
RECEIVED_REASONS = ("not_as_described", "quality", "damage", "short_shipment", "counterfeit")

# The deadline each state schedules (SPEC §4, §5): the model expects exactly this one pending.
ORDER_TIMERS = {
    "awaiting_payment": "payment_timeout",
    "paid": "ship_deadline",
    "cancel_requested": "cancel_request_timeout",
    "awaiting_pickup": "pickup_timeout",
    "shipped": "auto_confirm",
    "in_transit": "auto_confirm",
    "delivered": "auto_confirm",
    "completed": "release_funds",
}
DISPUTE_TIMERS = {
    "awaiting_seller": "seller_response_timeout",
    "negotiating": "negotiation_timeout",
    "awaiting_return": "return_timeout",
}
# What a party may do in each state, as method names of Walk; repeated ones are likelier.
CHOICES = {
    "order awaiting_payment": ["pay"] * 8 + ["pay_by_system"] * 2 + ["cancel",
                                                                       "cancel_by_operator"],
    "order paid": ["ship_offline"] * 4 + ["book_pickup"] * 3 + ["request_cancel"],
    "order cancel_requested": ["reject_cancel"] * 2 + ["accept_cancel"],
    "order awaiting_pickup": ["confirm_pickup"] * 3,
    "order shipped": ["tracking_in_transit"] * 2 + ["tracking_delivered"] * 2 + [
        "tracking_exception", "confirm_receipt"] + ["open_dispute"] * 3,
    "order in_transit": ["tracking_delivered"] * 2 + ["tracking_exception", "confirm_receipt"]
    + ["open_dispute"] * 3,
    "order delivered": ["confirm_receipt"] * 2 + ["open_dispute"] * 3,
    "order completed": ["release_funds"] + ["open_dispute"] * 2,
    "dispute awaiting_seller": ["accept_claim", "counter_offer", "counter_offer", "withdraw"],
    "dispute negotiating": ["counter_offer", "accept_claim", "escalate_by_seller",
                            "escalate_by_buyer", "withdraw"],
    "dispute under_arbitration": ["arbitrate"] * 3 + ["withdraw"],
    "dispute awaiting_return": ["ship_return"] * 2 + ["withdraw"],
    "dispute return_in_transit": ["confirm_return_received"],
}
# How `finish` moves an order on where a party does it (elsewhere the timers do).
FORWARD = {
    "order awaiting_payment": "pay",
    "order paid": "ship_offline",
    "order cancel_requested": "reject_cancel",
    "order awaiting_pickup": "confirm_pickup",
}
NOT_RECEIVED_WAIT = timedelta(days=10)
ESCALATION_WAIT = timedelta(days=3)
MAX_STEPS = 30


def usd(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def minor(amount: Decimal) -> int:
    return int(amount * 100)


@dataclass(frozen=True)
class OrderSpec:
    lines: tuple[tuple[str, int, int], ...]  # (sku, quantity, unit price in cents)
    shipping: int
    delivery_days: int

    @property
    def goods(self) -> int:
        return sum(quantity * price for _sku, quantity, price in self.lines)

    def payload(self) -> dict[str, Any]:
        return {
            "seller": "s-1",
            "lines": [{"sku": sku, "quantity": quantity, "unit_price": usd(price)}
                      for sku, quantity, price in self.lines],
            "currency": "USD",
            "consignee": {"name": "Ana Silva", "address": "Rua A 1, Lisboa", "country": "PT"},
            "logistics": {"carrier": "dhl", "service": "express", "shipping_fee": usd(self.shipping),
                          "delivery_days": self.delivery_days},
        }


@dataclass(frozen=True)
class CouponSpec:
    denomination: int
    threshold: int | None
    validity: timedelta
    products: tuple[str, ...] | None  # None: all the store's products

    def deduction(self, order: OrderSpec) -> int | None:
        """What it takes off the goods, or None when the order does not qualify (SPEC §4:
        the threshold counts the goods it applies to, never shipping)."""
        eligible = sum(quantity * price for sku, quantity, price in order.lines
                       if self.products is None or sku in self.products)
        if eligible == 0 or (self.threshold is not None and eligible < self.threshold):
            return None
        return min(self.denomination, eligible)

    def terms(self, now: datetime) -> dict[str, Any]:
        return {
            "title": "Property coupon",
            "currency": "USD",
            "denomination": usd(self.denomination),
            "threshold": usd(self.threshold) if self.threshold is not None else None,
            "starts_at": now.isoformat(),
            "ends_at": (now + self.validity).isoformat(),
            "copies": 10,
            "products": list(self.products) if self.products is not None else "all",
        }


@st.composite
def order_specs(draw: st.DrawFn) -> OrderSpec:
    count = draw(st.integers(1, 4))
    lines = tuple((SKUS[n], draw(st.integers(1, 5)), draw(st.integers(1, 50_000)))
                  for n in range(count))
    shipping = draw(st.one_of(st.just(0), st.integers(1, 5_000)))
    return OrderSpec(lines, shipping, draw(st.integers(1, 60)))


@st.composite
def coupon_specs(draw: st.DrawFn) -> CouponSpec:
    denomination = draw(st.integers(500, 10_000))
    threshold = draw(st.none() | st.integers(denomination + 1, denomination + 30_000))
    validity = timedelta(hours=draw(st.integers(1, 62 * 24)))
    products = draw(st.none() | st.lists(st.sampled_from((*SKUS, "sku-z")), min_size=1,
                                         max_size=3, unique=True).map(tuple))
    return CouponSpec(denomination, threshold, validity, products)


@dataclass
class Dispute:
    """The model of one dispute (SPEC §5)."""

    id: str
    paused_in: str
    refundable: int
    claim: int
    claim_return: bool
    opened_at: datetime
    state: str = "awaiting_seller"
    offer: int | None = None
    offer_return: bool = False
    offer_rejected: bool = False
    settlement: int | None = None


class Walk:
    """One order on a random path, with the model of what the spec says it must look like."""

    def __init__(self, engine: lifecycle.Engine, clock: lifecycle.SimulatedClock,
                 data: st.DataObject):
        self.engine, self.clock, self.data = engine, clock, data
        self.id = ""
        self.state = ""
        self.goods = self.shipping = self.coupon = self.total = 0
        self.paid = False
        self.refunded = 0
        self.shipped_at: datetime | None = None
        self.returned_to_sender = False
        self.dispute: Dispute | None = None
        self.disputes = 0
        self.voucher: str | None = None
        self.voucher_state = ""
        self.voucher_ends: datetime | None = None

    # --- arrange --------------------------------------------------------------------------

    def place(self, spec: OrderSpec, coupon: CouponSpec | None) -> None:
        payload = spec.payload()
        deduction = None
        if coupon is not None:
            self.voucher = self._claim(coupon)
            deduction = coupon.deduction(spec)
            if deduction is None:
                before = rows(self.engine)
                with pytest.raises(lifecycle.GuardFailed) as refused:
                    self.engine.create("order", buyer(), {**payload, "coupon": self.voucher})
                assert refused.value.rule == "coupon.threshold"
                assert rows(self.engine) == before
            else:
                payload["coupon"] = self.voucher
        order = self.engine.create("order", buyer(), payload)
        self.id, self.state = order.id, "awaiting_payment"
        self.goods, self.shipping, self.coupon = spec.goods, spec.shipping, deduction or 0
        self.total = self.goods - self.coupon + self.shipping
        if deduction is not None:
            self.voucher_state = "reserved"
        amounts = ("goods_total", "shipping_fee", "coupon_amount", "total")
        assert [minor(Decimal(order.data[name])) for name in amounts] == [
            self.goods, self.shipping, self.coupon, self.total]
        self.verify()

    def _claim(self, coupon: CouponSpec) -> str:
        terms = coupon.terms(self.clock.now())
        created = self.engine.create("coupon", seller(), terms)
        self.engine.fire("coupon", created.id, "activate", seller())
        self.engine.fire("coupon", created.id, "claim", buyer())
        self.voucher_state = "available"
        self.voucher_ends = self.clock.now() + coupon.validity
        return f"{created.id}:b-1"

    # --- the path -------------------------------------------------------------------------

    def walk(self) -> None:
        for _ in range(self.data.draw(st.integers(0, MAX_STEPS), label="steps")):
            if self.state in TERMINAL:
                return
            self.act(self.choices(), self.where())
            self.verify()

    def finish(self) -> None:
        """Drive the order to a terminal state, onwards to the release where it can: forward
        where a party moves it, else its timer, else whatever a party may do."""
        for _ in range(50):
            if self.state in TERMINAL:
                break
            onwards = FORWARD.get(self.where())
            if onwards is not None:
                getattr(self, onwards)()
            elif self.expected_timer() is not None:
                self.timer()
            else:
                self.act([c for c in self.choices() if c != "wait"], f"finish {self.where()}")
            self.verify()
        assert self.state in TERMINAL
        self.engine.run_due_timers()  # anything else due: the coupon's and voucher's expiry
        if self.voucher_state == "available" and self.clock.now() >= self._ends():
            self.voucher_state = "expired"
        self.verify()

    def act(self, choices: list[str], where: str) -> None:
        """Draw one of ``choices`` (a name listed n times is n times as likely) and do it."""
        getattr(self, self.data.draw(st.sampled_from(choices), label=where))()

    def where(self) -> str:
        if self.state == "in_dispute":
            return f"dispute {self._dispute().state}"
        return f"order {self.state}"

    def choices(self) -> list[str]:
        """What may happen next, weighted towards moving the order along."""
        found = [*CHOICES[self.where()]]
        if self.expected_timer() is not None:
            found.append("timer")
        if self._room() > timedelta(seconds=2):
            found.append("wait")
        d = self.dispute
        if self.state == "in_dispute" and d is not None and d.state == "negotiating" \
                and d.offer is not None and not d.offer_rejected:
            found += ["accept_offer", "accept_offer", "reject_offer"]
        return found

    # --- order triggers -------------------------------------------------------------------

    def fire(self, trigger: str, actor: lifecycle.Actor, payload: dict[str, Any] | None = None,
             kind: str = "order") -> lifecycle.Aggregate:
        id = self.id if kind == "order" else self._dispute().id
        return self.engine.fire(kind, id, trigger, actor, payload or {})

    def pay(self) -> None:
        amount = self.data.draw(st.sampled_from([None, usd(self.total)]), label="amount")
        self.fire("pay", buyer(), {"amount": amount} if amount else {})
        self._paid()

    def pay_by_system(self) -> None:
        self.fire("pay", SYSTEM, {"amount": usd(self.total)})
        self._paid()

    def _paid(self) -> None:
        self.state, self.paid = "paid", True
        if self.voucher_state == "reserved":
            self.voucher_state = "redeemed"

    def cancel(self) -> None:
        self.fire("cancel", buyer())
        self._cancelled()

    def cancel_by_operator(self) -> None:
        self.fire("cancel", OPERATOR, {"note": "fraud check"})
        self._cancelled()

    def _cancelled(self) -> None:
        """SPEC §4: captured money back in full; the coupon back if still valid, else lapsed."""
        self.state = "cancelled"
        if self.paid:
            self.refunded = self.total
        if self.voucher_state in ("reserved", "redeemed"):
            self.voucher_state = "available" if self.clock.now() < self._ends() else "expired"

    def request_cancel(self) -> None:
        self.fire("request_cancel", buyer(), {"reason": "ordered twice"})
        self.state = "cancel_requested"

    def accept_cancel(self) -> None:
        self.fire("accept_cancel", seller())
        self._cancelled()

    def reject_cancel(self) -> None:
        self.fire("reject_cancel", seller())
        self.state = "paid"

    def ship_offline(self) -> None:
        self.fire("ship_offline", seller(),
                  {"checklist": CHECKLIST, "carrier": "dhl", "waybill": "1234567891"})
        self._shipped()

    def book_pickup(self) -> None:
        self.fire("book_pickup", seller(), {"checklist": CHECKLIST, "parcel": PARCEL})
        self.state = "awaiting_pickup"

    def confirm_pickup(self) -> None:
        actor = self.data.draw(st.sampled_from([seller(), SYSTEM]), label="picked up by")
        self.fire("confirm_pickup", actor)
        self._shipped()

    def _shipped(self) -> None:
        self.state, self.shipped_at = "shipped", self.clock.now()

    def tracking_in_transit(self) -> None:
        self.fire("tracking_in_transit", SYSTEM, {"location": "Leipzig hub"})
        self.state = "in_transit"

    def tracking_delivered(self) -> None:
        self.fire("tracking_delivered", self.data.draw(st.sampled_from([SYSTEM, OPERATOR]),
                                                     label="reported by"))
        self.state = "delivered"

    def tracking_exception(self) -> None:
        kind = self.data.draw(st.sampled_from(
            ["lost", "customs_hold", "returned_to_sender", "delay", "other"]), label="exception")
        self.fire("tracking_exception", SYSTEM, {"kind": kind})
        self.returned_to_sender |= kind == "returned_to_sender"

    def confirm_receipt(self) -> None:
        self.fire("confirm_receipt", buyer())
        self.state = "completed"

    def release_funds(self) -> None:
        self.fire("release_funds", OPERATOR)
        self._released()

    def _released(self) -> None:
        self.state = "funds_released"
        if self.voucher_state == "redeemed":
            self.voucher_state = "spent"

    def open_dispute(self) -> None:
        refundable = self.total - self.refunded
        types = ["not_received"] if self.state in ("shipped", "in_transit") else [
            "not_received", "received"]
        type = self.data.draw(st.sampled_from(types), label="type")
        reasons = NOT_RECEIVED_REASONS if type == "not_received" else RECEIVED_REASONS
        reason = self.data.draw(st.sampled_from(reasons), label="reason")
        claim = self.data.draw(self._amounts(refundable), label="claim")
        wants_return = self.data.draw(st.booleans(), label="return goods")
        assert self.shipped_at is not None
        wait = self.shipped_at + NOT_RECEIVED_WAIT - self.clock.now()
        if type == "not_received" and not self.returned_to_sender and wait > timedelta(0):
            self.clock.advance(wait)  # the buyer waits out the 10 days; the worker lags
        order = self.fire("open_dispute", buyer(), {
            "type": type, "reason": reason, "refund_amount": usd(claim),
            "return_goods": wants_return, "evidence": ["photo-1.jpg"],
        })
        self.disputes += 1
        assert order.data["dispute"] == f"{self.id}-d{self.disputes}"
        self.dispute = Dispute(order.data["dispute"], self.state, refundable, claim, wants_return,
                               self.clock.now())
        self.state = "in_dispute"

    # --- dispute triggers -----------------------------------------------------------------

    def _dispute(self) -> Dispute:
        assert self.dispute is not None
        return self.dispute

    def accept_claim(self) -> None:
        self.fire("accept_claim", seller(), kind="dispute")
        self._claim_accepted()

    def _claim_accepted(self) -> None:
        d = self._dispute()
        self._settle(d.claim, d.claim_return)

    def _settle(self, amount: int, with_return: bool) -> None:
        d = self._dispute()
        if with_return:
            d.state, d.settlement = "awaiting_return", amount
        else:
            self._resolve(amount)

    def _resolve(self, amount: int) -> None:
        """SPEC §5: the resolution decides the order: everything refunded → refunded; else the
        order goes back to where it was with the rest of the escrow."""
        d = self._dispute()
        d.state = "resolved_refund" if amount else "resolved_no_refund"
        if amount >= self.total - self.refunded:
            self.refunded, self.state = self.total, "refunded"
            if self.voucher_state == "redeemed":
                self.voucher_state = "spent"
        else:
            self.refunded += amount
            self.state = d.paused_in

    def counter_offer(self) -> None:
        d = self._dispute()
        amount = self.data.draw(self._amounts(d.refundable), label="offer")
        wants_return = self.data.draw(st.booleans(), label="offer return goods")
        self.fire("counter_offer", seller(),
                  {"refund_amount": usd(amount), "return_goods": wants_return}, kind="dispute")
        d.state, d.offer, d.offer_return, d.offer_rejected = (
            "negotiating", amount, wants_return, False)

    def accept_offer(self) -> None:
        self.fire("accept_offer", buyer(), kind="dispute")
        d = self._dispute()
        assert d.offer is not None
        self._settle(d.offer, d.offer_return)

    def reject_offer(self) -> None:
        self.fire("reject_offer", buyer(), kind="dispute")
        self._dispute().offer_rejected = True

    def escalate_by_seller(self) -> None:
        self.fire("escalate", seller(), kind="dispute")
        self._dispute().state = "under_arbitration"

    def escalate_by_buyer(self) -> None:
        wait = self._dispute().opened_at + ESCALATION_WAIT - self.clock.now()
        if wait > timedelta(0):
            self.clock.advance(wait)  # the buyer may escalate from the 4th day
        self.fire("escalate", buyer(), kind="dispute")
        self._dispute().state = "under_arbitration"

    def arbitrate(self) -> None:
        d = self._dispute()
        decision = self.data.draw(st.sampled_from(["no_refund", "refund", "return_and_refund"]),
                                  label="decision")
        if decision == "no_refund":
            self.fire("arbitrate", OPERATOR, {"decision": "no_refund"}, kind="dispute")
            self._resolve(0)
            return
        amount = self.data.draw(self._amounts(d.refundable), label="arbitrated")
        self.fire("arbitrate", OPERATOR, {"decision": decision, "refund_amount": usd(amount)},
                  kind="dispute")
        self._settle(amount, decision == "return_and_refund")

    def ship_return(self) -> None:
        self.fire("ship_return", buyer(), RETURN_SHIPMENT, kind="dispute")
        self._dispute().state = "return_in_transit"

    def confirm_return_received(self) -> None:
        actor = self.data.draw(st.sampled_from([seller(), OPERATOR]), label="received by")
        self.fire("confirm_return_received", actor, kind="dispute")
        settlement = self._dispute().settlement
        assert settlement is not None
        self._resolve(settlement)

    def withdraw(self) -> None:
        self.fire("withdraw", buyer(), kind="dispute")
        self._resolve(0)

    @staticmethod
    def _amounts(refundable: int) -> st.SearchStrategy[int]:
        """A refund: all that is left (a full refund) or any part of it."""
        return st.one_of(st.just(refundable), st.integers(1, refundable))

    # --- time -----------------------------------------------------------------------------

    def expected_timer(self) -> tuple[str, str, str] | None:
        """(kind, id, trigger) of the one deadline the model says is pending now."""
        if self.state == "in_dispute":
            d = self._dispute()
            trigger = DISPUTE_TIMERS.get(d.state)
            return ("dispute", d.id, trigger) if trigger else None
        trigger = ORDER_TIMERS.get(self.state)
        return ("order", self.id, trigger) if trigger else None

    def _pending(self) -> list[lifecycle.ScheduledDeadline]:
        found = self.engine.deadlines(kind="order", id=self.id)
        if self.dispute is not None:
            found += self.engine.deadlines(kind="dispute", id=self.dispute.id)
        return found

    def _room(self) -> timedelta:
        """How long the clock may run before the next deadline of this order falls due."""
        due = [d.due_at for d in self._pending() if d.status == "pending"]
        return min(due) - self.clock.now() if due else timedelta(days=30)

    def wait(self) -> None:
        """Time passes and the timer worker runs, short of this order's next deadline; only the
        coupon's and voucher's expiry may fire."""
        room = min(self._room(), timedelta(days=30))
        seconds = self.data.draw(st.integers(1, int(room.total_seconds()) - 1), label="wait s")
        self.clock.advance(timedelta(seconds=seconds))
        self.engine.run_due_timers()
        if self.voucher_state == "available" and self.clock.now() >= self._ends():
            self.voucher_state = "expired"

    def timer(self) -> None:
        """The clock runs to this order's pending deadline and the worker fires it."""
        expected = self.expected_timer()
        assert expected is not None
        kind, id, trigger = expected
        (deadline,) = [d for d in self._pending() if d.status == "pending"]
        assert (deadline.kind, deadline.aggregate_id, deadline.trigger) == expected
        self._hold_a_later_deadline(deadline.due_at)
        self.clock.set(max(deadline.due_at, self.clock.now()))
        seen = len(self.engine.history(kind, id))
        while len(self.engine.history(kind, id)) == seen:  # earlier coupon expiries fire first
            assert self.engine.run_due_timers(limit=1) == 1, f"{trigger} was due and did not fire"
        fired = self.engine.history(kind, id)[seen]
        assert (fired.trigger, fired.actor.role) == (trigger, "system")
        self._timed_out(trigger)

    def _hold_a_later_deadline(self, due: datetime) -> None:
        """Work around the SQLite deadline-id bug (see
        test_a_deadline_fired_into_a_state_with_its_own_deadline_keeps_it): a draft coupon
        expiring after ``due`` holds a higher deadline id than the one about to fire, so the id
        of the deadline it schedules is not the fired one's. Drop this once that bug is fixed."""
        ends = max(due, self.clock.now()) + timedelta(days=1)
        self.engine.create("coupon", seller(), {
            "title": "Bystander", "currency": "USD", "denomination": "5.00", "copies": 1,
            "starts_at": (ends - timedelta(days=62)).isoformat(), "ends_at": ends.isoformat(),
        })

    def _timed_out(self, trigger: str) -> None:
        if trigger in ("payment_timeout", "ship_deadline", "cancel_request_timeout"):
            self._cancelled()
        elif trigger == "pickup_timeout":
            self.state = "paid"
        elif trigger == "auto_confirm":
            self.state = "completed"
        elif trigger == "release_funds":
            self._released()
        elif trigger == "seller_response_timeout":
            self._claim_accepted()
        elif trigger == "negotiation_timeout":
            self._dispute().state = "under_arbitration"
        elif trigger == "return_timeout":
            self._resolve(0)
        else:
            raise AssertionError(f"no model for {trigger}")

    def _ends(self) -> datetime:
        assert self.voucher_ends is not None
        return self.voucher_ends

    # --- what must hold -------------------------------------------------------------------

    def expected_balances(self) -> dict[str, int]:
        """Every account of the order in cents, by SPEC §6."""
        if not self.paid or self.state in ("cancelled", "refunded"):
            return dict.fromkeys(ACCOUNTS, 0)
        kept = self.total - self.refunded  # what the buyer paid and keeps paid
        if self.state == "funds_released":
            kept_goods = max(self.goods - self.refunded, 0)
            commission = int((Decimal(kept_goods) / 20).quantize(Decimal(1), ROUND_HALF_EVEN))
            return {"buyer": -kept, "escrow": 0, "seller": kept - commission,
                    "platform_fee": commission, "coupon_subsidy": 0}
        return {"buyer": -kept, "escrow": kept + self.coupon, "seller": 0, "platform_fee": 0,
                "coupon_subsidy": -self.coupon}

    def balances(self) -> dict[str, int]:
        found = self.engine.balances("order", self.id)
        assert set(found) <= {"USD"}
        usd_accounts = found.get("USD", {})
        assert set(usd_accounts) <= set(ACCOUNTS)
        return {account: minor(usd_accounts.get(account, Decimal(0))) for account in ACCOUNTS}

    def verify(self) -> None:
        """After every step: state, refunds, ledger, voucher and deadlines as the model says."""
        order = self.engine.get("order", self.id)
        assert order.state == self.state
        assert minor(Decimal(order.data["refunded"])) == (self.refunded if self.paid else 0)
        assert self.balances() == self.expected_balances()
        if self.dispute is not None:
            assert self.engine.get("dispute", self.dispute.id).state == self.dispute.state
        if self.voucher is not None:
            found = self.engine.get("voucher", self.voucher).state
            if self.voucher_state == "available" and self.clock.now() >= self._ends():
                # past its validity and not yet expired by the worker: either is right now
                assert found in ("available", "expired")
                self.voucher_state = found
            assert found == self.voucher_state
        pending = [(d.kind, d.aggregate_id, d.trigger) for d in self._pending()
                   if d.status == "pending"]
        expected = self.expected_timer()
        assert pending == ([expected] if expected else [])
        paused = [(d.trigger, d.state) for d in self._pending() if d.status == "paused"]
        if self.state == "in_dispute":
            paused_in = self._dispute().paused_in
            assert paused == [(ORDER_TIMERS[paused_in], paused_in)]
        else:
            assert paused == []

    def verify_end(self) -> None:
        assert self.state in TERMINAL
        event(f"ended {self.state} after {self.disputes} dispute(s)"
              f"{' with a coupon' if self.coupon else ''}")
        assert self.engine.check() == []
        balances = self.balances()
        assert balances["escrow"] == 0
        assert balances == self.expected_balances()
        assert sum(balances.values()) == 0
        entries = [(account, minor(amount)) for _seq, _posting, account, amount, _currency
                   in self.engine.postings("order", self.id)]
        paid_in = -sum(amount for account, amount in entries if account == "buyer" and amount < 0)
        paid_back = sum(amount for account, amount in entries if account == "buyer" and amount > 0)
        assert paid_in == (self.total if self.paid else 0)
        # refunds never exceed what the buyer paid, which is the goods less the coupon plus
        # shipping: the coupon's amount is never returned to the buyer (SPEC §4)
        assert paid_back <= paid_in <= self.goods - self.coupon + self.shipping
        with self.engine.database.connect() as conn:
            totals = dict(conn.execute(select(ledger.c.currency, func.sum(ledger.c.amount_minor))
                                       .group_by(ledger.c.currency)).all())
        assert set(totals.values()) <= {0}  # every account of the whole ledger sums to zero
        assert self.engine.deadlines(kind="order", id=self.id) == []


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated database with the active seller s-1, copied afresh for every example."""
    directory = tmp_path_factory.mktemp("ledger")
    path = migrated_template(directory)
    with lifecycle.open(f"sqlite:///{path}", clock=lifecycle.SimulatedClock()) as engine:
        seller_in(engine, "active")
    return path


def opened(template: Path, directory: Path, clock: lifecycle.SimulatedClock) -> lifecycle.Engine:
    """An engine on a fresh copy of ``template``. The sandbox DHL never turns up for a booked
    pickup, so a lapsed booking can always be cancelled."""
    dhl = SandboxCarrier("dhl", clock=clock, secret=b"s", tracking=TrackingRates(missed_pickup=1.0))
    return lifecycle.open(copy_of(template, directory), clock=clock, carriers={"dhl": dhl})


def zero_total(order: OrderSpec, coupon: CouponSpec | None) -> bool:
    deduction = coupon.deduction(order) if coupon is not None else None
    return order.goods - (deduction or 0) + order.shipping == 0


@settings(max_examples=40, deadline=None)
@given(order=order_specs(), coupon=st.none() | coupon_specs(), data=st.data())
def test_ledger_invariants_hold_on_every_path(
    template: Path, order: OrderSpec, coupon: CouponSpec | None, data: st.DataObject
) -> None:
    # An order the coupon makes free (goods covered, no shipping) can be neither paid nor, once
    # paid, cancelled cleanly: test_free_order_cancelled_after_payment_empties_escrow.
    assume(not zero_total(order, coupon))
    with tempfile.TemporaryDirectory() as directory:
        clock = lifecycle.SimulatedClock()  # the instant the template was built at
        with opened(template, Path(directory), clock) as engine:
            walk = Walk(engine, clock, data)
            walk.place(order, coupon)
            walk.walk()
            walk.finish()
            walk.verify_end()


def test_free_order_cancelled_after_payment_empties_escrow(template: Path) -> None:
    # Hypothesis's minimal example: one line at 0.01, no shipping, a 5.00 coupon on all products
    # with no threshold; paid; cancelled when the ship deadline passed. (Found when pay did not
    # capture yet: the escrow kept 0.01. Since the capture landed, pay itself is refused.)
    order = OrderSpec((("sku-a", 1, 1),), shipping=0, delivery_days=1)
    coupon = CouponSpec(500, None, timedelta(days=30), None)
    with tempfile.TemporaryDirectory() as directory:
        clock = lifecycle.SimulatedClock()
        with opened(template, Path(directory), clock) as engine:
            created = engine.create("coupon", seller(), coupon.terms(clock.now()))
            engine.fire("coupon", created.id, "activate", seller())
            engine.fire("coupon", created.id, "claim", buyer())
            placed = engine.create("order", buyer(), {**order.payload(), "coupon": f"{created.id}:b-1"})
            assert (placed.data["coupon_amount"], placed.data["total"]) == ("0.01", "0.00")
            engine.fire("order", placed.id, "pay", buyer())
            clock.advance(timedelta(days=7))
            assert engine.run_due_timers() == 1

            assert engine.get("order", placed.id).state == "cancelled"
            assert engine.balances("order", placed.id)["USD"].get("escrow", 0) == 0
            assert engine.check() == []


def test_a_deadline_fired_into_a_state_with_its_own_deadline_keeps_it(template: Path) -> None:
    with tempfile.TemporaryDirectory() as directory:
        clock = lifecycle.SimulatedClock()
        with opened(template, Path(directory), clock) as engine:
            order = engine.create("order", buyer(), order_payload())  # delivery_days 20
            engine.fire("order", order.id, "pay", buyer())
            engine.fire("order", order.id, "ship_offline", seller(),
                        {"checklist": CHECKLIST, "carrier": "dhl", "waybill": "1234567891"})
            clock.advance(timedelta(days=20))
            assert engine.run_due_timers() == 1
            assert engine.get("order", order.id).state == "completed"

            assert [d.trigger for d in engine.deadlines(kind="order", id=order.id)] == [
                "release_funds"]
            clock.advance(timedelta(days=15))
            assert engine.run_due_timers() == 1
            assert engine.get("order", order.id).state == "funds_released"
