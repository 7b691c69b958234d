"""``--metrics-port``: Prometheus metrics served by a long-running command (``timers run``,
``relay``) while it runs (docs/telemetry.md)."""

from __future__ import annotations

from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import click

import lifecycle
from lifecycle.cli import output

F = TypeVar("F", bound=Callable[..., Any])


def metrics_options(fn: F) -> F:
    fn = click.option("--metrics-host", default="127.0.0.1", show_default=True,
                      help="The address --metrics-port listens on.")(fn)
    return click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
                        help="Serve Prometheus metrics at http://HOST:PORT/metrics while "
                             "running (0: any free port).")(fn)


def serve_metrics(engine: lifecycle.Engine, host: str, port: int) -> ThreadingHTTPServer:
    """``GET /metrics`` on a thread of its own: the worker's counts and the database's gauges
    (`lifecycle.metrics_exposition`)."""
    import threading

    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404)
                return
            body, content_type = lifecycle.metrics_exposition(engine)
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a scrape every few seconds is not worth a line on stderr

    try:
        server = ThreadingHTTPServer((host, port), Metrics)
    except OSError as error:
        reason = error.strerror or error
        raise click.ClickException(f"cannot serve metrics on {host}:{port}: {reason}") from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    bound_host, bound_port = server.server_address[:2]
    output.echo(f"metrics at http://{bound_host!s}:{bound_port}/metrics", err=True)
    return server


