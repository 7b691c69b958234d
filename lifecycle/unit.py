"""One trigger, one unit of work: its transaction, the policy it holds, its idempotency record,
and the events it publishes once it has committed.

`Units.run` is what every caller's trigger goes through (`pipeline`), and `Units.open` what a
deadline fires in (`timers`). A retry with a known idempotency key is answered from its record,
inside the transaction, before anything else is read; a race lost to a delivery with the same
key is answered from that delivery's record once it committed.

`Units.batch` is group commit (issue #15): the thread's units inside it are savepoints of one
transaction (`Store.batch`), and what they publish waits for its commit.
"""

from __future__ import annotations

import fnmatch
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog

from lifecycle.clock import Clock
from lifecycle.errors import AlreadyExists, Conflict, IdempotencyMismatch, InvalidTransition
from lifecycle.logs import BoundOnce
from lifecycle.machines.definition import Aggregate
from lifecycle.policy import Policy
from lifecycle.request import Request
from lifecycle.shared_policy import SharedPolicy
from lifecycle.store.datastore import Store
from lifecycle.store.recorder import Recorder

log = structlog.get_logger("lifecycle")
transition_log = BoundOnce("lifecycle")

Subscriber = Callable[[Mapping[str, Any]], None]
_Result = TypeVar("_Result")


@dataclass(slots=True)
class Unit:
    """One trigger's work in its transaction: the recorder its statements run on, the moment
    it stamps (never before the aggregate last moved), the policy it holds, and the events
    it wrote, published once it commits."""

    records: Recorder
    now: datetime
    policy: Policy
    events: list[dict[str, Any]] = field(default_factory=list)


class _Local(threading.local):
    # What the thread's open batch will publish once it commits: (events, seconds) per unit.
    pending: list[tuple[list[dict[str, Any]], float]] | None = None
    # The same events one after another, for `written` (the batch's own code reacting to them).
    written: list[dict[str, Any]] | None = None


class Units:
    """Opens units of work on one store and publishes what they committed."""

    def __init__(self, store: Store, clock: Clock, policy: SharedPolicy,
                 subscribers: list[tuple[str, Subscriber]]):
        self.store = store
        self.clock = clock
        self.policy = policy
        self.subscribers = subscribers  # the engine's list: `Engine.subscribe` adds to it
        self._local = _Local()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """`Engine.batch`: the thread's units inside the block commit together when it ends,
        each a savepoint of one transaction (`Store.batch`); their events are published after
        that commit, in the order the units ran, and never those of a unit rolled back. Inside
        a batch, a savepoint of the outer one: its events are dropped if it raises."""
        outer, flat = self._local.pending, self._local.written
        if outer is not None and flat is not None:
            mark, flat_mark = len(outer), len(flat)
            try:
                with self.store.batch():
                    yield
            except BaseException:
                del outer[mark:]
                del flat[flat_mark:]
                raise
            return
        pending: list[tuple[list[dict[str, Any]], float]] = []
        self._local.pending, self._local.written = pending, []
        try:
            with self.store.batch(), self.policy.batch():
                yield
        finally:
            self._local.pending = self._local.written = None
        for events, seconds in pending:
            self._announce(events, seconds)

    def written(self, start: int = 0) -> list[dict[str, Any]]:
        """`Engine.batch_events`: the events the thread's open batch wrote so far, from the
        ``start``-th; empty outside a batch."""
        flat = self._local.written
        return [] if flat is None else flat[start:]

    @contextmanager
    def open(self) -> Iterator[Unit]:
        """A transaction holding the newest stored policy; committed when the block ends."""
        with self.store.transaction() as records, self.policy.held(records) as policy:
            yield Unit(records, self.clock.now().astimezone(UTC), policy)

    def write(self, apply: Callable[[Unit], _Result]) -> _Result:
        """A unit of work that is no trigger (a carrier scan recorded on an order it did not
        move): its own transaction, or a savepoint of the thread's open batch, as a trigger's;
        its events published once that commits, in a batch once the batch does."""
        started = time.perf_counter()
        with self.open() as unit:
            result = apply(unit)
        self.publish(unit.events, time.perf_counter() - started)
        return result

    def run(self, request: Request, apply: Callable[[Unit], Aggregate], *, creates: bool) -> Aggregate:
        """Apply ``request`` in a unit of its own, once per idempotency key, and publish its
        events. ``creates``: the request is its kind's creating trigger.

        What `open` does, written out: every trigger comes this way, and a generator's
        ``with`` costs ~3 us a trigger."""
        started = time.perf_counter()
        try:
            with self.store.transaction() as records:
                policy, outer = self.policy.hold(records)
                try:
                    unit = Unit(records, self.clock.now().astimezone(UTC), policy)
                    result = self._apply(unit, request, apply)
                finally:
                    self.policy.release(outer)
        except self.store.duplicate:
            # Someone committed the same key or id between our read and our write.
            return self._after_race(request, creates)
        except (Conflict, InvalidTransition, AlreadyExists):
            # A delivery with the same key may have committed after our key check (we then
            # read its state, or lost the version to it): its result is ours.
            earlier = self._remembered(request)
            if earlier is None:
                raise
            return earlier
        self.publish(unit.events, time.perf_counter() - started)
        return result

    def _apply(self, unit: Unit, request: Request, apply: Callable[[Unit], Aggregate]) -> Aggregate:
        """The request's result in ``unit``: its key's first one, or ``apply``'s, remembered."""
        key = request.idempotency_key
        if key is None:
            return apply(unit)
        earlier = self.replay(unit.records, request)
        if earlier is not None:
            return earlier
        result = apply(unit)
        unit.records.remember(key, request.fingerprint(), result, unit.now)
        return result

    def replay(self, records: Recorder, request: Request) -> Aggregate | None:
        """The first result of the request's key, or None if the key is new. The record keeps
        the state and version the first delivery led to, not a copy of the aggregate: the
        answer carries those, with the aggregate's data as it is now."""
        assert request.idempotency_key is not None
        earlier = records.remembered(request.idempotency_key)
        if earlier is None:
            return None
        if earlier.request_hash != request.fingerprint():
            raise IdempotencyMismatch(request.idempotency_key)
        current = records.load(earlier.kind, earlier.id)
        if current is None:
            return Aggregate(earlier.kind, earlier.id, earlier.state, earlier.version, {})
        return Aggregate(earlier.kind, earlier.id, earlier.state, earlier.version, current.data,
                         current.machine_version)

    def key_used(self, key: str) -> bool:
        with self.store.quick() as records:
            return records.remembered(key) is not None

    def _remembered(self, request: Request) -> Aggregate | None:
        """The committed result of the request's idempotency key, read after our rollback."""
        if request.idempotency_key is None:
            return None
        with self.store.quick() as records:
            return self.replay(records, request)

    def _after_race(self, request: Request, creates: bool) -> Aggregate:
        earlier = self._remembered(request)
        if earlier is not None:
            return earlier
        if request.id is not None and creates:
            raise AlreadyExists(request.kind, request.id)
        raise Conflict(request.kind, request.id or "?")

    def publish(self, events: list[dict[str, Any]], seconds: float) -> None:
        """Log each committed transition (or recorded scan) and call the subscribers whose
        pattern matches; in a batch, once the batch has committed."""
        pending, flat = self._local.pending, self._local.written
        if pending is not None and flat is not None:
            pending.append((events, seconds))
            flat.extend(events)
            return
        self._announce(events, seconds)

    def _announce(self, events: list[dict[str, Any]], seconds: float) -> None:
        logger = transition_log.get()
        for event in events:
            _log(logger, event, round(seconds * 1000, 3))
            for pattern, fn in self.subscribers:
                if fnmatch.fnmatchcase(event["name"], pattern):
                    try:
                        fn(event)
                    except Exception:
                        # The transition is committed; a subscriber's failure must not
                        # look like the trigger failed.
                        log.exception("subscriber.failed", domain_event=event["name"],
                                      pattern=pattern)


def _log(logger: Any, event: Mapping[str, Any], duration_ms: float) -> None:
    """One line per committed event: ``transition``, or ``tracking.recorded`` for a carrier
    scan recorded without one (SPEC §4: it has no trigger)."""
    if event["kind"] == "notification":
        # A message a transition asked for (issue #20): never its values, which may hold a code.
        notice = event["payload"]
        logger.info("notification.queued", recipient=event["aggregate_id"],
                    channel=notice["channel"], category=notice["category"],
                    template=notice["template"], about=notice["about"]["kind"])
        return
    if event["trigger"] is None:
        payload = event["payload"]
        logger.info("tracking.recorded", kind=event["kind"], id=event["aggregate_id"],
                    state=event["dest"], carrier=payload["carrier"], status=payload["status"],
                    event_id=payload["event_id"], duration_ms=duration_ms)
        return
    actor = event["actor"]
    logger.info("transition", kind=event["kind"], id=event["aggregate_id"],
                trigger=event["trigger"], actor=f"{actor['role']}:{actor['id']}",
                src=event["source"], dst=event["dest"], duration_ms=duration_ms)
