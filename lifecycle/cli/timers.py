"""``lifecycle timers …``: the durable-deadline worker, and what is scheduled."""

from __future__ import annotations

from typing import Any

import click

import lifecycle
from lifecycle.cli import output
from lifecycle.cli.metrics import metrics_options, serve_metrics
from lifecycle.cli.options import json_option
from lifecycle.cli.session import Noun, Session, pass_session


@click.group(cls=Noun)
def timers() -> None:
    """Durable deadlines: run the worker, list what is scheduled."""


@timers.command("run")
@click.option("--once", is_flag=True,
              help="Fire what is due now, then exit (exit code 3 if the database is unavailable).")
@click.option("--interval", type=click.FloatRange(0.05, 3600), default=1.0, show_default=True,
              help="Seconds to wait when nothing is due.")
@click.option("--batch", type=click.IntRange(1, 100_000), default=500, show_default=True,
              help="Deadlines to fire before looking again.")
@metrics_options
@pass_session
def run(session: Session, once: bool, interval: float, batch: int, metrics_port: int | None,
        metrics_host: str) -> None:
    """Fire due deadlines as the system actor. Keeps running while the database is unavailable,
    trying again after 0.5 s, doubling to 30 s. SIGINT/SIGTERM finish the current deadline and
    exit, also while waiting for the database."""
    import signal
    import threading

    stopping = threading.Event()

    def stop(signum: int, _frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    worker = lifecycle.TimerWorker(session.engine, interval=interval, batch=batch)
    server = None if metrics_port is None else serve_metrics(session.engine, metrics_host, metrics_port)
    try:
        total = worker.run(stopping, once=once)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    output.echo(f"fired {total} deadline{'s' if total != 1 else ''}")


@timers.command("list")
@click.option("--due", is_flag=True, help="Only deadlines due now.")
@click.option("--failed", is_flag=True, help="Only deadlines parked after repeated failures.")
@click.option("--kind", default=None)
@click.option("--id", "id", default=None, help="Only this aggregate's deadlines.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@json_option
@pass_session
def list_(session: Session, due: bool, failed: bool, kind: str | None, id: str | None,
          limit: int, as_json: bool) -> None:
    """Scheduled deadlines, earliest first."""
    engine = session.engine
    found = engine.deadlines(due=due, failed=failed, kind=kind, id=id, limit=limit)
    now = engine.clock.now()
    if as_json:
        output.echo_json([output.deadline_json(d) for d in found])
        return
    output.echo(output.table(
        ["kind", "id", "trigger", "status", "due_at", "left", "attempts", "last_error"],
        ([d.kind, d.aggregate_id, d.trigger, d.status, output.when(d.due_at),
          output.left(d.time_left(now)), d.attempts, d.last_error or ""] for d in found),
    ))
