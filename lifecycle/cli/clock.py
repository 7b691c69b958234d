"""``lifecycle clock …``: a sandbox's time, shown and moved (issue #19).

A sandbox (``lifecycle db init --sandbox``) keeps its clock in the database, so every process
on it (this CLI, ``lifecycle timers run``, ``lifecycle serve``, `lifecycle.open`) reads the
same time. A production database refuses both commands and writes nothing.
"""

from __future__ import annotations

import click

import lifecycle
from lifecycle.cli import output
from lifecycle.cli.options import json_option
from lifecycle.cli.session import Noun, Session, pass_session


@click.group(cls=Noun)
def clock() -> None:
    """A sandbox's clock: show it, move it forward (production databases refuse)."""


@clock.command("show")
@json_option
@pass_session
def show(session: Session, as_json: bool) -> None:
    """The sandbox's time now, when it started, and the next deadline due."""
    sandbox = lifecycle.sandbox_clock(session.engine)
    now, started = sandbox.read()
    next_due = sandbox.next_due()
    if as_json:
        output.echo_json({"now": now.isoformat(), "started_at": started.isoformat(),
                          "advanced_seconds": (now - started).total_seconds(),
                          "next_due_at": next_due.isoformat() if next_due else None})
        return
    moved = f"moved {output.left(now - started)} since" if now > started else "not moved since"
    lines = [f"sandbox clock: {output.when(now)} UTC",
             f"started:       {output.when(started)} UTC ({moved})"]
    if next_due is not None:
        lines.append(f"next deadline: {output.when(next_due)} UTC (in {output.left(next_due - now)})")
    else:
        lines.append("next deadline: none pending")
    output.echo("\n".join(lines))


@clock.command("advance")
@click.argument("duration")
@json_option
@pass_session
def advance(session: Session, duration: str, as_json: bool) -> None:
    """Move the sandbox's clock forward by DURATION (30m, 6h, 10d, 1d12h) and fire every
    deadline that falls due on the way, each at its due time."""
    moved = lifecycle.advance_clock(session.engine, duration)
    if as_json:
        output.echo_json({"from": moved.before.isoformat(), "to": moved.after.isoformat(),
                          "fired": moved.fired})
        return
    plural = "" if moved.fired == 1 else "s"
    output.echo(f"sandbox clock: {output.when(moved.before)} -> {output.when(moved.after)} UTC; "
                f"{moved.fired} deadline{plural} fired")
