"""Retention (SPEC §2): idempotency records answer retries for a while, published outbox rows
are kept a while; after that both go. Pruned in bounded slices so one pass never holds the
database for long."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, select

from lifecycle.store.tables import idempotency, outbox


def prune_keys(conn: Connection, before: datetime, limit: int) -> int:
    """Forget up to ``limit`` idempotency records written before ``before``."""
    old = select(idempotency.c.key).where(idempotency.c.created_at < before).limit(limit)
    return conn.execute(delete(idempotency).where(idempotency.c.key.in_(old))).rowcount


def prune_published(conn: Connection, before: datetime, limit: int) -> int:
    """Drop up to ``limit`` outbox rows published before ``before``; unpublished ones stay
    however old they are."""
    old = (select(outbox.c.id)
           .where(outbox.c.published_at.is_not(None), outbox.c.published_at < before)
           .limit(limit))
    return conn.execute(delete(outbox).where(outbox.c.id.in_(old))).rowcount
