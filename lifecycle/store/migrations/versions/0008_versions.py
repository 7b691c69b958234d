"""Versioned machines (issue #18, SPEC §13): the version each aggregate runs and each history
row ran under, the policy version of each row, and the definitions a database has run.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Moment = sa.DateTime(timezone=True)
Json = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # Everything written before this revision ran under version 1 of its machine.
    op.add_column("aggregates", sa.Column("machine_version", sa.Integer, nullable=False,
                                          server_default=sa.text("1")))
    op.add_column("history", sa.Column("machine_version", sa.Integer, nullable=False,
                                       server_default=sa.text("1")))
    # Unknown for rows written before: the policy table does not say which was newest then.
    op.add_column("history", sa.Column("policy_version", sa.Integer, nullable=True))
    # Each (kind, version) a process has opened this database with, and what it was: a
    # process whose definition of that version differs is refused at start-up.
    op.create_table(
        "machine_versions",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("shape", Json, nullable=False),  # what the fingerprint is of, to name changes
        sa.Column("registered_at", Moment, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("machine_versions")
    with op.batch_alter_table("history") as batch:
        batch.drop_column("policy_version")
        batch.drop_column("machine_version")
    with op.batch_alter_table("aggregates") as batch:
        batch.drop_column("machine_version")
