"""``lifecycle db …``: the database itself. Only these commands create or migrate one."""

from __future__ import annotations

from datetime import UTC, datetime

import click

import lifecycle
from lifecycle.cli import output
from lifecycle.cli.options import json_option
from lifecycle.cli.session import Noun, Session, pass_session


@click.group(cls=Noun)
def db() -> None:
    """Create a database (init) or migrate its schema (upgrade); no other command does."""


@db.command("init")
@click.option("--sandbox", is_flag=True,
              help="A sandbox: its clock is stored in it and moves only with `lifecycle clock "
                   "advance`; every process that opens it uses that clock.")
@click.option("--start", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S",
                                               "%Y-%m-%d %H:%M:%S"]),
              default=None, help="With --sandbox: the clock's first time, in UTC "
                                 "(default: now, to the second).")
@json_option
@pass_session
def init(session: Session, sandbox: bool, start: datetime | None, as_json: bool) -> None:
    """Create a new lifecycle database at --db: a SQLite file that does not exist yet, or an
    empty database, with this version's schema and the default policy. Refuses a lifecycle
    database already there (`db upgrade` migrates it) and another application's."""
    if start is not None and not sandbox:
        raise click.UsageError("--start sets a sandbox's clock: give --sandbox too")
    begins = start.replace(tzinfo=UTC) if start else None
    made = lifecycle.init_database(session.url, sandbox=sandbox, start=begins)
    clock = made.clock.isoformat() if made.clock else None
    if as_json:
        output.echo_json({"database": made.database, "schema": made.schema,
                          "sandbox": made.sandbox, "clock": clock})
        return
    kind = (f"a sandbox, its clock at {output.when(made.clock)} UTC" if made.clock
            else "production: the wall clock's time")
    output.echo(f"created {made.database} at schema {made.schema} ({kind})")


@db.command("upgrade")
@json_option
@pass_session
def upgrade(session: Session, as_json: bool) -> None:
    """Create or upgrade the schema to this version's newest migration. Refuses another
    application's database, untouched."""
    before, after = lifecycle.upgrade_schema(session.url)
    if as_json:
        output.echo_json({"database": lifecycle.redacted(session.url), "before": before, "after": after,
                          "changed": before != after})
        return
    output.echo(f"schema at {after} (was {before or 'empty'})")
