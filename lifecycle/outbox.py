"""Events leave the database (issue #17): the relay's claims of unpublished outbox rows, the
pull API (`Engine.events`, durable `Subscription`s) and what `lifecycle relay status` shows.

Two ways out, independent of each other:

- **The relay** publishes each row to a broker and marks it published once the broker
  confirmed it (at least once, in order per aggregate). On PostgreSQL a claim is a transaction
  holding its rows ``FOR UPDATE SKIP LOCKED`` while it publishes, so several relays share the
  work; a claim never takes an aggregate's event while another claim holds an earlier one. On
  SQLite (one writer) a claim reads without the write lock and marks in one short write.
- **Readers** page through events by position (`store.outbox`), given to rows as they are
  first read, in commit order; a durable subscription keeps its position in the database, so
  a consumer restarted anywhere goes on where it acknowledged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from lifecycle.clock import Clock
from lifecycle.errors import EventsExpired, InvalidPayload, NotFound
from lifecycle.events import Event, OutboxEvent
from lifecycle.ids import identifier
from lifecycle.store.datastore import Store
from lifecycle.store.outbox import RelayRow
from lifecycle.store.recorder import Recorder

# At most this many rows get positions in one giver's transaction.
GIVE_AT_MOST = 5000
MAX_PAGE = 10_000


@dataclass
class Claim:
    """Unpublished events a relay holds while it publishes them (`Outbox.claim`). ``published``
    records those the broker confirmed; they are marked when the claim ends."""

    events: list[OutboxEvent]
    confirmed: list[OutboxEvent] = field(default_factory=list)

    def published(self, events: list[OutboxEvent]) -> None:
        self.confirmed.extend(events)


@dataclass(frozen=True, slots=True)
class SubscriptionStatus:
    name: str
    position: int  # the last position it acknowledged
    behind: int  # events given a position after it
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class RelayStatus:
    """What `lifecycle relay status` shows: the unpublished backlog and its age, the relays
    that have run on this database, and the durable subscriptions."""

    backlog: int
    oldest_unpublished_at: datetime | None
    lag: timedelta | None  # how long the oldest unpublished event has waited, by the clock
    last_position: int
    relays: list[RelayRow]
    subscriptions: list[SubscriptionStatus]


class Outbox:
    def __init__(self, store: Store, clock: Clock):
        self.store, self.clock = store, clock

    # --- the relay --------------------------------------------------------------------------

    @contextmanager
    def claim(self, limit: int, relay: str, target: str) -> Iterator[Claim]:
        """Up to ``limit`` unpublished events, oldest first, for the relay ``relay`` to
        publish; those it reports `Claim.published` are marked when the block ends, with the
        relay's heartbeat. An error inside the block marks nothing (they are published again:
        at least once)."""
        if self.store.claims_lock_rows:
            with self.store.transaction() as records:
                claim = _claimed(records, limit)
                yield claim
                self._mark(records, claim, relay, target)
            return
        with self.store.reading() as records:
            claim = _claimed(records, limit)
        yield claim
        if claim.confirmed:
            with self.store.transaction() as records:
                self._mark(records, claim, relay, target)

    def _mark(self, records: Recorder, claim: Claim, relay: str, target: str) -> None:
        now = self.clock.now()
        if claim.confirmed:
            records.mark_published([event.row_id for event in claim.confirmed], now)
        records.relay_seen(relay, target, len(claim.confirmed), now)

    def relay_seen(self, relay: str, target: str) -> None:
        """A relay's heartbeat while it has nothing to publish (and when it starts: from then
        on, events wait for it and are no longer pruned by age alone)."""
        with self.store.transaction() as records:
            records.relay_seen(relay, target, 0, self.clock.now())

    # --- readers ------------------------------------------------------------------------------

    def events(self, after: int = 0, limit: int = 100) -> list[Event]:
        """Events after position ``after`` in commit order, at most ``limit``. ``after=0``
        reads from the oldest event kept. Raises `EventsExpired` when retention pruned events
        after ``after`` that the caller has not read; a page stops before such a gap."""
        after = _position(after, "after")
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
            raise InvalidPayload("limit", f"must be an integer from 1 to {MAX_PAGE}")
        self._give_positions()
        with self.store.reading() as records:
            rows = records.events_after(after, limit)
            if after == 0:
                return [Event(position, body) for position, body in rows]
            expected = after + 1
            page: list[Event] = []
            for position, body in rows:
                if position != expected:
                    break
                page.append(Event(position, body))
                expected += 1
            if page or (len(rows) == 0 and records.last_position() <= after):
                return page
            raise EventsExpired(after, records.first_kept_position())

    def _give_positions(self) -> None:
        """Positions for the rows committed since the last reader looked: checked with one
        indexed read first, so a reader that is up to date takes no write lock."""
        with self.store.quick() as records:
            if not records.any_unpositioned():
                return
        while True:
            with self.store.transaction() as records:
                given = records.give_positions(GIVE_AT_MOST)
            if given < GIVE_AT_MOST:
                return

    def last_position(self) -> int:
        self._give_positions()
        with self.store.quick() as records:
            return records.last_position()

    # --- durable subscriptions -----------------------------------------------------------------

    def subscribe_durably(self, name: str) -> int:
        """The position ``name`` acknowledged last; a new subscription starts before the
        oldest event kept (it will read everything still there)."""
        name = identifier(name, "subscription", limit=100)
        with self.store.quick() as records:
            row = records.subscription(name)
        if row is not None:
            return row.position
        self._give_positions()
        with self.store.transaction() as records:
            row = records.subscription(name)
            if row is not None:  # another process made it in between
                return row.position
            first = records.first_kept_position()
            start = records.last_position() if first is None else first - 1
            records.add_subscription(name, start, self.clock.now())
            return start

    def position_of(self, name: str) -> int:
        with self.store.quick() as records:
            row = records.subscription(name)
        if row is None:
            raise NotFound("subscription", name)
        return row.position

    def drop(self, name: str) -> bool:
        """Forget the subscription ``name`` (it no longer holds events from retention)."""
        with self.store.transaction() as records:
            return records.drop_subscription(name)

    def ack(self, name: str, position: int) -> None:
        self._move(name, position, forward_only=True)

    def seek(self, name: str, position: int) -> None:
        self._move(name, position, forward_only=False)

    def _move(self, name: str, position: int, *, forward_only: bool) -> None:
        position = _position(position, "cursor")
        with self.store.transaction() as records:
            last = records.last_position()
            if position > last:
                raise InvalidPayload("cursor", f"{position} is past the last event ({last})")
            move = records.ack if forward_only else records.seek
            move(name, position, self.clock.now())

    # --- status ---------------------------------------------------------------------------------

    def status(self) -> RelayStatus:
        self._give_positions()
        now = self.clock.now()
        with self.store.reading() as records:
            backlog, oldest = records.unpublished()
            last = records.last_position()
            subscriptions = [SubscriptionStatus(row.name, row.position, last - row.position,
                                                row.updated_at)
                             for row in records.subscriptions()]
            return RelayStatus(backlog, oldest, None if oldest is None else now - oldest, last,
                               records.relays(), subscriptions)


def _claimed(records: Recorder, limit: int) -> Claim:
    return Claim([OutboxEvent(row_id, body) for row_id, body in records.claim_unpublished(limit)])


def _position(value: object, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidPayload(field, "must be a position: an integer ≥ 0")
    return value


class Subscription:
    """A named durable subscription (`Engine.subscription`): its position lives in the
    database, so every process sees the same one and a consumer restarted after a crash goes
    on after the last position it acknowledged. Delivery is at least once: `poll` again before
    `ack` and the same events come back.

    ::

        billing = engine.subscription("billing")
        for event in billing.poll(limit=100):
            handle(event.body)
            billing.ack(event.position)
    """

    def __init__(self, outbox: Outbox, name: str):
        self._outbox = outbox
        self.name = identifier(name, "subscription", limit=100)
        outbox.subscribe_durably(self.name)

    @property
    def cursor(self) -> int:
        """The last position acknowledged."""
        return self._outbox.position_of(self.name)

    def poll(self, limit: int = 100) -> list[Event]:
        """The next events after the acknowledged position (the same ones until acked)."""
        return self._outbox.events(after=self.cursor, limit=limit)

    def ack(self, cursor: int) -> None:
        """Acknowledge every event up to position ``cursor``. Never moves back: an older
        cursor (a slow consumer's late ack) changes nothing."""
        self._outbox.ack(self.name, cursor)

    def seek(self, cursor: int) -> None:
        """Move to ``cursor``, back or forward: to replay, or past events retention pruned."""
        self._outbox.seek(self.name, cursor)

    def delete(self) -> None:
        """Forget this subscription: events it had not acknowledged are held no longer."""
        self._outbox.drop(self.name)

    def __repr__(self) -> str:
        return f"Subscription({self.name!r})"
