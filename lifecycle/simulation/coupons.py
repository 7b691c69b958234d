"""Merchant coupons (SPEC §6) and the buyers who claim them: a store defines a coupon, activates
it (or leaves it in draft), raises its copies, deactivates, lowers and reactivates some; buyers
claim copies (vouchers) to use on an order, or claim and never use them; coupons expire."""

from __future__ import annotations

import bisect
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from lifecycle import Actor, Aggregate, HistoryEntry, NotFound
from lifecycle.simulation.market import Act, Create, Decision, Event, Turn
from lifecycle.simulation.world import SellerPlan, rng, spread

if TYPE_CHECKING:
    from lifecycle.simulation.market import Market


def seller_of(coupon: str) -> str:
    return coupon.rsplit("-c", 1)[0]


def number_of_coupon(coupon: str) -> int:
    return int(coupon.rsplit("-c", 1)[1])


class CouponActors:
    kind = "coupon"

    def __init__(self, market: Market):
        self.market = market
        self.active: dict[str, list[str]] = {}  # store → its active coupons, sorted

    def _index(self, coupon: str) -> int:
        return self.market.sellers.plan(seller_of(coupon)).n * 16 + number_of_coupon(coupon)

    def create(self, plan: SellerPlan, id: str) -> Create:
        r = rng(self.market.seed, "coupon", id)
        now = self.market.now()
        denomination = r.choice((5, 10, 15, 20, 30))
        threshold = None if r.random() < 0.25 else denomination * r.choice((3, 4, 5, 8))
        products: Any = "all"
        if r.random() < 0.3:
            chosen = r.sample(plan.catalogue, r.randint(1, min(len(plan.catalogue), 50)))
            products = sorted(p.sku for p in chosen)
        terms: dict[str, Any] = {
            "title": f"{denomination} USD off" + (f" orders over {threshold}" if threshold else ""),
            "currency": "USD",
            "denomination": str(denomination),
            "starts_at": now.isoformat(),
            "ends_at": (now + timedelta(days=r.randint(20, 62))).isoformat(),
            "copies": r.randint(20, 500),
            "products": products,
        }
        if threshold is not None:
            terms["threshold"] = str(threshold)
        return Create("coupon", id, Actor("seller", plan.id), terms)

    # --- reacting -----------------------------------------------------------------------

    def on_event(self, event: Event, at: datetime) -> None:
        id, trigger, seq = event["id"], event["trigger"], event["seq"]
        self._track_active(id, event["source"], event["dest"])
        m, b, n = self.market, self.market.behaviour, self._index(id)
        if trigger == "create" and spread(m.seed, 5, n) >= b.coupon_left_in_draft:
            m.later("coupon", id, "activate", seq, 1, 24, at)
        elif trigger == "activate" and seq == 2:
            if spread(m.seed, 7, n) < b.coupon_raised:
                m.later("coupon", id, "raise", seq, 72, 240, at)
            if spread(m.seed, 6, n) < b.coupon_deactivated:
                m.later("coupon", id, "deactivate", seq, 48, 360, at)
        elif trigger == "deactivate":
            m.later("coupon", id, "lower", seq, 2, 48, at)
        elif trigger == "lower" and rng(m.seed, "reactivate", id).random() < 0.7:
            m.later("coupon", id, "activate", seq, 2, 48, at)
        elif trigger == "expire":
            m.sellers.next_coupon(seller_of(id), number_of_coupon(id), at)

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
        event = {"id": aggregate.id, "trigger": last.trigger, "source": aggregate.state,
                 "dest": aggregate.state, "seq": last.seq}
        self.on_event(event, last.at)

    # --- deciding -----------------------------------------------------------------------

    def decide(self, aggregate: Aggregate | None, turn: Turn) -> Decision:
        if aggregate is None:
            return None
        purpose, state, data = turn[3], aggregate.state, aggregate.data
        store = Actor("seller", data["seller"])
        r = rng(self.market.seed, "coupon", aggregate.id, purpose, aggregate.version)
        if purpose == "activate" and state in ("draft", "deactivated"):
            return Act("activate", store)
        if purpose == "raise" and state == "active":
            return Act("raise", store, {"copies": min(10_000, data["copies"] + r.randint(50, 500))})
        if purpose == "deactivate" and state == "active":
            return Act("deactivate", store)
        if purpose == "lower" and state == "deactivated":
            copies = max(data["claimed"], 1, data["copies"] - r.randint(5, 100))
            return Act("lower", store, {"copies": copies})
        return None

    # --- buyers ---------------------------------------------------------------------------

    def voucher_for(self, buyer: str, store: str, n: int) -> tuple[str, dict[str, Any]] | None:
        """A voucher of ``store`` in the buyer's hands, claimed now if need be: (its id, the
        coupon's terms), or None when the store has no coupon the buyer can use."""
        coupons = self.active.get(store)
        if not coupons:
            return None
        m = self.market
        coupon_id = coupons[rng(m.seed, "which-coupon", n).randrange(len(coupons))]
        coupon = m.engine.get("coupon", coupon_id)
        if not (datetime.fromisoformat(coupon.data["starts_at"]) <= m.now()
                < datetime.fromisoformat(coupon.data["ends_at"]) - timedelta(hours=1)):
            return None
        voucher_id = f"{coupon_id}:{buyer}"
        try:
            voucher = m.engine.get("voucher", voucher_id)
        except NotFound:
            if m.fire_now("coupon", coupon_id, "claim", Actor("buyer", buyer)) is None:
                return None
            m.count("coupons.claimed")
            return voucher_id, dict(coupon.data)
        return (voucher_id, dict(coupon.data)) if voucher.state == "available" else None


def eligible(terms: dict[str, Any], sku: str) -> bool:
    products = terms["products"]
    return products == "all" or sku in products


def threshold(terms: dict[str, Any]) -> Decimal:
    return Decimal(terms.get("threshold") or 0)
