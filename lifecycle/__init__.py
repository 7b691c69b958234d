"""lifecycle: an order-lifecycle engine for cross-border marketplaces.

    import lifecycle
    engine = lifecycle.open("sqlite:///lifecycle.db")
    order = engine.create("order", actor=lifecycle.Actor("buyer", "b-1"), payload={...})
    order = engine.fire("order", order.id, "pay", actor=..., idempotency_key="cb-991")
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from lifecycle.actor import Actor
from lifecycle.clock import Clock, SimulatedClock, SystemClock
from lifecycle.engine import Engine
from lifecycle.errors import (
    AlreadyExists,
    Conflict,
    DefinitionError,
    Forbidden,
    GuardFailed,
    IdempotencyMismatch,
    InvalidPayload,
    InvalidTransition,
    LifecycleError,
    NotFound,
    ReplayMismatch,
    SchemaOutdated,
    UnknownKind,
)
from lifecycle.machines.definition import Aggregate
from lifecycle.policy import Policy
from lifecycle.store.audit import Violation
from lifecycle.store.deadlines import ScheduledDeadline
from lifecycle.store.repository import HistoryEntry

try:
    __version__ = version("lifecycle")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0"

DEFAULT_URL = "sqlite:///lifecycle.db"


def open(
    url: str = DEFAULT_URL,
    *,
    clock: Clock | None = None,
    policy: Policy | None = None,
    upgrade: bool | None = None,
    log: str | None = None,
) -> Engine:
    """Open an engine on a database URL (``sqlite:///file.db``, ``postgresql+psycopg://…``).

    ``upgrade``: bring the schema to this version first. By default a SQLite file is upgraded
    (created when new) and a PostgreSQL database must be upgraded with ``lifecycle db upgrade``.
    ``log``: configure structlog at this level (``"info"``); leave it None when the service
    configures structlog itself.
    """
    from lifecycle.logs import configure
    from lifecycle.store.database import connect, ensure_schema

    if log is not None:
        configure(log)
    database = connect(url)
    try:
        allowed = upgrade if upgrade is not None else database.dialect.name == "sqlite"
        ensure_schema(database, upgrade_allowed=allowed)
    except BaseException:
        database.dispose()
        raise
    return Engine(database, clock or SystemClock(), policy or Policy())


__all__ = [
    "DEFAULT_URL",
    "Actor",
    "Aggregate",
    "AlreadyExists",
    "Clock",
    "Conflict",
    "DefinitionError",
    "Engine",
    "Forbidden",
    "GuardFailed",
    "HistoryEntry",
    "IdempotencyMismatch",
    "InvalidPayload",
    "InvalidTransition",
    "LifecycleError",
    "NotFound",
    "Policy",
    "ReplayMismatch",
    "ScheduledDeadline",
    "SchemaOutdated",
    "SimulatedClock",
    "SystemClock",
    "UnknownKind",
    "Violation",
    "__version__",
    "open",
]

