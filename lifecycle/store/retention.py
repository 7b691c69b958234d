"""Retention (SPEC §2): idempotency records answer retries for a while, published outbox rows
are kept a while; after that both go. Pruned in bounded slices so one pass never holds the
database for long. A part of `Recorder`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, delete, literal_column, select

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

    PRUNE_PUBLISHED = Statement(delete(outbox).where(outbox.c.id.in_(
        select(outbox.c.id)
        .where(outbox.c.published_at.is_not(None), outbox.c.published_at < bindparam("before"))
        .limit(bindparam("limit")).offset(literal_column("0")))))

    def prune_published(self, before: datetime, limit: int) -> int:
        """Drop up to ``limit`` outbox rows published before ``before``; unpublished ones stay
        however old they are."""
        self.cur.execute(self.PRUNE_PUBLISHED, {"before": self.moment(before), "limit": limit})
        return int(self.cur.rowcount)
