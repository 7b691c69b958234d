"""Sellers and the operators who review them (SPEC §3): register, documents, review (some
rejected, most resubmitting), the store fee (some never pay), the store profile; later some
are suspended and reinstated or closed, fees lapse and are renewed, and stores run coupons."""

from __future__ import annotations

import bisect
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import lifecycle
from lifecycle import Actor, Aggregate, HistoryEntry
from lifecycle.simulation.vocabulary import Act, Create, Decision, Event, Marketplace, Turn
from lifecycle.simulation.world import SellerPlan, coupon_id, days, hours, number_of, rng, seller_plan

REASONS = ("business licence unreadable", "payment account not in the company's name",
           "brand authorisation missing for a branded category", "product list incomplete")
PLANS = ("basic", "standard", "premium")
CATEGORIES = ("toys", "apparel", "electronics", "home", "beauty", "tools")

Reaction = Callable[[str, int, SellerPlan, datetime], None]  # (id, seq, plan, at)
Turning = Callable[[SellerPlan, Aggregate], Decision]


class SellerActors:
    """The sellers of a run, and the operators who review, suspend and reinstate them."""

    kind = "seller"

    def __init__(self, market: Marketplace):
        self.market = market
        self.active: list[str] = []  # sorted: the stores that may receive orders now
        self._ended = lifecycle.definition("seller").terminal
        policy = market.policy
        self._handling = (policy.handling_time_min.days, policy.handling_time_max.days)
        # What each committed trigger (or, for ``under_review``, entered state) calls for.
        self._after: dict[str, Reaction] = {
            "register": self._registered, "reject": self._rejected, "approve": self._approved,
            "pay_fee": self._fee_paid, "complete_profile": self._opened,
            "suspend": self._suspended, "fee_lapse": self._fee_lapsed,
        }
        self._entering: dict[str, Reaction] = {"under_review": self._in_review}
        # Each turn's purpose: the trigger whose source state the seller must still be in for
        # it to make sense (from the machine), and what is done then.
        self._turns: dict[str, tuple[str, Turning]] = {
            "submit": ("submit_documents", self._submit), "resubmit": ("resubmit", self._resubmit),
            "review": ("approve", self._review), "pay_fee": ("pay_fee", self._pay_fee),
            "profile": ("complete_profile", self._profile), "suspend": ("suspend", self._suspend),
            "reinstate": ("reinstate", self._appeal), "renew": ("renew_fee", self._renew),
        }
        for n in range(market.config.sellers):
            r = rng(market.seed, "register", n)
            at = market.start + hours(r, 0, 18)
            market.schedule(at, "seller", self.plan_of(n).id, "register")

    def plan_of(self, n: int) -> SellerPlan:
        m = self.market
        return seller_plan(m.seed, m.behaviour, m.name, n, self._handling)

    def plan(self, id: str) -> SellerPlan:
        return self.plan_of(number_of(id))

    # --- reacting -----------------------------------------------------------------------

    def on_event(self, event: Event, at: datetime) -> None:
        id, trigger, dest, seq = event["aggregate_id"], event["trigger"], event["dest"], event["seq"]
        self._track_active(id, event["source"], dest)
        react = self._after.get(trigger) or self._entering.get(dest)
        if react is not None:
            react(id, seq, self.plan(id), at)

    def _registered(self, id: str, seq: int, plan: SellerPlan, at: datetime) -> None:
        self.market.later("seller", id, "submit", seq, 1, 12, at)

    def _in_review(self, id: str, seq: int, plan: SellerPlan, at: datetime) -> None:
        self.market.later("seller", id, "review", seq, 2, 30, at)

    def _rejected(self, id: str, seq: int, plan: SellerPlan, at: datetime) -> None:
        self.market.later("seller", id, "close" if plan.gives_up else "resubmit", seq, 12, 72, at)

    def _approved(self, id: str, seq: int, plan: SellerPlan, at: datetime) -> None:
        if not plan.never_pays_fee:
            self.market.later("seller", id, "pay_fee", seq, 1, 24, at)

    def _fee_paid(self, id: str, seq: int, plan: SellerPlan, at: datetime) -> None:
        self.market.later("seller", id, "profile", seq, 1, 12, at)

    def _opened(self, id: str, seq: int, plan: SellerPlan, at: datetime) -> None:
        m = self.market
        if plan.runs_coupons:
            m.later("seller", plan.id, "coupon:1", seq, 12, 120, at)
        r = rng(m.seed, "seller", plan.id, "trouble", seq)
        if plan.suspended:  # violations show up in a new store's first weeks
            m.schedule(at + days(r, 3, 20), "seller", plan.id, "suspend")
        elif plan.closes:  # some time in the rest of the run
            room = max(m.arrivals_end - at - timedelta(days=5), timedelta(hours=1))
            m.schedule(at + timedelta(days=5) + room * r.random(), "seller", plan.id, "close")

    def _suspended(self, id: str, seq: int, plan: SellerPlan, at: datetime) -> None:
        self.market.later("seller", id, "reinstate", seq, 24, 240, at)

    def _fee_lapsed(self, id: str, seq: int, plan: SellerPlan, at: datetime) -> None:
        if plan.renews_fee:
            self.market.later("seller", id, "renew", seq, 12, 120, at)

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
        event = {"aggregate_id": aggregate.id, "trigger": last.trigger, "source": aggregate.state,
                 "dest": aggregate.state, "seq": last.seq}
        self.on_event(event, last.at)

    # --- deciding -----------------------------------------------------------------------

    def decide(self, aggregate: Aggregate | None, turn: Turn) -> Decision:
        id, purpose = turn.id, turn.purpose
        plan = self.plan(id)
        if aggregate is None:
            return self._register(plan) if purpose == "register" else None
        if purpose.startswith("coupon:"):
            return self._coupon(plan, aggregate, int(purpose.split(":")[1]))
        if purpose == "close":
            closable = self.market.allows("seller", aggregate.state, "close")
            return Act("close", Actor("seller", id)) if closable else None
        known = self._turns.get(purpose)  # None: registered before a restart
        if known is None or not self.market.allows("seller", aggregate.state, known[0]):
            return None  # the seller moved on meanwhile
        return known[1](plan, aggregate)

    def _register(self, plan: SellerPlan) -> Create:
        payload = {
            "company_name": f"Trading Co. {plan.n} Ltd.",
            "entity_type": "self_employed" if plan.self_employed else "company",
            "country": plan.country,
            "registration_number": f"REG-{plan.country}-{plan.n:06d}",
            "email": f"owner{plan.n}@store{plan.n}.example",
        }
        return Create("seller", plan.id, Actor("seller", plan.id), payload)

    def _submit(self, plan: SellerPlan, seller: Aggregate) -> Act:
        return Act("submit_documents", Actor("seller", plan.id), self._documents(plan, fixed=False))

    def _resubmit(self, plan: SellerPlan, seller: Aggregate) -> Act:
        return Act("resubmit", Actor("seller", plan.id), self._documents(plan, fixed=True))

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

    def _pay_fee(self, plan: SellerPlan, seller: Aggregate) -> Act:
        return Act("pay_fee", Actor("seller", plan.id),
                   {"sales_plan": PLANS[plan.n % 3], "category": CATEGORIES[plan.n % len(CATEGORIES)]})

    def _profile(self, plan: SellerPlan, seller: Aggregate) -> Act:
        return Act("complete_profile", Actor("seller", plan.id),
                   {"store_name": f"Store {plan.n}", "domain": plan.id,
                    "handling_time_days": plan.handling_days})

    def _suspend(self, plan: SellerPlan, seller: Aggregate) -> Act:
        return Act("suspend", self.market.operator, {"reason": "counterfeit listings reported"})

    def _appeal(self, plan: SellerPlan, seller: Aggregate) -> Act:
        if plan.reinstated:
            return Act("reinstate", self.market.operator, {"note": "appeal accepted"})
        return Act("close", self.market.operator, {"note": "appeal refused"})

    def _renew(self, plan: SellerPlan, seller: Aggregate) -> Act:
        return Act("renew_fee", Actor("seller", plan.id), {})

    def _coupon(self, plan: SellerPlan, seller: Aggregate, k: int) -> Decision:
        if seller.state in self._ended:
            return None  # a closed store runs no more coupons
        return self.market.coupons.terms(plan, coupon_id(plan.id, k))

    def next_coupon(self, seller: str, k: int, at: datetime) -> None:
        """A coupon of the store expired: the next one, while orders still arrive."""
        m = self.market
        if at + days(rng(m.seed, seller, "gap", k), 0.5, 3) < m.arrivals_end - timedelta(days=3):
            m.later("seller", seller, f"coupon:{k + 1}", k, 12, 72, at)
