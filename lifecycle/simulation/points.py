"""The points centre (SPEC §12, issue #20): a store's points accrue by themselves as its
orders' funds are released (the points account's reaction to ``order.release_funds``, some
five weeks after an order is paid); some stores redeem a catalogue item two months after
opening (some first ask for more than the balance covers, and are refused: counted as
``points.redemptions_refused``); operators correct some stores' points, take penalty points
with each violation (waiting for the store's first released order when it has none yet), and
close the account of a store that closed, once its points are taken back to zero."""

from __future__ import annotations

from datetime import datetime

from lifecycle import Actor, Aggregate, HistoryEntry, LifecycleError
from lifecycle.simulation.vocabulary import Act, Decision, Event, Marketplace, Turn
from lifecycle.simulation.world import AccountPlan, account_plan, number_of

MODEST, AMBITIOUS = "quotation_rights", "business_opportunity_package"
REDEEM_TRIES = 3
PENALTY_WAITS = 8  # times a penalty waits a week or so for the store's first released order


class PointsActors:
    """Sellers redeeming their points, and the operators who correct, penalise and close."""

    kind = "points_account"

    def __init__(self, market: Marketplace):
        self.market = market

    def plan(self, store: str) -> AccountPlan:
        m = self.market
        return account_plan(m.seed, m.behaviour, number_of(store))

    # --- reacting -------------------------------------------------------------------------

    def watch(self, event: Event, at: datetime) -> None:
        m, store, seq = self.market, event["aggregate_id"], event["seq"]
        if event["trigger"] == "complete_profile":
            plan = self.plan(store)
            if plan.redeems:
                m.later("points_account", store, "redeem", seq, 60 * 24, 80 * 24, at)
            if plan.corrected:
                m.later("points_account", store, "correct", seq, 45 * 24, 60 * 24, at)
        elif event["dest"] == "closed" and event["source"] != "closed":
            m.later("points_account", store, "close", seq, 24, 72, at)

    def on_event(self, event: Event, at: datetime) -> None:
        if event["trigger"] == "redeem":
            self.market.count("points.redeemed")

    def resume(self, aggregate: Aggregate, history: list[HistoryEntry]) -> None:
        return None

    # --- deciding -------------------------------------------------------------------------

    def decide(self, account: Aggregate | None, turn: Turn) -> Decision:
        m, purpose = self.market, turn.purpose
        if account is None:
            # No order of the store released yet: a violation's penalty waits for its points.
            if purpose.startswith("penalise:") and turn.tries < PENALTY_WAITS:
                m.later("points_account", turn.id, purpose, 0, 7 * 24, 10 * 24,
                        tries=turn.tries + 1)
            return None
        if account.state != "open":
            return None  # closed
        if purpose.startswith("penalise:"):
            k = int(purpose.partition(":")[2])
            points = self.plan(account.id).violations[k][1]
            return Act("penalise", m.operator, {"points": points, "reason": "violation penalty",
                                                "reference": f"{account.id}-v{k}"})
        if purpose == "redeem":
            return self._redeem(account, turn)
        if purpose == "correct":
            return Act("correct", m.operator, {"points": 15, "reason": "a quotation's points "
                                                                      "were missing"})
        if purpose == "close":
            return self._close(account, turn)
        return None

    def _redeem(self, account: Aggregate, turn: Turn) -> Decision:
        m = self.market
        item = AMBITIOUS if turn.tries == 0 and self.plan(account.id).redeems_too_much else MODEST

        def refused(error: LifecycleError) -> None:
            m.count("points.redemptions_refused")
            if turn.tries + 1 < REDEEM_TRIES:
                m.later("points_account", account.id, "redeem", account.version, 5 * 24,
                        10 * 24, tries=turn.tries + 1)

        return Act("redeem", Actor("seller", account.id), {"item": item}, refused=refused)

    def _close(self, account: Aggregate, turn: Turn) -> Decision:
        """A closed store's points are taken back, then its account closed."""
        m, balance = self.market, account.data["balance"]
        if balance == 0:
            return Act("close", m.operator, {"reason": "the store closed"})

        def then_close(moved: Aggregate) -> None:
            m.later("points_account", account.id, "close", moved.version, 1, 6)

        return Act("correct", m.operator, {"points": -balance, "reason": "the store closed"},
                   then=then_close)
