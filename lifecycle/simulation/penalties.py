"""Violations and penalties (SPEC §12, issue #20): operators record violations against some
open stores, one after another, enough for the store's level (`world.VIOLATIONS`): below every
threshold, 12 points (promotion restricted), 24 (new orders refused: buyers' orders to the
store are refused, `orders`), 48 (the store suspended through the onboarding machine). Sellers
appeal some within the window; operators uphold or overturn them; the others lapse into
``final``; the points expire after the policy's period (``Config.violation_points_period_days``
shortens it). Some stores with minor violations leave once those expired, and an operator then
closes their standing."""

from __future__ import annotations

from datetime import datetime, timedelta

from lifecycle import Actor, Aggregate, HistoryEntry, NotFound
from lifecycle.simulation.vocabulary import Act, Create, Decision, Event, Marketplace, Turn
from lifecycle.simulation.world import AccountPlan, account_plan, days, number_of, rng

ENDED = ("overturned", "expired")
CLOSE_TRIES = 4  # looks at a closed store's standing before it gives up closing it


def violation_id(store: str, k: int) -> str:
    return f"{store}-v{k}"


def store_of(violation: str) -> str:
    return violation.rsplit("-v", 1)[0]


def index_of(violation: str) -> int:
    return int(violation.rsplit("-v", 1)[1])


class PenaltyActors:
    """The operators who record violations and decide appeals, and the sellers who appeal."""

    kind = "violation"

    def __init__(self, market: Marketplace):
        self.market = market

    def plan(self, store: str) -> AccountPlan:
        m = self.market
        return account_plan(m.seed, m.behaviour, number_of(store))

    # --- reacting -------------------------------------------------------------------------

    def watch(self, event: Event, at: datetime) -> None:
        """A store opened (its violations to come), was suspended (by penalties?) or closed."""
        m, store, trigger = self.market, event["aggregate_id"], event["trigger"]
        if trigger == "complete_profile":
            r = rng(m.seed, "violations", store)
            when = at + days(r, 3, 10)
            for k in range(len(self.plan(store).violations)):
                m.schedule(when, "violation", violation_id(store, k), "record")
                when += days(r, 0.5, 2)
        elif trigger == "suspend" and "penalty points" in str(event["payload"].get("reason")):
            m.count("penalties.stores_suspended")
        elif event["dest"] == "closed" and event["source"] != "closed":
            m.later("standing", store, "close", event["seq"], 12, 48, at)

    def on_event(self, event: Event, at: datetime) -> None:
        if event["kind"] != "violation":
            return  # a standing follows its violations
        m, id, trigger, seq = self.market, event["aggregate_id"], event["trigger"], event["seq"]
        store = store_of(id)
        plan = self.plan(store)
        if trigger == "record":
            m.later("points_account", store, f"penalise:{index_of(id)}", seq, 1, 6, at)
            if plan.appeals[index_of(id)] != "none":
                m.later("violation", id, "appeal", seq, 12, 5 * 24, at)
        elif trigger == "appeal":
            m.later("violation", id, "decide", seq, 12, 4 * 24, at)
        if trigger in ("expire", "overturn") and plan.leaves and self._all_ended(store, plan):
            m.schedule(at + timedelta(days=1), "seller", store, "close")

    def _all_ended(self, store: str, plan: AccountPlan) -> bool:
        for k in range(len(plan.violations)):
            try:
                if self.market.get("violation", violation_id(store, k)).state not in ENDED:
                    return False
            except NotFound:
                return False
        return True

    def resume(self, aggregate: Aggregate, history: list[HistoryEntry]) -> None:
        if aggregate.kind == "violation" and aggregate.state == "appealed":
            self.market.later("violation", aggregate.id, "decide", aggregate.version, 1, 24)

    # --- deciding -------------------------------------------------------------------------

    def decide(self, aggregate: Aggregate | None, turn: Turn) -> Decision:
        if turn.kind == "standing":
            return self._close_standing(aggregate, turn)
        store, m = store_of(turn.id), self.market
        plan = self.plan(store)
        k = index_of(turn.id)
        if turn.purpose == "record":
            if aggregate is not None or k >= len(plan.violations):
                return None
            type_, points = plan.violations[k]
            return Create("violation", turn.id, m.operator,
                          {"seller": store, "type": type_, "points": points,
                           "note": f"{type_.replace('_', ' ')} found in a listing review"})
        if aggregate is None:
            return None
        if turn.purpose == "appeal" and aggregate.state == "recorded":
            return Act("appeal", Actor("seller", store), {"reason": "the listing was corrected"})
        if turn.purpose == "decide" and aggregate.state == "appealed":
            if plan.appeals[k] == "overturned":
                return Act("overturn", m.operator, {"reason": "the seller's evidence holds"})
            return Act("uphold", m.operator, {"note": "the violation stands"})
        return None

    def _close_standing(self, standing: Aggregate | None, turn: Turn) -> Decision:
        """An operator closes the standing of a store that closed, once nothing is active
        (looking again a few times while its violations run out)."""
        if standing is None or standing.state == "closed":
            return None
        if standing.state != "clear" or standing.data.get("violations"):
            if turn.tries < CLOSE_TRIES:
                self.market.later("standing", standing.id, "close", standing.version, 5 * 24,
                                  10 * 24, tries=turn.tries + 1)
            return None
        return Act("close", self.market.operator, {})
