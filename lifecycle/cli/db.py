"""``lifecycle db …``: the database schema."""

from __future__ import annotations

import click

import lifecycle
from lifecycle.cli import output
from lifecycle.cli.session import Noun, Session, pass_session


@click.group(cls=Noun)
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@pass_session
def upgrade(session: Session) -> None:
    """Create or upgrade the schema to this version's newest migration."""
    before, after = lifecycle.upgrade_schema(session.url)
    output.echo(f"schema at {after} (was {before or 'empty'})")
