"""Sellers and the operators who review them (SPEC §3): register, documents, review (some
rejected, most resubmitting), the store fee (some never pay), the store profile; later some
are suspended and reinstated or closed, fees lapse and are renewed, and stores run coupons."""

from __future__ import annotations

import bisect
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from lifecycle import Actor, Aggregate, HistoryEntry
from lifecycle.simulation.market import Act, Create, Decision, Event, Turn
from lifecycle.simulation.world import SellerPlan, coupon_id, days, hours, number_of, rng, seller_plan

if TYPE_CHECKING:
    from lifecycle.simulation.market import Market

REASONS = ("business licence unreadable", "payment account not in the company's name",
           "brand authorisation missing for a branded category", "product list incomplete")
PLANS = ("basic", "standard", "premium")
CATEGORIES = ("toys", "apparel", "electronics", "home", "beauty", "tools")
# Each turn's purpose, and the state the seller must still be in for it to make sense.
NEEDS = {"submit": "registered", "resubmit": "authentication_rejected", "review": "under_review",
         "pay_fee": "authenticated", "profile": "fee_paid", "suspend": "active",
         "reinstate": "suspended", "renew": "fee_expired"}


class SellerActors:
    kind = "seller"

    def __init__(self, market: Market):
        self.market = market
        self.active: list[str] = []  # sorted: the stores that may receive orders now
        for n in range(market.config.sellers):
            r = rng(market.seed, "register", n)
            at = market.start + hours(r, 0, 18)
            market.schedule(at, "seller", self.plan_of(n).id, "register")

    def plan_of(self, n: int) -> SellerPlan:
        m = self.market
        return seller_plan(m.seed, m.behaviour, m.name, n)

    def plan(self, id: str) -> SellerPlan:
        return self.plan_of(number_of(id))

    # --- reacting -----------------------------------------------------------------------

    def on_event(self, event: Event, at: datetime) -> None:
        id, trigger, dest, seq = event["id"], event["trigger"], event["dest"], event["seq"]
        self._track_active(id, event["source"], dest)
        plan = self.plan(id)
        m = self.market
        if trigger == "register":
            m.later("seller", id, "submit", seq, 1, 12, at)
        elif dest == "under_review":
            m.later("seller", id, "review", seq, 2, 30, at)
        elif trigger == "reject":
            m.later("seller", id, "close" if plan.gives_up else "resubmit", seq, 12, 72, at)
        elif trigger == "approve" and not plan.never_pays_fee:
            m.later("seller", id, "pay_fee", seq, 1, 24, at)
        elif trigger == "pay_fee":
            m.later("seller", id, "profile", seq, 1, 12, at)
        elif trigger == "complete_profile":
            self._opened(plan, seq, at)
        elif trigger == "suspend":
            m.later("seller", id, "reinstate", seq, 24, 240, at)
        elif trigger == "fee_lapse" and plan.renews_fee:
            m.later("seller", id, "renew", seq, 12, 120, at)

    def _opened(self, plan: SellerPlan, seq: int, at: datetime) -> None:
        m = self.market
        if plan.runs_coupons:
            m.later("seller", plan.id, "coupon:1", seq, 12, 120, at)
        r = rng(m.seed, "seller", plan.id, "trouble", seq)
        if plan.suspended:  # violations show up in a new store's first weeks
            m.schedule(at + days(r, 3, 20), "seller", plan.id, "suspend")
        elif plan.closes:  # some time in the rest of the run
            room = max(m.arrivals_end - at - timedelta(days=5), timedelta(hours=1))
            m.schedule(at + timedelta(days=5) + room * r.random(), "seller", plan.id, "close")

    def _track_active(self, id: str, source: str | None, dest: str) -> None:
        if source == dest:
            return
        if dest == "active":
            bisect.insort(self.active, id)
        elif source == "active":
            index = bisect.bisect_left(self.active, id)
            if index < len(self.active) and self.active[index] == id:
                del self.active[index]

    def resume(self, aggregate: Aggregate, history: list[HistoryEntry]) -> None:
        if aggregate.state == "active":
            bisect.insort(self.active, aggregate.id)
        last = next(e for e in reversed(history) if e.source != e.dest)
        event = {"id": aggregate.id, "trigger": last.trigger, "source": aggregate.state,
                 "dest": aggregate.state, "seq": last.seq}
        self.on_event(event, last.at)

    # --- deciding -----------------------------------------------------------------------

    def decide(self, aggregate: Aggregate | None, turn: Turn) -> Decision:
        _, _, id, purpose, _tries = turn
        plan = self.plan(id)
        if aggregate is None:
            return self._register(plan) if purpose == "register" else None
        if purpose.startswith("coupon:"):
            return self._coupon(plan, aggregate, int(purpose.split(":")[1]))
        if purpose == "close":
            return Act("close", Actor("seller", id)) if aggregate.state != "closed" else None
        if NEEDS.get(purpose) != aggregate.state:
            return None
        me, operator = Actor("seller", id), self.market.operator
        if purpose == "submit":
            return Act("submit_documents", me, self._documents(plan, fixed=False))
        if purpose == "resubmit":
            return Act("resubmit", me, self._documents(plan, fixed=True))
        if purpose == "review":
            return self._review(plan, aggregate)
        if purpose == "pay_fee":
            return Act("pay_fee", me, self._fee(plan))
        if purpose == "profile":
            return Act("complete_profile", me, self._profile(plan))
        if purpose == "suspend":
            return Act("suspend", operator, {"reason": "counterfeit listings reported"})
        if purpose == "reinstate" and plan.reinstated:
            return Act("reinstate", operator, {"note": "appeal accepted"})
        if purpose == "reinstate":
            return Act("close", operator, {"note": "appeal refused"})
        return Act("renew_fee", me, {})

    def _register(self, plan: SellerPlan) -> Create:
        payload = {
            "company_name": f"Trading Co. {plan.n} Ltd.",
            "entity_type": "self_employed" if plan.self_employed else "company",
            "country": plan.country,
            "registration_number": f"REG-{plan.country}-{plan.n:06d}",
            "email": f"owner{plan.n}@store{plan.n}.example",
        }
        return Create("seller", plan.id, Actor("seller", plan.id), payload)

    def _documents(self, plan: SellerPlan, *, fixed: bool) -> dict[str, Any]:
        documents: dict[str, Any] = {
            "business_licence": f"licence-{plan.n:06d}",
            "payment_account_authentication": f"corp-account-{plan.n:06d}",
            "product_list": [p.sku for p in plan.catalogue],
            "payment_method": f"corp-account-{plan.n:06d}",
        }
        if plan.branded:
            documents["branded"] = True
            documents["brand_authorisation"] = f"brand-auth-{plan.n:06d}{'-b' if fixed else ''}"
        return documents

    def _review(self, plan: SellerPlan, seller: Aggregate) -> Act:
        operator = self.market.operator
        first_review = seller.version == 2  # registered (1), under review (2)
        if plan.rejected and first_review:
            reason = REASONS[plan.n % len(REASONS)]
            return Act("reject", operator, {"reasons": [reason]})
        return Act("approve", operator, {})

    def _fee(self, plan: SellerPlan) -> dict[str, Any]:
        return {"sales_plan": PLANS[plan.n % 3], "category": CATEGORIES[plan.n % len(CATEGORIES)]}

    def _profile(self, plan: SellerPlan) -> dict[str, Any]:
        return {"store_name": f"Store {plan.n}", "domain": plan.id,
                "handling_time_days": plan.handling_days}

    def _coupon(self, plan: SellerPlan, seller: Aggregate, k: int) -> Decision:
        if seller.state == "closed":
            return None
        return self.market.coupons.create(plan, coupon_id(plan.id, k))

    def next_coupon(self, seller: str, k: int, at: datetime) -> None:
        """A coupon of the store expired: the next one, while orders still arrive."""
        m = self.market
        if at + days(rng(m.seed, seller, "gap", k), 0.5, 3) < m.arrivals_end - timedelta(days=3):
            m.later("seller", seller, f"coupon:{k + 1}", k, 12, 72, at)
