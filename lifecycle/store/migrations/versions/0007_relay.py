"""Events leave the database (issue #17): outbox positions for the pull API, durable
subscriptions, the relays seen, and event bodies in the documented schema (docs/events.md).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Moment = sa.DateTime(timezone=True)
Json = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # A row's place in the order readers see events in, given when it is first read (commit
    # order, gap-free), not at insert: PostgreSQL commits rows out of their id order.
    op.add_column("outbox", sa.Column("position", sa.BigInteger, nullable=True))
    op.create_index("ix_outbox_position", "outbox", ["position"], unique=True)
    op.create_index("ix_outbox_unpositioned", "outbox", ["id"],
                    sqlite_where=sa.text("position IS NULL"),
                    postgresql_where=sa.text("position IS NULL"))
    # The last position given; its row is also the lock that orders the givers.
    op.create_table(
        "event_sequence",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("last", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(sa.table("event_sequence", sa.column("name"), sa.column("last")),
                   [{"name": "outbox", "last": 0}])
    op.create_table(
        "subscriptions",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),  # the last position acknowledged
        sa.Column("created_at", Moment, nullable=False),
        sa.Column("updated_at", Moment, nullable=False),
    )
    op.create_table(
        "relays",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("target", sa.String(500), nullable=False),  # the broker URL, without password
        sa.Column("started_at", Moment, nullable=False),
        sa.Column("seen_at", Moment, nullable=False),
        sa.Column("published", sa.BigInteger, nullable=False),
    )
    _rewrite_bodies()


def _rewrite_bodies() -> None:
    """Bodies written before this revision, in the version-1 schema: each gets an id."""
    outbox = sa.table("outbox", sa.column("id"), sa.column("body", Json))
    conn = op.get_bind()
    rows = conn.execute(sa.select(outbox.c.id, outbox.c.body)).all()
    for row_id, old in rows:
        conn.execute(sa.update(outbox).where(outbox.c.id == row_id).values(body=_v1(old)))


def _v1(old: dict[str, Any]) -> dict[str, Any]:
    role, _, actor_id = str(old.get("actor", "")).partition(":")
    return {
        "id": str(uuid.uuid4()),
        "version": 1,
        "name": old["event"],
        "kind": old["kind"],
        "aggregate_id": old["id"],
        "seq": old["seq"],
        "occurred_at": old["at"],
        "actor": {"role": role, "id": actor_id},
        "trigger": old.get("trigger"),
        "source": old.get("source"),
        "dest": old.get("dest"),
        "payload": old.get("payload", {}),
    }


def downgrade() -> None:
    op.drop_table("relays")
    op.drop_table("subscriptions")
    op.drop_table("event_sequence")
    op.drop_index("ix_outbox_unpositioned", "outbox")
    op.drop_index("ix_outbox_position", "outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("position")
