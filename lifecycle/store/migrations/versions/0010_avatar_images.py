"""Avatar images (issue #20): the bytes of each uploaded avatar, beside its aggregate rather
than in its data (which every load of the aggregate reads).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "avatar_images",
        sa.Column("avatar_id", sa.String(200), primary_key=True),
        sa.Column("content_type", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("image", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("avatar_images")
