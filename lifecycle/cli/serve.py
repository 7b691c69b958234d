"""``lifecycle serve``: the HTTP API (lifecycle.service) on uvicorn."""

from __future__ import annotations

import os
import tempfile

import click

from lifecycle.cli.session import Session, pass_session, webhook_secrets
from lifecycle.service import FACTORY


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes, each with its own engine on the same database.")
@click.option("--log-level", "server_log_level", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]),
              help="uvicorn's own log level (its access log at info).")
@pass_session
def serve(session: Session, host: str, port: int, workers: int, server_log_level: str) -> None:
    """Serve the HTTP API on the database (docs at /docs, the OpenAPI document at
    /openapi.json). API keys come from 'lifecycle keys create'."""
    import uvicorn

    # Each worker opens its own engine in `app_from_environment`, so the URL goes by the
    # environment, which uvicorn's worker processes inherit.
    os.environ["LIFECYCLE_DB"] = session.url
    if session.machines:  # every worker runs the versions of the machines this process does
        os.environ["LIFECYCLE_MACHINES"] = session.machines
    webhook_secrets()  # a malformed LIFECYCLE_WEBHOOK_SECRETS is a usage error here, not in each worker
    # A mistyped or missing database, or definitions it refuses, are one line here, before
    # uvicorn starts its workers (each opens its own engine the same way).
    session.engine  # noqa: B018
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # prometheus_client sums the workers' metrics through files in this directory; it
        # must exist, empty, before the first worker starts.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="lifecycle-metrics-")
    uvicorn.run(FACTORY, factory=True, host=host, port=port, workers=workers,
                log_level=server_log_level)
