"""A store's staff (SPEC §12, issue #20): once a store opens, some owners create sub-accounts —
a shipper (``ship_orders``) and a dispute answerer (``answer_disputes``, later also
``view_money``) — who then ship the store's orders and answer its disputes as
``seller:STORE/NAME`` (`StaffBook`, asked by the order and dispute actors). An operator disables
some shippers; the shipper's next action is refused (counted), and the owner ships from then
on, until they enable the sub-account again (or remove it)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from lifecycle import Actor, Aggregate, Forbidden, HistoryEntry, LifecycleError
from lifecycle.simulation.vocabulary import Act, Create, Decision, Event, Marketplace, Turn
from lifecycle.simulation.world import AccountPlan, account_plan, number_of

# Each sub-account a store may create: its name and what it may do at first.
STAFF = {"shipper": ("ship_orders",), "care": ("answer_disputes",)}
# Which sub-account holds each permission the market's people need.
HOLDER = {"ship_orders": "shipper", "answer_disputes": "care"}

Turning = Callable[[Aggregate | None, str, AccountPlan], Decision]  # (sub-account, its id, plan)


def subaccount_id(store: str, name: str) -> str:
    """The id of a store's sub-account (what ``lifecycle.subaccount_id("acme/ana")`` gives)."""
    return f"{store}:{name}"


def store_of(subaccount: str) -> str:
    return subaccount.rpartition(":")[0]


def name_of(subaccount: str) -> str:
    return subaccount.rpartition(":")[2]


class StaffActors:
    """The owners who manage their staff, the operators who disable a sub-account, and the
    book of who acts for each store."""

    kind = "subaccount"

    def __init__(self, market: Marketplace):
        self.market = market
        self.staff: dict[str, set[str]] = {}  # store → the names of its live sub-accounts
        # Stores whose staff member was refused: the owner does the work until it is enabled.
        self.owner_acts: set[tuple[str, str]] = set()
        self._turns: dict[str, Turning] = {
            "create": self._create, "grant": self._grant, "disable": self._disable,
            "enable": self._enable, "remove": self._remove,
        }

    def plan(self, store: str) -> AccountPlan:
        m = self.market
        return account_plan(m.seed, m.behaviour, number_of(store))

    # --- the book -------------------------------------------------------------------------

    def acting(self, store: str, permission: str) -> Actor:
        name = HOLDER.get(permission)
        if name is None or name not in self.staff.get(store, ()) or \
                (store, name) in self.owner_acts:
            return Actor("seller", store)
        return Actor("seller", store, name)

    def refused(self, actor: Actor, error: LifecycleError) -> bool:
        if actor.sub is None or not isinstance(error, Forbidden):
            return False
        self.market.count("accounts.staff_refused")
        self.owner_acts.add((actor.id, actor.sub))
        return True

    def acted(self, actor: Actor, permission: str) -> None:
        if actor.sub is not None:
            self.market.count("accounts.staff_actions")
            self.market.count(f"accounts.staff_actions.{permission}")

    # --- reacting -------------------------------------------------------------------------

    def watch(self, event: Event, at: datetime) -> None:
        """A store opened: its owner hires staff, some days later."""
        if event["trigger"] != "complete_profile" or not self.plan(event["aggregate_id"]).staff:
            return
        store = event["aggregate_id"]
        for name in STAFF:
            self.market.later("subaccount", subaccount_id(store, name), "create",
                              event["seq"], 2, 48, at)

    def on_event(self, event: Event, at: datetime) -> None:
        id, trigger, dest, seq = event["aggregate_id"], event["trigger"], event["dest"], event["seq"]
        store, name = store_of(id), name_of(id)
        m, plan = self.market, self.plan(store)
        if dest == "removed":
            self.staff.get(store, set()).discard(name)
        elif trigger == "create":
            self.staff.setdefault(store, set()).add(name)
            if name == "care":
                m.later("subaccount", id, "grant", seq, 5 * 24, 15 * 24, at)
            elif plan.staff_disabled:
                m.later("subaccount", id, "disable", seq, 8 * 24, 20 * 24, at)
        elif trigger == "disable":
            m.later("subaccount", id, "enable" if plan.staff_enabled_again else "remove",
                    seq, 2 * 24, 6 * 24, at)
        elif trigger == "enable":
            self.owner_acts.discard((store, name))

    def resume(self, aggregate: Aggregate, history: list[HistoryEntry]) -> None:
        if aggregate.state != "removed":
            self.staff.setdefault(store_of(aggregate.id), set()).add(name_of(aggregate.id))

    # --- deciding -------------------------------------------------------------------------

    def decide(self, aggregate: Aggregate | None, turn: Turn) -> Decision:
        known = self._turns.get(turn.purpose)
        if known is None:
            return None
        return known(aggregate, turn.id, self.plan(store_of(turn.id)))

    def _create(self, subaccount: Aggregate | None, id: str, plan: AccountPlan) -> Decision:
        if subaccount is not None:
            return None
        return Create("subaccount", id, Actor("seller", store_of(id)),
                      {"permissions": list(STAFF[name_of(id)])})

    def _grant(self, subaccount: Aggregate | None, id: str, plan: AccountPlan) -> Decision:
        if subaccount is None or subaccount.state != "active":
            return None
        return Act("set_permissions", Actor("seller", store_of(id)),
                   {"permissions": [*STAFF[name_of(subaccount.id)], "view_money"]})

    def _disable(self, subaccount: Aggregate | None, id: str, plan: AccountPlan) -> Decision:
        if subaccount is None or subaccount.state != "active":
            return None
        return Act("disable", self.market.operator, {})

    def _enable(self, subaccount: Aggregate | None, id: str, plan: AccountPlan) -> Decision:
        if subaccount is None or subaccount.state != "disabled":
            return None
        return Act("enable", Actor("seller", store_of(id)), {})

    def _remove(self, subaccount: Aggregate | None, id: str, plan: AccountPlan) -> Decision:
        if subaccount is None or subaccount.state == "removed":
            return None
        return Act("remove", Actor("seller", store_of(id)), {})

