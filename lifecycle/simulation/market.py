"""The market: one run's people, their turns, and how they act on the engine.

Each thing anyone does is one `Engine.fire` or `Engine.create` through the public API, and the
driver groups them in batches (`Engine.batch`, issue #15): one transaction per tick (or per
``batch_size`` transitions), each trigger under its own savepoint, the run's progress row
written in the same batch (`Engine.execute`), so a run killed at any point leaves a consistent
database whose progress matches it. Inside a batch the engine's subscribers hear nothing before
the commit, so the market reads what the batch wrote so far (`Engine.batch_events`) and reacts
at once, exactly as it did to one committed trigger at a time: the same seed gives the same
run whatever the batch size. People react to what
happened: the engine calls our subscriber after each commit, and the kind's actors turn the
event into a turn some time later ("the seller ships two days after payment"). A turn re-reads
the aggregate and decides again from what is there now, so a turn that came too late (the timer
cancelled the order first) does nothing. Retries are a service's (`retry`): a `Conflict`
re-reads and decides again; an adapter timeout retries with the same idempotency key; a decline
is a new attempt, later, with a new key.

`Market` is the `Marketplace` the actors see; `driver.Driver` moves its clock and delivers
what the sandboxes send.
"""

from __future__ import annotations

import contextlib
import heapq
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

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
    Policy,
)
from lifecycle.adapters import SANDBOX_CARRIERS, Money, SandboxCarrier, SandboxGateway
from lifecycle.simulation import record
from lifecycle.simulation.accounts import StaffActors
from lifecycle.simulation.config import Config
from lifecycle.simulation.coupons import CouponActors
from lifecycle.simulation.disputes import DisputeActors
from lifecycle.simulation.messages import MessageActors
from lifecycle.simulation.orders import OrderActors
from lifecycle.simulation.penalties import PenaltyActors
from lifecycle.simulation.points import PointsActors
from lifecycle.simulation.profiles import ProfileActors
from lifecycle.simulation.retry import DECLINE_RETRIES, GAVE_UP, REREAD, SAME_KEY
from lifecycle.simulation.sellers import SellerActors
from lifecycle.simulation.vocabulary import (
    Act,
    Actors,
    Create,
    Decision,
    Event,
    Later,
    Progress,
    Turn,
    Watcher,
)
from lifecycle.simulation.world import roll, unit

# The sandbox gateway's operations, and the report's names for what each moved.
GATEWAY_TOTALS: tuple[tuple[Literal["capture", "refund", "payout", "charge_fee"], str], ...] = (
    ("capture", "captured"), ("refund", "refunded"), ("payout", "paid_out"),
    ("charge_fee", "store_fees"))


def ceil_to(start: datetime, moment: datetime, period: timedelta) -> datetime:
    """The first boundary of ``period`` (counted from ``start``) at or after ``moment``."""
    return start + period * -((start - moment) // period)


class Market:
    """One run on one engine. Built by `lifecycle.simulation.run`."""

    def __init__(self, engine: Engine, config: Config, progress: record.Progress, *,
                 on_progress: Progress | None = None, stop_after_orders: int | None = None,
                 batch_size: int = 1):
        clock = engine.clock
        if not isinstance(clock, lifecycle.SimulatedClock):
            raise lifecycle.InvalidPayload("engine", "a simulation runs on an engine opened with a "
                                                     "lifecycle.SimulatedClock")
        self.engine, self.clock, self.config = engine, clock, config
        # The run's policy: `run_on` refuses a database whose policy differs, and a run does
        # not change it.
        self.policy: Policy = engine.policy
        # A shard's ids carry its label (``sim-3-o0000042``), so that a prefix selects them.
        self.seed, self.name, self.prefix = config.seed, config.label, f"{config.label}-"
        self.behaviour, self.faults = config.behaviour, config.faults
        self.start = config.start.astimezone(UTC)
        self.arrivals_end = self.start + timedelta(days=config.days)
        self.progress = progress
        self.tally = record.Tally(progress.tally)
        self.next_order = progress.next_order
        self.on_progress = on_progress
        self.stop_after_orders = stop_after_orders
        self.stopping = stop_after_orders is not None and self.next_order >= stop_after_orders
        self.turns: list[Turn] = []
        # The push ticks that will deliver carrier scans, each once: many parcels' scans share
        # a tick, so this stays small however many parcels are on their way.
        self.scans: list[datetime] = []
        self.scan_ticks: set[datetime] = set()
        self.push_every = timedelta(hours=config.push_every_hours)
        self.inbox: list[Event] = []
        # Batches: the most transitions one holds (1: no batches), whether one is open, how
        # many of its events were applied, and whether one was lost (the driver's state is
        # then ahead of the database: no progress may be saved from it).
        self.batch_size = batch_size
        self.in_batch = False
        self.seen = 0
        self.lost_batch = False
        self._block: AbstractContextManager[None] = contextlib.nullcontext()
        self.states: dict[str, Counter[str]] = {k: Counter() for k in lifecycle.definitions()}
        self.session_transitions = 0
        self.session_scans = 0  # carrier scans recorded without a transition (SPEC §4)
        self._saved_applied = -1  # what was applied at the last save; the first is never skipped
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
        # The seller's account (issue #20): staff, penalties, points, messages, profiles.
        self.staff = StaffActors(self)
        self.penalties = PenaltyActors(self)
        self.points = PointsActors(self)
        self.messages = MessageActors(self)
        self.profiles = ProfileActors(self)
        self.actors: dict[str, Actors] = {
            "seller": self.sellers, "coupon": self.coupons, "order": self.orders,
            "dispute": self.disputes, "voucher": _Bystanders("voucher"),
            "subaccount": self.staff, "violation": self.penalties, "standing": self.penalties,
            "points_account": self.points, "points_earning": _Bystanders("points_earning"),
            "message": self.messages, "profile": self.profiles, "contact": self.profiles,
            "avatar": self.profiles,
        }
        # Who else hears a kind's events: the account's people hear a store open and close,
        # and the messages an order's troubles call for.
        account: list[Watcher] = [self.staff, self.penalties, self.points, self.profiles]
        self.watchers: dict[str, list[Watcher]] = {
            "seller": account, "order": [self.messages], "dispute": [self.messages]}
        self._subscription = _Subscription(self.inbox)
        engine.subscribe("*", self._subscription)

    # --- time and turns -------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock.now()

    def schedule(self, at: datetime, kind: str, id: str, purpose: str, tries: int = 0) -> None:
        heapq.heappush(self.turns, Turn(max(at, self.now()), kind, id, purpose, tries))

    def later(self, kind: str, id: str, purpose: str, version: int, low: float, high: float,
              at: datetime | None = None, tries: int = 0) -> None:
        """Queue a turn ``low`` to ``high`` hours after ``at`` (now), the delay drawn from the
        seed, the aggregate and its version: the same on every run and after a resume."""
        fraction = unit(self.seed, kind, id, purpose, version, tries)
        delay = timedelta(seconds=round((low + (high - low) * fraction) * 3600))
        self.schedule((at or self.now()) + delay, kind, id, purpose, tries)

    def again(self, turn: Turn, version: int, low: float, high: float, *,
              purpose: str | None = None, limit: int = DECLINE_RETRIES) -> None:
        """A new attempt (a new idempotency key) ``low`` to ``high`` hours from now, unless
        the turn has had ``limit`` of them: what a decline calls for."""
        if turn.tries < limit:
            self.later(turn.kind, turn.id, purpose or turn.purpose, version, low, high,
                       tries=turn.tries + 1)

    def count(self, name: str, n: int = 1) -> None:
        self.tally.counters[name] += n

    def expect_scans(self, carrier: str, waybill: str) -> None:
        """Note when the carrier will scan a parcel, so that idle time can be skipped safely."""
        now = self.now()
        for event in self.carriers[carrier].timeline(waybill):
            if event.at <= now:
                continue
            tick = ceil_to(self.start, event.at, self.push_every)
            if tick not in self.scan_ticks:
                self.scan_ticks.add(tick)
                heapq.heappush(self.scans, tick)

    # --- what the engine answers ----------------------------------------------------------

    def get(self, kind: str, id: str) -> Aggregate:
        return self.engine.get(kind, id)

    def allows(self, kind: str, state: str, trigger: str) -> bool:
        return self.engine.definition(kind).step(state, trigger) is not None

    def open_orders(self) -> int:
        """Orders of the run that have not ended, by the states the driver counted."""
        terminal = self.engine.definition("order").terminal
        return sum(n for state, n in self.states["order"].items() if state not in terminal)

    # --- acting ---------------------------------------------------------------------------

    def take_turn(self, turn: Turn) -> None:
        """Read, decide, act; on a `Conflict` read and decide again."""
        REREAD.run(lambda attempt: self._turn(turn, first=attempt == 0), self.count)

    def _turn(self, turn: Turn, *, first: bool) -> None:
        try:
            aggregate: Aggregate | None = self.engine.get(turn.kind, turn.id)
        except NotFound:
            aggregate = None
        decision: Decision = self.actors[turn.kind].decide(aggregate, turn)
        if decision is None:
            return
        if isinstance(decision, Later):
            self.schedule(decision.at, turn.kind, turn.id, turn.purpose, turn.tries)
        elif isinstance(decision, Create):
            self.create(decision)
        elif aggregate is None:
            raise lifecycle.InvalidPayload("decision", f"{decision.trigger} needs an aggregate to act on")
        else:
            self._act(aggregate, decision, turn, first=first)

    def create(self, decision: Create,
               refused: Callable[[LifecycleError], None] | None = None) -> Aggregate | None:
        try:
            created = self.engine.create(decision.kind, decision.actor, decision.payload,
                                         id=decision.id)
        except AlreadyExists:
            return None  # made before a restart
        except LifecycleError as error:
            if refused is not None:
                refused(error)
            else:
                self._refused(decision.kind,
                              self.engine.definition(decision.kind).creation.trigger, error)
            return None
        self.drain()
        return created

    def upload_avatar(self, id: str, actor: Actor, image: bytes) -> Aggregate | None:
        """A seller's avatar upload (the image checked as a JPEG and kept beside it)."""
        try:
            created = self.engine.upload_avatar(actor, image, id=id)
        except AlreadyExists:
            return None  # made before a restart
        except LifecycleError as error:
            self._refused("avatar", "upload", error)
            return None
        self.drain()
        return created

    def _act(self, aggregate: Aggregate, act: Act, turn: Turn, *, first: bool) -> None:
        """Fire the act, the same key again after a timeout; a `Conflict` goes up to `REREAD`."""
        kind, id, version = aggregate.kind, aggregate.id, aggregate.version
        key = f"{self.name}:{kind}:{id}:{act.trigger}:v{version}:t{turn.tries}"
        expected = version
        if first and self.faults.conflict and \
                roll(self.seed, "conflict", kind, id, version, act.trigger) < self.faults.conflict:
            expected = version - 1  # as if another process had written since we read
            self.count("conflicts.injected")

        def fire(_attempt: int) -> Aggregate:
            return self.engine.fire(kind, id, act.trigger, act.actor, act.payload,
                                    idempotency_key=key, expected_version=expected)

        try:
            moved = SAME_KEY.run(fire, self.count)
        except Conflict:
            raise
        except AdapterError as error:
            self._adapter_failed(error, act, turn)
            return
        except LifecycleError as error:
            if act.refused is not None:
                act.refused(error)
            else:
                self._refused(kind, act.trigger, error)
            return
        if moved is GAVE_UP:
            self.later(kind, id, turn.purpose, version, 1, 3, tries=turn.tries)
            return
        self.drain()
        if act.then is not None:
            act.then(moved)

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
        self.again(turn, 0, 1, 12)

    def _refused(self, kind: str, trigger: str, error: LifecycleError) -> None:
        self.count(f"refused.{kind}.{trigger}")

    def fire_now(self, kind: str, id: str, trigger: str, actor: Actor,
                 payload: Mapping[str, Any] | None = None) -> Aggregate | None:
        """Fire at once, outside the turn queue (a buyer claiming a coupon while ordering);
        None if refused."""
        def fire(_attempt: int) -> Aggregate:
            return self.engine.fire(kind, id, trigger, actor, payload or {})

        try:
            moved = REREAD.run(fire, self.count)
        except LifecycleError as error:
            self._refused(kind, trigger, error)
            return None
        if moved is GAVE_UP:
            return None
        self.drain()
        return moved

    def checkout(self, order: Aggregate, tries: int) -> bool:
        """The buyer pays on the gateway's own page; the order hears of it by callback.
        Returns False when the payment was declined."""
        gateway = self.gateway
        if gateway is None:
            raise lifecycle.InvalidPayload("payments", "a checkout needs the sandbox gateway")
        key = f"{self.name}:checkout:{order.id}:t{tries}"
        amount = Money(Decimal(order.data["total"]), order.data["currency"])
        try:
            captured = SAME_KEY.run(lambda _: gateway.capture(order.id, amount, key), self.count)
        except AdapterError:
            self.count("adapter.declined")
            return False
        if captured is GAVE_UP:
            return False
        self.count("checkout.captured")
        return True

    # --- what the engine tells us ----------------------------------------------------------

    def drain(self) -> None:
        """Apply the events of what just committed (in a batch: what it just wrote), in order."""
        if self.in_batch:
            while True:
                written = self.engine.batch_events(self.seen)
                if not written:
                    return
                self.seen += len(written)
                for fresh in written:
                    self._apply(fresh)
        while self.inbox:
            events = list(self.inbox)
            self.inbox.clear()
            for event in events:
                self._apply(event)

    def _apply(self, event: Event) -> None:
        kind = event["kind"]
        if not self._ours(kind, event["aggregate_id"]):
            return  # somebody else's aggregate in a shared database
        if kind == "notification":  # a message for a person (issue #20): no transition
            self.count("notifications.queued")
            self.profiles.notified(event, self.now())
            return
        trigger, source, dest = event["trigger"], event["source"], event["dest"]
        if trigger is None:  # a carrier scan recorded: no transition, nobody acts on it
            self.session_scans += 1
            self.count("tracking.recorded")
            return
        self.session_transitions += 1
        self.tally.triggers[f"{kind}.{trigger}"] += 1
        states = self.states[kind]
        if source != dest:
            states[dest] += 1
            self.tally.reached[f"{kind}.{dest}"] += 1
            if source is not None:
                states[source] -= 1
        self.actors[kind].on_event(event, self.now())
        for watcher in self.watchers.get(kind, ()):
            watcher.watch(event, self.now())

    def _ours(self, kind: str, id: str) -> bool:
        """Whether an event is of the run's aggregates: their ids carry its prefix, but for an
        order's points earning, named for the order (``order_paid:sim-o0000042``)."""
        if kind == "points_earning":
            return id.partition(":")[2].startswith(self.prefix)
        return id.startswith(self.prefix)

    def applied(self) -> int:
        """What this session applied of the engine's events: transitions and recorded scans."""
        return self.session_transitions + self.session_scans

    # --- progress -------------------------------------------------------------------------

    def rate(self) -> float:
        seconds = self.wall_seconds()
        return self.session_transitions / seconds if seconds > 0 else 0.0

    def wall_seconds(self) -> float:
        return time.perf_counter() - self.wall_started

    def cpu_seconds(self) -> float:
        """Processor time of this process: steadier than the wall clock on a busy machine."""
        return time.process_time() - self.cpu_started

    def moved(self) -> None:
        """Save the progress (``running``) if anything happened since it was last saved: a
        tick, or a batch, in which nobody's act committed writes nothing, and so costs
        PostgreSQL no flush of its log (a market of many shards has many quiet ticks). The
        saved progress still covers every transition the database holds."""
        if self.applied() != self._saved_applied:
            self.checkpoint("running")

    def checkpoint(self, status: str) -> None:
        """Save the run's progress: in the open batch, if any, committed with its triggers."""
        self._saved_applied = self.applied()
        progress = self.progress
        progress.status, progress.sim_now = status, self.now()
        self.tally.gateway = self._gateway_totals() if progress.session == 0 else {}
        progress.next_order, progress.tally = self.next_order, self.tally.to_dict()
        self.engine.execute(record.saving(progress, record.saved_at()))

    def _gateway_totals(self) -> dict[str, str]:
        """What the sandbox gateway moved, for the report: it forgets on exit."""
        if self.gateway is None:
            return {}
        return {label: str(self.gateway.total(operation)) for operation, label in GATEWAY_TOTALS}

    # --- batches --------------------------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One batch of the run's triggers (none when ``batch_size`` is 1), rolled over to a
        new one by `roll` once it holds ``batch_size`` transitions; the block's end saves the
        progress in the batch (`moved`) and commits it."""
        if self.batch_size <= 1:
            yield
            return
        self._open()
        try:
            yield
        except BaseException:
            self.lost_batch = True
            if self.in_batch:  # not when `roll` failed to commit (it closed the batch)
                self._close(*sys.exc_info())
            raise
        self._commit()

    def roll(self) -> None:
        """Between two people's acts: commit the open batch once it is full, open the next."""
        if self.in_batch and self.seen >= self.batch_size:
            self._commit()
            self._open()

    def _open(self) -> None:
        self._block = self.engine.batch()
        self._block.__enter__()
        self.in_batch, self.seen = True, 0

    def _commit(self) -> None:
        """Save the progress in the batch and commit it; if either fails (a database error
        loses the whole batch), the batch is closed and the driver's state marked ahead of the
        database."""
        try:
            self.moved()
        except BaseException:
            self.lost_batch = True
            self._close(*sys.exc_info())
            raise
        try:
            self._close(None, None, None)
        except BaseException:
            self.lost_batch = True
            raise

    def _close(self, *exc: Any) -> None:
        self.in_batch = False
        try:
            self._block.__exit__(*exc)
        finally:
            # The commit handed the subscriber the events the batch's acts already applied.
            self.inbox.clear()

    def close(self) -> None:
        self._subscription.inbox = None


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
