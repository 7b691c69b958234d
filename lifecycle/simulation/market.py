"""The driver: a simulated clock, a queue of people's turns, the timer worker and the sandboxes.

Time moves in ticks (an hour by default). Within a tick, orders arrive and people take their
turns in time order, the clock set to each moment; at the end of each tick the timer worker
fires the deadlines that fell due, payment callbacks are delivered, and every few ticks the
carriers' tracking pushes. Each thing anyone does is one `Engine.fire` or `Engine.create`
through the public API: its own transaction, so a run killed at any point leaves a consistent
database.

People react to what happened: the engine calls our subscriber after each commit, and the
kind's actors turn the event into a turn some time later ("the seller ships two days after
payment"). A turn re-reads the aggregate and decides again from what is there now, so a turn
that came too late (the timer cancelled the order first) does nothing. Retries are a service's:
a `Conflict` re-reads and decides again; an adapter timeout retries with the same idempotency
key; a decline is a new attempt, later, with a new key.
"""

from __future__ import annotations

import contextlib
import heapq
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import lifecycle
from lifecycle import (
    Actor,
    AdapterError,
    Aggregate,
    AlreadyExists,
    Conflict,
    Engine,
    HistoryEntry,
    InvalidWaybill,
    LifecycleError,
    NotFound,
    PaymentDeclined,
)
from lifecycle.adapters import Money
from lifecycle.adapters.faults import roll
from lifecycle.adapters.sandbox import SANDBOX_CARRIERS, SandboxCarrier, SandboxGateway
from lifecycle.simulation import queries, record
from lifecycle.simulation.config import Config
from lifecycle.simulation.world import arrival, unit

Event = Mapping[str, Any]
Progress = Callable[[int, int, float], None]
"""``progress(simulated_day, orders_arrived, transitions_per_second)``, once a simulated day."""

# A turn in the queue: (when, kind, id, purpose, tries). Tuples sort by time, then by the
# aggregate, so the order of equal moments never depends on how they were queued.
Turn = tuple[datetime, str, str, str, int]

ADAPTER_RETRIES = 5  # tries with the same idempotency key after a timeout or a server error
CONFLICT_RETRIES = 5  # re-reads after a Conflict
DECLINE_RETRIES = 2  # new attempts (new keys) after a decline, some hours apart
DAY = timedelta(days=1)
ORDER_TERMINAL = frozenset({"funds_released", "cancelled", "refunded"})
# Parked deadlines people settle by hand, and the turn that does it.
SETTLED_BY_HAND = {
    ("order", "release_funds"): "release",
    ("order", "ship_deadline"): "settle",
    ("order", "cancel_request_timeout"): "settle",
    ("dispute", "seller_response_timeout"): "settle",
}


@dataclass(frozen=True, slots=True)
class Act:
    """Fire ``trigger`` as ``actor``. ``then`` runs after it committed; ``failed`` after an
    adapter refused it (a decline, an invalid waybill) instead of the default retry later."""

    trigger: str
    actor: Actor
    payload: Mapping[str, Any] = field(default_factory=dict)
    then: Callable[[Aggregate], None] | None = None
    failed: Callable[[AdapterError], None] | None = None


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
    """The people who act on one kind of aggregate."""

    kind: str

    def on_event(self, event: Event, at: datetime) -> None:
        """A transition committed (or, on resume, is replayed): queue whatever it calls for."""

    def decide(self, aggregate: Aggregate | None, turn: Turn) -> Decision:
        """What to do now; the aggregate as it is now (None if it does not exist)."""

    def resume(self, aggregate: Aggregate, history: list[HistoryEntry]) -> None:
        """Queue the turns an open aggregate is waiting for, after a restart."""


class Tally:
    """What the driver saw: counters, transitions by trigger, states reached, daily samples."""

    def __init__(self, saved: Mapping[str, Any] | None = None):
        saved = saved or {}
        self.counters: Counter[str] = Counter(saved.get("counters", {}))
        self.triggers: Counter[str] = Counter(saved.get("triggers", {}))
        self.reached: Counter[str] = Counter(saved.get("reached", {}))
        self.samples: list[dict[str, Any]] = list(saved.get("samples", []))

    def to_dict(self) -> dict[str, Any]:
        return {"counters": dict(self.counters), "triggers": dict(self.triggers),
                "reached": dict(self.reached), "samples": self.samples}


class Market:
    """One run on one engine. Built by `lifecycle.simulation.run`."""

    def __init__(self, engine: Engine, config: Config, progress: record.Progress, *,
                 on_progress: Progress | None = None, stop_after_orders: int | None = None):
        from lifecycle.simulation.coupons import CouponActors
        from lifecycle.simulation.disputes import DisputeActors
        from lifecycle.simulation.orders import OrderActors
        from lifecycle.simulation.sellers import SellerActors

        clock = engine.clock
        if not isinstance(clock, lifecycle.SimulatedClock):
            raise lifecycle.InvalidPayload("engine", "a simulation runs on an engine opened with a "
                                                     "lifecycle.SimulatedClock")
        self.engine, self.clock, self.config = engine, clock, config
        self.seed, self.name, self.prefix = config.seed, config.name, f"{config.name}-"
        self.behaviour, self.faults = config.behaviour, config.faults
        self.start = config.start.astimezone(UTC)
        self.arrivals_end = self.start + timedelta(days=config.days)
        self.progress = progress
        self.tally = Tally(progress.tally)
        self.next_order = progress.next_order
        self.on_progress = on_progress
        self.stop_after_orders = stop_after_orders
        self.stopping = stop_after_orders is not None and self.next_order >= stop_after_orders
        self._arrival: tuple[int, datetime] = (-1, self.start)  # the next arrival, computed once
        self.turns: list[Turn] = []
        # The push ticks that will deliver carrier scans, each once: many parcels' scans share
        # a tick, so this stays small however many parcels are on their way.
        self.scans: list[datetime] = []
        self._scan_ticks: set[datetime] = set()
        self._push_every = timedelta(hours=config.push_every_hours)
        self.tick = timedelta(minutes=config.tick_minutes)
        self.inbox: list[Event] = []
        self.states: dict[str, Counter[str]] = {k: Counter() for k in engine.definitions}
        self.session_transitions = 0
        self.wall_started = time.perf_counter()
        self.cpu_started = time.process_time()
        self.stuck_orders = 0  # open orders that wait on a parked deadline nobody can fire

        payments = engine.adapters.payments
        self.gateway = payments if isinstance(payments, SandboxGateway) else None
        self.carriers: dict[str, SandboxCarrier] = {}
        for name in SANDBOX_CARRIERS:
            carrier = engine.adapters.carrier(name)
            if not isinstance(carrier, SandboxCarrier):
                raise lifecycle.InvalidPayload(
                    "carriers", f"a simulation needs the sandbox carriers; {name} is "
                                f"{type(carrier).__name__}")
            self.carriers[name] = carrier

        self.operator = Actor("operator", f"{self.name}-operator")
        self.sellers = SellerActors(self)
        self.coupons = CouponActors(self)
        self.orders = OrderActors(self)
        self.disputes = DisputeActors(self)
        self.actors: dict[str, Actors] = {
            "seller": self.sellers, "coupon": self.coupons, "order": self.orders,
            "dispute": self.disputes, "voucher": _Bystanders("voucher"),
        }
        self._subscription = _Subscription(self.inbox)
        engine.subscribe("*", self._subscription)

    # --- time and turns -------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock.now()

    def schedule(self, at: datetime, kind: str, id: str, purpose: str, tries: int = 0) -> None:
        heapq.heappush(self.turns, (max(at, self.now()), kind, id, purpose, tries))

    def later(self, kind: str, id: str, purpose: str, version: int, low: float, high: float,
              at: datetime | None = None, tries: int = 0) -> None:
        """Queue a turn ``low`` to ``high`` hours after ``at`` (now), the delay drawn from the
        seed, the aggregate and its version: the same on every run and after a resume."""
        fraction = unit(self.seed, kind, id, purpose, version, tries)
        delay = timedelta(seconds=round((low + (high - low) * fraction) * 3600))
        self.schedule((at or self.now()) + delay, kind, id, purpose, tries)

    def count(self, name: str, n: int = 1) -> None:
        self.tally.counters[name] += n

    # --- the loop -------------------------------------------------------------------------

    def run(self) -> str:
        """Run until every order has ended (or the drain limit), or a stop; returns the status."""
        tick = self.tick
        boundary = self.start + tick * ((self.now() - self.start) // tick + 1)
        try:
            while True:
                self._until(boundary)
                self.clock.set(boundary)
                self._tick(boundary)
                status = self._status()
                if status is not None:
                    if status == "finished":
                        self._flush()
                    self.checkpoint(status)
                    return status
                boundary = self._next_boundary(boundary)
        except BaseException:
            # A stop from the progress callback, Ctrl-C, a crash: whatever committed stays
            # committed; remember how far we got so that resume continues from here (and let
            # the original error through even if the database is what failed).
            with contextlib.suppress(Exception):
                self.checkpoint("stopped")
            raise

    def _next_boundary(self, boundary: datetime) -> datetime:
        """The next tick, or a later one when nothing can happen before it: no turn, arrival,
        carrier scan or pending deadline. Never past the next day, which is sampled."""
        step = boundary + self.tick
        soonest = [t for t in (self.turns[0][0] if self.turns else None, self._next_arrival(),
                               self._next_scan()) if t is not None]
        if soonest and min(soonest) < step:
            return step
        day = self.start + DAY * ((boundary - self.start) // DAY + 1)
        target = min([*soonest, day])
        if target <= step:
            return step
        known, due = self._next_deadline()
        if not known:
            return step
        if due is not None:
            target = min(target, due)
        return max(step, self._ceil(target, self.tick))

    def _ceil(self, moment: datetime, period: timedelta) -> datetime:
        """The first boundary of ``period`` (counted from the start) at or after ``moment``."""
        return self.start + period * -((self.start - moment) // period)

    def _next_scan(self) -> datetime | None:
        """The push tick that will deliver the next carrier scan."""
        if not self.scans:
            return None
        return max(self.scans[0], self._ceil(self.now(), self._push_every))

    def _next_deadline(self) -> tuple[bool, datetime | None]:
        """(known, when the next pending deadline falls due). Not known when sixteen paused or
        parked deadlines come first: what listing the first sixteen has always answered, kept
        because it decides which idle ticks are skipped, and so a seed's report."""
        with self.engine.database.connect() as conn:
            listed = queries.first_deadlines(conn, 16)
        for status, due in listed:
            if status == "pending":
                return True, due
        return len(listed) < 16, None

    def expect_scans(self, carrier: str, waybill: str) -> None:
        """Note when the carrier will scan a parcel, so that idle time can be skipped safely."""
        now = self.now()
        for event in self.carriers[carrier].timeline(waybill):
            if event.at <= now:
                continue
            tick = self._ceil(event.at, self._push_every)
            if tick not in self._scan_ticks:
                self._scan_ticks.add(tick)
                heapq.heappush(self.scans, tick)

    def _until(self, boundary: datetime) -> None:
        """Arrivals and turns before ``boundary``, in time order."""
        while True:
            arrival = self._next_arrival()
            turn_at = self.turns[0][0] if self.turns else None
            if arrival is not None and (turn_at is None or arrival <= turn_at):
                if arrival >= boundary:
                    return
                self.clock.set(max(arrival, self.now()))
                self.orders.place(self.next_order)
                self.next_order += 1
                if self.stop_after_orders is not None and self.next_order >= self.stop_after_orders:
                    self.stopping = True
                continue
            if turn_at is None or turn_at >= boundary:
                return
            turn = heapq.heappop(self.turns)
            self.clock.set(max(turn[0], self.now()))
            self.take_turn(turn)

    def _next_arrival(self) -> datetime | None:
        if self.stopping or self.next_order >= self.config.orders:
            return None
        n, at = self._arrival
        if n != self.next_order:
            at = self.start + arrival(self.config, self.next_order)
            self._arrival = (self.next_order, at)
        return at

    def _tick(self, boundary: datetime) -> None:
        self.engine.run_due_timers()
        self.drain()
        self._deliver_callbacks()
        since = boundary - self.start
        if since % timedelta(hours=self.config.push_every_hours) == timedelta(0):
            self._deliver_pushes()
        if since % DAY == timedelta(0):
            self._daily(since // DAY)

    def _status(self) -> str | None:
        if self.stopping:
            return "stopped"
        now = self.now()
        if now >= self.arrivals_end + timedelta(days=self.config.drain_days):
            return "finished"
        if self.next_order < self.config.orders or now < self.arrivals_end:
            return None
        open_orders = self.open_orders()
        if open_orders <= self.stuck_orders:  # nothing left that can still move
            return "finished"
        return None

    def open_orders(self) -> int:
        return sum(n for state, n in self.states["order"].items() if state not in ORDER_TERMINAL)

    def _daily(self, day: int) -> None:
        self.tally.samples.append({"day": day, "orders": {s: n for s, n in
                                                          sorted(self.states["order"].items()) if n}})
        self._operator_sweep()
        self.checkpoint("running")
        if self.on_progress is not None:
            self.on_progress(day, self.next_order, self.rate())

    def rate(self) -> float:
        seconds = self.wall_seconds()
        return self.session_transitions / seconds if seconds > 0 else 0.0

    def wall_seconds(self) -> float:
        return time.perf_counter() - self.wall_started

    def cpu_seconds(self) -> float:
        """Processor time of this process: steadier than the wall clock on a busy machine."""
        return time.process_time() - self.cpu_started

    def _operator_sweep(self) -> None:
        """Parked deadlines, once a simulated day. A timer that keeps failing keeps its
        idempotency key, so a declined payout or refund is declined again on every retry until
        it parks; people then do it by hand, with new keys: an operator pays the seller out,
        a buyer asks to cancel an order the seller never shipped, a seller accepts the
        cancellation or the claim they let lapse. What nobody can fire is reported as stuck."""
        day = (self.now() - self.start) // DAY
        stuck: set[str] = set()
        with self.engine.database.connect() as conn:
            parked = queries.parked(conn, self.prefix)
        for kind, id, trigger in parked:
            if kind not in ("order", "dispute"):
                continue
            if (kind, trigger) in SETTLED_BY_HAND:
                self.schedule(self.now(), kind, id, SETTLED_BY_HAND[kind, trigger], day)
            else:
                stuck.add(id.rsplit("-d", 1)[0] if kind == "dispute" else id)
        self.stuck_orders = len(stuck)

    def _flush(self) -> None:
        """The end: deliver what the sandboxes still hold back, late messages included."""
        if self.gateway is not None:
            for message in self.gateway.flush_callbacks():
                self._callback(message.body, message.headers)
        for name, carrier in self.carriers.items():
            for message in carrier.flush_pushes():
                self._push(name, message.body, message.headers)
        self.engine.run_due_timers()
        self.drain()

    # --- acting ---------------------------------------------------------------------------

    def take_turn(self, turn: Turn) -> None:
        _, kind, id, purpose, tries = turn
        actors = self.actors[kind]
        for attempt in range(CONFLICT_RETRIES):
            try:
                aggregate: Aggregate | None = self.engine.get(kind, id)
            except NotFound:
                aggregate = None
            decision = actors.decide(aggregate, turn)
            if decision is None:
                return
            if isinstance(decision, Later):
                self.schedule(decision.at, kind, id, purpose, tries)
                return
            if isinstance(decision, Create):
                self.create(decision)
                return
            assert aggregate is not None, "an Act needs an aggregate to act on"
            if self._attempt(aggregate, decision, turn, first=attempt == 0) != "conflict":
                return
        self.count("conflicts.given_up")

    def create(self, decision: Create) -> Aggregate | None:
        try:
            created = self.engine.create(decision.kind, decision.actor, decision.payload,
                                         id=decision.id)
        except AlreadyExists:
            return None  # made before a restart
        except LifecycleError as error:
            self._refused(decision.kind, self.engine.definition(decision.kind).creation.trigger, error)
            return None
        self.drain()
        return created

    def _attempt(self, aggregate: Aggregate, act: Act, turn: Turn, *, first: bool) -> str:
        kind, id, version = aggregate.kind, aggregate.id, aggregate.version
        tries = turn[4]
        key = f"{self.name}:{kind}:{id}:{act.trigger}:v{version}:t{tries}"
        expected = version
        if first and self.faults.conflict and \
                roll(self.seed, "conflict", kind, id, version, act.trigger) < self.faults.conflict:
            expected = version - 1  # as if another process had written since we read
            self.count("conflicts.injected")
        for _ in range(ADAPTER_RETRIES):
            try:
                moved = self.engine.fire(kind, id, act.trigger, act.actor, act.payload,
                                         idempotency_key=key, expected_version=expected)
            except Conflict:
                self.count("conflicts.retried")
                return "conflict"
            except AdapterError as error:
                if error.retryable:
                    self.count("adapter.timeout" if error.timeout else "adapter.error")
                    self.count("retries.same_key")
                    continue
                self._adapter_failed(error, act, turn)
                return "failed"
            except LifecycleError as error:
                self._refused(kind, act.trigger, error)
                return "refused"
            self.drain()
            if act.then is not None:
                act.then(moved)
            return "done"
        self.count("retries.exhausted")
        self.later(kind, id, turn[3], version, 1, 3, tries=tries)
        return "failed"

    def _adapter_failed(self, error: AdapterError, act: Act, turn: Turn) -> None:
        if isinstance(error, PaymentDeclined) or "declined" in error.reason or \
                "no courier" in error.reason:
            self.count("adapter.declined")
        elif isinstance(error, InvalidWaybill):
            self.count("waybills.refused")
        else:
            self.count("adapter.failed")
        if act.failed is not None:
            act.failed(error)
            return
        _, kind, id, purpose, tries = turn
        if tries < DECLINE_RETRIES:
            self.later(kind, id, purpose, 0, 1, 12, tries=tries + 1)

    def _refused(self, kind: str, trigger: str, error: LifecycleError) -> None:
        self.count(f"refused.{kind}.{trigger}")

    def fire_now(self, kind: str, id: str, trigger: str, actor: Actor,
                 payload: Mapping[str, Any] | None = None) -> Aggregate | None:
        """Fire at once, outside the turn queue (a buyer claiming a coupon while ordering);
        None if refused."""
        for _ in range(CONFLICT_RETRIES):
            try:
                moved = self.engine.fire(kind, id, trigger, actor, payload or {})
            except Conflict:
                self.count("conflicts.retried")
                continue
            except LifecycleError as error:
                self._refused(kind, trigger, error)
                return None
            self.drain()
            return moved
        self.count("conflicts.given_up")
        return None

    def checkout(self, order: Aggregate, tries: int) -> bool:
        """The buyer pays on the gateway's own page; the order hears of it by callback.
        Returns False when the payment was declined."""
        assert self.gateway is not None
        key = f"{self.name}:checkout:{order.id}:t{tries}"
        amount = Money(Decimal(order.data["total"]), order.data["currency"])
        for _ in range(ADAPTER_RETRIES):
            try:
                self.gateway.capture(order.id, amount, key)
            except AdapterError as error:
                if error.retryable:
                    self.count("adapter.timeout" if error.timeout else "adapter.error")
                    self.count("retries.same_key")
                    continue
                self.count("adapter.declined")
                return False
            self.count("checkout.captured")
            return True
        self.count("retries.exhausted")
        return False

    # --- what the engine tells us -----------------------------------------------------------

    def drain(self) -> None:
        """Apply the events of what just committed, in commit order."""
        while self.inbox:
            events = list(self.inbox)
            self.inbox.clear()
            for event in events:
                self._apply(event)

    def _apply(self, event: Event) -> None:
        id = event["id"]
        if not id.startswith(self.prefix):
            return  # somebody else's aggregate in a shared database
        kind, trigger, source, dest = event["kind"], event["trigger"], event["source"], event["dest"]
        self.session_transitions += 1
        self.tally.triggers[f"{kind}.{trigger}"] += 1
        states = self.states[kind]
        if source != dest:
            states[dest] += 1
            self.tally.reached[f"{kind}.{dest}"] += 1
            if source is not None:
                states[source] -= 1
        self.actors[kind].on_event(event, self.now())

    def _deliver_callbacks(self) -> None:
        if self.gateway is None:
            return
        for message in self.gateway.take_callbacks():
            self._callback(message.body, message.headers)

    def _callback(self, body: bytes, headers: Mapping[str, str]) -> None:
        assert self.gateway is not None
        self.count("callbacks.delivered")
        before = self.session_transitions
        for _ in range(CONFLICT_RETRIES):
            try:
                self.engine.ingest_payment_callback(self.gateway.name, body, headers)
            except Conflict:
                self.count("conflicts.retried")
                continue
            except lifecycle.CaptureRefused:
                # A capture for an order that ended meanwhile: recorded and refunded.
                self.count("callbacks.unexpected_captures")
            except LifecycleError:
                self.count("callbacks.refused")
            break
        self.drain()
        self.count("callbacks.applied" if self.session_transitions > before else "callbacks.ignored")

    def _deliver_pushes(self) -> None:
        now = self.now()
        while self.scans and self.scans[0] <= now:
            self._scan_ticks.discard(heapq.heappop(self.scans))
        for name, carrier in self.carriers.items():
            for message in carrier.take_pushes():
                self._push(name, message.body, message.headers)

    def _push(self, carrier: str, body: bytes, headers: Mapping[str, str]) -> None:
        self.count("pushes.delivered")
        before = self.session_transitions
        for _ in range(CONFLICT_RETRIES):
            try:
                self.engine.ingest_tracking(carrier, body, headers)
            except Conflict:
                self.count("conflicts.retried")
                continue
            except LifecycleError:
                self.count("pushes.refused")
            break
        self.drain()
        self.count("pushes.applied" if self.session_transitions > before else "pushes.ignored")

    # --- progress -------------------------------------------------------------------------

    def checkpoint(self, status: str) -> None:
        progress = self.progress
        progress.status, progress.sim_now = status, self.now()
        progress.next_order, progress.tally = self.next_order, self.tally.to_dict()
        record.save(self.engine.database, progress, datetime.now(UTC))

    def close(self) -> None:
        self._subscription.inbox = None

    # --- resume ---------------------------------------------------------------------------

    def rebuild(self) -> None:
        """After a restart: count states and queue the turns every open aggregate waits for,
        from the database alone. Tracking continues because the carriers are told again about
        the parcels still on their way."""
        latest = self.now()
        for kind in ("seller", "coupon", "voucher", "order", "dispute"):
            terminal = self.engine.definitions[kind].terminal
            for aggregate in self.scan(kind):
                self.states[kind][aggregate.state] += 1
                if aggregate.state in terminal:
                    continue
                history = self.engine.history(kind, aggregate.id)
                latest = max(latest, history[-1].at)
                self.actors[kind].resume(aggregate, history)
        self.clock.set(latest)

    def scan(self, kind: str, page: int = 500) -> Iterator[Aggregate]:
        """Every aggregate of ``kind`` this run made, a page at a time."""
        after: str | None = None
        while True:
            found = self.engine.find(kind, limit=page, after_id=after)
            for aggregate in found:
                if aggregate.id.startswith(self.prefix):
                    yield aggregate
            if len(found) < page:
                return
            after = found[-1].id


class _Subscription:
    """The engine's subscriber: it only queues, so that the driver applies events in its own
    loop (a subscriber's exception would be logged and swallowed by the engine)."""

    def __init__(self, inbox: list[Event]):
        self.inbox: list[Event] | None = inbox

    def __call__(self, event: Mapping[str, Any]) -> None:
        if self.inbox is not None:
            self.inbox.append(event)


class _Bystanders:
    """Vouchers act on nobody's behalf: they follow their orders and coupons."""

    def __init__(self, kind: str):
        self.kind = kind

    def on_event(self, event: Event, at: datetime) -> None:
        return None

    def decide(self, aggregate: Aggregate | None, turn: Turn) -> Decision:
        return None

    def resume(self, aggregate: Aggregate, history: list[HistoryEntry]) -> None:
        return None
