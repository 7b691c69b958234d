"""Buyers and sellers around an order (SPEC §4): placing it (with the carrier and service the
quotes make best, sometimes with a coupon), paying (in the checkout or on the gateway's page),
cancelling, shipping online or offline, confirming receipt, and opening disputes.

Which state allows what is read from the order machine (`lifecycle.definition`), not restated:
a turn makes sense while the machine defines its trigger from the order's state."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import lifecycle
from lifecycle import Actor, Aggregate, GuardFailed, HistoryEntry, LifecycleError
from lifecycle.adapters import SANDBOX_CARRIERS, Parcel
from lifecycle.simulation.baskets import Line, basket, parcel, reach_threshold
from lifecycle.simulation.shipping import CHECKLIST, choose, mistyped, offline_waybill
from lifecycle.simulation.vocabulary import Act, Create, Decision, Event, Later, Marketplace, Turn
from lifecycle.simulation.world import (
    Buyer,
    OrderPlan,
    SellerPlan,
    buyer,
    number_of,
    order_id,
    order_plan,
    rng,
    share_of,
)

ORDER = lifecycle.definition("order")
# How a seller hands a parcel over: the seller's triggers into "shipped" (book_pickup's
# confirm_pickup, ship_offline).
SHIPPED_BY = frozenset(t.trigger for t in ORDER.transitions
                       if t.dest == "shipped" and "seller" in t.roles)
RECEIVED = ("delivered", "completed")  # a buyer complains about goods only once they arrived
PLACE_TRIES = 3  # stores a buyer tries when one's penalty points refuse new orders

Reaction = Callable[[str, Event, OrderPlan, datetime], None]  # (id, event, plan, at)
Turning = Callable[[Aggregate, OrderPlan, Turn], Decision]


@dataclass(frozen=True, slots=True)
class Open:
    """What the driver keeps of an order until it ends: its store (for the handling time) and
    its plan (asked on every event and turn of the order and of its disputes)."""

    store: str
    plan: OrderPlan


class OrderActors:
    """The buyers and the sellers of the run's orders."""

    kind = "order"

    def __init__(self, market: Marketplace):
        self.market = market
        self.buyers = max(10, market.config.orders // 3)
        # Orders that have not ended, and only those: a long run must not grow with the
        # orders it has finished.
        self.open: dict[str, Open] = {}
        # What a committed trigger calls for, then what entering a state does.
        self._after: dict[str, Reaction] = {
            "place": self._placed, "pay": self._paid, "reject_cancel": self._cancel_rejected,
            "pickup_timeout": self._pickup_missed, "request_cancel": self._cancel_requested,
            **dict.fromkeys(SHIPPED_BY, self._shipped),
            "tracking_exception": self._exception, "tracking_delivered": self._delivered,
            "close_dispute": self._dispute_closed,
        }
        self._entering: dict[str, Reaction] = {"completed": self._completed}
        # Each turn's purpose: the trigger the order's state must allow (None: the turn sees
        # for itself), and what is done then.
        self._turns: dict[str, tuple[str | None, Turning]] = {
            "pay": ("pay", self._pay), "cancel": ("cancel", self._cancel),
            "request_cancel": ("request_cancel", self._request_cancel),
            "answer_cancel": ("accept_cancel", self._answer_cancel),
            "ship": ("ship_offline", self._ship), "ship_offline": ("ship_offline", self._ship),
            "not_received": ("open_dispute", self._not_received),
            "open_received": ("open_dispute", self._received),
            "confirm": ("confirm_receipt", self._confirm), "release": ("release_funds", self._release),
            "settle": (None, self._settle),
        }

    def plan(self, id: str) -> OrderPlan:
        known = self.open.get(id)
        if known is not None:
            return known.plan
        m = self.market
        return order_plan(m.seed, m.behaviour, number_of(id))

    # --- placing --------------------------------------------------------------------------

    def place(self, n: int) -> None:
        """Order ``n`` from an open store; a store whose penalty points refuse new orders
        (issue #20) refuses it, counted, and the buyer tries the next store."""
        m = self.market
        active = m.sellers.active
        if not active:
            m.count("orders.no_open_store")
            return
        plan = order_plan(m.seed, m.behaviour, n)
        r = rng(m.seed, "place", n)
        first = r.randrange(len(active))
        who = buyer(m.seed, m.name, r.randrange(self.buyers))
        for attempt in range(min(PLACE_TRIES, len(active))):
            store = m.sellers.plan(active[(first + attempt) % len(active)])
            if self._place(n, plan, store, who, r) != "refused by penalties":
                return

    def _place(self, n: int, plan: OrderPlan, store: SellerPlan, who: Buyer,
               r: random.Random) -> str:
        """Order ``n`` to ``store``: "placed", "refused", or "refused by penalties"."""
        m = self.market
        lines = list(basket(m.seed, store, n))
        coupon = None
        if plan.uses_coupon or plan.claims_only:
            found = m.coupons.voucher_for(who.id, store.id, n)
            if found is not None and plan.uses_coupon:
                adjusted = reach_threshold(lines, found[1], store)
                if adjusted is not None:
                    lines, coupon = adjusted, found[0]
        box = Parcel(**{k: Decimal(v) for k, v in parcel(lines).items()})
        quotes = [q for name in SANDBOX_CARRIERS
                  for q in m.carriers[name].quote(box, store.country, who.country)]
        payload: dict[str, Any] = {
            "seller": store.id,
            "lines": [{"sku": line.product.sku, "quantity": line.quantity,
                       "unit_price": str(line.product.price)} for line in lines],
            "currency": "USD",
            "consignee": {"name": who.name, "address": f"{n % 999 + 1} Market Street",
                          "country": who.country},
            "logistics": choose(quotes, r, m.policy.delivery_window_max.days),
        }
        if plan.sample:
            payload["sample"] = True
        if coupon is not None:
            payload["coupon"] = coupon
        actor = Actor("buyer", who.id)
        id = order_id(m.name, n)
        refusals: list[LifecycleError] = []
        placed = m.create(Create("order", id, actor, payload), refused=refusals.append)
        if placed is None and _by_penalties(refusals):
            m.count("penalties.orders_refused")
            return "refused by penalties"
        if placed is None:
            m.count(f"refused.order.{ORDER.creation.trigger}")
        if placed is None and coupon is not None:
            del payload["coupon"]  # the coupon was refused: buy without it
            m.count("orders.coupon_dropped")
            placed = m.create(Create("order", id, actor, payload))
        if placed is None:
            return "refused"
        self.open[id] = Open(store.id, plan)
        m.count("orders.placed")
        if coupon is not None:
            m.count("orders.with_coupon")
        return "placed"

    # --- reacting -------------------------------------------------------------------------

    def on_event(self, event: Event, at: datetime) -> None:
        id, dest = event["aggregate_id"], event["dest"]
        if dest in ORDER.terminal:
            self.open.pop(id, None)
            return
        plan = self.plan(id)
        for react in (self._after.get(event["trigger"]), self._entering.get(dest)):
            if react is not None:
                react(id, event, plan, at)

    def _placed(self, id: str, event: Event, plan: OrderPlan, at: datetime) -> None:
        if plan.fate == "cancels_unpaid":
            self.market.later("order", id, "cancel", event["seq"], 0.5, 20, at)
        elif plan.fate != "never_pays":
            self.market.later("order", id, "pay", event["seq"], 0.1, 12, at)

    def _paid(self, id: str, event: Event, plan: OrderPlan, at: datetime) -> None:
        m, fate, seq = self.market, plan.fate, event["seq"]
        if fate == "cancels_paid":
            m.later("order", id, "request_cancel", seq, 1, 20, at)
        if fate != "ships_late":
            handling = m.sellers.plan(self._store(id)).handling_days * 24
            low, high = (48, 60) if fate == "cancels_paid" else (4, max(8, handling * 0.7))
            m.later("order", id, "ship", seq, low, high, at)

    def _cancel_rejected(self, id: str, event: Event, plan: OrderPlan, at: datetime) -> None:
        self.market.later("order", id, "ship", event["seq"], 2, 24, at)

    def _pickup_missed(self, id: str, event: Event, plan: OrderPlan, at: datetime) -> None:
        self.market.later("order", id, "ship_offline", event["seq"], 1, 12, at)

    def _cancel_requested(self, id: str, event: Event, plan: OrderPlan, at: datetime) -> None:
        if plan.cancel_answer != "ignore":
            self.market.later("order", id, "answer_cancel", event["seq"], 1, 40, at)

    def _shipped(self, id: str, event: Event, plan: OrderPlan, at: datetime) -> None:
        if plan.fate == "disputes_not_received":
            wait = self.market.policy.not_received_after
            self.market.later("order", id, "not_received", event["seq"], 1, 72, at + wait)

    def _exception(self, id: str, event: Event, plan: OrderPlan, at: datetime) -> None:
        if not plan.disputes_lost:
            return
        kind = event["payload"].get("kind")
        if kind == "returned_to_sender":
            self.market.later("order", id, "not_received", event["seq"], 1, 24, at)
        elif kind == "lost":
            self.market.later("order", id, "not_received", event["seq"], 2, 48, at)

    def _delivered(self, id: str, event: Event, plan: OrderPlan, at: datetime) -> None:
        if plan.fate == "disputes_received":
            self.market.later("order", id, "open_received", event["seq"], 2, 96, at)
        elif plan.fate in ("confirms", "disputes_after_completion"):
            self.market.later("order", id, "confirm", event["seq"], 1, 108, at)

    def _dispute_closed(self, id: str, event: Event, plan: OrderPlan, at: datetime) -> None:
        if event["dest"] == "delivered" and \
                rng(self.market.seed, "confirm-after-dispute", id).random() < 0.5:
            self.market.later("order", id, "confirm", event["seq"], 1, 72, at)

    def _completed(self, id: str, event: Event, plan: OrderPlan, at: datetime) -> None:
        if plan.fate == "disputes_after_completion":
            self.market.later("order", id, "open_received", event["seq"], 12, 288, at)

    def _store(self, id: str) -> str:
        known = self.open.get(id)
        if known is None:
            store = str(self.market.get("order", id).data["seller"])
            known = self.open[id] = Open(store, self.plan(id))
        return known.store

    def resume(self, aggregate: Aggregate, history: list[HistoryEntry]) -> None:
        data = aggregate.data
        self.open[aggregate.id] = Open(data["seller"], self.plan(aggregate.id))
        if data.get("waybill"):
            self._track_again(aggregate)
        replay = [e for e in history if e.trigger == "tracking_exception"]
        shipped = [e for e in history if e.trigger in SHIPPED_BY]
        disputable = self.market.allows("order", aggregate.state, "open_dispute")
        if shipped and (disputable or aggregate.state == "in_dispute"):
            replay.append(shipped[-1])
        replay.append(next(e for e in reversed(history) if e.source != e.dest))
        for entry in replay:
            event = {"aggregate_id": aggregate.id, "trigger": entry.trigger, "source": entry.source,
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
        if aggregate is None or aggregate.state in ORDER.terminal:
            return None  # a turn that came too late: nobody acts on an order that ended
        known = self._turns.get(turn.purpose)
        if known is None:
            return None
        trigger, act = known
        if trigger is not None and not self.market.allows("order", aggregate.state, trigger):
            return None
        return act(aggregate, self.plan(turn.id), turn)

    def _shopper(self, order: Aggregate) -> Actor:
        return Actor("buyer", order.data["buyer"])

    def _seller(self, order: Aggregate) -> Actor:
        return Actor("seller", order.data["seller"])

    def _pay(self, order: Aggregate, plan: OrderPlan, turn: Turn) -> Decision:
        m = self.market

        def again(_error: object = None) -> None:
            m.again(turn, order.version, 1, 6)

        if plan.hosted and m.gateway is not None:
            if not m.checkout(order, turn.tries):
                again()
            return None
        return Act("pay", self._shopper(order), {}, failed=again)

    def _cancel(self, order: Aggregate, plan: OrderPlan, turn: Turn) -> Decision:
        return Act("cancel", self._shopper(order), {"note": "found it cheaper elsewhere"})

    def _request_cancel(self, order: Aggregate, plan: OrderPlan, turn: Turn) -> Decision:
        if "cancel_requested_at" in order.data:
            return None  # asked once already, and refused
        return Act("request_cancel", self._shopper(order), {"reason": "ordered the wrong size"})

    def _answer_cancel(self, order: Aggregate, plan: OrderPlan, turn: Turn) -> Decision:
        answer = "accept_cancel" if plan.cancel_answer == "accept" else "reject_cancel"
        return Act(answer, self._seller(order))

    def _confirm(self, order: Aggregate, plan: OrderPlan, turn: Turn) -> Decision:
        return Act("confirm_receipt", self._shopper(order))

    def _release(self, order: Aggregate, plan: OrderPlan, turn: Turn) -> Decision:
        return Act("release_funds", self.market.operator, {"note": "payout retried by an operator"})

    def _settle(self, order: Aggregate, plan: OrderPlan, turn: Turn) -> Decision:
        """A parked refund, by hand: the buyer asks to cancel an order the seller never
        shipped; the seller accepts a cancellation the timer could not carry out."""
        if self.market.allows("order", order.state, "request_cancel"):
            return Act("request_cancel", self._shopper(order),
                       {"reason": "the seller did not ship in time"})
        if self.market.allows("order", order.state, "accept_cancel"):
            return Act("accept_cancel", self._seller(order), {"note": "refund retried"})
        return None

    def _ship(self, order: Aggregate, plan: OrderPlan, turn: Turn) -> Decision:
        m, data = self.market, order.data
        store = m.staff.acting(data["seller"], "ship_orders")
        owner_instead = self._owner_instead(order, turn, store)
        if turn.purpose == "ship" and plan.online and turn.tries == 0:
            lines = self._lines(order)

            def offline_instead(_error: object) -> None:
                m.later("order", order.id, "ship_offline", order.version, 1, 6)

            def booked(moved: Aggregate) -> None:
                m.staff.acted(store, "ship_orders")
                m.expect_scans(moved.data["carrier"], moved.data["waybill"])

            return Act("book_pickup", store, {"checklist": CHECKLIST, "parcel": parcel(lines)},
                       then=booked, failed=offline_instead, refused=owner_instead("book_pickup"))
        carrier = data["logistics"]["carrier"]
        origin = m.sellers.plan(data["seller"]).country
        waybill = offline_waybill(carrier, m.config.run_serial(number_of(order.id)), origin)
        if plan.typo and turn.tries == 0:
            waybill = mistyped(carrier, waybill)

        def retype(_error: object) -> None:
            m.again(turn, order.version, 0.2, 3, purpose="ship_offline", limit=3)

        def hand_over(shipped: Aggregate) -> None:
            m.staff.acted(store, "ship_orders")
            m.carriers[carrier].register_shipment(
                shipped.data["waybill"], origin=origin, destination=data["consignee"]["country"],
                service=data["logistics"]["service"], at=m.now())
            m.expect_scans(carrier, shipped.data["waybill"])

        return Act("ship_offline", store, {"checklist": CHECKLIST, "carrier": carrier,
                                           "waybill": waybill}, then=hand_over, failed=retype,
                   refused=owner_instead("ship_offline"))

    def _owner_instead(self, order: Aggregate, turn: Turn,
                       store: Actor) -> Callable[[str], Callable[[LifecycleError], None]]:
        """What a refused shipment does: a staff member refused (disabled) leaves the work
        to the owner, in a while; any other refusal is counted as the market counts them."""
        m = self.market

        def for_trigger(trigger: str) -> Callable[[LifecycleError], None]:
            def refused(error: LifecycleError) -> None:
                if m.staff.refused(store, error):
                    m.later("order", order.id, turn.purpose, order.version, 0.2, 2,
                            tries=turn.tries)
                else:
                    m.count(f"refused.order.{trigger}")
            return refused

        return for_trigger

    def _lines(self, order: Aggregate) -> list[Line]:
        catalogue = {p.sku: p for p in self.market.sellers.plan(order.data["seller"]).catalogue}
        return [Line(catalogue[line["sku"]], line["quantity"]) for line in order.data["lines"]]

    def _not_received(self, order: Aggregate, plan: OrderPlan, turn: Turn) -> Decision:
        m, data = self.market, order.data
        if data.get("dispute_count"):
            return None  # one dispute per order in a run
        shipped_at = datetime.fromisoformat(data["shipped_at"])
        wait = m.policy.not_received_after
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
        return Act("open_dispute", self._shopper(order), {
            "type": "not_received", "reason": reason, "refund_amount": str(refundable),
            "evidence": ["tracking has not shown a delivery"]})

    def _received(self, order: Aggregate, plan: OrderPlan, turn: Turn) -> Decision:
        data = order.data
        if order.state not in RECEIVED or data.get("dispute_count"):
            return None
        r = rng(self.market.seed, "claim", order.id)
        refundable = Decimal(data["amount_paid"]) - Decimal(data["refunded"])
        amount = refundable if r.random() < 0.4 else share_of(refundable, r.uniform(0.3, 0.9))
        return Act("open_dispute", self._shopper(order), {
            "type": "received", "reason": r.choice(lifecycle.RECEIVED_REASONS), "refund_amount": str(amount),
            "return_goods": plan.asks_return, "evidence": ["photos of the goods received"]})



def _by_penalties(refusals: list[LifecycleError]) -> bool:
    """Whether a store's penalty points refused the order: the ``seller.active`` rule, asked
    of a store the buyer saw open (SPEC §12: 24 points refuse new orders)."""
    return any(isinstance(e, GuardFailed) and e.rule == "seller.active" for e in refusals)
