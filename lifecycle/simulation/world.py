"""Who the simulated people are and what they mean to do, decided from the seed alone.

Nothing here touches the engine. Every draw comes from a `random.Random` seeded with the run's
seed and the name of the decision (``"7:order:sim-o0000042:paid:3"``), never from a shared
stream or the wall clock: a decision does not depend on how many others were made before it, so
a resumed run re-derives the same plans from the ids in the database.

The big choices (an order's fate, a dispute's path, a seller's troubles) are spread over the
entities with a low-discrepancy sequence instead of independent draws, so that even a small run
has its share of every path: with 300 orders and a 2% fate, six orders get it, not "maybe none".
"""

from __future__ import annotations

import hashlib
import math
import random
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal
from functools import lru_cache

from lifecycle.simulation.config import DISPUTE_PATHS, MAX_SHARDS, ORDER_FATES, Behaviour, Config

CENT = Decimal("0.01")

# Irrational steps for the low-discrepancy choices: rationally independent, so the dimensions
# are jointly equidistributed (Weyl), even within the subset of orders one dimension selects.
_STEPS = tuple(math.sqrt(p) % 1 for p in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29))


def rng(seed: int, *parts: object) -> random.Random:
    """A generator for one decision. A string seed is hashed with SHA-512: stable everywhere."""
    return random.Random(":".join(map(str, (seed, *parts))))


def unit(seed: int, *parts: object) -> float:
    """One number in [0, 1) for one decision: a hash, several times cheaper than seeding a
    generator, for the draws made on every transition."""
    key = ":".join(map(str, (seed, *parts))).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64


def roll(*parts: object) -> float:
    """One number in [0, 1) for one decision, from SHA-256 as the sandboxes' fault draws are:
    the draw that injects a conflict, kept as it was so that a seed keeps its report."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@lru_cache(maxsize=16 * MAX_SHARDS)  # ten dimensions a shard
def _offset(seed: int, dimension: int) -> float:
    return rng(seed, "spread", dimension).random()


def spread(seed: int, dimension: int, n: int) -> float:
    """The n-th point, in [0, 1), of a seeded low-discrepancy sequence."""
    return (_offset(seed, dimension) + n * _STEPS[dimension]) % 1.0


def pick(point: float, shares: Sequence[tuple[str, float]], rest: str) -> str:
    """The choice whose share of [0, 1) holds ``point``; ``rest`` past the last share."""
    for name, share in shares:
        if point < share:
            return name
        point -= share
    return rest


def hours(r: random.Random, low: float, high: float) -> timedelta:
    """A delay drawn uniformly between ``low`` and ``high`` hours, to the second."""
    return timedelta(seconds=round(r.uniform(low, high) * 3600))


def days(r: random.Random, low: float, high: float) -> timedelta:
    return hours(r, low * 24, high * 24)


def money(value: Decimal) -> str:
    return str(value.quantize(CENT))


def share_of(amount: Decimal, fraction: float) -> Decimal:
    """A fraction of an amount, to the cent, at least one cent and at most the amount."""
    part = (amount * Decimal(str(round(fraction, 4)))).quantize(CENT, rounding=ROUND_DOWN)
    return min(max(part, CENT), amount)


# --- ids -----------------------------------------------------------------------------------


def seller_id(name: str, n: int) -> str:
    return f"{name}-s{n:04d}"


def order_id(name: str, n: int) -> str:
    return f"{name}-o{n:07d}"


def buyer_id(name: str, n: int) -> str:
    return f"{name}-b{n:06d}"


def coupon_id(seller: str, k: int) -> str:
    return f"{seller}-c{k}"


def number_of(id: str) -> int:
    """The serial of a seller, order or buyer id (``sim-o0000042`` → 42)."""
    return int(id.rsplit("-", 1)[1][1:])


# --- places --------------------------------------------------------------------------------

SELLER_COUNTRIES = (("CN", 60), ("HK", 6), ("VN", 6), ("IN", 5), ("TR", 5), ("KR", 4), ("TH", 4),
                    ("US", 4), ("DE", 3), ("MY", 3))
BUYER_COUNTRIES = (("US", 18), ("DE", 7), ("FR", 7), ("GB", 7), ("ES", 5), ("BR", 7), ("RU", 6),
                   ("PL", 4), ("NL", 3), ("IT", 4), ("AU", 4), ("CA", 4), ("JP", 3), ("KR", 3),
                   ("IL", 2), ("MX", 3), ("CL", 2), ("SA", 2), ("ZA", 2), ("NG", 2), ("CN", 3),
                   ("PT", 2))


def _weighted(r: random.Random, table: Sequence[tuple[str, int]]) -> str:
    return r.choices([name for name, _ in table], [weight for _, weight in table])[0]


# --- products ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    price: Decimal
    weight_kg: Decimal
    box: tuple[int, int, int]  # length, width, height in cm


# (name, share, price range, weight range kg, box cm)
_RANGES = (
    ("small", 45, (2, 30), (0.05, 0.5), (20, 15, 5)),
    ("medium", 35, (10, 120), (0.5, 3.0), (35, 25, 15)),
    ("large", 14, (40, 400), (3.0, 15.0), (60, 40, 40)),
    ("bulky", 5, (100, 900), (15.0, 60.0), (100, 60, 50)),
    ("pallet", 1, (500, 3000), (80.0, 400.0), (120, 100, 100)),
)


@dataclass(frozen=True, slots=True)
class SellerPlan:
    """What a seller is like and what will happen to them."""

    id: str
    n: int
    country: str
    handling_days: int
    self_employed: bool
    rejected: bool
    gives_up: bool
    never_pays_fee: bool
    suspended: bool
    reinstated: bool
    closes: bool
    renews_fee: bool
    runs_coupons: bool
    branded: bool
    catalogue: tuple[Product, ...]


class _Ranks:
    """Each entity's group (its first, spread choice) and its rank within the group, counted
    once in order. Second choices are spread over the rank, not the serial, so that every
    group — however small a share — gets its own even spread: a sub-choice of 10% happens to
    every tenth dispute, not to whichever disputes a strip of the sequence happens to hold."""

    def __init__(self, choose: Callable[[int], str], group: Callable[[str], str] = str):
        self._choose, self._group = choose, group
        self._counts: Counter[str] = Counter()
        # Kept for every entity so far, so packed: five bytes each, not a tuple's ninety.
        self._names: list[str] = []  # the distinct choices, as first made
        self._choices = array("B")  # entity → its choice's place in _names
        self._ranks = array("I")  # entity → its rank in its group

    def __call__(self, n: int) -> tuple[str, int]:
        """(the choice for entity ``n``, its rank among the entities of its group)."""
        while len(self._ranks) <= n:
            choice = self._choose(len(self._ranks))
            group = self._group(choice)
            if choice not in self._names:
                self._names.append(choice)
            self._choices.append(self._names.index(choice))
            self._ranks.append(self._counts[group])
            self._counts[group] += 1
        return self._names[self._choices[n]], self._ranks[n]


@lru_cache(maxsize=2 * MAX_SHARDS)  # one a shard (each has a seed of its own)
def _seller_ranks(seed: int, behaviour: Behaviour) -> _Ranks:
    b = behaviour

    def group(n: int) -> str:
        onboarding, troubles = spread(seed, 0, n), spread(seed, 1, n)
        if onboarding < b.self_employed:
            return "self_employed"
        if onboarding < b.self_employed + b.rejected:
            return "rejected"
        if onboarding < b.self_employed + b.rejected + b.never_pays_fee:
            return "never_pays_fee"
        if troubles < b.suspended:
            return "suspended"
        if troubles < b.suspended + b.closes:
            return "closes"
        return "ordinary"

    return _Ranks(group)


@lru_cache(maxsize=16_384)
def seller_plan(seed: int, behaviour: Behaviour, name: str, n: int,
                handling_days: tuple[int, int]) -> SellerPlan:
    """Seller ``n``; ``handling_days`` is the range the policy lets a seller choose from."""
    b = behaviour
    r = rng(seed, "seller", n)
    group, rank = _seller_ranks(seed, behaviour)(n)
    second = spread(seed, 4, rank)
    skus = []
    for k in range(r.randint(4, 16)):
        kind = r.choices(_RANGES, [share for _, share, *_ in _RANGES])[0]
        label, _, (low, high), (w_low, w_high), box = kind
        price = Decimal(str(round(r.uniform(low, high), 2))).quantize(CENT)
        weight = Decimal(str(round(r.uniform(w_low, w_high), 2))).quantize(CENT)
        skus.append(Product(f"{label}-{n:04d}-{k:02d}", max(price, Decimal(1)), max(weight, CENT), box))
    return SellerPlan(
        id=seller_id(name, n),
        n=n,
        country=_weighted(r, SELLER_COUNTRIES),
        handling_days=r.randint(*handling_days),
        self_employed=group == "self_employed",
        rejected=group == "rejected",
        gives_up=group == "rejected" and second < b.gives_up,
        never_pays_fee=group == "never_pays_fee",
        suspended=group == "suspended",
        reinstated=group == "suspended" and second < b.reinstated,
        closes=group == "closes",
        renews_fee=r.random() < b.renews_fee,
        runs_coupons=spread(seed, 3, n) < b.runs_coupons,
        branded=r.random() < 0.2,
        catalogue=tuple(skus),
    )


# --- the seller's account (issue #20) ------------------------------------------------------

# What each violation level records, one violation after another: (type, points).
VIOLATIONS = {
    "minor": (("listing", 2), ("fulfilment", 3)),
    "restricted": (("prohibited_goods", 12),),
    "orders_refused": (("intellectual_property", 6), ("fraud", 20)),
    "suspended": (("fraud", 24), ("prohibited_goods", 12), ("intellectual_property", 14)),
}
LEVELS = ("minor", "restricted", "orders_refused", "suspended")


@dataclass(frozen=True, slots=True)
class AccountPlan:
    """What a store does with its account once it is open, and what operators do to it."""

    staff: bool  # a shipper and a dispute answerer as sub-accounts
    staff_disabled: bool  # an operator disables the shipper
    staff_enabled_again: bool  # the owner enables it again (else removes it)
    violations: tuple[tuple[str, int], ...]  # recorded against the store, in turn
    appeals: tuple[str, ...]  # each violation's: "none", "upheld" or "overturned"
    leaves: bool  # closes the store once its violations expired
    redeems: bool
    redeems_too_much: bool
    corrected: bool
    profile: bool
    contact: str  # confirms | expires | reissued
    phone: bool
    avatar: str  # none | approved | rejected | overdue


@lru_cache(maxsize=16_384)
def account_plan(seed: int, behaviour: Behaviour, n: int) -> AccountPlan:
    """Seller ``n``'s account. Violations go to ordinary stores (not those whose onboarding or
    troubles the seller plan decides), spread over their rank, so that a small run has a
    store at each level."""
    b = behaviour
    group, rank = _seller_ranks(seed, behaviour)(n)
    level = "none"
    if group == "ordinary":
        level = pick(spread(seed, 9, rank), [(name, getattr(b, f"violations_{name}"))
                                             for name in LEVELS], "none")
    recorded = VIOLATIONS.get(level, ())
    appeals = []
    for k, _ in enumerate(recorded):
        appealed = unit(seed, "appeal", n, k) < b.appeals
        overturned = unit(seed, "overturn", n, k) < b.appeal_overturned
        appeals.append(("overturned" if overturned else "upheld") if appealed else "none")
    profile = unit(seed, "profile", n) < b.profiles
    avatar = "none"
    if profile and unit(seed, "avatar", n) < b.avatars:
        avatar = pick(unit(seed, "avatar-review", n), [("rejected", b.avatar_rejected),
                                                        ("overdue", b.avatar_overdue)], "approved")
    redeems = unit(seed, "redeems", n) < b.redeems_points
    staff = spread(seed, 8, n) < b.staff
    disabled = staff and unit(seed, "staff-disabled", n) < b.staff_disabled
    return AccountPlan(
        staff=staff,
        staff_disabled=disabled,
        staff_enabled_again=disabled and unit(seed, "staff-enabled", n) < b.staff_enabled_again,
        violations=recorded,
        appeals=tuple(appeals),
        leaves=level == "minor" and unit(seed, "leaves", n) < b.leaves_after_violation,
        redeems=redeems,
        redeems_too_much=redeems and unit(seed, "redeems-too-much", n) < b.redeems_too_much,
        corrected=unit(seed, "corrected", n) < b.points_corrected,
        profile=profile,
        contact=pick(unit(seed, "contact", n), [("expires", b.contact_expires),
                                                ("reissued", b.contact_reissued)], "confirms"),
        phone=unit(seed, "phone", n) < b.adds_phone,
        avatar=avatar,
    )


@dataclass(frozen=True, slots=True)
class Buyer:
    id: str
    country: str
    name: str


@lru_cache(maxsize=256)  # asked when an order is placed and when goods go back
def buyer(seed: int, name: str, n: int) -> Buyer:
    r = rng(seed, "buyer", n)
    first = r.choice(("Ana", "Ben", "Chen", "Dara", "Emil", "Fatima", "Goran", "Hana", "Ivan",
                      "Jun", "Kofi", "Lena", "Marco", "Nia", "Omar", "Priya", "Rosa", "Sven"))
    return Buyer(buyer_id(name, n), _weighted(r, BUYER_COUNTRIES), f"{first} {n}")


# --- orders --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderPlan:
    """What the buyer and the seller of one order will do, whatever happens on the way."""

    n: int
    fate: str  # one of ORDER_FATES, "confirms" or "auto_confirm"
    cancel_answer: str  # accept | reject | ignore
    dispute_path: str  # one of DISPUTE_PATHS or "accept_claim"
    asks_return: bool
    offers_return: bool
    ships_return: bool
    decision: str  # refund | return_and_refund | no_refund
    online: bool
    uses_coupon: bool
    claims_only: bool
    hosted: bool
    sample: bool
    typo: bool
    disputes_lost: bool


@lru_cache(maxsize=2 * MAX_SHARDS)  # one a shard (each has a seed of its own)
def _order_ranks(seed: int, behaviour: Behaviour) -> _Ranks:
    shares = [(fate, getattr(behaviour, fate)) for fate in ORDER_FATES]
    # Disputes of every fate are one group, so that their paths cover the ground together.
    return _Ranks(lambda n: pick(spread(seed, 0, n), shares, "happy"),
                  lambda fate: "disputes" if fate.startswith("disputes_") else fate)


@lru_cache(maxsize=256)  # an open order's plan is kept with it (`orders.Open`)
def order_plan(seed: int, behaviour: Behaviour, n: int) -> OrderPlan:
    b = behaviour
    fate, rank = _order_ranks(seed, behaviour)(n)
    if fate == "happy":
        fate = "confirms" if spread(seed, 5, rank) < b.confirms else "auto_confirm"
    # An order that disputes only because its parcel went missing draws from its serial.
    disputing = fate.startswith("disputes_")
    sub = spread(seed, 1, rank) if disputing or fate == "cancels_paid" else spread(seed, 1, n)
    sample = unit(seed, "order", n, "sample") < b.sample_order
    k = rank if disputing else n
    return OrderPlan(
        n=n,
        fate=fate,
        cancel_answer=pick(sub, [("accept", b.cancel_accepted), ("reject", b.cancel_rejected)],
                           "ignore"),
        dispute_path=pick(sub, [(p, getattr(b, p)) for p in DISPUTE_PATHS], "accept_claim"),
        asks_return=spread(seed, 2, k) < b.asks_return,
        offers_return=spread(seed, 6, k) < b.offers_return,
        ships_return=spread(seed, 7, k) < b.ships_return,
        decision=pick(spread(seed, 8, k), [("refund", b.arbitrate_refund),
                                           ("return_and_refund", b.arbitrate_return)], "no_refund"),
        online=spread(seed, 3, n) < b.ships_online,
        uses_coupon=not sample and spread(seed, 4, n) < b.uses_coupon,
        claims_only=unit(seed, "order", n, "claims") < b.claims_without_ordering,
        hosted=unit(seed, "order", n, "hosted") < b.hosted_checkout,
        sample=sample,
        typo=unit(seed, "order", n, "typo") < b.waybill_typo,
        disputes_lost=unit(seed, "order", n, "lost") < b.disputes_lost_parcel,
    )


def arrival(config: Config, n: int) -> timedelta:
    """When order ``n`` is placed, from the start: spread evenly over the days after a warm-up
    in which the first stores open, with a little jitter that keeps the order of arrival."""
    warmup = min(timedelta(days=3), timedelta(days=config.days) * 0.3)
    span = timedelta(days=config.days) - warmup
    jitter = unit(config.seed, "arrival", n) * 0.999
    return warmup + span * ((n + jitter) / max(config.orders, 1))
