"""Retention (SPEC §2): idempotency records answer retries for a while, outbox rows are kept a
while after they are delivered; after that both go. Pruned in bounded slices so one pass never holds the
database for long. A part of `Recorder`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, literal_column, select

from lifecycle.store.statements import Statement, Statements
from lifecycle.store.tables import idempotency, outbox


class RetentionRecords(Statements):
    """Statements that forget what is kept no longer."""

    PRUNE_KEYS = Statement(delete(idempotency).where(idempotency.c.key.in_(
        select(idempotency.c.key).where(idempotency.c.created_at < bindparam("before"))
        .limit(bindparam("limit")).offset(literal_column("0")))))

    def prune_keys(self, before: datetime, limit: int) -> int:
        """Forget up to ``limit`` idempotency records written before ``before``."""
        self.cur.execute(self.PRUNE_KEYS, {"before": self.moment(before), "limit": limit})
        return int(self.cur.rowcount)

    def prune_events(self, before: datetime, limit: int, *, upto: int | None,
                     unpublished: bool) -> int:
        """Drop up to ``limit`` outbox rows that are done with (docs/events.md, retention):
        published before ``before`` or, with ``unpublished``, (a database no relay runs on)
        written before it; with ``upto``, only rows every durable subscription has
        acknowledged (position at most ``upto``)."""
        def build() -> Any:
            o = outbox.c
            done = (and_(o.published_at.is_(None), o.created_at < bindparam("before"))
                    if unpublished else
                    and_(o.published_at.is_not(None), o.published_at < bindparam("before")))
            if upto is not None:
                done = and_(done, o.position.is_not(None), o.position <= bindparam("upto"))
            return delete(outbox).where(o.id.in_(
                select(o.id).where(done).limit(bindparam("limit")).offset(literal_column("0"))))

        text = self.variant(("prune_events", upto is not None, unpublished), build)
        self.cur.execute(text, {"before": self.moment(before), "limit": limit, "upto": upto})
        return int(self.cur.rowcount)
