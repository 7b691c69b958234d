"""Policy stored with the data, tracking events in their own rows, retention indexes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Moment = sa.DateTime(timezone=True)
Json = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # Every process reads the policy from here; each change is a new version (SPEC §2).
    op.create_table(
        "policy",
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("values", Json, nullable=False),
        sa.Column("created_at", Moment, nullable=False),
    )
    # A carrier's scans of an order, one row each (they used to grow the order's JSON).
    op.create_table(
        "tracking_events",
        sa.Column("id", RowId, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("aggregate_id", sa.String(200), nullable=False),
        sa.Column("carrier", sa.String(64), nullable=False),
        sa.Column("waybill", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(200), nullable=True),
        sa.Column("status", sa.String(32), nullable=True),  # None: recorded as it came
        sa.Column("exception_kind", sa.String(32), nullable=True),
        sa.Column("reported_at", Moment, nullable=True),
        sa.Column("location", sa.String(200), nullable=True),
        sa.Column("detail", sa.String(2000), nullable=True),
        sa.Column("moved", sa.Boolean, nullable=False),
        sa.Column("recorded_at", Moment, nullable=False),
    )
    op.create_index("ix_tracking_events_aggregate", "tracking_events",
                    ["kind", "aggregate_id", "event_id"], unique=True)
    # Retention: the timer worker prunes old keys and published events.
    op.create_index("ix_idempotency_created", "idempotency", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_created", "idempotency")
    op.drop_index("ix_tracking_events_aggregate", "tracking_events")
    op.drop_table("tracking_events")
    op.drop_table("policy")
