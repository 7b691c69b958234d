"""``lifecycle relay …``: outbox events to a broker, the backlog, and events read from the
database (issue #17, docs/events.md)."""

from __future__ import annotations

import os
import socket
from typing import Any

import click

import lifecycle
from lifecycle.cli import output
from lifecycle.cli.metrics import metrics_options, serve_metrics
from lifecycle.cli.options import json_option
from lifecycle.cli.session import Noun, Session, pass_session


@click.group(cls=Noun, invoke_without_command=True)
@click.option("--to", "url", metavar="URL",
              help="The broker: nats://HOST:PORT[?stream=NAME] (JetStream) or "
                   "amqp://USER:PASS@HOST:PORT/VHOST[?exchange=NAME&queue=NAME] (RabbitMQ); "
                   "other schemes from the lifecycle.relays entry points.")
@click.option("--prefix", default="lifecycle", show_default=True,
              help="Subjects / routing keys are PREFIX.EVENT (lifecycle.order.shipped); '' for none.")
@click.option("--batch", type=click.IntRange(1, 10_000), default=500, show_default=True,
              help="Events claimed, published and confirmed together.")
@click.option("--interval", type=click.FloatRange(0.01, 3600), default=0.2, show_default=True,
              help="Seconds to wait when there is nothing to publish.")
@click.option("--name", default=None,
              help="This relay's name in 'relay status' (default HOST-PID).")
@metrics_options
@click.pass_context
def relay(ctx: click.Context, url: str | None, prefix: str, batch: int, interval: float,
          name: str | None, metrics_port: int | None, metrics_host: str) -> None:
    """Publish outbox events to a broker until stopped: at least once, in order per aggregate,
    the event's id as the message id. Several relays may run at once on PostgreSQL. A broker or
    database outage is waited out (0.5 s, doubling to 30 s); SIGINT/SIGTERM finish the batch in
    hand and exit. 'relay status' shows the backlog."""
    if ctx.invoked_subcommand is not None:
        if url is not None:
            raise click.UsageError("--to is for running the relay, not for 'relay status'")
        return
    if url is None:
        raise click.UsageError("--to URL is required to run the relay (or: lifecycle relay status)")
    session: Session = ctx.find_object(Session)  # type: ignore[assignment]
    _run(session, url, prefix=prefix, batch=batch, interval=interval,
         name=name or f"{socket.gethostname()}-{os.getpid()}",
         metrics=None if metrics_port is None else (metrics_host, metrics_port))


def _run(session: Session, url: str, *, prefix: str, batch: int, interval: float,
         name: str, metrics: tuple[str, int] | None) -> None:
    import signal
    import threading

    broker = lifecycle.broker_for(url, prefix=prefix)  # a bad URL fails here, before the database
    engine = session.engine
    stopping = threading.Event()

    def stop(signum: int, _frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    worker = lifecycle.Relay(engine, broker, name=name, target=lifecycle.redacted(url),
                             prefix=prefix, batch=batch, interval=interval)
    server = None if metrics is None else serve_metrics(engine, *metrics)
    try:
        total = worker.run(stopping)
    finally:
        broker.close()
        if server is not None:
            server.shutdown()
            server.server_close()
    output.echo(f"published {total} event{'s' if total != 1 else ''}")


@relay.command("status")
@json_option
@pass_session
def status(session: Session, as_json: bool) -> None:
    """The unpublished backlog, its oldest event and how long it has waited, the relays seen
    and each durable subscription's position."""
    report = session.engine.relay_status()
    if as_json:
        output.echo_json(status_json(report))
        return
    oldest = "-" if report.oldest_unpublished_at is None else output.when(report.oldest_unpublished_at)
    lag = "-" if report.lag is None else f"{report.lag.total_seconds():.1f} s"
    lines = [f"backlog: {report.backlog} unpublished", f"oldest unpublished: {oldest}",
             f"lag: {lag}", f"last position: {report.last_position}", ""]
    if report.relays:
        lines.append(output.table(("relay", "target", "published", "last seen"),
                                  [(r.name, r.target, r.published, output.when(r.seen_at))
                                   for r in report.relays]))
    else:
        lines.append("no relay has run on this database")
    if report.subscriptions:
        lines += ["", output.table(("subscription", "position", "behind", "acknowledged"),
                                   [(s.name, s.position, s.behind, output.when(s.updated_at))
                                    for s in report.subscriptions])]
    output.echo("\n".join(lines))


def status_json(report: lifecycle.RelayStatus) -> dict[str, Any]:
    return {
        "backlog": report.backlog,
        "oldest_unpublished_at": None if report.oldest_unpublished_at is None
        else report.oldest_unpublished_at.isoformat(),
        "lag_seconds": None if report.lag is None else report.lag.total_seconds(),
        "last_position": report.last_position,
        "relays": [{"name": r.name, "target": r.target, "published": r.published,
                    "started_at": r.started_at.isoformat(), "seen_at": r.seen_at.isoformat()}
                   for r in report.relays],
        "subscriptions": [{"name": s.name, "position": s.position, "behind": s.behind,
                           "updated_at": s.updated_at.isoformat()} for s in report.subscriptions],
    }


@click.command("events")
@click.option("--after", type=click.IntRange(0), default=0, show_default=True,
              help="List events after this position (0: from the oldest kept).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@json_option
@pass_session
def events(session: Session, after: int, limit: int, as_json: bool) -> None:
    """Committed events in commit order, with their positions (docs/events.md)."""
    page = session.engine.events(after=after, limit=limit)
    if as_json:
        output.echo_json([{"position": e.position, "event": e.body} for e in page])
        return
    output.echo(output.table(("position", "event", "aggregate", "seq", "occurred at"),
                             [(e.position, e.name, f"{e.kind} {e.aggregate_id}", e.seq,
                               output.stamp(e.body["occurred_at"])) for e in page]))
