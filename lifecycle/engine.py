"""The engine: create / fire / get / history / allowed, one database transaction per trigger.

A trigger is checked in this order, and the first refusal wins: the aggregate exists, the actor
owns it (buyers and sellers), the trigger is defined from its state, the actor's role may fire
it, the payload is well-formed, the guards pass. Then the shared `transitions` machine of the
kind moves a `Context`, and state, history, outbox, idempotency record and any follow-ups (a
dispute created, an order moved by its dispute) are written in the same transaction. Anything
raised on the way rolls all of it back.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection
from sqlalchemy import Engine as Database
from sqlalchemy.exc import IntegrityError

from lifecycle import timers
from lifecycle.actor import Actor
from lifecycle.adapter_calls import Adapters, carry_out, tracking_trigger
from lifecycle.adapters.errors import AdapterError, EventsRejected
from lifecycle.adapters.ports import PaymentEvent, TrackingEvent
from lifecycle.adapters.webhooks import delivery
from lifecycle.clock import Clock
from lifecycle.errors import (
    AlreadyExists,
    CaptureRefused,
    Conflict,
    Forbidden,
    GuardFailed,
    IdempotencyMismatch,
    InvalidPayload,
    InvalidTransition,
    LifecycleError,
    NotFound,
    PolicyMismatch,
    ReplayMismatch,
    UnknownKind,
)
from lifecycle.ids import identifier
from lifecycle.logs import BoundOnce
from lifecycle.machines import ALIASES, DEFINITIONS, capture
from lifecycle.machines.definition import (
    Aggregate,
    Call,
    Claim,
    Context,
    Create,
    Fire,
    Index,
    MachineDefinition,
    Post,
    Scan,
    Step,
)
from lifecycle.machines.payloads import dump
from lifecycle.policy import Policy, PolicyVersion
from lifecycle.store import audit, reports, retention
from lifecycle.store import deadlines as deadline_store
from lifecycle.store import ledger as ledger_store
from lifecycle.store import policies as policy_store
from lifecycle.store import repository as repo
from lifecycle.store.audit import Violation
from lifecycle.store.deadlines import ScheduledDeadline
from lifecycle.store.failures import database_errors, is_contention, unavailable
from lifecycle.store.hot import cursor
from lifecycle.store.reports import LedgerSum, ParkedDeadline, StateCount
from lifecycle.store.repository import HistoryEntry, TrackingRecord

log = structlog.get_logger("lifecycle")
transition_log = BoundOnce("lifecycle")

Subscriber = Callable[[Mapping[str, Any]], None]
# Headers of a callback or push as frameworks hand them over (see `webhooks.delivery`).
Headers = Mapping[str, str] | Mapping[bytes, bytes] | Iterable[tuple[str | bytes, str | bytes]]
_Parsed = TypeVar("_Parsed")

TIMER = Actor("system", "timer")

# A follow-up may cause another (a dispute resolves, its order moves); never deeper than this.
MAX_FOLLOW_UP_DEPTH = 4


@dataclass(frozen=True, slots=True)
class _Request:
    kind: str
    id: str | None
    trigger: str
    actor: Actor
    payload: Mapping[str, Any]
    idempotency_key: str | None

    def fingerprint(self) -> str:
        """What makes a retry "the same request" for its idempotency key."""
        text = json.dumps(
            [self.kind, self.id, self.trigger, self.actor.role, self.actor.id, self.payload],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(slots=True)
class _Unit:
    """What one trigger wrote: the events to publish and log once it commits."""

    conn: Connection
    now: datetime
    events: list[dict[str, Any]] = field(default_factory=list)


class Engine:
    """Opened by `lifecycle.open`. Safe to share between threads; holds no aggregate state.

    ``policy`` is what the engine schedules with until it has read the database's (each
    trigger does, first thing); `lifecycle.open` stores or checks it.
    """

    def __init__(self, database: Database, clock: Clock, policy: Policy,
                 adapters: Adapters | None = None):
        self.database = database
        self.clock = clock
        self._opened_with = policy
        # The newest stored version read so far: parsed again only when the number changes.
        self._known: PolicyVersion | None = None
        self.adapters = adapters or Adapters.configure(clock)
        self.definitions: Mapping[str, MachineDefinition] = DEFINITIONS
        self._writer = database.execution_options(immediate=True)
        # Each thread keeps its writing connection between triggers: checking one out of the
        # pool and resetting it on return cost about as much as a trigger's own statements.
        # A finished thread's connection goes back when the next new thread takes one.
        self._local = threading.local()
        self._held: dict[threading.Thread, Connection] = {}
        self._held_lock = threading.Lock()
        # The hot path runs on the DBAPI cursor, so its errors arrive unwrapped as well.
        dbapi: Any = database.dialect.dbapi
        self._duplicate: tuple[type[Exception], ...] = (IntegrityError, dbapi.IntegrityError)
        # Contention (a `Conflict`) or the database out of reach (`Unavailable`): `store.failures`.
        self._database_errors = database_errors(database)
        self._subscribers: list[tuple[str, Subscriber]] = []
        self._sqlite = database.dialect.name == "sqlite"

    # --- public API ---------------------------------------------------------------------

    def create(
        self,
        kind: str,
        actor: Actor,
        payload: Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Aggregate:
        """Fire the kind's creating trigger (``register``, ``place``) and return the aggregate."""
        definition = self.definition(kind)
        if id is not None:
            id = _id(id)
        request = _Request(definition.kind, id, definition.creation.trigger, _actor(actor),
                           _payload(payload), _key(idempotency_key))
        return self._run(request, lambda unit: self._create(unit, definition, request, False))

    def fire(
        self,
        kind: str,
        id: str,
        trigger: str,
        actor: Actor,
        payload: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        expected_version: int | None = None,
    ) -> Aggregate:
        """Fire ``trigger`` on one aggregate; raises a `LifecycleError` and writes nothing if refused.

        ``expected_version`` makes the optimistic check explicit: the trigger applies only if
        the aggregate is still at the version the caller read.
        """
        definition = self.definition(kind)
        request = _Request(definition.kind, _id(id), trigger, _actor(actor), _payload(payload),
                           _key(idempotency_key))
        return self._run(
            request,
            lambda unit: self._fire(unit, definition, request, expected_version, False),
        )

    def get(self, kind: str, id: str) -> Aggregate:
        definition = self.definition(kind)
        with self._quick_read() as conn:
            found = repo.load(conn, definition.kind, _id(id))
        if found is None:
            raise NotFound(definition.kind, id)
        return found

    def history(self, kind: str, id: str) -> list[HistoryEntry]:
        definition = self.definition(kind)
        with self._reading() as conn:
            entries = repo.history_of(conn, definition.kind, _id(id))
        if not entries:
            raise NotFound(definition.kind, id)
        return entries

    def replay(self, kind: str, id: str) -> str:
        """Replay the aggregate's history through its machine; the state it leads to.

        Raises `ReplayMismatch` if the history breaks the definition or does not end in the
        stored state and version.
        """
        definition = self.definition(kind)
        stored = self.get(kind, id)
        steps = [(e.seq, e.trigger, e.source, e.dest) for e in self.history(kind, id)]
        problem = self._replay_problem(definition.kind, stored.state, stored.version, steps)
        if problem:
            raise ReplayMismatch(definition.kind, len(steps), problem)
        return stored.state

    def balances(self, kind: str, id: str) -> dict[str, dict[str, Decimal]]:
        """Ledger balance of each account of one aggregate, per currency."""
        definition = self.definition(kind)
        with self._reading() as conn:
            return ledger_store.balances(conn, definition.kind, _id(id))

    def postings(self, kind: str, id: str) -> list[tuple[int, str, str, Decimal, str]]:
        """Ledger entries of one aggregate: (seq, posting, account, amount, currency)."""
        definition = self.definition(kind)
        with self._reading() as conn:
            return ledger_store.entries(conn, definition.kind, _id(id))

    def check(self) -> list[Violation]:
        """Verify the whole database: every history replays to its aggregate's state and
        version, every posting balances, escrow never went negative, refunds never exceeded
        payments, a finished order holds nothing in escrow, and every unexpected capture was
        refunded. Returns the violations."""
        with self._reading() as conn:
            violations = [
                *audit.unbalanced_postings(conn),
                *audit.negative_escrow(conn),
                *audit.refunds_over_paid(conn),
                *audit.escrow_left_at(conn, "order", self.definitions["order"].terminal),
                *audit.escrow_left_at(conn, capture.KIND, self.definitions[capture.KIND].terminal),
                *audit.unrefunded_captures(conn),
            ]
            for kind, id, state, version, steps in audit.histories(conn):
                problem = self._replay_problem(kind, state, version, steps)
                if problem:
                    violations.append(Violation(kind, id, "history.replays_to_state", problem))
        return violations

    def _replay_problem(self, kind: str, state: str | None, version: int,
                        steps: list[audit.HistoryStep]) -> str | None:
        if state is None:
            return "history of an aggregate that does not exist"
        if [seq for seq, *_ in steps] != list(range(1, len(steps) + 1)):
            return "history sequence has a gap or a duplicate"
        try:
            replayed = self.definitions[kind].replay((t, s, d) for _seq, t, s, d in steps)
        except (ReplayMismatch, KeyError) as error:
            return str(error)
        if (replayed, len(steps)) != (state, version):
            return f"history leads to {replayed} v{len(steps)}, stored {state} v{version}"
        return None

    def allowed(self, kind: str, id: str, actor: Actor) -> list[str]:
        """The triggers ``actor`` may fire now: state, role, ownership and the payload-free guards."""
        definition = self.definition(kind)
        actor = _actor(actor)
        with self._reading() as conn:
            aggregate = repo.load(conn, definition.kind, _id(id))
            if aggregate is None:
                raise NotFound(definition.kind, id)
            return self._offered(conn, definition, aggregate, actor)

    def find(self, kind: str, *, state: str | None = None, limit: int = 100,
             after_id: str | None = None) -> list[Aggregate]:
        """A page of aggregates of one kind, in id order; pass the last id as ``after_id``."""
        definition = self.definition(kind)
        if state is not None:
            state = identifier(state, "state")
        if after_id is not None:
            after_id = _id(after_id, "after_id")
        with self._reading() as conn:
            return list(repo.find(conn, definition.kind, state=state, limit=limit,
                                  after_id=after_id))

    def run_due_timers(self, limit: int | None = None,
                       stop: Callable[[], bool] | None = None) -> int:
        """Fire every deadline due by the engine's clock, each in its own transaction, as the
        ``system`` actor; return how many fired.

        A deadline whose trigger the machine now refuses is discarded with a log line. One that
        fails otherwise (an adapter error) is retried with backoff and, after
        `timers.MAX_ATTEMPTS`, parked as failed. Contention (a lock held by another
        transaction, a deadlock, a serialization failure, SQLite busy) is no failure of the
        deadline: it stays pending, its attempts untouched, and is tried again. ``stop()`` is
        asked between deadlines, so a worker told to shut down finishes the one in hand and
        returns. Raises `Unavailable` when the database is lost; what fired before stays fired.
        """
        fired = conflicts = 0
        while limit is None or fired < limit:
            if stop is not None and stop():
                break
            outcome = self._fire_next_due()
            if outcome is None:
                break
            if outcome == "conflict":
                conflicts += 1
                if conflicts > 100:  # another writer keeps winning; leave it for the next round
                    break
                continue
            fired += outcome == "fired"
        return fired

    def prune(self, limit: int = 5000) -> dict[str, int]:
        """Forget idempotency records older than the policy's ``idempotency_retention`` and
        drop outbox rows published longer ago than ``outbox_retention`` (SPEC §2), at most
        ``limit`` of each; returns how many of each went. The timer worker calls it."""
        now = self.clock.now()
        policy = self.policy
        try:
            with self.database.begin() as conn:
                keys = retention.prune_keys(conn, now - policy.idempotency_retention, limit)
                published = retention.prune_published(conn, now - policy.outbox_retention, limit)
        except self._database_errors as error:
            raise self._failure(error) from error
        if keys or published:
            log.info("retention.pruned", idempotency_keys=keys, published_events=published)
        return {"idempotency_keys": keys, "published_events": published}

    def deadlines(self, *, due: bool = False, failed: bool = False, kind: str | None = None,
                  id: str | None = None, limit: int = 1000) -> list[ScheduledDeadline]:
        """Scheduled deadlines: all, only those due by the clock now, or only the failed ones."""
        if kind is not None:
            kind = self.definition(kind).kind
        if id is not None:
            id = _id(id)
        with self._reading() as conn:
            return deadline_store.listed(
                conn, due_by=self.clock.now() if due else None, failed=failed, kind=kind, id=id,
                limit=limit,
            )

    # --- the policy every process shares (SPEC §2) ----------------------------------------

    @property
    def policy(self) -> Policy:
        """The policy in force. Inside a trigger, the version its transaction read first;
        otherwise the database's newest (one indexed read; parsed again only when the
        version changed), so a change made by another process shows at once."""
        held: Policy | None = getattr(self._local, "policy", None)
        if held is not None:
            return held
        with self._quick_read() as conn:
            return self._policy_in(conn)

    def stored_policy(self) -> PolicyVersion:
        """The newest stored policy: its version, its values and when it was set."""
        with self._quick_read() as conn:
            newest = self._newest_policy(conn)
        if newest is None:
            raise NotFound("policy", "newest")
        return newest

    def policy_versions(self) -> list[PolicyVersion]:
        """Every stored version of the policy, oldest first."""
        with self._reading() as conn:
            stored = policy_store.every(conn)
        return [PolicyVersion(s.version, Policy.from_json(s.values, version=s.version),
                              s.created_at) for s in stored]

    def set_policy(self, policy: Policy, *, expected_version: int | None = None) -> PolicyVersion:
        """Store ``policy`` as the next version, for every process from its next trigger on.

        Returns the version stored, or the newest one unchanged when it already holds these
        values. ``expected_version``: apply only if the newest version is still that one
        (else `Conflict`), so two operators' edits never silently undo each other.
        """
        if not isinstance(policy, Policy):
            raise InvalidPayload("policy", "must be a lifecycle.Policy")
        return self._put_policy(policy, update=True, expected_version=expected_version)

    def _put_policy(self, given: Policy | None, *, update: bool,
                    expected_version: int | None = None) -> PolicyVersion:
        """What `lifecycle.open` and `set_policy` do, in one write transaction: store the
        first version when there is none (``given``, or the defaults); otherwise keep the
        stored one when ``given`` is None or equal, store ``given`` as the next version when
        ``update``, and refuse with `PolicyMismatch` (writing nothing) when not."""
        for _attempt in range(5):
            try:
                with self._transaction() as unit:
                    newest = self._newest_policy(unit.conn)
                    seen = newest.version if newest is not None else None
                    if expected_version is not None and seen != expected_version:
                        raise Conflict("policy", str(seen), expected_version)
                    if newest is None:
                        return self._store_policy(unit, 1, given or self._opened_with)
                    if given is None or given == newest.policy:
                        return newest
                    if not update:
                        raise PolicyMismatch(newest.version, newest.policy.differences(given))
                    return self._store_policy(unit, newest.version + 1, given)
            except self._duplicate:
                continue  # another process stored that version first: look again
        raise Conflict("policy", "newest")

    def _store_policy(self, unit: _Unit, version: int, policy: Policy) -> PolicyVersion:
        policy_store.store(unit.conn, version, policy.to_json(), unit.now)
        stored = PolicyVersion(version, policy, unit.now)
        log.info("policy.stored", version=version)
        return stored

    @contextmanager
    def _policy_of(self, unit: _Unit) -> Iterator[None]:
        """Hold the transaction's policy (the newest stored version, read on its connection)
        for everything the trigger does: the deadlines it schedules, its guards, its fees."""
        outer = getattr(self._local, "policy", None)
        self._local.policy = self._policy_in(unit.conn)
        try:
            yield
        finally:
            self._local.policy = outer

    def _policy_in(self, conn: Connection) -> Policy:
        newest = self._newest_policy(conn)
        # No row: the table was emptied under a running engine (tests truncate every table).
        return newest.policy if newest is not None else self._opened_with

    def _newest_policy(self, conn: Connection) -> PolicyVersion | None:
        """The newest stored version, read as one number and parsed only when it is not
        the one this engine read last. None while nothing is stored."""
        version = policy_store.newest_version(conn)
        known = self._known
        if version is None:
            self._known = None  # emptied: a version 1 stored later is another policy
            return None
        if known is not None and known.version == version:
            return known
        stored = policy_store.read(conn, version)
        if stored is None:  # removed between the two reads; only a hand-edited table does that
            raise Conflict("policy", str(version))
        known = PolicyVersion(version, Policy.from_json(stored.values, version=version),
                              stored.created_at)
        self._known = known
        return known

    # --- what gateways and carriers tell us ----------------------------------------------

    def ingest_payment_callback(self, gateway: str, body: bytes | str,
                                headers: Headers) -> Aggregate | None:
        """A gateway's callback: verify its signature (a bad or missing one is refused, nothing
        written), then apply it once. A capture pays its order; a redelivered callback returns
        its first result, and one with the same event id but another request is
        `IdempotencyMismatch`; confirming a capture this engine made itself changes nothing.
        A capture that cannot pay its order (cancelled or already paid, unknown, another
        currency or amount) is recorded as an ``unexpected_capture``, refunded through the
        gateway, and refused with `CaptureRefused`. Refund and failure notices are
        acknowledged (the transition that asked for them already recorded them). Returns the
        order, or None when the callback moves nothing.

        ``body`` is bytes or str (UTF-8); ``headers`` a mapping or (name, value) pairs, str or
        bytes, names in any case (`webhooks.delivery`). A callback that cannot be read is an
        `AdapterError`, whatever the gateway's own parser raised."""
        payments = self.adapters.payments
        if gateway != payments.name:
            raise InvalidPayload("gateway", f"{gateway!r} is not this engine's gateway "
                                            f"({payments.name!r})")
        body, headers = delivery(body, headers, adapter=gateway, operation="parse_callback")
        event = _read(gateway, "parse_callback", lambda: payments.parse_callback(body, headers))
        if event.kind != "captured":
            log.info("payment.callback", gateway=gateway, kind=event.kind, order=event.order_id)
            return None
        key = _outside_key("payment", gateway, event.event_id)
        pay = {"payment_ref": event.payment_ref, "amount": str(event.amount),
               "currency": event.currency}
        if self._key_used(key):
            # Checked before anything else: the same event id with another request must be
            # refused, not answered from the order's state.
            return self.fire("order", event.order_id, "pay", Actor("system", gateway), pay,
                             idempotency_key=key)
        order = self._existing("order", event.order_id)
        id = capture.capture_id(gateway, event.event_id, order.id if order else None)
        recorded = self._existing(capture.KIND, id)
        if recorded is not None:  # a redelivery of a capture refused before
            return self._refuse_capture(gateway, event, id, recorded.data["reason"], order)
        if order is not None and order.data.get("payment_ref") == event.payment_ref:
            if (event.amount, event.currency) != (Decimal(order.data["amount_paid"]),
                                                  order.data["currency"]):
                raise GuardFailed("payment.capture_matches_order",
                                  f"the gateway reports its capture {event.payment_ref} as "
                                  f"{event.money}, order {order.id} recorded "
                                  f"{order.data['amount_paid']} {order.data['currency']}",
                                  trigger="pay", state=order.state)
            return order  # our own capture, confirmed
        problem = _why_capture_cannot_pay(order, event)
        if problem is None:
            try:
                return self.fire("order", event.order_id, "pay", Actor("system", gateway), pay,
                                 idempotency_key=key)
            except InvalidTransition as refusal:  # the order moved on meanwhile
                problem = f"order {event.order_id} is {refusal.state}"
                order = self._existing("order", event.order_id)
        return self._refuse_capture(gateway, event, id, problem, order)

    def _refuse_capture(self, gateway: str, event: PaymentEvent, id: str, reason: str,
                        order: Aggregate | None) -> Aggregate:
        """Keep a capture no order could take, give the money back, and say so."""
        payload = {"gateway": gateway, "event_id": event.event_id, "order": event.order_id,
                   "payment_ref": event.payment_ref, "amount": str(event.amount),
                   "currency": event.currency, "reason": reason}
        record = self.create(capture.KIND, Actor("system", gateway), payload, id=id,
                             idempotency_key=_outside_key("unexpected-capture", gateway,
                                                          event.event_id))
        if record.state == "refund_pending":
            try:
                record = self.fire(capture.KIND, id, "refund", Actor("system", gateway),
                                   idempotency_key=f"unexpected-capture-refund:{id}")
            except LifecycleError as error:
                # The `refund` deadline retries it with backoff and parks it for an operator.
                log.warning("payment.unexpected_capture_refund_failed", capture=id,
                            error=str(error))
        log.warning("payment.unexpected_capture", capture=id, order=event.order_id,
                    amount=str(event.money), reason=reason, state=record.state)
        raise CaptureRefused(event.order_id, reason, id, record.state == "refunded",
                             state=order.state if order is not None else "")

    def _key_used(self, key: str) -> bool:
        with self._quick_read() as conn:
            return repo.remembered(conn, key) is not None

    def _existing(self, kind: str, id: str) -> Aggregate | None:
        """The aggregate, or None if there is none (or ``id`` could not name one)."""
        try:
            id = _id(id)
        except InvalidPayload:
            return None
        with self._quick_read() as conn:
            return repo.load(conn, kind, id)

    def ingest_tracking(self, carrier: str, body: bytes | str,
                        headers: Headers) -> list[Aggregate]:
        """A carrier's push: verify its signature, then apply each event to the orders its
        waybill carries. Returns the orders an event moved or recorded on. If some events
        cannot be read, the others are applied and `EventsRejected` is raised, naming the
        refused ones, with the orders applied in ``.applied``.

        Body and headers come in any form `ingest_payment_callback` takes; a push that cannot
        be read is an `AdapterError`, whatever the carrier's own parser raised."""
        if not isinstance(carrier, str):
            raise InvalidPayload("carrier", f"must be a carrier's name, got {type(carrier).__name__}")
        adapter = self.adapters.carrier(carrier)
        body, headers = delivery(body, headers, adapter=carrier, operation="parse_push")
        try:
            events = _read(carrier, "parse_push", lambda: adapter.parse_push(body, headers))
        except EventsRejected as partly:
            # One unreadable event must not hold back the rest, on this delivery or any retry.
            _check_scans(carrier, partly.events)
            partly.applied = [order for event in partly.events
                              for order in self._apply_tracking(carrier, event)]
            log.warning("tracking.rejected", carrier=carrier, rejected=len(partly.rejected),
                        applied=len(partly.events), reason=partly.reason)
            raise
        _check_scans(carrier, events)
        return [order for event in events for order in self._apply_tracking(carrier, event)]

    def tracking(self, order_id: str) -> list[TrackingRecord]:
        """The carrier scans recorded on an order, oldest first."""
        order = self.get("order", order_id)
        with self._reading() as conn:
            return repo.scans_of(conn, order.kind, order.id)

    def track(self, order_id: str) -> Aggregate:
        """Poll the order's carrier and apply every event not yet seen."""
        order = self.get("order", order_id)
        carrier, waybill = order.data.get("carrier"), order.data.get("waybill")
        if not carrier or not waybill:
            raise GuardFailed("tracking.waybill", "the order has no waybill yet",
                              trigger="track", kind=order.kind, id=order.id, state=order.state)
        for event in self.adapters.carrier(carrier).track(waybill):
            self._apply_tracking(carrier, event)
        return self.get("order", order_id)

    def _apply_tracking(self, carrier: str, event: TrackingEvent) -> list[Aggregate]:
        with self._quick_read() as conn:
            found = repo.found_by(conn, "waybill", f"{carrier}:{event.waybill}")
        if not found:
            log.warning("tracking.unknown_waybill", carrier=carrier, waybill=event.waybill)
        applied = []
        for kind, order_id in found:
            with self._quick_read() as conn:
                order = repo.load(conn, kind, order_id)
                seen = repo.scan_seen(conn, kind, order_id, event.event_id)
            if order is None or order.data.get("waybill") != event.waybill or seen:
                continue  # a stale waybill, or a duplicate delivery of the same scan
            trigger, payload = tracking_trigger(order.state, event)
            if trigger is None:
                log.info("tracking.ignored", order=order_id, state=order.state, status=event.status)
                continue
            try:
                applied.append(self.fire(kind, order_id, trigger, Actor("system", carrier), payload,
                                         idempotency_key=_outside_key("tracking", carrier, event.event_id,
                                                                      order_id)))
            except IdempotencyMismatch:
                continue  # the same scan arrived twice while the order moved in between
        return applied

    # --- bulk reads for reports ---
    # One statement each over a whole table, for the aggregates whose id starts with ``prefix``
    # ("" for all): what a report needs without a query per aggregate. Read-only, outside any
    # trigger; the statements are in `lifecycle.store.reports`.

    def state_counts(self, kinds: Iterable[str], *, prefix: str = "") -> list[StateCount]:
        """(kind, state, aggregates, transitions) for every state of ``kinds`` that holds any:
        how many aggregates are in it and their versions summed (one per history row)."""
        kinds = [self.definition(kind).kind for kind in kinds]
        with self._reading() as conn:
            return reports.state_counts(conn, kinds, prefix)

    def field_values(self, kind: str, *, prefix: str = "", text: Sequence[str] = (),
                     integer: Sequence[str] = ()) -> Iterator[tuple[str, dict[str, Any]]]:
        """(state, the named fields of its data) of each aggregate of ``kind``, streamed: the
        ``text`` fields as strings, the ``integer`` ones as ints; a field the data lacks (or
        holds as null) is left out, as ``name in data`` would say. Iterate to the end (or
        close the iterator) to give its connection back."""
        kind = self.definition(kind).kind
        with self._reading() as conn:
            yield from reports.fields(conn, kind, prefix, text, integer)

    def counts_by_field(self, kind: str, field: str, *,
                        prefix: str = "") -> list[tuple[str | None, str, int]]:
        """(the data's ``field`` as a string, state, how many) of the aggregates of ``kind``:
        disputes by type and state with ``field="type"``."""
        kind = self.definition(kind).kind
        with self._reading() as conn:
            return reports.counts_by_field(conn, kind, field, prefix)

    def history_steps(self, kind: str, states: Iterable[str], *, prefix: str = "",
                      label: str = "type", detail: str = "decision",
                      ) -> Iterator[tuple[str | None, list[tuple[str, str | None]]]]:
        """For each aggregate of ``kind`` now in one of ``states``: (its data's ``label``, its
        history as (trigger, the payload's ``detail``), creation first), in id order, streamed
        in one pass over the history table. Iterate to the end (or close the iterator) to give
        its connection back."""
        kind = self.definition(kind).kind
        with self._reading() as conn:
            yield from reports.history_steps(conn, kind, list(states), prefix, label, detail)

    def ledger_sums(self, kinds: Iterable[str], *, prefix: str = "") -> list[LedgerSum]:
        """The ledger entries of aggregates of ``kinds`` summed by (kind, posting, account,
        currency, amount above zero), as `LedgerSum` amounts in the currency (not minor units)."""
        kinds = [self.definition(kind).kind for kind in kinds]
        with self._reading() as conn:
            return reports.ledger_sums(conn, kinds, prefix)

    def parked_deadlines(self, *, prefix: str = "") -> list[ParkedDeadline]:
        """(kind, aggregate id, trigger) of every deadline parked as failed, by due time: what
        ``deadlines(failed=True)`` lists, for every aggregate with the prefix and no limit."""
        with self._reading() as conn:
            return reports.parked(conn, prefix)

    def first_deadlines(self, n: int) -> list[tuple[str, datetime]]:
        """(status, due time) of the first ``n`` deadlines by (due time, id), every status, as
        ``deadlines(limit=n)`` lists them, but read through the ``(status, due_at)`` index
        instead of sorting the whole table: what a driver asks before skipping idle time."""
        with self._reading() as conn:
            return reports.first_deadlines(conn, n)

    def subscribe(self, pattern: str, fn: Subscriber) -> None:
        """Call ``fn(event)`` after commit for each event whose name matches ``pattern``
        (``"order.*"``, ``"dispute.resolved_refund"``, ``"*"``)."""
        self._subscribers.append((pattern, fn))

    def definition(self, kind: str) -> MachineDefinition:
        if not isinstance(kind, str):
            raise UnknownKind(repr(kind), self.definitions)
        kind = ALIASES.get(kind, kind)
        try:
            return self.definitions[kind]
        except (KeyError, TypeError):
            raise UnknownKind(str(kind), self.definitions) from None

    def close(self) -> None:
        with self._held_lock:
            for conn in self._held.values():
                conn.close()
            self._held.clear()
        self.database.dispose()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- one transaction per trigger ----------------------------------------------------

    def _run(self, request: _Request, apply: Callable[[_Unit], Aggregate]) -> Aggregate:
        started = time.perf_counter()
        try:
            with self._transaction() as unit, self._policy_of(unit):
                if request.idempotency_key is not None:
                    earlier = self._replay(unit.conn, request)
                    if earlier is not None:
                        return earlier
                result = apply(unit)
                if request.idempotency_key is not None:
                    repo.remember(unit.conn, request.idempotency_key, request.fingerprint(),
                                  result, unit.now)
        except self._duplicate:
            # Someone committed the same key or id between our read and our write.
            return self._after_race(request)
        except (Conflict, InvalidTransition, AlreadyExists):
            # A delivery with the same key may have committed after our key check (we then
            # read its state, or lost the version to it): its result is ours.
            earlier = self._remembered(request)
            if earlier is None:
                raise
            return earlier
        self._publish(unit.events, time.perf_counter() - started)
        return result

    @contextmanager
    def _transaction(self) -> Iterator[_Unit]:
        """One database transaction, run on the driver: every statement inside is a hot-path
        statement on the DBAPI cursor, and SQLAlchemy's transaction bookkeeping (events, nesting
        state) cost several times the BEGIN and COMMIT themselves. SQLite begins IMMEDIATE, so
        a writer takes the write lock before it reads (upgrading a read transaction fails at
        once in WAL mode when another writer got in between); psycopg begins implicitly."""
        conn = self._writing_connection()
        raw: Any = conn.connection.driver_connection
        try:
            if self._sqlite:
                raw.execute("BEGIN IMMEDIATE")
            try:
                yield _Unit(conn, self.clock.now().astimezone(UTC))
            except BaseException:
                raw.rollback()
                raise
            raw.commit()
        except self._database_errors as error:
            if is_contention(error):
                with contextlib.suppress(Exception):
                    raw.rollback()
                raise Conflict("database", "busy") from error
            self._forget_writing_connection(conn)
            raise unavailable(self.database, error) from error

    @contextmanager
    def _savepoint(self, unit: _Unit) -> Iterator[None]:
        """Undo part of a transaction: what ran inside, if it raises."""
        _hot, cur = cursor(unit.conn)
        cur.execute("SAVEPOINT lifecycle_step")
        try:
            yield
        except BaseException:
            cur.execute("ROLLBACK TO SAVEPOINT lifecycle_step")
            cur.execute("RELEASE SAVEPOINT lifecycle_step")
            raise
        cur.execute("RELEASE SAVEPOINT lifecycle_step")

    def _fire_next_due(self) -> str | None:
        """Take the earliest due deadline and fire it; "fired", "discarded", "failed",
        "conflict", or None when nothing is due."""
        try:
            with self._transaction() as unit, self._policy_of(unit):
                deadline = deadline_store.next_due(unit.conn, unit.now)
                if deadline is None:
                    return None
                outcome = self._fire_deadline(unit, deadline)
        except Conflict:
            return "conflict"
        self._publish(unit.events, 0.0)
        return outcome

    def _fire_deadline(self, unit: _Unit, deadline: ScheduledDeadline) -> str:
        definition = self.definition(deadline.kind)
        request = _Request(deadline.kind, deadline.aggregate_id, deadline.trigger, TIMER, {}, None)
        written = len(unit.events)
        try:
            with self._savepoint(unit):
                # Gone before the trigger runs: the deadline the transition schedules may get
                # this row's id again (SQLite reuses the highest rowid).
                deadline_store.remove(unit.conn, deadline.id)
                self._fire(unit, definition, request, None, False)
        except Conflict:
            raise
        except self._database_errors:
            # Contention or an outage: not this deadline's fault, so never one of its attempts.
            # The whole transaction rolls back and `_transaction` says which it was.
            raise
        except (InvalidTransition, GuardFailed, Forbidden, InvalidPayload, NotFound) as refusal:
            del unit.events[written:]  # rolled back with the savepoint
            deadline_store.remove(unit.conn, deadline.id)
            log.warning("timer.discarded", kind=deadline.kind, id=deadline.aggregate_id,
                        trigger=deadline.trigger, reason=str(refusal))
            return "discarded"
        except Exception as error:
            del unit.events[written:]
            attempts = deadline.attempts + 1
            # A declined payout is declined again for the same request: park it for an operator
            # at once. Timeouts and other errors may pass; retry those with backoff.
            final = isinstance(error, AdapterError) and not error.retryable
            retry = None if final else timers.retry_at(attempts, unit.now)
            deadline_store.record_failure(unit.conn, deadline.id, attempts,
                                          f"{type(error).__name__}: {error}", retry)
            log.warning("timer.failed", kind=deadline.kind, id=deadline.aggregate_id,
                        trigger=deadline.trigger, attempts=attempts, error=str(error),
                        parked=retry is None)
            return "failed"
        return "fired"

    @contextmanager
    def _quick_read(self) -> Iterator[Connection]:
        """A connection for one read on the DBAPI cursor (`store.hot`), outside a trigger.

        On SQLite it is the thread's writing connection: between triggers the driver is in
        autocommit, so the read sees the latest commit, and checking a connection out of the
        pool and resetting it cost more than the read itself (every `get`, every carrier scan's
        waybill lookup). Reads through Core would begin a transaction on it, so they use the
        pool. On PostgreSQL a raw read opens a transaction on the driver; a pooled connection
        ends it when it goes back.
        """
        if not self._sqlite:
            with self._reading() as conn:
                yield conn
            return
        conn = self._writing_connection()
        try:
            yield conn
        except self._database_errors as error:
            raise self._failure(error) from error

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A pooled connection for reads outside a trigger. A database error on it makes it
        `Conflict` (contention) or `Unavailable`, and the connection never goes back to the
        pool: it may be broken, and resetting a broken one logs a traceback."""
        try:
            with self.database.connect() as conn:
                try:
                    yield conn
                except self._database_errors:
                    conn.invalidate()
                    raise
        except self._database_errors as error:
            raise self._failure(error) from error

    def _failure(self, error: Exception) -> LifecycleError:
        """What a database error outside `_transaction` becomes for the caller: `Conflict` for
        contention; otherwise `Unavailable`, and the thread's writing connection, as likely
        broken as the one that failed, is replaced on next use."""
        if is_contention(error):
            return Conflict("database", "busy")
        self._forget_writing_connection(getattr(self._local, "conn", None))
        return unavailable(self.database, error)

    def _writing_connection(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed and not conn.invalidated:
            return conn
        try:
            with self._held_lock:
                for thread in [t for t in self._held if not t.is_alive()]:
                    self._held.pop(thread).close()
                conn = self._writer.connect()
                self._held[threading.current_thread()] = conn
        except self._database_errors as error:
            raise self._failure(error) from error
        self._local.conn = conn
        return conn

    def _forget_writing_connection(self, conn: Connection | None) -> None:
        """A database error that is not contention may have broken the connection (a server
        restart): the next trigger of this thread connects afresh, and so does every read."""
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()
        with self._held_lock:
            self._held.pop(threading.current_thread(), None)
        self._local.conn = None
        self._drop_idle_connections()

    def _drop_idle_connections(self) -> None:
        """After losing the database, close the pool's idle connections: they are likely as
        broken as the one that failed (SQLAlchemy does the same for errors it sees itself; the
        hot path's errors come straight from the driver). Other threads' writing connections
        are theirs; a broken one fails once and is replaced like this one."""
        with contextlib.suppress(Exception):
            self.database.dispose()

    def _replay(self, conn: Connection, request: _Request) -> Aggregate | None:
        """The first result of the request's key, or None if the key is new. The record keeps
        the state and version the first delivery led to, not a copy of the aggregate: the
        answer carries those, with the aggregate's data as it is now."""
        assert request.idempotency_key is not None
        earlier = repo.remembered(conn, request.idempotency_key)
        if earlier is None:
            return None
        if earlier.request_hash != request.fingerprint():
            raise IdempotencyMismatch(request.idempotency_key)
        current = repo.load(conn, earlier.kind, earlier.id)
        data = current.data if current is not None else {}
        return Aggregate(earlier.kind, earlier.id, earlier.state, earlier.version, data)

    def _remembered(self, request: _Request) -> Aggregate | None:
        """The committed result of the request's idempotency key, read after our rollback."""
        if request.idempotency_key is None:
            return None
        with self._quick_read() as conn:
            return self._replay(conn, request)

    def _after_race(self, request: _Request) -> Aggregate:
        earlier = self._remembered(request)
        if earlier is not None:
            return earlier
        if request.id is not None and request.trigger == self.definition(request.kind).creation.trigger:
            raise AlreadyExists(request.kind, request.id)
        raise Conflict(request.kind, request.id or "?")

    # --- applying triggers --------------------------------------------------------------

    def _create(self, unit: _Unit, definition: MachineDefinition, request: _Request,
                follow_up: bool) -> Aggregate:
        creation = definition.creation
        actor = request.actor
        if creation.internal and not follow_up:
            raise Forbidden(actor.role, actor.id, creation.trigger,
                            f"a {definition.kind} is created by another aggregate's trigger")
        if not follow_up and actor.role not in creation.roles:
            raise Forbidden(actor.role, actor.id, creation.trigger,
                            f"only {_roles(creation.roles)} may {creation.trigger}")
        id = request.id or definition.new_id(actor)
        if repo.load(unit.conn, definition.kind, id) is not None:
            raise AlreadyExists(definition.kind, id)
        payload = _validate(creation.payload, request.payload, {})
        context = Context(definition.kind, id, "", {}, payload, actor, unit.now, self.policy,
                          lambda kind, other: repo.load(unit.conn, kind, other),
                          trigger=creation.trigger)
        _check_guards(creation.guards, context, creation.trigger)
        if creation.effect is not None:
            creation.effect(context)
        self._call_adapters(context, request.idempotency_key or f"{definition.kind}:{id}:1")
        context.state = definition.initial
        created = Aggregate(definition.kind, id, definition.initial, 1, context.data)
        if not follow_up and not _owns(definition, created, actor):
            raise Forbidden(actor.role, actor.id, creation.trigger,
                            f"a {actor.role} creates only their own {definition.kind}")
        repo.insert_aggregate(unit.conn, created, unit.now)
        self._record(unit, created, creation.trigger, None, actor, payload, request)
        timers.follow_state(unit.conn, definition, created, None, unit.now, self.policy)
        self._follow(unit, context, created.version, depth=0 if not follow_up else 1)
        return created

    def _fire(self, unit: _Unit, definition: MachineDefinition, request: _Request,
              expected_version: int | None, follow_up: bool, depth: int = 0) -> Aggregate:
        assert request.id is not None
        actor, trigger = request.actor, request.trigger
        found = repo.load_with_moment(unit.conn, definition.kind, request.id)
        if found is None:
            raise NotFound(definition.kind, request.id)
        current, last_moved = found
        # History runs forward per aggregate even when this transaction's clock reading is
        # older than another writer's that committed first (PostgreSQL, read committed).
        unit.now = max(unit.now, last_moved)
        if expected_version is not None and current.version != expected_version:
            raise Conflict(definition.kind, current.id, expected_version)
        if not follow_up and not _owns(definition, current, actor):
            raise Forbidden(actor.role, actor.id, trigger, f"{definition.kind} {current.id} is not theirs")
        step = definition.step(current.state, trigger)
        if step is None or (step.internal and not follow_up):
            raise _not_from_here(definition, current, trigger)
        if not follow_up and actor.role not in step.roles:
            raise Forbidden(actor.role, actor.id, trigger, f"only {_roles(step.roles)} may {trigger}",
                            kind=definition.kind, id=current.id, state=current.state,
                            allowed=self._offered(unit.conn, definition, current, actor, unit.now))
        payload = _validate(step.payload, request.payload, current.data)
        context = self._context(unit.conn, current, actor, payload, unit.now, trigger)
        for guard in step.guards:
            if not guard.check(context):
                raise self._refused_by(unit.conn, guard.rule, guard.explain(context), context,
                                       definition, current)
        if not definition.machine.events[trigger].trigger(context):
            raise _not_from_here(definition, current, trigger)
        version, read_version = current.version + 1, current.version
        if any(isinstance(f, Call) for f in context.follow_ups):
            # Take the aggregate before any money moves: a writer that would lose the race
            # must learn it now, not after the gateway has acted.
            claimed = repo.claim_version(unit.conn, definition.kind, current.id, current.version)
            if claimed is None:
                raise Conflict(definition.kind, current.id, expected_version)
            read_version = claimed
            self._call_adapters(context, request.idempotency_key
                                or f"{definition.kind}:{current.id}:{version}:{trigger}")
        moved = Aggregate(definition.kind, current.id, context.state, version, context.data)
        if not repo.update_aggregate(unit.conn, moved, read_version, unit.now):
            raise Conflict(definition.kind, current.id, expected_version)
        self._record(unit, moved, trigger, current.state, actor, payload, request)
        timers.follow_state(unit.conn, definition, moved, current.state, unit.now, self.policy)
        self._follow(unit, context, moved.version, depth, current)
        return moved

    def _call_adapters(self, context: Context, key: str) -> None:
        """Carry out the adapter calls the effects asked for, before anything is written; their
        answers (a payment reference, a waybill) go into the aggregate's data. The key is the
        trigger's idempotency key, or one derived from the transition, so a retry of the same
        transition is the same request to the adapter."""
        calls = [f for f in context.follow_ups if isinstance(f, Call)]
        for n, call in enumerate(calls):
            answer = carry_out(self.adapters, call, f"{key}#{n}" if n else key)
            if call.result is not None:
                context.data[call.result] = answer

    def _follow(self, unit: _Unit, context: Context, seq: int, depth: int,
                before: Aggregate | None = None) -> None:
        """Carry out what the transition asked of other aggregates, in the same transaction.
        ``before`` is the aggregate as the transition found it (None when it created it)."""
        if context.follow_ups and depth >= MAX_FOLLOW_UP_DEPTH:
            raise RuntimeError(f"follow-ups nested deeper than {MAX_FOLLOW_UP_DEPTH}: a definition loops")
        for follow_up in context.follow_ups:
            if isinstance(follow_up, Claim):
                self._claim(unit, context, follow_up, before)
                continue
            if isinstance(follow_up, Call):
                continue  # carried out before the transition was written
            if isinstance(follow_up, Index):
                value = follow_up.value
                repo.index(unit.conn, follow_up.name,
                           value(context.data) if callable(value) else value,
                           context.kind, context.id)
                continue
            if isinstance(follow_up, Post):
                ledger_store.post(unit.conn, context.kind, context.id, seq, follow_up.posting,
                                  unit.now)
                continue
            if isinstance(follow_up, Scan):
                repo.record_scan(unit.conn, context.kind, context.id, follow_up, unit.now)
                continue
            definition = self.definition(follow_up.kind)
            if isinstance(follow_up, Create):
                request = _Request(follow_up.kind, follow_up.id, definition.creation.trigger,
                                   context.actor, follow_up.payload, None)
                self._create(unit, definition, request, True)
            elif isinstance(follow_up, Fire):
                request = _Request(follow_up.kind, follow_up.id, follow_up.trigger,
                                   context.actor, follow_up.payload, None)
                self._fire(unit, definition, request, None, True, depth + 1)

    def _claim(self, unit: _Unit, context: Context, claim: Claim, before: Aggregate | None) -> None:
        value = claim.value(context.data) if callable(claim.value) else claim.value
        holder = repo.claimed_by(unit.conn, claim.name, value)
        if holder is not None and holder != (context.kind, context.id):
            rule, message = f"{claim.name}.unique", f"{claim.name} {value!r} is taken"
            if before is None:
                raise GuardFailed(rule, message, trigger=context.trigger, state=context.source)
            raise self._refused_by(unit.conn, rule, message, context,
                                   self.definition(context.kind), before)
        if holder is None:
            repo.claim(unit.conn, claim.name, value, context.kind, context.id)

    def _offered(self, conn: Connection, definition: MachineDefinition, aggregate: Aggregate,
                 actor: Actor, now: datetime | None = None) -> list[str]:
        """The triggers ``actor`` may fire on ``aggregate`` now: state, role, ownership and the
        payload-free guards. What `allowed` answers, and what a refusal offers instead."""
        if not _owns(definition, aggregate, actor):
            return []
        context = self._context(conn, aggregate, actor, None, now)
        return [
            trigger
            for trigger in definition.external_triggers_from(aggregate.state)
            if _may_fire(definition.step(aggregate.state, trigger), actor, context)
        ]

    def _refused_by(self, conn: Connection, rule: str, message: str, context: Context,
                    definition: MachineDefinition, before: Aggregate) -> GuardFailed:
        """A rule's refusal, naming where it happened and what the actor may fire instead."""
        return GuardFailed(rule, message, trigger=context.trigger,
                           kind=before.kind, id=before.id, state=before.state,
                           role=context.actor.role,
                           allowed=self._offered(conn, definition, before, context.actor, context.now))

    def _record(self, unit: _Unit, aggregate: Aggregate, trigger: str, source: str | None,
                actor: Actor, payload: BaseModel | None, request: _Request) -> None:
        """History row and outbox event for one transition."""
        body = dump(payload)
        entry = HistoryEntry(aggregate.version, trigger, source, aggregate.state, actor, body,
                             request.idempotency_key, unit.now)
        repo.append_history(unit.conn, aggregate, entry)
        changed = source != aggregate.state
        event = {
            "event": f"{aggregate.kind}.{aggregate.state if changed else trigger}",
            "kind": aggregate.kind,
            "id": aggregate.id,
            "seq": aggregate.version,
            "trigger": trigger,
            "source": source,
            "dest": aggregate.state,
            "actor": str(actor),
            "payload": body,
            "at": unit.now.isoformat(),
        }
        repo.append_outbox(unit.conn, str(event["event"]), event, unit.now)
        unit.events.append(event)

    def _context(self, conn: Connection, aggregate: Aggregate, actor: Actor, payload: Any,
                 now: datetime | None = None, trigger: str = "") -> Context:
        return Context(aggregate.kind, aggregate.id, aggregate.state, dict(aggregate.data),
                       payload, actor, now or self.clock.now(), self.policy,
                       lambda kind, id: repo.load(conn, kind, id),
                       trigger=trigger, source=aggregate.state)

    def _publish(self, events: list[dict[str, Any]], seconds: float) -> None:
        logger = transition_log.get()
        for event in events:
            logger.info("transition", kind=event["kind"], id=event["id"], trigger=event["trigger"],
                     actor=event["actor"], src=event["source"], dst=event["dest"],
                     duration_ms=round(seconds * 1000, 3))
            for pattern, fn in self._subscribers:
                if fnmatch.fnmatchcase(event["event"], pattern):
                    try:
                        fn(event)
                    except Exception:
                        # The transition is committed; a subscriber's failure must not
                        # look like the trigger failed.
                        log.exception("subscriber.failed", domain_event=event["event"],
                                      pattern=pattern)


# --- checks, kept as plain functions so `allowed` and `fire` share them -------------------


def _why_capture_cannot_pay(order: Aggregate | None, event: PaymentEvent) -> str | None:
    """Why a gateway's capture may not pay the order it names, or None if it may."""
    if order is None:
        return f"there is no order {event.order_id}"
    currency, total = order.data["currency"], order.data["total"]
    if event.currency != currency:
        return f"the capture is in {event.currency}, order {order.id} in {currency}"
    if event.amount != Decimal(total):
        return f"the capture is {event.money}, order {order.id} totals {total} {currency}"
    if order.state != "awaiting_payment":
        paid = f" (paid with {order.data['payment_ref']})" if order.data.get("payment_ref") else ""
        return f"order {order.id} is {order.state}{paid}"
    return None


def _read(adapter: str, operation: str, parse: Callable[[], _Parsed]) -> _Parsed:
    """What an adapter reads of a callback or push. A bad delivery is an `AdapterError`: an
    outside adapter may fail on one any way its author allowed (a deep JSON body makes
    json.loads raise RecursionError)."""
    try:
        return parse()
    except LifecycleError:
        raise
    except Exception as error:
        raise AdapterError(adapter, operation, f"unreadable: {type(error).__name__}: "
                                               f"{str(error)[:200]}") from error


def _check_scans(carrier: str, events: list[TrackingEvent]) -> None:
    """Refuse a pushed scan whose text PostgreSQL cannot store (a NUL): the waybill is looked
    up before any trigger checks its payload."""
    for n, event in enumerate(events):
        for name in ("event_id", "waybill", "status", "location", "detail", "exception_kind"):
            value = getattr(event, name, None)
            if isinstance(value, str) and "\x00" in value:
                raise AdapterError(carrier, "parse_push",
                                   f"event #{n + 1}: {name} holds a NUL character (\\x00)")


def _owns(definition: MachineDefinition, aggregate: Aggregate, actor: Actor) -> bool:
    return definition.owns(actor, aggregate.id, aggregate.data)


def _not_from_here(definition: MachineDefinition, current: Aggregate,
                   trigger: str) -> InvalidTransition:
    return InvalidTransition(definition.kind, current.id, current.state, trigger,
                             definition.external_triggers_from(current.state),
                             terminal=current.state in definition.terminal)


def _may_fire(step: Step | None, actor: Actor, context: Context) -> bool:
    if step is None or step.internal or actor.role not in step.roles:
        return False
    return all(guard.check(context) for guard in step.guards if not guard.uses_payload)


def _check_guards(guards: tuple[Any, ...], context: Context, trigger: str) -> None:
    for guard in guards:
        if not guard.check(context):
            raise GuardFailed(guard.rule, guard.explain(context), trigger=trigger,
                              state=context.state)


def _validate(model: type[BaseModel] | None, payload: Mapping[str, Any],
              data: Mapping[str, Any]) -> BaseModel | None:
    """The payload as its trigger's model; the first problem becomes `InvalidPayload`."""
    if model is None:
        if payload:
            raise InvalidPayload("payload", f"takes no fields, got {', '.join(sorted(payload))}")
        return None
    try:
        validated = model.model_validate(payload)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "payload"
        raise InvalidPayload(where, first["msg"]) from None
    check = getattr(validated, "check", None)
    if check is not None:
        check(data)  # rules that need the aggregate: amounts in the order's currency
    return validated


def _payload(payload: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if payload is None:
        return {}
    if not isinstance(payload, Mapping):
        raise InvalidPayload("payload", f"must be a JSON object, got {type(payload).__name__}")
    refusal = _nul_in(payload)
    if refusal is not None:
        raise refusal
    return payload


# Where a value sits in a payload, as a linked list from the value up: (parent's place, key).
_Place = tuple[Any, str | int] | None


def _nul_in(payload: Mapping[str, Any]) -> InvalidPayload | None:
    """The refusal of the first NUL character in the payload, in any string or field name at
    any depth, naming the field; None when there is none. PostgreSQL stores no NUL in text or
    JSON (SQLite would), so both refuse it before anything is written.

    One pass over the payload, no copy and no serialising; the path is put together only for
    the refusal. Each list and mapping is visited once, so a payload that contains itself ends
    (the payload model then refuses it).
    """
    # Only containers go on the stack; strings are checked where they are met. Exact types
    # are tested first: they are the common case, and much cheaper than an ABC's isinstance.
    stack: list[tuple[Any, _Place]] = [(payload, None)]
    seen = {id(payload)}
    while stack:
        container, place = stack.pop()
        items = (container.items() if type(container) is dict or isinstance(container, Mapping)
                 else enumerate(container))
        for key, item in items:
            if isinstance(key, str) and "\x00" in key:
                return InvalidPayload(_field(place), "a field name must not contain a NUL "
                                                     f"character (\\x00): {key!r}")
            kind = type(item)
            if kind is str or kind is int or kind is bool or item is None:
                if kind is str and "\x00" in item:
                    return InvalidPayload(_field((place, key)),
                                          "must not contain a NUL character (\\x00)")
            elif kind is dict or kind is list or isinstance(item, Mapping | list | tuple):
                if id(item) not in seen:
                    seen.add(id(item))
                    stack.append((item, (place, key)))
            elif isinstance(item, str) and "\x00" in item:
                return InvalidPayload(_field((place, key)), "must not contain a NUL character (\\x00)")
    return None


def _field(place: _Place) -> str:
    """``lines.0.sku``, as the payload models name fields; ``payload`` for the whole of it."""
    parts: list[str] = []
    while place is not None:
        place, key = place
        parts.append(str(key))
    return ".".join(reversed(parts)) or "payload"


def _actor(actor: Any) -> Actor:
    if not isinstance(actor, Actor):
        raise InvalidPayload("actor", "must be a lifecycle.Actor")
    return actor


def _id(id: Any, field: str = "id") -> str:
    return identifier(id, field)


def _key(key: Any) -> str | None:
    return None if key is None else identifier(key, "idempotency_key")


def _outside_key(*parts: str) -> str:
    """An idempotency key built from a provider's ids (its event id), which may hold what a
    key may not (spaces, anything past 200 characters): then their digest stands in."""
    key = ":".join(parts)
    try:
        return identifier(key, "idempotency_key")
    except InvalidPayload:
        return f"{parts[0]}:sha256:{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()}"


def _roles(roles: frozenset[str]) -> str:
    return " or ".join(sorted(roles))
