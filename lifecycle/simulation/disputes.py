"""Disputes (SPEC §5) and everyone in them: the seller accepts the claim, counters, escalates or
stays silent; the buyer accepts or rejects offers, escalates, withdraws, ships goods back; the
operator arbitrates (refund, no refund, return and refund); the timers do the rest.

Which path a dispute takes comes from its order's plan, so a run spreads its disputes over all
of them: accepted, seller silent, offer accepted, offer rejected then escalated, offer rejected
then a better one accepted, offer unanswered until arbitration, escalated by the seller, withdrawn;
returns asked for by claims, offers and arbitrations, shipped back or not."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal

import lifecycle
from lifecycle import Actor, Aggregate, HistoryEntry
from lifecycle.adapters import s10_number
from lifecycle.simulation.vocabulary import Act, Decision, Event, Later, Marketplace, Turn
from lifecycle.simulation.world import OrderPlan, buyer, number_of, rng, share_of

OFFER_PATHS = ("offer_accepted", "offer_rejected_escalated", "offer_rejected_recountered",
               "offer_ignored", "seller_escalates")
BUYER_ANSWERS = ("offer_accepted", "offer_rejected_escalated", "offer_rejected_recountered")

Reaction = Callable[[str, Event, OrderPlan, datetime], None]  # (id, event, the order's plan, at)
Turning = Callable[[Aggregate, str], Decision]  # (dispute, the turn's purpose)


class DisputeActors:
    """Both sides of each dispute, and the operators who arbitrate."""

    kind = "dispute"

    def __init__(self, market: Marketplace):
        self.market = market
        self._terminal = lifecycle.definition("dispute").terminal
        self._orders: dict[str, str] = {}  # open dispute → its order
        self._after: dict[str, Reaction] = {
            "open": self._opened, "counter_offer": self._offered, "reject_offer": self._rejected,
        }
        self._entering: dict[str, Reaction] = {
            "under_arbitration": self._escalated, "awaiting_return": self._return_asked,
            "return_in_transit": self._return_shipped,
        }
        # Who acts in each state, and how.
        self._in: dict[str, Turning] = {
            "awaiting_seller": self._answer_claim, "negotiating": self._negotiate,
            "under_arbitration": self._arbitrate, "awaiting_return": self._ship_return,
            "return_in_transit": self._receive_return,
        }

    def order_of(self, dispute: str) -> str:
        """The order a dispute is about."""
        known = self._orders.get(dispute)
        return known if known is not None else str(self.market.get("dispute", dispute).data["order"])

    def plan(self, id: str) -> OrderPlan:
        return self.market.orders.plan(self.order_of(id))

    # --- reacting -------------------------------------------------------------------------

    def on_event(self, event: Event, at: datetime) -> None:
        id, trigger, dest = event["aggregate_id"], event["trigger"], event["dest"]
        if trigger == "open":
            self._orders[id] = event["payload"]["order"]
        react = self._after.get(trigger) or self._entering.get(dest)
        if react is not None:
            react(id, event, self.plan(id), at)
        if dest in self._terminal:
            self._orders.pop(id, None)

    def _opened(self, id: str, event: Event, plan: OrderPlan, at: datetime) -> None:
        path, seq = plan.dispute_path, event["seq"]
        if path == "accept_claim" or path in OFFER_PATHS:
            self.market.later("dispute", id, "seller", seq, 6, 96, at)
        elif path == "withdraws":
            self.market.later("dispute", id, "buyer", seq, 2, 72, at)

    def _offered(self, id: str, event: Event, plan: OrderPlan, at: datetime) -> None:
        path, seq = plan.dispute_path, event["seq"]
        if path == "seller_escalates":
            self.market.later("dispute", id, "seller", seq, 24, 96, at)
        elif path in BUYER_ANSWERS:
            self.market.later("dispute", id, "buyer", seq, 4, 72, at)

    def _rejected(self, id: str, event: Event, plan: OrderPlan, at: datetime) -> None:
        path, seq = plan.dispute_path, event["seq"]
        if path == "offer_rejected_escalated":
            self.market.later("dispute", id, "buyer", seq, 2, 24, at)
        elif path == "offer_rejected_recountered":
            self.market.later("dispute", id, "seller", seq, 4, 72, at)

    def _escalated(self, id: str, event: Event, plan: OrderPlan, at: datetime) -> None:
        if event["source"] != event["dest"]:
            self.market.later("dispute", id, "operator", event["seq"], 12, 72, at)

    def _return_asked(self, id: str, event: Event, plan: OrderPlan, at: datetime) -> None:
        if plan.ships_return:
            self.market.later("dispute", id, "buyer", event["seq"], 12, 168, at)

    def _return_shipped(self, id: str, event: Event, plan: OrderPlan, at: datetime) -> None:
        self.market.later("dispute", id, "seller", event["seq"], 72, 240, at)

    def resume(self, aggregate: Aggregate, history: list[HistoryEntry]) -> None:
        self._orders[aggregate.id] = aggregate.data["order"]
        last = history[-1]
        event = {"aggregate_id": aggregate.id, "trigger": last.trigger, "source": last.source,
                 "dest": last.dest, "seq": last.seq, "payload": last.payload}
        self.on_event(event, last.at)

    # --- deciding -------------------------------------------------------------------------

    def decide(self, aggregate: Aggregate | None, turn: Turn) -> Decision:
        if aggregate is None:
            return None
        act = self._in.get(aggregate.state)
        return act(aggregate, turn.purpose) if act is not None else None

    def _answer_claim(self, dispute: Aggregate, purpose: str) -> Decision:
        data, path = dispute.data, self.plan(dispute.id).dispute_path
        if purpose == "settle":  # the timer's refund kept failing
            return Act("accept_claim", Actor("seller", data["seller"]))
        if purpose == "buyer" and path == "withdraws":
            return Act("withdraw", Actor("buyer", data["buyer"]), {"note": "the parcel turned up"})
        if purpose != "seller":
            return None
        if path == "accept_claim":
            return self._answer(dispute, "accept_claim", {}, purpose)
        return self._offer(dispute, first=True)

    def _answer(self, dispute: Aggregate, trigger: str, payload: Mapping[str, object],
                purpose: str) -> Act:
        """The store answers: its dispute answerer if it has one (`StaffBook`), else the
        owner; a disabled answerer is refused, and the owner answers a while later."""
        m = self.market
        actor = m.staff.acting(dispute.data["seller"], "answer_disputes")

        def refused(error: lifecycle.LifecycleError) -> None:
            if m.staff.refused(actor, error):
                m.later("dispute", dispute.id, purpose, dispute.version, 0.2, 2)
            else:
                m.count(f"refused.dispute.{trigger}")

        return Act(trigger, actor, payload, then=lambda _: m.staff.acted(actor, "answer_disputes"),
                   refused=refused)

    def _offer(self, dispute: Aggregate, *, first: bool) -> Act:
        data, plan = dispute.data, self.plan(dispute.id)
        r = rng(self.market.seed, "offer", dispute.id, dispute.version)
        requested = Decimal(data["refund_amount"])
        share = r.uniform(0.3, 0.7) if first else r.uniform(0.75, 0.95)
        offer: dict[str, object] = {"refund_amount": str(share_of(requested, share)),
                                    "note": "partial refund" if first else "a better offer"}
        if first and plan.offers_return and data["type"] == "received":
            offer["return_goods"] = True
        return self._answer(dispute, "counter_offer", offer, "seller")

    def _negotiate(self, dispute: Aggregate, purpose: str) -> Decision:
        data, path = dispute.data, self.plan(dispute.id).dispute_path
        offer = data.get("offer") or {}
        rejected = bool(offer.get("rejected"))
        shopper = Actor("buyer", data["buyer"])
        if purpose == "seller":
            if path == "seller_escalates":
                return self._answer(dispute, "escalate", {"note": "the buyer will not agree"},
                                    purpose)
            if path == "offer_rejected_recountered" and rejected:
                return self._offer(dispute, first=False)
            return None
        if purpose != "buyer" or path not in BUYER_ANSWERS:
            return None
        if path == "offer_accepted" and not rejected:
            return Act("accept_offer", shopper)
        if path == "offer_rejected_escalated":
            if not rejected:
                return Act("reject_offer", shopper, {"note": "not enough"})
            allowed = datetime.fromisoformat(data["opened_at"]) + self.market.policy.escalate_from
            if self.market.now() < allowed:
                return Later(allowed + timedelta(hours=1))
            return Act("escalate", shopper, {"note": "asking the platform to decide"})
        if path == "offer_rejected_recountered" and not rejected:
            if len(data.get("offers", [])) == 1:
                return Act("reject_offer", shopper, {"note": "not enough"})
            return Act("accept_offer", shopper)
        return None

    def _arbitrate(self, dispute: Aggregate, purpose: str) -> Decision:
        if purpose != "operator":
            return None
        data, plan = dispute.data, self.plan(dispute.id)
        requested = Decimal(data["refund_amount"])
        r = rng(self.market.seed, "arbitration", dispute.id)
        if plan.decision == "no_refund":
            decision: dict[str, object] = {"decision": "no_refund"}
        elif plan.decision == "return_and_refund" and data["type"] == "received":
            decision = {"decision": "return_and_refund", "refund_amount": str(requested)}
        else:
            amount = requested if r.random() < 0.6 else share_of(requested, 0.5)
            decision = {"decision": "refund", "refund_amount": str(amount)}
        decision["note"] = "decided on the evidence"
        return Act("arbitrate", self.market.operator, decision)

    def _ship_return(self, dispute: Aggregate, purpose: str) -> Decision:
        if purpose != "buyer":
            return None
        m = self.market
        who = buyer(m.seed, m.name, number_of(dispute.data["buyer"]))
        waybill = s10_number("RZ", number_of(dispute.data["order"]) % 10**8, who.country)
        return Act("ship_return", Actor("buyer", dispute.data["buyer"]),
                   {"carrier": "postal", "waybill": waybill})

    def _receive_return(self, dispute: Aggregate, purpose: str) -> Decision:
        if purpose != "seller":
            return None
        by_operator = rng(self.market.seed, "return-received", dispute.id).random() < 0.2
        note = {"note": "goods back in the warehouse"}
        if by_operator:
            return Act("confirm_return_received", self.market.operator, note)
        return self._answer(dispute, "confirm_return_received", note, purpose)
