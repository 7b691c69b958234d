"""Merchant coupons (SPEC §6) and the buyers who claim them: a store defines a coupon, activates
it (or leaves it in draft), raises its copies, deactivates, lowers and reactivates some; buyers
claim copies (vouchers) to use on an order, or claim and never use them; coupons expire."""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import lifecycle
from lifecycle import Actor, Aggregate, HistoryEntry, NotFound
from lifecycle.simulation.vocabulary import Act, Create, Decision, Event, Marketplace, Turn
from lifecycle.simulation.world import SellerPlan, rng, spread

Reaction = Callable[[str, int, int, datetime], None]  # (id, seq, the coupon's index, at)
Payload = Callable[[Aggregate, random.Random], Mapping[str, Any]]  # (coupon, the turn's draws)


def seller_of(coupon: str) -> str:
    return coupon.rsplit("-c", 1)[0]


def number_of_coupon(coupon: str) -> int:
    return int(coupon.rsplit("-c", 1)[1])


class CouponActors:
    """The stores' coupons, and the buyers who claim copies of them."""

    kind = "coupon"

    def __init__(self, market: Marketplace):
        self.market = market
        self.active: dict[str, list[str]] = {}  # store → its active coupons, sorted
        self._after: dict[str, Reaction] = {
            "create": self._created, "activate": self._activated, "deactivate": self._deactivated,
            "lower": self._lowered, "expire": self._expired,
        }
        # A turn's purpose is the trigger it fires, with what it sends; the turn makes sense
        # only while the machine defines the trigger from the coupon's state.
        self._payloads: dict[str, Payload] = {
            "activate": _nothing, "raise": self._raised, "deactivate": _nothing,
            "lower": self._lowered_to,
        }

    def _index(self, coupon: str) -> int:
        return self.market.sellers.plan(seller_of(coupon)).n * 16 + number_of_coupon(coupon)

    def terms(self, plan: SellerPlan, id: str) -> Create:
        policy = self.market.policy
        r = rng(self.market.seed, "coupon", id)
        now = self.market.now()
        denomination = r.choice((5, 10, 15, 20, 30))
        threshold = None if r.random() < 0.25 else denomination * r.choice((3, 4, 5, 8))
        products: Any = "all"
        if r.random() < 0.3:
            chosen = r.sample(plan.catalogue,
                              r.randint(1, min(len(plan.catalogue), policy.coupon_max_products)))
            products = sorted(p.sku for p in chosen)
        terms: dict[str, Any] = {
            "title": f"{denomination} USD off" + (f" orders over {threshold}" if threshold else ""),
            "currency": "USD",
            "denomination": str(denomination),
            "starts_at": now.isoformat(),
            "ends_at": (now + timedelta(days=r.randint(20, policy.coupon_max_validity.days))).isoformat(),
            "copies": r.randint(20, 500),
            "products": products,
        }
        if threshold is not None:
            terms["threshold"] = str(threshold)
        return Create("coupon", id, Actor("seller", plan.id), terms)

    # --- reacting -----------------------------------------------------------------------

    def on_event(self, event: Event, at: datetime) -> None:
        id, trigger, seq = event["aggregate_id"], event["trigger"], event["seq"]
        self._track_active(id, event["source"], event["dest"])
        react = self._after.get(trigger)
        if react is not None:
            react(id, seq, self._index(id), at)

    def _created(self, id: str, seq: int, n: int, at: datetime) -> None:
        m = self.market
        if spread(m.seed, 5, n) >= m.behaviour.coupon_left_in_draft:
            m.later("coupon", id, "activate", seq, 1, 24, at)

    def _activated(self, id: str, seq: int, n: int, at: datetime) -> None:
        m, b = self.market, self.market.behaviour
        if seq != 2:
            return  # a reactivation: the store has made its changes
        if spread(m.seed, 7, n) < b.coupon_raised:
            m.later("coupon", id, "raise", seq, 72, 240, at)
        if spread(m.seed, 6, n) < b.coupon_deactivated:
            m.later("coupon", id, "deactivate", seq, 48, 360, at)

    def _deactivated(self, id: str, seq: int, n: int, at: datetime) -> None:
        self.market.later("coupon", id, "lower", seq, 2, 48, at)

    def _lowered(self, id: str, seq: int, n: int, at: datetime) -> None:
        if rng(self.market.seed, "reactivate", id).random() < 0.7:
            self.market.later("coupon", id, "activate", seq, 2, 48, at)

    def _expired(self, id: str, seq: int, n: int, at: datetime) -> None:
        self.market.sellers.next_coupon(seller_of(id), number_of_coupon(id), at)

    def _track_active(self, id: str, source: str | None, dest: str) -> None:
        if source == dest:
            return
        store = self.active.setdefault(seller_of(id), [])
        if dest == "active":
            bisect.insort(store, id)
        elif source == "active" and id in store:
            store.remove(id)

    def resume(self, aggregate: Aggregate, history: list[HistoryEntry]) -> None:
        if aggregate.state == "active":
            bisect.insort(self.active.setdefault(seller_of(aggregate.id), []), aggregate.id)
        last = history[-1]
        event = {"aggregate_id": aggregate.id, "trigger": last.trigger, "source": aggregate.state,
                 "dest": aggregate.state, "seq": last.seq}
        self.on_event(event, last.at)

    # --- deciding -----------------------------------------------------------------------

    def decide(self, aggregate: Aggregate | None, turn: Turn) -> Decision:
        payload = self._payloads.get(turn.purpose)
        if aggregate is None or payload is None or \
                not self.market.allows("coupon", aggregate.state, turn.purpose):
            return None
        r = rng(self.market.seed, "coupon", aggregate.id, turn.purpose, aggregate.version)
        return Act(turn.purpose, Actor("seller", aggregate.data["seller"]), payload(aggregate, r))

    def _raised(self, coupon: Aggregate, r: random.Random) -> Mapping[str, Any]:
        copies = coupon.data["copies"] + r.randint(50, 500)
        return {"copies": min(self.market.policy.coupon_max_copies, copies)}

    def _lowered_to(self, coupon: Aggregate, r: random.Random) -> Mapping[str, Any]:
        data = coupon.data
        return {"copies": max(data["claimed"], 1, data["copies"] - r.randint(5, 100))}

    # --- buyers ---------------------------------------------------------------------------

    def voucher_for(self, buyer: str, store: str, n: int) -> tuple[str, dict[str, Any]] | None:
        """A voucher of ``store`` in the buyer's hands, claimed now if need be: (its id, the
        coupon's terms), or None when the store has no coupon the buyer can use."""
        coupons = self.active.get(store)
        if not coupons:
            return None
        m = self.market
        coupon_id = coupons[rng(m.seed, "which-coupon", n).randrange(len(coupons))]
        coupon = m.get("coupon", coupon_id)
        if not (datetime.fromisoformat(coupon.data["starts_at"]) <= m.now()
                < datetime.fromisoformat(coupon.data["ends_at"]) - timedelta(hours=1)):
            return None
        voucher_id = lifecycle.voucher_id(coupon_id, buyer)
        try:
            voucher = m.get("voucher", voucher_id)
        except NotFound:
            if m.fire_now("coupon", coupon_id, "claim", Actor("buyer", buyer)) is None:
                return None
            m.count("coupons.claimed")
            return voucher_id, dict(coupon.data)
        return (voucher_id, dict(coupon.data)) if voucher.state == "available" else None


def _nothing(coupon: Aggregate, r: random.Random) -> Mapping[str, Any]:
    return {}
