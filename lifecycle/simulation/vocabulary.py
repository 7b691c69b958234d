"""The words the market and its actors speak: turns, events, decisions, and the two sides.

A *turn* is someone's moment to act on one aggregate ("the seller ships order 42"); the market
queues turns and, when one comes up, asks the kind's `Actors` to *decide* on the aggregate as it
is now: an `Act` (fire a trigger), a `Create`, `Later` (not yet), or nothing. After each commit
the market hands the actors the engine's *event*, and they queue the turns it calls for.

The actors see the market only through `Marketplace`, a protocol `market.Market` implements,
and see each other only through the books on it (`SellerBook`, `CouponBook`, `OrderBook`,
`StaffBook`): no actor module imports the market or another actor module. Actors of the
seller's account also watch other kinds' events (a store opening, a dispute opened) as a
`Watcher`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from lifecycle import Actor, AdapterError, Aggregate, HistoryEntry, LifecycleError, Policy
from lifecycle.adapters import SandboxCarrier, SandboxGateway
from lifecycle.simulation.config import Behaviour, Config
from lifecycle.simulation.world import OrderPlan, SellerPlan

Event = Mapping[str, Any]
"""What the engine publishes after a commit: kind, id, seq, trigger, source, dest, payload…"""

Progress = Callable[[int, int, float], None]
"""``progress(simulated_day, orders_arrived, transitions_per_second)``, once a simulated day."""


class Turn(NamedTuple):
    """Someone's moment to act on one aggregate. Turns sort by time, then by the aggregate, so
    the order of equal moments never depends on how they were queued. ``purpose`` says what
    the actor means to do ("ship", "coupon:2"); ``tries`` counts new attempts after a decline."""

    at: datetime
    kind: str
    id: str
    purpose: str
    tries: int = 0


@dataclass(frozen=True, slots=True)
class Act:
    """Fire ``trigger`` as ``actor``. ``then`` runs after it committed; ``failed`` after an
    adapter refused it (a decline, an invalid waybill) instead of the default retry later;
    ``refused`` after the engine refused it (a disabled sub-account, a balance too low)
    instead of counting it as ``refused.KIND.TRIGGER``."""

    trigger: str
    actor: Actor
    payload: Mapping[str, Any] = field(default_factory=dict)
    then: Callable[[Aggregate], None] | None = None
    failed: Callable[[AdapterError], None] | None = None
    refused: Callable[[LifecycleError], None] | None = None


@dataclass(frozen=True, slots=True)
class Create:
    """Create an aggregate with a known id."""

    kind: str
    id: str
    actor: Actor
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Later:
    """Not yet: take this turn again at ``at``."""

    at: datetime


Decision = Act | Create | Later | None


class Actors(Protocol):
    """The people who act on one kind of aggregate: what the market asks of them."""

    @property
    def kind(self) -> str: ...

    def on_event(self, event: Event, at: datetime) -> None:
        """A transition committed (or, on resume, is replayed): queue whatever it calls for."""

    def decide(self, aggregate: Aggregate | None, turn: Turn) -> Decision:
        """What to do now; the aggregate as it is now (None if it does not exist)."""

    def resume(self, aggregate: Aggregate, history: list[HistoryEntry]) -> None:
        """Queue the turns an open aggregate is waiting for, after a restart."""


class SellerBook(Protocol):
    """What the other actors ask of the sellers."""

    @property
    def active(self) -> Sequence[str]:
        """The stores that may receive orders now, sorted."""

    def plan(self, id: str) -> SellerPlan:
        """What the seller is like and what will happen to them."""

    def next_coupon(self, seller: str, k: int, at: datetime) -> None:
        """The store's coupon ``k`` expired at ``at``: queue the next one, if orders still come."""


class CouponBook(Protocol):
    """What the other actors ask of the coupons and the buyers who claim them."""

    def terms(self, plan: SellerPlan, id: str) -> Create:
        """A new coupon of the store, its terms drawn from the seed."""

    def voucher_for(self, buyer: str, store: str, n: int) -> tuple[str, dict[str, Any]] | None:
        """A voucher of ``store`` in the buyer's hands, claimed now if need be: (its id, the
        coupon's terms), or None when the store has no coupon the buyer can use."""


class Watcher(Protocol):
    """Someone who reacts to another kind's events (the seller's account to a store opening)."""

    def watch(self, event: Event, at: datetime) -> None: ...


class StaffBook(Protocol):
    """Who acts for a store: its staff sub-account holding a permission, or its owner."""

    def acting(self, store: str, permission: str) -> Actor:
        """The actor that does work needing ``permission`` (``ship_orders``, ...) for ``store``."""

    def refused(self, actor: Actor, error: LifecycleError) -> bool:
        """A staff member's act was refused: True (counted, and the owner takes the work over)
        when it was the sub-account that was refused, False for any other refusal."""

    def acted(self, actor: Actor, permission: str) -> None:
        """An act needing ``permission`` committed: counted when a sub-account did it."""


class OrderBook(Protocol):
    """What the other actors ask of the orders."""

    def plan(self, id: str) -> OrderPlan:
        """What the buyer and the seller of the order will do."""


class Marketplace(Protocol):
    """What the actors see of the market: the run's settings, the clock, the turn queue, the
    engine (through a few questions and the ways of acting now), the sandboxes, and the books
    of the other actors."""

    @property
    def config(self) -> Config: ...
    @property
    def seed(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def behaviour(self) -> Behaviour: ...
    @property
    def start(self) -> datetime: ...
    @property
    def arrivals_end(self) -> datetime: ...
    @property
    def operator(self) -> Actor: ...
    @property
    def policy(self) -> Policy:
        """The policy the run was opened with (it does not change during a run)."""
    @property
    def gateway(self) -> SandboxGateway | None: ...
    @property
    def carriers(self) -> Mapping[str, SandboxCarrier]: ...
    @property
    def sellers(self) -> SellerBook: ...
    @property
    def coupons(self) -> CouponBook: ...
    @property
    def orders(self) -> OrderBook: ...
    @property
    def staff(self) -> StaffBook: ...

    def now(self) -> datetime: ...

    def schedule(self, at: datetime, kind: str, id: str, purpose: str, tries: int = 0) -> None:
        """Queue a turn at ``at`` (now, if that is past)."""

    def later(self, kind: str, id: str, purpose: str, version: int, low: float, high: float,
              at: datetime | None = None, tries: int = 0) -> None:
        """Queue a turn ``low`` to ``high`` hours after ``at`` (now), the delay drawn from the
        seed, the aggregate and its version."""

    def again(self, turn: Turn, version: int, low: float, high: float, *,
              purpose: str | None = None, limit: int = ...) -> None:
        """A new attempt (a new idempotency key) ``low`` to ``high`` hours from now, unless
        the turn has had ``limit`` of them."""

    def count(self, name: str, n: int = 1) -> None:
        """Add to one of the run's activity counters."""

    def get(self, kind: str, id: str) -> Aggregate:
        """The aggregate as it is now (`lifecycle.NotFound` if there is none)."""

    def allows(self, kind: str, state: str, trigger: str) -> bool:
        """Whether the machine defines ``trigger`` from ``state``."""

    def create(self, decision: Create,
               refused: Callable[[LifecycleError], None] | None = None) -> Aggregate | None:
        """Create at once, outside the turn queue; None if refused (``refused`` is then told
        why, instead of counting it) or made before a restart."""

    def upload_avatar(self, id: str, actor: Actor, image: bytes) -> Aggregate | None:
        """A seller uploads an avatar (`Engine.upload_avatar`) with a known id; None if
        refused or made before a restart."""

    def fire_now(self, kind: str, id: str, trigger: str, actor: Actor,
                 payload: Mapping[str, Any] | None = None) -> Aggregate | None:
        """Fire at once, outside the turn queue; None if refused."""

    def checkout(self, order: Aggregate, tries: int) -> bool:
        """The buyer pays on the gateway's own page; False when the payment was declined."""

    def expect_scans(self, carrier: str, waybill: str) -> None:
        """Note when the carrier will scan a parcel, so that idle time can be skipped safely."""
