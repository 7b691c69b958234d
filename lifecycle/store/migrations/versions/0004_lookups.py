"""Lookups: values that find aggregates without being unique (waybills).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lookups",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("aggregate_id", sa.String(200), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("lookups")
