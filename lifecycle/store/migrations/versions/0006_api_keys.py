"""API keys stored hashed: who may call the service (issue #16).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Moment = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Only the SHA-256 of each key's secret; the token is shown once, when the key is made.
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(13), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("actor_id", sa.String(100), nullable=True),  # NULL: a role scope
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", Moment, nullable=False),
        sa.Column("revoked_at", Moment, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
