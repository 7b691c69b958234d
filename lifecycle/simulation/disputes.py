"""Disputes (SPEC §5) and everyone in them: the seller accepts the claim, counters, escalates or
stays silent; the buyer accepts or rejects offers, escalates, withdraws, ships goods back; the
operator arbitrates (refund, no refund, return and refund); the timers do the rest.

Which path a dispute takes comes from its order's plan, so a run spreads its disputes over all
of them: accepted, seller silent, offer accepted, offer rejected then escalated, offer rejected
then a better one accepted, offer unanswered until arbitration, escalated by the seller, withdrawn;
returns asked for by claims, offers and arbitrations, shipped back or not."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from lifecycle import Actor, Aggregate, HistoryEntry
from lifecycle.adapters.waybills import s10_number
from lifecycle.simulation.market import Act, Decision, Event, Later, Turn
from lifecycle.simulation.world import OrderPlan, buyer, number_of, rng, share_of

if TYPE_CHECKING:
    from lifecycle.simulation.market import Market

OFFER_PATHS = ("offer_accepted", "offer_rejected_escalated", "offer_rejected_recountered",
               "offer_ignored", "seller_escalates")
BUYER_ANSWERS = ("offer_accepted", "offer_rejected_escalated", "offer_rejected_recountered")


def order_of(dispute: str) -> str:
    return dispute.rsplit("-d", 1)[0]


class DisputeActors:
    kind = "dispute"

    def __init__(self, market: Market):
        self.market = market

    def plan(self, id: str) -> OrderPlan:
        return self.market.orders.plan(order_of(id))

    # --- reacting -------------------------------------------------------------------------

    def on_event(self, event: Event, at: datetime) -> None:
        id, trigger, source, dest, seq = (event["id"], event["trigger"], event["source"],
                                          event["dest"], event["seq"])
        path, m = self.plan(id).dispute_path, self.market
        if trigger == "open":
            if path == "accept_claim" or path in OFFER_PATHS:
                m.later("dispute", id, "seller", seq, 6, 96, at)
            elif path == "withdraws":
                m.later("dispute", id, "buyer", seq, 2, 72, at)
        elif trigger == "counter_offer":
            if path == "seller_escalates":
                m.later("dispute", id, "seller", seq, 24, 96, at)
            elif path in BUYER_ANSWERS:
                m.later("dispute", id, "buyer", seq, 4, 72, at)
        elif trigger == "reject_offer":
            if path == "offer_rejected_escalated":
                m.later("dispute", id, "buyer", seq, 2, 24, at)
            elif path == "offer_rejected_recountered":
                m.later("dispute", id, "seller", seq, 4, 72, at)
        elif dest == "under_arbitration" and source != dest:
            m.later("dispute", id, "operator", seq, 12, 72, at)
        elif dest == "awaiting_return" and self.plan(id).ships_return:
            m.later("dispute", id, "buyer", seq, 12, 168, at)
        elif dest == "return_in_transit":
            m.later("dispute", id, "seller", seq, 72, 240, at)

    def resume(self, aggregate: Aggregate, history: list[HistoryEntry]) -> None:
        last = history[-1]
        event = {"id": aggregate.id, "trigger": last.trigger, "source": last.source,
                 "dest": last.dest, "seq": last.seq}
        self.on_event(event, last.at)

    # --- deciding -------------------------------------------------------------------------

    def decide(self, aggregate: Aggregate | None, turn: Turn) -> Decision:
        if aggregate is None:
            return None
        purpose, state = turn[3], aggregate.state
        if state == "awaiting_seller" and purpose == "settle":  # the timer's refund kept failing
            return Act("accept_claim", Actor("seller", aggregate.data["seller"]))
        if state == "awaiting_seller":
            return self._answer_claim(aggregate, purpose)
        if state == "negotiating":
            return self._negotiate(aggregate, purpose)
        if state == "under_arbitration" and purpose == "operator":
            return self._arbitrate(aggregate)
        if state == "awaiting_return" and purpose == "buyer":
            return self._ship_return(aggregate)
        if state == "return_in_transit" and purpose == "seller":
            by_operator = rng(self.market.seed, "return-received", aggregate.id).random() < 0.2
            actor = self.market.operator if by_operator else Actor("seller", aggregate.data["seller"])
            return Act("confirm_return_received", actor, {"note": "goods back in the warehouse"})
        return None

    def _answer_claim(self, dispute: Aggregate, purpose: str) -> Decision:
        data, path = dispute.data, self.plan(dispute.id).dispute_path
        if purpose == "buyer" and path == "withdraws":
            return Act("withdraw", Actor("buyer", data["buyer"]), {"note": "the parcel turned up"})
        if purpose != "seller":
            return None
        if path == "accept_claim":
            return Act("accept_claim", Actor("seller", data["seller"]))
        return self._offer(dispute, first=True)

    def _offer(self, dispute: Aggregate, *, first: bool) -> Act:
        data, plan = dispute.data, self.plan(dispute.id)
        r = rng(self.market.seed, "offer", dispute.id, dispute.version)
        requested = Decimal(data["refund_amount"])
        share = r.uniform(0.3, 0.7) if first else r.uniform(0.75, 0.95)
        offer: dict[str, object] = {"refund_amount": str(share_of(requested, share)),
                                    "note": "partial refund" if first else "a better offer"}
        if first and plan.offers_return and data["type"] == "received":
            offer["return_goods"] = True
        return Act("counter_offer", Actor("seller", data["seller"]), offer)

    def _negotiate(self, dispute: Aggregate, purpose: str) -> Decision:
        data, path = dispute.data, self.plan(dispute.id).dispute_path
        offer = data.get("offer") or {}
        rejected = bool(offer.get("rejected"))
        shopper, store = Actor("buyer", data["buyer"]), Actor("seller", data["seller"])
        if purpose == "seller":
            if path == "seller_escalates":
                return Act("escalate", store, {"note": "the buyer will not agree"})
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
            allowed = datetime.fromisoformat(data["opened_at"]) + self.market.engine.policy.escalate_from
            if self.market.now() < allowed:
                return Later(allowed + timedelta(hours=1))
            return Act("escalate", shopper, {"note": "asking the platform to decide"})
        if path == "offer_rejected_recountered" and not rejected:
            if len(data.get("offers", [])) == 1:
                return Act("reject_offer", shopper, {"note": "not enough"})
            return Act("accept_offer", shopper)
        return None

    def _arbitrate(self, dispute: Aggregate) -> Act:
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

    def _ship_return(self, dispute: Aggregate) -> Act:
        m = self.market
        who = buyer(m.seed, m.name, number_of(dispute.data["buyer"]))
        waybill = s10_number("RZ", number_of(order_of(dispute.id)) % 10**8, who.country)
        return Act("ship_return", Actor("buyer", dispute.data["buyer"]),
                   {"carrier": "postal", "waybill": waybill})
