"""The engine: the public API, one unit of work per trigger (one transaction each, or a savepoint
of the thread's open batch: `Engine.batch`).

`Engine` is the only door. It wires the pieces `lifecycle.open` gives it and hands each call
to the module that holds it:

- `lifecycle.pipeline`: a trigger's path, load → authorise → validate → move → write →
  follow-ups (``create``, ``fire``, ``allowed``, ``get``);
- `lifecycle.unit`: the unit of work a trigger runs in, its idempotency and its events;
- `lifecycle.timers`: deadlines, scheduled as states change and fired when due;
- `lifecycle.ingestion`: payment callbacks and carrier pushes and polls;
- `lifecycle.shared_policy`: the policy every process shares;
- `lifecycle.audit`: ``check`` and ``replay``;
- `lifecycle.api_keys`: API keys, stored hashed, and who a key acts as;
- `lifecycle.store`: the database, as a `Store` handing out `Recorder`s (reads of history,
  ledger, deadlines and scans go straight to it).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import ClauseElement
from sqlalchemy import Engine as Database

from lifecycle import audit, machine_registry, migration
from lifecycle.actor import Actor
from lifecycle.adapter_calls import Adapters
from lifecycle.api_keys import ApiKey, ApiKeys
from lifecycle.clock import Clock
from lifecycle.errors import (
    Conflict,
    Forbidden,
    InvalidPayload,
    InvalidTransition,
    NotFound,
    ReplayMismatch,
)
from lifecycle.events import Event
from lifecycle.ids import identifier
from lifecycle.ingestion import Headers, Ingestion
from lifecycle.machine_registry import MachineVersion
from lifecycle.machines import MACHINES, message, privacy, subaccount
from lifecycle.machines import points as points_centre
from lifecycle.machines.avatar import CONTENT_TYPE, inspect_jpeg, new_avatar_id
from lifecycle.machines.definition import Aggregate, MachineDefinition
from lifecycle.machines.message import OrderMessage, Unread
from lifecycle.machines.verify import Finding, verify
from lifecycle.machines.versions import Machines
from lifecycle.machines.violation import KIND as VIOLATION
from lifecycle.machines.violation import STORE_INDEX
from lifecycle.migration import MigrationReport
from lifecycle.outbox import Claim, Outbox, RelayStatus, Subscription
from lifecycle.pipeline import Pipeline
from lifecycle.policy import Policy, PolicyVersion
from lifecycle.request import actor_of, id_of
from lifecycle.shared_policy import SharedPolicy
from lifecycle.store import avatars, reports
from lifecycle.store.audit import Violation
from lifecycle.store.datastore import open_store
from lifecycle.store.deadlines import ScheduledDeadline
from lifecycle.store.reports import Backlog, LedgerSum, ParkedDeadline, StateCount
from lifecycle.store.repository import HistoryEntry, TrackingRecord
from lifecycle.timers import Timers
from lifecycle.unit import Subscriber, Units

log = structlog.get_logger("lifecycle")

class Engine:
    """Opened by `lifecycle.open`. Safe to share between threads; holds no aggregate state.

    ``policy`` is what the engine schedules with until it has read the database's (each
    trigger does, first thing); `lifecycle.open` stores or checks it. ``store`` is the
    database as the engine holds it (`lifecycle.store.datastore.Store`); ``database`` the
    SQLAlchemy engine under it, for Core queries of one's own.
    """

    def __init__(self, database: Database, clock: Clock, policy: Policy,
                 adapters: Adapters | None = None, machines: Machines | None = None):
        self.database = database
        self.clock = clock
        self.adapters = adapters or Adapters.configure(clock)
        # Every version of every machine this engine runs; as a mapping, the newest of each kind.
        self.definitions: Machines = machines or MACHINES
        self.store = open_store(database)
        self._subscribers: list[tuple[str, Subscriber]] = []
        self._policy = SharedPolicy(self.store, clock, policy)
        units = self._units = Units(self.store, clock, self._policy, self._subscribers)
        self._pipeline = Pipeline(units, self.adapters, self.definitions)
        self._timers = Timers(units, self._pipeline)
        self._ingestion = Ingestion(self._pipeline, self.adapters)
        self._keys = ApiKeys(self.store, clock)
        self._outbox = Outbox(self.store, clock)

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
        return self._pipeline.create(kind, actor, payload, id=id, idempotency_key=idempotency_key)

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
        return self._pipeline.fire(kind, id, trigger, actor, payload,
                                   idempotency_key=idempotency_key,
                                   expected_version=expected_version)

    def batch(self) -> AbstractContextManager[None]:
        """Group commit: ``with engine.batch(): ...`` runs every trigger this thread fires in
        the block (`create`, `fire`, ingestion's, `run_due_timers`'s deadlines) in one database
        transaction, each under a savepoint of its own, committed when the block ends.

        - A refused trigger (any `LifecycleError`, an adapter error) rolls back alone and
          raises as usual; the others stand.
        - Nothing in the batch is durable, or visible to other connections, subscribers or
          logs, before the block ends; then its events are published in the order they were
          written, never those of a trigger rolled back.
        - An exception out of the block rolls the whole batch back: nothing was written.
        - A database error (contention as `Conflict`, an outage as `Unavailable`) loses the
          whole batch: raised by the trigger it hit, again by every later trigger in the
          block, and by the block's end (so a body that caught it cannot take the batch for
          committed); a failed commit likewise. Retry the whole batch.
        - On SQLite the batch holds the database's write lock from its first trigger to its
          end: other writers wait (and get `Conflict` past the busy timeout). Keep batches
          short. On PostgreSQL the batch holds its aggregates' row locks to its end.
        - Idempotency keys: a key used earlier in the batch answers with its first result,
          like a committed one; a key another process committed first answers with that
          process's result. ``expected_version`` is checked against the batch's own writes.
        - Each trigger reads the newest policy first, on the batch's connection, as outside a
          batch (a version stored earlier in the batch applies to its later triggers).
        - Reads on this thread (`get`, `allowed`, `history`, `find`, `check`, ...) run on the
          batch's connection and see its writes so far; the bulk report reads (`state_counts`,
          `field_values`, ...) run on a pooled connection and see only what is committed.
        - A batch belongs to the thread that opened it; other threads' triggers run in their
          own transactions. Inside a batch, ``batch()`` joins it as a savepoint: an exception
          out of the inner block undoes its triggers alone, the rest commit with the outer.

        Outside a batch, one trigger is one transaction, durable when it returns.
        """
        return self._units.batch()

    def batch_events(self, start: int = 0) -> list[dict[str, Any]]:
        """The events the thread's open batch has written so far (those of its triggers that
        stand, in the order they ran), from the ``start``-th on; empty outside a batch.

        The batch's own code may react to them before the commit, as its reads see its writes
        (a simulation's people answer what just happened); subscribers, the log and the relay
        still hear of them only after the commit, and never if the batch is lost. An inner
        ``batch()`` that raises takes its events out of the list again."""
        return self._units.written(start)

    def execute(self, statement: ClauseElement) -> None:
        """Run one SQLAlchemy Core write statement on an application's own table (a
        simulation's progress row) with the engine's writes: in the thread's open batch, under
        a savepoint of it, so that it commits with the batch's triggers or is lost with them;
        outside a batch, in a transaction of its own. A database error is `Conflict` or
        `Unavailable`, as for a trigger."""
        with self.store.transaction() as records:
            records.execute_core(statement)

    def get(self, kind: str, id: str) -> Aggregate:
        return self._pipeline.get(kind, id)

    def history(self, kind: str, id: str) -> list[HistoryEntry]:
        definition = self.definition(kind)
        with self.store.reading() as records:
            entries = records.history(definition.kind, id_of(id))
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
        steps = [(e.seq, e.trigger, e.source, e.dest, e.machine_version)
                 for e in self.history(kind, id)]
        problem = audit.replay_problem(self.definitions, definition.kind, stored.state,
                                       stored.version, stored.machine_version, steps)
        if problem:
            raise ReplayMismatch(definition.kind, len(steps), problem)
        return stored.state

    def balances(self, kind: str, id: str, *,
                 actor: Actor | None = None) -> dict[str, dict[str, Decimal]]:
        """Ledger balance of each account of one aggregate, per currency. With ``actor``,
        `Forbidden` when that actor may not see money (`sees_money`)."""
        definition = self.definition(kind)
        self._money_for(actor, f"read the {definition.kind}'s balances")
        with self.store.reading() as records:
            return records.balances(definition.kind, id_of(id))

    def postings(self, kind: str, id: str, *,
                 actor: Actor | None = None) -> list[tuple[int, str, str, Decimal, str]]:
        """Ledger entries of one aggregate: (seq, posting, account, amount, currency). With
        ``actor``, `Forbidden` when that actor may not see money (`sees_money`)."""
        definition = self.definition(kind)
        self._money_for(actor, f"read the {definition.kind}'s ledger")
        with self.store.reading() as records:
            return records.entries(definition.kind, id_of(id))

    def points(self, seller_id: str, actor: Actor) -> points_centre.PointsStatement:
        """A seller's points account (SPEC §12): its balance and its earning, redemption,
        correction and penalty records, each with the balance after it. The seller and
        operators (and the system) read it; anyone else is `Forbidden`."""
        actor, kind = actor_of(actor), points_centre.KIND
        if actor.role not in ("operator", "system") and (actor.role, actor.id) != ("seller", seller_id):
            raise Forbidden(actor.role, actor.id, "read points",
                            "only the seller and operators read a points account")
        with self.store.reading() as records:
            account = records.load(kind, id_of(seller_id))
            if account is None:
                raise NotFound(kind, seller_id)
            steps = [(e.seq, e.trigger, e.payload, e.actor, e.at)
                     for e in records.history(kind, account.id)]
            entries = records.entries(kind, account.id)
        return points_centre.statement(account.id, account.state, steps, entries)
    def sees_money(self, actor: Actor) -> bool:
        """Whether ``actor`` may see a store's money: ledgers, balances, what an order was paid
        and paid out. Everyone but a sub-account without the view_money permission (or no
        longer active), read from its row now. Every read that shows money asks this."""
        return self._pipeline.money_refusal(actor) is None

    def without_money(self, aggregate: Aggregate, actor: Actor) -> Aggregate:
        """``aggregate`` as ``actor`` may see it: the data that tells what a store received
        and was paid out (`machines.subaccount.MONEY_FIELDS`) left out when `sees_money` is
        False; the aggregate itself otherwise."""
        hidden = subaccount.MONEY_FIELDS.get(aggregate.kind, ())
        if not hidden or self.sees_money(actor):
            return aggregate
        data = {k: v for k, v in aggregate.data.items() if k not in hidden}
        return dataclasses.replace(aggregate, data=data)

    def _money_for(self, actor: Actor | None, what: str) -> None:
        if actor is None:
            return
        reason = self._pipeline.money_refusal(actor)
        if reason is not None:
            raise Forbidden(actor.role, actor.acting_id, what, reason)

    def check(self) -> list[Violation]:
        """Verify the whole database: every history replays to its aggregate's state and
        version, every posting balances, escrow never went negative, refunds never exceeded
        payments, a finished order holds nothing in escrow, and every unexpected capture was
        refunded. Returns the violations."""
        return audit.check(self.store, self.definitions)

    def allowed(self, kind: str, id: str, actor: Actor) -> list[str]:
        """The triggers ``actor`` may fire now: state, role, ownership and the payload-free guards."""
        return self._pipeline.allowed(kind, id, actor)

    def find(self, kind: str, *, state: str | None = None, limit: int = 100,
             after_id: str | None = None) -> list[Aggregate]:
        """A page of aggregates of one kind, in id order; pass the last id as ``after_id``."""
        definition = self.definition(kind)
        if state is not None:
            state = identifier(state, "state")
        if after_id is not None:
            after_id = id_of(after_id, "after_id")
        with self.store.reading() as records:
            return records.find(definition.kind, state=state, limit=limit, after_id=after_id)

    def violations(self, seller_id: str) -> list[Aggregate]:
        """Every violation recorded against the store ``seller_id``, active or not, in id
        order (SPEC §12): found through the lookup each violation's record writes."""
        seller_id = id_of(seller_id, "seller")
        with self.store.reading() as records:
            found = [records.load(kind, id) for kind, id in
                     records.found_by(STORE_INDEX, seller_id) if kind == VIOLATION]
        return [aggregate for aggregate in found if aggregate is not None]

    def run_due_timers(self, limit: int | None = None,
                       stop: Callable[[], bool] | None = None, *, prefix: str = "") -> int:
        """Fire every deadline due by the engine's clock, each in its own transaction (in a
        batch, its own savepoint), as the ``system`` actor; return how many fired.

        A deadline whose trigger the machine now refuses is discarded with a log line. One that
        fails otherwise (an adapter error) is retried with backoff and, after
        `timers.MAX_ATTEMPTS`, parked as failed. Contention (a lock held by another
        transaction, a deadlock, a serialization failure, SQLite busy) is no failure of the
        deadline: it stays pending, its attempts untouched, and is tried again. ``stop()`` is
        asked between deadlines, so a worker told to shut down finishes the one in hand and
        returns. Raises `Unavailable` when the database is lost; what fired before stays fired.
        ``prefix``: only the deadlines of aggregates whose id starts with it (a simulation
        shard's, issue #15); every deadline when empty.
        """
        return self._timers.run_due(limit, stop, prefix)

    def prune(self, limit: int = 5000) -> dict[str, int]:
        """Forget idempotency records older than the policy's ``idempotency_retention`` and
        drop outbox rows published longer ago than ``outbox_retention`` (SPEC §2), at most
        ``limit`` of each; returns how many of each went. The timer worker calls it.

        An event a durable subscription has not acknowledged stays. In a database no relay
        has run on (`relay_status`) and read through durable subscriptions, an event is done
        when every subscription acknowledged it and goes ``outbox_retention`` after it was
        written. A database with neither relay nor subscription keeps every event."""
        now = self.clock.now()
        policy = self.policy
        self._outbox.last_position()  # every committed event has a position before any goes
        with self.store.transaction() as records:
            keys = records.prune_keys(now - policy.idempotency_retention, limit)
            before, upto = now - policy.outbox_retention, records.slowest_subscription()
            published = records.prune_events(before, limit, upto=upto, unpublished=False)
            if upto is not None and not records.any_relay():  # read, not relayed: acked is done
                published += records.prune_events(before, limit, upto=upto, unpublished=True)
        if keys or published:
            log.info("retention.pruned", idempotency_keys=keys, published_events=published)
        return {"idempotency_keys": keys, "published_events": published}

    def deadlines(self, *, due: bool = False, failed: bool = False, kind: str | None = None,
                  id: str | None = None, limit: int = 1000) -> list[ScheduledDeadline]:
        """Scheduled deadlines: all, only those due by the clock now, or only the failed ones."""
        if kind is not None:
            kind = self.definition(kind).kind
        if id is not None:
            id = id_of(id)
        with self.store.reading() as records:
            return records.scheduled_deadlines(
                due_by=self.clock.now() if due else None, failed=failed, kind=kind, id=id,
                limit=limit,
            )

    def retry_deadline(self, deadline_id: int, actor: Actor) -> None:
        """Put a deadline parked as failed (``deadlines(failed=True)``) back in the queue, due
        by the engine's clock now, for the timer worker to fire as the ``system`` actor; its
        attempts are kept, so one more failure parks it again. ``actor`` (an operator) is who
        asked, for the log. `NotFound` when no parked deadline has that id; nothing written."""
        if actor.role not in ("operator", "system"):
            raise Forbidden(actor.role, actor.id, "retry a parked deadline",
                            "only operators retry parked deadlines")
        if isinstance(deadline_id, bool) or not isinstance(deadline_id, int):
            raise InvalidPayload("deadline", f"is a deadline's id (a whole number), got {deadline_id!r}")
        now = self.clock.now()
        with self.store.transaction() as records:
            if not records.requeue(deadline_id, now):
                raise NotFound("parked deadline", str(deadline_id))
        log.info("deadline.retried", deadline=deadline_id, actor=str(actor))

    # --- the policy every process shares (SPEC §2) ----------------------------------------

    @property
    def policy(self) -> Policy:
        """The policy in force. Inside a trigger, the version its transaction read first;
        otherwise the database's newest (one indexed read; parsed again only when the
        version changed), so a change made by another process shows at once."""
        return self._policy.current()

    def stored_policy(self) -> PolicyVersion:
        """The newest stored policy: its version, its values and when it was set."""
        return self._policy.stored()

    def policy_versions(self) -> list[PolicyVersion]:
        """Every stored version of the policy, oldest first."""
        return self._policy.versions()

    def set_policy(self, policy: Policy, *, expected_version: int | None = None) -> PolicyVersion:
        """Store ``policy`` as the next version, for every process from its next trigger on.

        Returns the version stored, or the newest one unchanged when it already holds these
        values. ``expected_version``: apply only if the newest version is still that one
        (else `Conflict`), so two operators' edits never silently undo each other.
        """
        if not isinstance(policy, Policy):
            raise InvalidPayload("policy", "must be a lifecycle.Policy")
        return self._policy.put(policy, update=True, expected_version=expected_version)

    # --- API keys: who may call the service, and as whom (issue #16) -------------------

    def create_key(self, role: str, *, actor_id: str | None = None,
                   label: str = "") -> tuple[ApiKey, str]:
        """Make an API key for ``role``: bound to ``actor_id``, or (None) a role scope that
        acts as any actor of the role. Returns the key and its token, ``lck_<id>_<secret>``:
        shown this once, since only the SHA-256 of its secret is stored. A role not in
        `ROLES`, a malformed actor id or label is `InvalidPayload`, and nothing is written."""
        return self._keys.create(role, actor_id, label)

    def keys(self, *, include_revoked: bool = False) -> list[ApiKey]:
        """The API keys, oldest first; the revoked ones only when asked. Never their tokens."""
        return self._keys.listed(include_revoked)

    def revoke_key(self, key_id: str) -> ApiKey:
        """Revoke an API key: it authenticates no more, in every process, from the next
        request on. `NotFound` if there is no such key; revoking twice keeps the first time."""
        return self._keys.revoke(key_id)

    def authenticate(self, token: str) -> ApiKey:
        """The API key a bearer token belongs to (one primary-key read). `Unauthenticated`,
        one message whatever the reason, when the token is missing, malformed, unknown, has
        the wrong secret or its key is revoked. Who it acts as: `ApiKey.acting_as`."""
        return self._keys.authenticate(token)

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
        return self._ingestion.payment_callback(gateway, body, headers)

    def ingest_tracking(self, carrier: str, body: bytes | str,
                        headers: Headers) -> list[Aggregate]:
        """A carrier's push: verify its signature, then apply each event to the orders its
        waybill carries. Returns the orders an event moved or recorded on. An event that moves
        nothing (late, duplicate or intermediate), after shipping, is no transition: its
        tracking row and an ``order.scan_recorded`` event commit together, and the order comes
        back unchanged (same version); a redelivered event does nothing. If some events
        cannot be read, the others are applied and `EventsRejected` is raised, naming the
        refused ones, with the orders applied in ``.applied``.

        Body and headers come in any form `ingest_payment_callback` takes; a push that cannot
        be read is an `AdapterError`, whatever the carrier's own parser raised."""
        return self._ingestion.tracking_push(carrier, body, headers)

    def tracking(self, order_id: str) -> list[TrackingRecord]:
        """The carrier scans recorded on an order, oldest first."""
        order = self.get("order", order_id)
        with self.store.reading() as records:
            return records.scans(order.kind, order.id)

    def track(self, order_id: str) -> Aggregate:
        """Poll the order's carrier and apply every event not yet seen."""
        return self._ingestion.track(order_id)

    # --- order messages (issue #20, SPEC §12; the machine is `lifecycle.machines.message`) --

    def send_message(self, order_id: str, sender: Actor, text: str, *,
                     idempotency_key: str | None = None) -> Aggregate:
        """The order's buyer or seller writes to the other side: a ``message`` created by
        ``send``. A stranger is `Forbidden`, an unknown order or a text past
        ``policy.message_text_max`` a `GuardFailed`; nothing is written then."""
        return self.create("message", sender, {"order": order_id, "text": text},
                           idempotency_key=idempotency_key)

    def messages(self, order_id: str, reader: Actor) -> list[OrderMessage]:
        """An order's messages, oldest first, as ``reader`` sees them (`OrderMessage`): the
        order's buyer or seller, with their own side's labels and marks, or an operator
        (every message; no side's labels). Anyone else is `Forbidden`. Reads no history."""
        reader = actor_of(reader)
        order = self.get("order", order_id)
        if not self.definition("order").owns(reader, order.id, order.data):
            raise Forbidden(reader.role, reader.id, "read messages",
                            f"order {order.id} is not theirs")
        with self.store.reading() as records:
            found = records.indexed(message.BY_ORDER, order.id, message.DEFINITION.kind)
        return [message.seen_by(m, reader) for m in found]

    def dispute_messages(self, dispute_id: str, reader: Actor) -> list[OrderMessage]:
        """The messages of a dispute's order, as `messages` gives them: what an operator
        reads beside the dispute (its buyer and seller may too; anyone else is `Forbidden`)."""
        reader = actor_of(reader)
        dispute = self.get("dispute", dispute_id)
        if not self.definition("dispute").owns(reader, dispute.id, dispute.data):
            raise Forbidden(reader.role, reader.id, "read messages",
                            f"dispute {dispute.id} is not theirs")
        return self.messages(dispute.data["order"], reader)

    def read_messages(self, order_id: str, reader: Actor) -> list[OrderMessage]:
        """Read an order's messages as its buyer or seller: each one addressed to the
        reader's side and still unread is marked read (its ``read``, all in one transaction),
        then the messages are returned as `messages` returns them."""
        reader = actor_of(reader)
        _side_of(reader, "read messages")
        unread = [m for m in self.messages(order_id, reader) if m.unread]
        with self.batch():
            for found in unread:
                try:
                    self.fire(message.DEFINITION.kind, found.id, "read", reader)
                except (Conflict, InvalidTransition):
                    continue  # read meanwhile by another process of the same side: done
        return self.messages(order_id, reader)

    def unread(self, reader: Actor) -> Unread:
        """The messages the other side sent ``reader``'s side (a buyer, or a seller's store)
        that it has not read, in all and by order: one read of the unread rows only."""
        reader = actor_of(reader)
        side = _side_of(reader, "count unread messages")
        with self.store.reading() as records:
            found = records.indexed(message.INBOX, f"{side}:{reader.id}",
                                    message.DEFINITION.kind, state="unread")
        by_order: dict[str, int] = {}
        for m in found:
            by_order[m.data["order"]] = by_order.get(m.data["order"], 0) + 1
        return Unread(len(found), by_order)

    def search_messages(self, reader: Actor, *, label: str | None = None,
                        mark: str | None = None) -> list[OrderMessage]:
        """Every message, across ``reader``'s orders, that their side labelled ``label``
        (and marked ``mark``, when given; or only marked, without a label), oldest first.
        A malformed label or mark is `InvalidPayload` naming it."""
        reader = actor_of(reader)
        side = _side_of(reader, "search messages")
        if label is None and mark is None:
            raise InvalidPayload("label", "search by a label, a mark or both")
        label = message.label_name(label) if label is not None else None
        mark = message.mark_name(mark) if mark is not None else None
        lookup, value = ((message.LABELLED, label) if label is not None
                         else (message.MARKED, mark))
        assert value is not None
        with self.store.reading() as records:
            found = records.indexed(lookup, message.side_key(side, reader.id, value),
                                    message.DEFINITION.kind)
        return [message.seen_by(m, reader) for m in found
                if message.labelled(m, side, label, mark)]

    # --- wiring -------------------------------------------------------------------------

    # --- bulk reads for reports ---
    # One statement each over a whole table, for the aggregates whose id starts with ``prefix``
    # ("" for all): what a report needs without a query per aggregate. Read-only, outside any
    # trigger; the statements are in `lifecycle.store.reports`.

    def state_counts(self, kinds: Iterable[str], *, prefix: str = "") -> list[StateCount]:
        """(kind, state, aggregates, transitions) for every state of ``kinds`` that holds any:
        how many aggregates are in it and their versions summed (one per history row)."""
        kinds = [self.definition(kind).kind for kind in kinds]
        with self.store.through_core() as conn:
            return reports.state_counts(conn, kinds, prefix)

    def field_values(self, kind: str, *, prefix: str = "", text: Sequence[str] = (),
                     integer: Sequence[str] = ()) -> Iterator[tuple[str, dict[str, Any]]]:
        """(state, the named fields of its data) of each aggregate of ``kind``, streamed: the
        ``text`` fields as strings, the ``integer`` ones as ints; a field the data lacks (or
        holds as null) is left out, as ``name in data`` would say. Iterate to the end (or
        close the iterator) to give its connection back."""
        kind = self.definition(kind).kind
        with self.store.through_core() as conn:
            yield from reports.fields(conn, kind, prefix, text, integer)

    def counts_by_field(self, kind: str, field: str, *,
                        prefix: str = "") -> list[tuple[str | None, str, int]]:
        """(the data's ``field`` as a string, state, how many) of the aggregates of ``kind``:
        disputes by type and state with ``field="type"``."""
        kind = self.definition(kind).kind
        with self.store.through_core() as conn:
            return reports.counts_by_field(conn, kind, field, prefix)

    def history_steps(self, kind: str, states: Iterable[str], *, prefix: str = "",
                      label: str = "type", detail: str = "decision",
                      ) -> Iterator[tuple[str | None, list[tuple[str, str | None]]]]:
        """For each aggregate of ``kind`` now in one of ``states``: (its data's ``label``, its
        history as (trigger, the payload's ``detail``), creation first), in id order, streamed
        in one pass over the history table. Iterate to the end (or close the iterator) to give
        its connection back."""
        kind = self.definition(kind).kind
        with self.store.through_core() as conn:
            yield from reports.history_steps(conn, kind, list(states), prefix, label, detail)

    def ledger_sums(self, kinds: Iterable[str], *, prefix: str = "") -> list[LedgerSum]:
        """The ledger entries of aggregates of ``kinds`` summed by (kind, posting, account,
        currency, amount above zero), as `LedgerSum` amounts in the currency (not minor units)."""
        kinds = [self.definition(kind).kind for kind in kinds]
        with self.store.through_core() as conn:
            return reports.ledger_sums(conn, kinds, prefix)

    def parked_deadlines(self, *, prefix: str = "") -> list[ParkedDeadline]:
        """(kind, aggregate id, trigger) of every deadline parked as failed, by due time: what
        ``deadlines(failed=True)`` lists, for every aggregate with the prefix and no limit."""
        with self.store.through_core() as conn:
            return reports.parked(conn, prefix)

    def backlog(self) -> Backlog:
        """What waits in the database: deadlines parked as failed, unpublished outbox rows, and
        pending deadlines due by the engine's clock; what the metrics' gauges show at each
        scrape (`lifecycle.metrics_exposition`), the same from every process."""
        with self.store.through_core() as conn:
            return reports.backlog(conn, self.clock.now())

    def first_deadlines(self, n: int, *, prefix: str = "") -> list[tuple[str, datetime]]:
        """(status, due time) of the first ``n`` deadlines by (due time, id), every status, as
        ``deadlines(limit=n)`` lists them, but read through the ``(status, due_at)`` index
        instead of sorting the whole table: what a driver asks before skipping idle time.
        ``prefix``: only those of aggregates whose id starts with it (every one when empty)."""
        with self.store.reading() as records:
            return records.first_deadlines(n, prefix)

    def subscribe(self, pattern: str, fn: Subscriber) -> None:
        """Call ``fn(event)`` after commit for each event whose name matches ``pattern``
        (``"order.*"``, ``"dispute.resolved_refund"``, ``"*"``).

        At most once, and in this process only: a process killed after a commit and before its
        subscribers ran misses them. For every event, at least once, from any process, read
        them with `events` or a durable `subscription`, or run `lifecycle relay` to a broker.
        """
        self._subscribers.append((pattern, fn))

    # --- events out of the database (issue #17, docs/events.md) ---------------------------

    def events(self, after: int = 0, limit: int = 100) -> list[Event]:
        """Committed events after position ``after`` (0: from the oldest kept), in commit
        order, at most ``limit``: each with its ``position`` (the cursor to pass next) and
        its ``body`` (docs/events.md). One aggregate's events come in seq order. Raises
        `EventsExpired` if retention pruned events after ``after``."""
        return self._outbox.events(after, limit)

    def subscription(self, name: str) -> Subscription:
        """The durable subscription ``name``, made on first use (starting at the oldest event
        kept): `Subscription.poll` and `Subscription.ack`, its position kept in the database."""
        return Subscription(self._outbox, name)

    def claim_unpublished(self, limit: int, *, relay: str,
                          target: str) -> AbstractContextManager[Claim]:
        """For a relay (`lifecycle.Relay`): up to ``limit`` unpublished events, oldest first,
        none of an aggregate whose earlier event another relay holds. Those reported
        `Claim.published` inside the block are marked published when it ends."""
        return self._outbox.claim(limit, relay, target)

    def relay_seen(self, relay: str, target: str) -> None:
        """A relay's heartbeat, for `relay_status`."""
        self._outbox.relay_seen(relay, target)

    def relay_status(self) -> RelayStatus:
        """The unpublished backlog, its oldest event and how long it has waited (by the
        engine's clock), the relays seen and each durable subscription's position."""
        return self._outbox.status()

    def definition(self, kind: str, version: int | None = None) -> MachineDefinition:
        """The newest version of ``kind``'s machine, or version ``version`` of it
        (`UnknownMachineVersion` if this engine does not run that one)."""
        newest = self._pipeline.definition(kind)
        return newest if version is None else self.definitions.at(newest.kind, version)

    # --- versions of the machines (SPEC §13) --------------------------------------------

    def machine_versions(self) -> list[MachineVersion]:
        """Every version of every machine this engine runs or the database has run: whether
        each is registered here and there, and how many aggregates are on it."""
        return machine_registry.versions(self.store, self.definitions)

    def verify(self, kind: str | None = None) -> list[Finding]:
        """`lifecycle verify`: every check of every registered version's graph (of ``kind``
        only, when given), passed or not (`lifecycle.machines.verify`)."""
        if kind is not None:
            kind = self.definition(kind).kind
        return verify(self.definitions, kind)

    def migrate(self, kind: str, to: int, *, dry_run: bool = False, state: str | None = None,
                actor: Actor | None = None) -> MigrationReport:
        """Move the in-flight aggregates of ``kind`` (of ``state`` only, when given) to
        version ``to`` of its machine, one transaction each, with a ``migrated`` history row
        and event; or, with ``dry_run``, only say what would happen to each (its new state,
        each deadline, its escrow, and why it would be stranded). A migration that would
        strand any aggregate is refused whole (`MigrationRefused`), nothing written; see
        `lifecycle.migration`. ``actor`` is recorded in the history rows (an operator)."""
        definition = self.definition(kind)
        if not isinstance(to, int) or isinstance(to, bool):
            raise InvalidPayload("to", f"must be a version number, got {to!r}")
        if state is not None:
            state = identifier(state, "state")
        who = actor_of(actor) if actor is not None else Actor("operator", "migrate")
        return migration.migrate(self.store, self.definitions, definition.kind, to,
                                 now=self.clock.now, policy=self._policy.in_force,
                                 actor=who, dry_run=dry_run, state=state)

    # --- the seller's profile and avatar (issue #20, docs/account-profile.md) --------------

    def profile(self, seller_id: str, reader: Actor | None = None) -> dict[str, Any]:
        """The seller's profile as ``reader`` may see it (None: an anonymous reader), the only
        door to a profile for anyone but its owner and operators: the personal and the
        procurement information each shown only if its privacy level lets this reader see it
        (`lifecycle.machines.privacy`), and only the last approved avatar. `NotFound` if the
        seller has no profile."""
        found = self.get("profile", seller_id)
        reader = actor_of(reader) if reader is not None else None
        certified = False
        if reader is not None and reader.role == "seller" and reader.id != found.id:
            certified = privacy.is_certified(self._pipeline.existing("seller", reader.id))
        return privacy.profile_view(found, reader, certified)

    def upload_avatar(self, actor: Actor, image: bytes, *, id: str | None = None) -> Aggregate:
        """A seller's new avatar, ``submitted`` for review: ``image`` must be the bytes of a
        JPEG of at most the policy's ``avatar_max_bytes`` (else `InvalidPayload` naming
        ``image``; a PNG named .jpg is refused), and the seller must have a profile. The bytes
        are kept beside the aggregate (`avatar_image`), in the same transaction. ``id``: the
        avatar's id, when the caller names it (a simulation's ids carry its prefix); a new
        ``a-…`` id otherwise."""
        who = actor_of(actor)
        width, height = inspect_jpeg(image, self.policy.avatar_max_bytes)
        image = bytes(image)
        digest = hashlib.sha256(image).hexdigest()
        id = id_of(id, "id") if id is not None else new_avatar_id()
        with self.batch():
            created = self.create("avatar", who, {"sha256": digest, "size": len(image),
                                                  "width": width, "height": height}, id=id)
            self.execute(avatars.store_image(id, image, digest, CONTENT_TYPE))
        return created

    def avatar_image(self, avatar_id: str, reader: Actor | None = None) -> bytes:
        """An avatar's JPEG bytes. Its seller and operators get any; anyone else only an
        approved one (another is `NotFound`, as if absent)."""
        avatar = self.get("avatar", avatar_id)
        reader = actor_of(reader) if reader is not None else None
        mine = reader is not None and self.definition("avatar").owns(reader, avatar.id, avatar.data)
        if not mine and avatar.state != "approved":
            raise NotFound("avatar", avatar_id)
        with self.store.through_core() as conn:
            image = avatars.image_of(conn, avatar.id)
        if image is None:
            raise NotFound("avatar image", avatar_id)
        return image

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _side_of(reader: Actor, what: str) -> str:
    """The side of the order messages ``reader`` acts for; operators and the system have none."""
    if reader.role not in message.PARTIES:
        raise Forbidden(reader.role, reader.id, what, "only an order's buyer or seller has messages")
    return reader.role
