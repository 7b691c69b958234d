"""The sandbox clock (issue #19): a database made with ``lifecycle db init --sandbox`` keeps
its simulated time here, so every process that opens it reads the same "now".

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

Moment = sa.DateTime(timezone=True)


def upgrade() -> None:
    # One row (id 1) in a sandbox, none in a production database.
    op.create_table(
        "sandbox_clock",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("now", Moment, nullable=False),
        sa.Column("started_at", Moment, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sandbox_clock")
