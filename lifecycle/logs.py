"""structlog set-up, done once at the edge (the CLI's main, or `lifecycle.open(log=...)`)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from lifecycle.errors import InvalidPayload

LEVELS = ("debug", "info", "warning", "error")


def configure(level: str = "info", *, json: bool | None = None) -> None:
    """Key-value events: a console renderer on a terminal, JSON lines otherwise."""
    if level not in LEVELS:
        raise InvalidPayload("log", f"{level!r} is not one of {', '.join(LEVELS)}")
    if json is None:
        json = not sys.stderr.isatty()
    renderer: list[structlog.typing.Processor] = (
        [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
        if json
        else [structlog.dev.ConsoleRenderer()]
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


class BoundOnce:
    """A structlog logger assembled once per configuration, for a line logged on every trigger.

    ``structlog.get_logger()`` gives a lazy proxy that assembles a new bound logger on each call
    unless loggers are cached on first use (which would pin the first configuration for good);
    assembling cost more than the rest of the logging call. This keeps the assembled logger
    until structlog is configured differently, so reconfiguring still takes effect.
    """

    def __init__(self, name: str):
        self._proxy = structlog.get_logger(name)
        self._key: tuple[Any, ...] | None = None
        self._bound: Any = None

    def get(self) -> Any:
        config = structlog.get_config()
        # The processors list is compared by identity: structlog.testing.capture_logs swaps
        # its contents in place, which an assembled logger sees.
        key = (config["wrapper_class"], config["logger_factory"], id(config["processors"]),
               config["context_class"])
        if key != self._key:
            self._bound, self._key = self._proxy.bind(), key
        return self._bound
