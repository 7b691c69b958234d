"""The outbox read from outside the trigger (issue #17): the relay's claims and marks, the
positions readers of `Engine.events` page by, durable subscriptions, and the relays seen. A
part of `Recorder`.

Why positions: on PostgreSQL a row's id is taken when it is inserted, but rows become visible
when their transaction commits, out of id order; a reader paging by id would skip a row that
commits after a higher id was read. So a row's position is given when it is first read, by one
giver at a time (the ``event_sequence`` row's lock), to the rows visible then: positions are
gap-free and in commit order, and one aggregate's events (each written after the one before
committed) get theirs in seq order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, delete, func, insert, literal_column, select, update

from lifecycle.store.statements import Statement, Statements
from lifecycle.store.tables import event_sequence, outbox, relays, subscriptions

OUTBOX = "outbox"  # the name of the sequence's one row


class SubscriptionRow(NamedTuple):
    name: str
    position: int
    created_at: datetime
    updated_at: datetime


class RelayRow(NamedTuple):
    name: str
    target: str
    started_at: datetime
    seen_at: datetime
    published: int


o = outbox.c


class OutboxRecords(Statements):
    """Statements on the outbox for the relay and for readers."""

    # --- the relay's claim: unpublished rows, oldest first ---------------------------------

    # FOR UPDATE SKIP LOCKED on PostgreSQL (several relays each take rows no other holds);
    # SQLite compiles no locking clause, and has one relay.
    UNPUBLISHED = Statement(select(o.id, o.body).where(o.published_at.is_(None)).order_by(o.id)
                            .limit(bindparam("limit")).offset(literal_column("0"))
                            .with_for_update(skip_locked=True))
    UNPUBLISHED_BEFORE = Statement(select(o.id, o.kind, o.aggregate_id)
                                   .where(o.published_at.is_(None), o.id < bindparam("last")))

    def claim_unpublished(self, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """Up to ``limit`` unpublished rows as (row id, body), in id order, none of whose
        aggregates has an earlier unpublished row outside the claim.

        Another relay may hold an aggregate's earlier event (its claim skipped here): this
        claim leaves that aggregate's later ones alone, so one aggregate's events reach the
        broker in order, whichever relay publishes them.
        """
        self.cur.execute(self.UNPUBLISHED, {"limit": limit})
        rows = [(row_id, self.loads(body)) for row_id, body in self.cur.fetchall()]
        if not rows:
            return rows
        mine = {row_id for row_id, _ in rows}
        self.cur.execute(self.UNPUBLISHED_BEFORE, {"last": rows[-1][0]})
        held: dict[tuple[str, str], int] = {}
        for row_id, kind, aggregate_id in self.cur.fetchall():
            if row_id not in mine:
                key = (kind, aggregate_id)
                held[key] = min(row_id, held.get(key, row_id))
        if not held:
            return rows
        return [(row_id, body) for row_id, body in rows
                if held.get((body["kind"], body["aggregate_id"]), row_id + 1) > row_id]

    MARK_PUBLISHED = Statement(update(outbox).where(o.id == bindparam("row_id"))
                               .values(published_at=bindparam("now")))

    def mark_published(self, row_ids: Sequence[int], now: datetime) -> None:
        at = self.moment(now)
        self.cur.executemany(self.MARK_PUBLISHED, [{"row_id": r, "now": at} for r in row_ids])

    # --- positions: the order readers see --------------------------------------------------

    ANY_UNPOSITIONED = Statement(select(o.id).where(o.position.is_(None))
                                 .limit(literal_column("1")).offset(literal_column("0")))

    def any_unpositioned(self) -> bool:
        self.cur.execute(self.ANY_UNPOSITIONED)
        return self.cur.fetchone() is not None

    # PostgreSQL waits here for another giver's transaction to end; SQLite's BEGIN IMMEDIATE
    # already holds the database's write lock.
    LAST_GIVEN_FOR_UPDATE = Statement(select(event_sequence.c.last)
                                      .where(event_sequence.c.name == bindparam("name"))
                                      .with_for_update())
    UNPOSITIONED = Statement(select(o.id).where(o.position.is_(None)).order_by(o.id)
                             .limit(bindparam("limit")).offset(literal_column("0")))
    SET_POSITION = Statement(update(outbox).where(o.id == bindparam("row_id"))
                             .values(position=bindparam("position")))
    SET_LAST_GIVEN = Statement(update(event_sequence)
                               .where(event_sequence.c.name == bindparam("name"))
                               .values(last=bindparam("last")))

    def give_positions(self, limit: int) -> int:
        """Give the next positions to up to ``limit`` rows that have none, in id order; how
        many got one. Run in a write transaction of its own: its first statement takes the
        givers' lock, so the rows it then reads include every earlier giver's."""
        last = self._last_given_locked()
        self.cur.execute(self.UNPOSITIONED, {"limit": limit})
        row_ids = [row_id for (row_id,) in self.cur.fetchall()]
        if not row_ids:
            return 0
        self.cur.executemany(self.SET_POSITION, [{"row_id": row_id, "position": last + n}
                                                 for n, row_id in enumerate(row_ids, 1)])
        self.cur.execute(self.SET_LAST_GIVEN, {"name": OUTBOX, "last": last + len(row_ids)})
        return len(row_ids)

    ADD_SEQUENCE = Statement(insert(event_sequence).values(
        name=bindparam("name"), last=select(func.coalesce(func.max(o.position), literal_column("0")))
        .scalar_subquery()))

    def _last_given_locked(self) -> int:
        self.cur.execute(self.LAST_GIVEN_FOR_UPDATE, {"name": OUTBOX})
        row = self.cur.fetchone()
        if row is None:  # the row is made by the migration; a table emptied by hand lost it
            self.cur.execute(self.ADD_SEQUENCE, {"name": OUTBOX})
            return self._last_given_locked()
        return int(row[0])

    LAST_GIVEN = Statement(select(event_sequence.c.last)
                           .where(event_sequence.c.name == bindparam("name")))

    def last_position(self) -> int:
        self.cur.execute(self.LAST_GIVEN, {"name": OUTBOX})
        row = self.cur.fetchone()
        return 0 if row is None else int(row[0])

    EVENTS_AFTER = Statement(select(o.position, o.body).where(o.position > bindparam("after"))
                             .order_by(o.position)
                             .limit(bindparam("limit")).offset(literal_column("0")))

    def events_after(self, after: int, limit: int) -> list[tuple[int, dict[str, Any]]]:
        self.cur.execute(self.EVENTS_AFTER, {"after": after, "limit": limit})
        return [(int(position), self.loads(body)) for position, body in self.cur.fetchall()]

    FIRST_KEPT = Statement(select(func.min(o.position)))

    def first_kept_position(self) -> int | None:
        self.cur.execute(self.FIRST_KEPT)
        (first,) = self.cur.fetchone()
        return None if first is None else int(first)

    # --- durable subscriptions -------------------------------------------------------------

    s = subscriptions.c
    SUBSCRIPTION = Statement(select(s.name, s.position, s.created_at, s.updated_at)
                             .where(s.name == bindparam("name")))
    ADD_SUBSCRIPTION = Statement(insert(subscriptions).values(
        name=bindparam("name"), position=bindparam("position"),
        created_at=bindparam("now"), updated_at=bindparam("now")))
    ACK = Statement(update(subscriptions)
                    .where(s.name == bindparam("name"), s.position < bindparam("position"))
                    .values(position=bindparam("position"), updated_at=bindparam("now")))
    SEEK = Statement(update(subscriptions).where(s.name == bindparam("name"))
                     .values(position=bindparam("position"), updated_at=bindparam("now")))
    SUBSCRIPTIONS = Statement(select(s.name, s.position, s.created_at, s.updated_at)
                              .order_by(s.name))

    def subscription(self, name: str) -> SubscriptionRow | None:
        self.cur.execute(self.SUBSCRIPTION, {"name": name})
        row = self.cur.fetchone()
        return None if row is None else self._subscription(row)

    def add_subscription(self, name: str, position: int, now: datetime) -> None:
        self.cur.execute(self.ADD_SUBSCRIPTION,
                         {"name": name, "position": position, "now": self.moment(now)})

    def ack(self, name: str, position: int, now: datetime) -> None:
        """Move the subscription on to ``position``; never back (a late ack of an earlier
        position, from a consumer that was restarted, changes nothing)."""
        self.cur.execute(self.ACK, {"name": name, "position": position, "now": self.moment(now)})

    def seek(self, name: str, position: int, now: datetime) -> None:
        self.cur.execute(self.SEEK, {"name": name, "position": position, "now": self.moment(now)})

    SLOWEST = Statement(select(func.min(s.position)))

    def slowest_subscription(self) -> int | None:
        """The lowest position any durable subscription acknowledged (None: there is none)."""
        self.cur.execute(self.SLOWEST)
        (slowest,) = self.cur.fetchone()
        return None if slowest is None else int(slowest)

    DROP_SUBSCRIPTION = Statement(delete(subscriptions).where(s.name == bindparam("name")))

    def drop_subscription(self, name: str) -> bool:
        self.cur.execute(self.DROP_SUBSCRIPTION, {"name": name})
        return bool(self.cur.rowcount)

    def subscriptions(self) -> list[SubscriptionRow]:
        self.cur.execute(self.SUBSCRIPTIONS)
        return [self._subscription(row) for row in self.cur.fetchall()]

    def _subscription(self, row: Sequence[Any]) -> SubscriptionRow:
        name, position, created, updated = row
        return SubscriptionRow(name, int(position), self.moment_of(created), self.moment_of(updated))

    # --- the relays seen ---------------------------------------------------------------------

    r = relays.c
    RELAY_SEEN = Statement(update(relays).where(r.name == bindparam("name"))
                           .values(target=bindparam("target"), seen_at=bindparam("now"),
                                   published=r.published + bindparam("published")))
    ADD_RELAY = Statement(insert(relays).values(
        name=bindparam("name"), target=bindparam("target"), started_at=bindparam("now"),
        seen_at=bindparam("now"), published=bindparam("published")))
    RELAYS = Statement(select(r.name, r.target, r.started_at, r.seen_at, r.published)
                       .order_by(r.name))
    ANY_RELAY = Statement(select(r.name).limit(literal_column("1")).offset(literal_column("0")))

    def relay_seen(self, name: str, target: str, published: int, now: datetime) -> None:
        values = {"name": name, "target": target, "published": published, "now": self.moment(now)}
        self.cur.execute(self.RELAY_SEEN, values)
        if self.cur.rowcount == 0:
            self.cur.execute(self.ADD_RELAY, values)

    def relays(self) -> list[RelayRow]:
        self.cur.execute(self.RELAYS)
        return [RelayRow(name, target, self.moment_of(started), self.moment_of(seen), int(n))
                for name, target, started, seen, n in self.cur.fetchall()]

    def any_relay(self) -> bool:
        self.cur.execute(self.ANY_RELAY)
        return self.cur.fetchone() is not None

    # --- what waits ---------------------------------------------------------------------------

    UNPUBLISHED_COUNT = Statement(select(func.count()).where(o.published_at.is_(None)))
    OLDEST_UNPUBLISHED = Statement(select(o.created_at).where(o.published_at.is_(None))
                                   .order_by(o.id).limit(literal_column("1")).offset(literal_column("0")))

    def unpublished(self) -> tuple[int, datetime | None]:
        """How many rows wait for a relay, and when the oldest of them was written."""
        self.cur.execute(self.UNPUBLISHED_COUNT)
        (count,) = self.cur.fetchone()
        self.cur.execute(self.OLDEST_UNPUBLISHED)
        row = self.cur.fetchone()
        return int(count), None if row is None else self.moment_of(row[0])
