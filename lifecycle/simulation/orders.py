"""Buyers and sellers around an order (SPEC §4): placing it (with the carrier and service the
quotes make best, sometimes with a coupon), paying (in the checkout or on the gateway's page),
cancelling, shipping online or offline, confirming receipt, and opening disputes."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from lifecycle import Actor, Aggregate, HistoryEntry
from lifecycle.adapters import Parcel
from lifecycle.adapters.sandbox import SANDBOX_CARRIERS
from lifecycle.adapters.waybills import (
    air_waybill_number,
    bill_of_lading_number,
    dhl_express_number,
    fedex_number,
    s10_number,
    tnt_number,
    ups_number,
)
from lifecycle.simulation.coupons import eligible, threshold
from lifecycle.simulation.market import (
    DECLINE_RETRIES,
    ORDER_TERMINAL,
    Act,
    Create,
    Decision,
    Event,
    Later,
    Turn,
)
from lifecycle.simulation.world import (
    Line,
    OrderPlan,
    SellerPlan,
    basket,
    buyer,
    goods_total,
    number_of,
    order_id,
    order_plan,
    parcel,
    rng,
    share_of,
)

if TYPE_CHECKING:
    from lifecycle.simulation.market import Market

CHECKLIST = {"quantity": True, "model": True, "specification": True, "colour": True}
DISPUTABLE = ("shipped", "in_transit", "delivered", "completed")
SHIPPED_BY = ("confirm_pickup", "ship_offline")
RECEIVED_REASONS = ("not_as_described", "quality", "damage", "short_shipment", "counterfeit")
MAX_QUANTITY = 20


def offline_waybill(carrier: str, n: int, origin: str) -> str:
    """A number the carrier's validator accepts, from a range the sandbox never issues."""
    if carrier == "dhl":
        return dhl_express_number(500_000_000 + n % 400_000_000)
    if carrier == "ups":
        return ups_number("SIMOFF", "SM", n % 10**7)
    if carrier == "fedex":
        return fedex_number(70_000_000_000 + n)
    if carrier == "tnt":
        return tnt_number(70_000_000 + n % 29_999_999)
    if carrier == "postal":
        return s10_number("LZ", n % 10**8, origin)
    if carrier == "air_freight":
        return air_waybill_number(991, n % 10**7)
    return bill_of_lading_number("SIMU", n)


def mistyped(carrier: str, waybill: str) -> str:
    """The kind of slip a validator catches: a wrong check digit (or, for a bill of lading, a
    digit in the shipping line's code)."""
    if carrier == "sea_freight":
        return "SIM0" + waybill[4:]
    position = 10 if carrier == "postal" else len(waybill) - 1
    digit = (int(waybill[position]) + 1) % 10
    return waybill[:position] + str(digit) + waybill[position + 1:]


@dataclass(frozen=True, slots=True)
class Open:
    """What the driver keeps of an order until it ends: its store (for the handling time) and
    its plan (asked on every event and turn of the order and of its disputes)."""

    store: str
    plan: OrderPlan


class OrderActors:
    kind = "order"

    def __init__(self, market: Market):
        self.market = market
        self.buyers = max(10, market.config.orders // 3)
        # Orders that have not ended, and only those: a long run must not grow with the
        # orders it has finished.
        self.open: dict[str, Open] = {}

    def plan(self, id: str) -> OrderPlan:
        known = self.open.get(id)
        if known is not None:
            return known.plan
        m = self.market
        return order_plan(m.seed, m.behaviour, number_of(id))

    # --- placing --------------------------------------------------------------------------

    def place(self, n: int) -> None:
        m = self.market
        active = m.sellers.active
        if not active:
            m.count("orders.no_open_store")
            return
        plan = order_plan(m.seed, m.behaviour, n)
        r = rng(m.seed, "place", n)
        store = m.sellers.plan(active[r.randrange(len(active))])
        who = buyer(m.seed, m.name, r.randrange(self.buyers))
        lines = list(basket(m.seed, store, n))
        coupon = None
        if plan.uses_coupon or plan.claims_only:
            found = m.coupons.voucher_for(who.id, store.id, n)
            if found is not None and plan.uses_coupon:
                adjusted = reach_threshold(lines, found[1], store)
                if adjusted is not None:
                    lines, coupon = adjusted, found[0]
        payload: dict[str, Any] = {
            "seller": store.id,
            "lines": [{"sku": line.product.sku, "quantity": line.quantity,
                       "unit_price": str(line.product.price)} for line in lines],
            "currency": "USD",
            "consignee": {"name": who.name, "address": f"{n % 999 + 1} Market Street",
                          "country": who.country},
            "logistics": self.logistics(store, who.country, lines, r),
        }
        if plan.sample:
            payload["sample"] = True
        if coupon is not None:
            payload["coupon"] = coupon
        actor = Actor("buyer", who.id)
        id = order_id(m.name, n)
        placed = m.create(Create("order", id, actor, payload))
        if placed is None and coupon is not None:
            del payload["coupon"]  # the coupon was refused: buy without it
            m.count("orders.coupon_dropped")
            placed = m.create(Create("order", id, actor, payload))
        if placed is not None:
            self.open[id] = Open(store.id, plan)
            m.count("orders.placed")
            if coupon is not None:
                m.count("orders.with_coupon")

    def logistics(self, store: SellerPlan, destination: str, lines: list[Line],
                  r: random.Random) -> dict[str, Any]:
        """What the buyer chooses among every carrier's quotes: most take the cheapest, some
        the fastest, some the best value."""
        box = Parcel(**{k: Decimal(v) for k, v in parcel(lines).items()})
        quotes = [q for name in SANDBOX_CARRIERS
                  for q in self.market.carriers[name].quote(box, store.country, destination)]
        taste = r.random()
        if taste < 0.6:
            best = min(quotes, key=lambda q: (q.price, q.transit_days, q.carrier))
        elif taste < 0.85:
            best = min(quotes, key=lambda q: (q.transit_days, q.price, q.carrier))
        else:
            best = min(quotes, key=lambda q: (q.price * (q.transit_days + 3), q.carrier))
        return {"carrier": best.carrier, "service": best.service, "shipping_fee": str(best.price),
                "delivery_days": min(60, best.transit_days + r.randint(5, 12))}

    # --- reacting -------------------------------------------------------------------------

    def on_event(self, event: Event, at: datetime) -> None:
        id, trigger, dest, seq = event["id"], event["trigger"], event["dest"], event["seq"]
        plan, m = self.plan(id), self.market
        fate = plan.fate
        if dest in ORDER_TERMINAL:
            self.open.pop(id, None)
        elif trigger == "place":
            if fate == "cancels_unpaid":
                m.later("order", id, "cancel", seq, 0.5, 20, at)
            elif fate != "never_pays":
                m.later("order", id, "pay", seq, 0.1, 12, at)
        elif trigger == "pay":
            if fate == "cancels_paid":
                m.later("order", id, "request_cancel", seq, 1, 20, at)
            if fate != "ships_late":
                handling = m.sellers.plan(self._store(id)).handling_days * 24
                low, high = (48, 60) if fate == "cancels_paid" else (4, max(8, handling * 0.7))
                m.later("order", id, "ship", seq, low, high, at)
        elif trigger == "reject_cancel":
            m.later("order", id, "ship", seq, 2, 24, at)
        elif trigger == "pickup_timeout":
            m.later("order", id, "ship_offline", seq, 1, 12, at)
        elif trigger == "request_cancel" and plan.cancel_answer != "ignore":
            m.later("order", id, "answer_cancel", seq, 1, 40, at)
        elif trigger in SHIPPED_BY and fate == "disputes_not_received":
            wait = m.engine.policy.not_received_after
            m.later("order", id, "not_received", seq, 1, 72, at + wait)
        elif trigger == "tracking_exception" and plan.disputes_lost:
            kind = event["payload"].get("kind")
            if kind == "returned_to_sender":
                m.later("order", id, "not_received", seq, 1, 24, at)
            elif kind == "lost":
                m.later("order", id, "not_received", seq, 2, 48, at)
        elif trigger == "tracking_delivered":
            if fate == "disputes_received":
                m.later("order", id, "open_received", seq, 2, 96, at)
            elif fate in ("confirms", "disputes_after_completion"):
                m.later("order", id, "confirm", seq, 1, 108, at)
        elif trigger == "close_dispute" and dest == "delivered":
            if rng(m.seed, "confirm-after-dispute", id).random() < 0.5:
                m.later("order", id, "confirm", seq, 1, 72, at)
        elif dest == "completed" and fate == "disputes_after_completion":
            m.later("order", id, "open_received", seq, 12, 288, at)

    def _store(self, id: str) -> str:
        known = self.open.get(id)
        if known is None:
            store = str(self.market.engine.get("order", id).data["seller"])
            known = self.open[id] = Open(store, self.plan(id))
        return known.store

    def resume(self, aggregate: Aggregate, history: list[HistoryEntry]) -> None:
        data = aggregate.data
        self.open[aggregate.id] = Open(data["seller"], self.plan(aggregate.id))
        if data.get("waybill"):
            self._track_again(aggregate)
        replay = [e for e in history if e.trigger == "tracking_exception"]
        shipped = [e for e in history if e.trigger in SHIPPED_BY]
        if shipped and aggregate.state in (*DISPUTABLE, "in_dispute"):
            replay.append(shipped[-1])
        replay.append(next(e for e in reversed(history) if e.source != e.dest))
        for entry in replay:
            event = {"id": aggregate.id, "trigger": entry.trigger, "source": entry.source,
                     "dest": entry.dest, "seq": entry.seq, "payload": entry.payload}
            self.on_event(event, entry.at)

    def _track_again(self, order: Aggregate) -> None:
        """A restarted sandbox carrier forgot the parcel: tell it again, from the same start,
        so its scans carry on where they were."""
        data = order.data
        started = data.get("pickup_booked_at") or data.get("shipped_at")
        if started is None:
            return
        store = self.market.sellers.plan(data["seller"])
        self.market.carriers[data["carrier"]].register_shipment(
            data["waybill"], origin=store.country, destination=data["consignee"]["country"],
            service=data["logistics"]["service"], at=datetime.fromisoformat(started))
        self.market.expect_scans(data["carrier"], data["waybill"])

    # --- deciding -------------------------------------------------------------------------

    def decide(self, aggregate: Aggregate | None, turn: Turn) -> Decision:
        if aggregate is None or aggregate.state in ORDER_TERMINAL:
            return None  # a turn that came too late: nobody acts on an order that ended
        _, _, id, purpose, tries = turn
        m, state, data = self.market, aggregate.state, aggregate.data
        plan = self.plan(id)
        shopper, store = Actor("buyer", data["buyer"]), Actor("seller", data["seller"])
        if purpose == "pay" and state == "awaiting_payment":
            return self._pay(aggregate, plan, tries)
        if purpose == "cancel" and state == "awaiting_payment":
            return Act("cancel", shopper, {"note": "found it cheaper elsewhere"})
        if purpose == "request_cancel" and state == "paid" and "cancel_requested_at" not in data:
            return Act("request_cancel", shopper, {"reason": "ordered the wrong size"})
        if purpose == "answer_cancel" and state == "cancel_requested":
            return Act("accept_cancel" if plan.cancel_answer == "accept" else "reject_cancel", store)
        if purpose in ("ship", "ship_offline") and state == "paid":
            return self._ship(aggregate, plan, purpose == "ship" and plan.online, tries)
        if purpose == "not_received" and state in DISPUTABLE and not data.get("dispute_count"):
            return self._not_received(aggregate)
        if purpose == "open_received" and state in ("delivered", "completed") \
                and not data.get("dispute_count"):
            return self._received(aggregate, plan)
        if purpose == "confirm" and state in ("shipped", "in_transit", "delivered"):
            return Act("confirm_receipt", shopper)
        if purpose == "release" and state == "completed":
            return Act("release_funds", m.operator, {"note": "payout retried by an operator"})
        if purpose == "settle" and state == "paid":  # the seller never shipped, the refund stuck
            return Act("request_cancel", shopper, {"reason": "the seller did not ship in time"})
        if purpose == "settle" and state == "cancel_requested":
            return Act("accept_cancel", store, {"note": "refund retried"})
        return None

    def _pay(self, order: Aggregate, plan: OrderPlan, tries: int) -> Decision:
        m = self.market

        def again(_error: object = None) -> None:
            if tries < DECLINE_RETRIES:
                m.later("order", order.id, "pay", order.version, 1, 6, tries=tries + 1)

        if plan.hosted and m.gateway is not None:
            if not m.checkout(order, tries):
                again()
            return None
        return Act("pay", Actor("buyer", order.data["buyer"]), {}, failed=again)

    def _ship(self, order: Aggregate, plan: OrderPlan, online: bool, tries: int) -> Decision:
        m, data = self.market, order.data
        store = Actor("seller", data["seller"])
        if online and tries == 0:
            lines = self._lines(order)

            def offline_instead(_error: object) -> None:
                m.later("order", order.id, "ship_offline", order.version, 1, 6)

            def booked(moved: Aggregate) -> None:
                m.expect_scans(moved.data["carrier"], moved.data["waybill"])

            return Act("book_pickup", store, {"checklist": CHECKLIST, "parcel": parcel(lines)},
                       then=booked, failed=offline_instead)
        carrier = data["logistics"]["carrier"]
        origin = m.sellers.plan(data["seller"]).country
        waybill = offline_waybill(carrier, number_of(order.id), origin)
        if plan.typo and tries == 0:
            waybill = mistyped(carrier, waybill)

        def retype(_error: object) -> None:
            if tries < 3:
                m.later("order", order.id, "ship_offline", order.version, 0.2, 3, tries=tries + 1)

        def hand_over(shipped: Aggregate) -> None:
            m.carriers[carrier].register_shipment(
                shipped.data["waybill"], origin=origin, destination=data["consignee"]["country"],
                service=data["logistics"]["service"], at=m.now())
            m.expect_scans(carrier, shipped.data["waybill"])

        return Act("ship_offline", store, {"checklist": CHECKLIST, "carrier": carrier,
                                           "waybill": waybill}, then=hand_over, failed=retype)

    def _lines(self, order: Aggregate) -> list[Line]:
        catalogue = {p.sku: p for p in self.market.sellers.plan(order.data["seller"]).catalogue}
        return [Line(catalogue[line["sku"]], line["quantity"]) for line in order.data["lines"]]

    def _not_received(self, order: Aggregate) -> Decision:
        m, data = self.market, order.data
        shipped_at = datetime.fromisoformat(data["shipped_at"])
        wait = m.engine.policy.not_received_after
        if not data.get("returned_to_sender") and m.now() < shipped_at + wait:
            return Later(shipped_at + wait + timedelta(hours=1))
        kinds = set(data.get("exception_kinds", ()))
        if data.get("returned_to_sender"):
            reason = "returned_to_sender"
        elif "customs_hold" in kinds:
            reason = "customs_detention"
        elif order.state in ("shipped", "in_transit"):
            reason = "still_in_transit"
        else:
            reason = rng(m.seed, "reason", order.id).choice(("wrong_address", "invalid_tracking"))
        refundable = Decimal(data["amount_paid"]) - Decimal(data["refunded"])
        return Act("open_dispute", Actor("buyer", data["buyer"]), {
            "type": "not_received", "reason": reason, "refund_amount": str(refundable),
            "evidence": ["tracking has not shown a delivery"]})

    def _received(self, order: Aggregate, plan: OrderPlan) -> Decision:
        data = order.data
        r = rng(self.market.seed, "claim", order.id)
        refundable = Decimal(data["amount_paid"]) - Decimal(data["refunded"])
        amount = refundable if r.random() < 0.4 else share_of(refundable, r.uniform(0.3, 0.9))
        return Act("open_dispute", Actor("buyer", data["buyer"]), {
            "type": "received", "reason": r.choice(RECEIVED_REASONS), "refund_amount": str(amount),
            "return_goods": plan.asks_return, "evidence": ["photos of the goods received"]})


def reach_threshold(lines: list[Line], terms: dict[str, Any], store: SellerPlan) -> list[Line] | None:
    """The basket a buyer makes to use a coupon: add an eligible product if there is none, then
    more of the cheapest eligible one until the coupon's threshold is reached; None if it cannot."""
    lines = list(lines)
    if not any(eligible(terms, line.product.sku) for line in lines):
        candidates = sorted((p for p in store.catalogue if eligible(terms, p.sku)),
                            key=lambda p: (p.price, p.sku))
        if not candidates:
            return None
        lines.append(Line(candidates[0], 1))
    need = threshold(terms)
    while goods_total([line for line in lines if eligible(terms, line.product.sku)]) < need:
        index, cheapest = min(((i, line) for i, line in enumerate(lines)
                               if eligible(terms, line.product.sku)),
                              key=lambda pair: (pair[1].product.price, pair[1].product.sku))
        if cheapest.quantity >= MAX_QUANTITY:
            return None
        lines[index] = Line(cheapest.product, cheapest.quantity + 1)
    return lines
