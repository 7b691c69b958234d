"""``lifecycle db …``: the database schema."""

from __future__ import annotations

import click

from lifecycle.cli import output
from lifecycle.cli.session import Noun, Session, pass_session


@click.group(cls=Noun)
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@pass_session
def upgrade(session: Session) -> None:
    """Create or upgrade the schema to this version's newest migration."""
    from lifecycle.store.database import connect
    from lifecycle.store.database import upgrade as to_newest

    database = connect(session.url)
    try:
        before, after = to_newest(database)
    finally:
        database.dispose()
    output.echo(f"schema at {after} (was {before or 'empty'})")
