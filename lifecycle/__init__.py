"""lifecycle: an order-lifecycle engine for cross-border marketplaces.

    import lifecycle
    engine = lifecycle.open("sqlite:///lifecycle.db")
    order = engine.create("order", actor=lifecycle.Actor("buyer", "b-1"), payload={...})
    order = engine.fire("order", order.id, "pay", actor=..., idempotency_key="cb-991")
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import import_module
from typing import TYPE_CHECKING, Any

# The public names are imported when first used (PEP 562), not when `lifecycle` is: a CLI
# command that needs no database (`lifecycle --version`) must not pay for SQLAlchemy, pydantic
# and the machines (issue #19: a command starts in under 0.3 s). Type checkers read the block
# below; `_LAZY` and `_RENAMED` say the same to the interpreter (a unit test keeps them equal).
if TYPE_CHECKING:
    __version__: str
    from lifecycle.actor import ROLES, Actor
    from lifecycle.adapters.errors import (
        AdapterError,
        EventsRejected,
        InvalidWaybill,
        PaymentDeclined,
        SignatureInvalid,
    )
    from lifecycle.adapters.ports import Carrier, PaymentGateway
    from lifecycle.api_keys import ApiKey
    from lifecycle.brokers import (
        Broker,
        BrokerUnavailable,
        InvalidBrokerUrl,
        Message,
        UnknownBroker,
        broker_for,
        redacted,
    )
    from lifecycle.clock import Clock, SimulatedClock, SystemClock, time_left_text
    from lifecycle.engine import Engine
    from lifecycle.errors import (
        AlreadyExists,
        CaptureRefused,
        Conflict,
        DatabaseExists,
        DatabaseMissing,
        DefinitionChanged,
        DefinitionError,
        EventsExpired,
        Forbidden,
        GuardFailed,
        IdempotencyMismatch,
        InvalidPayload,
        InvalidTransition,
        LifecycleError,
        MigrationRefused,
        NotASandbox,
        NotFound,
        NotOurDatabase,
        PolicyMismatch,
        ReplayMismatch,
        SchemaOutdated,
        Unauthenticated,
        Unavailable,
        UnknownKind,
        UnknownPolicyValues,
    )
    from lifecycle.events import SCHEMA_VERSION as EVENT_SCHEMA_VERSION
    from lifecycle.events import Event
    from lifecycle.logs import configure as configure_logs
    from lifecycle.machine_registry import MachineVersion
    from lifecycle.machines import ALIASES, DEFINITIONS, MACHINES
    from lifecycle.machines.contact import contact_id
    from lifecycle.machines.coupon import voucher_id
    from lifecycle.machines.definition import Aggregate, MachineDefinition, Transition
    from lifecycle.machines.message import OrderMessage, Unread
    from lifecycle.machines.notifications import CATEGORIES as NOTIFICATION_CATEGORIES
    from lifecycle.machines.order import trigger_for_scan
    from lifecycle.machines.order_payloads import NOT_RECEIVED_REASONS, RECEIVED_REASONS
    from lifecycle.machines.points import CATALOGUE as POINTS_CATALOGUE
    from lifecycle.machines.points import PointsRecord, PointsStatement
    from lifecycle.machines.points import catalogue as points_catalogue
    from lifecycle.machines.privacy import CERTIFIED_STATES, PRIVATE_KINDS
    from lifecycle.machines.profile import FREQUENCIES as PROCUREMENT_FREQUENCIES
    from lifecycle.machines.profile import LEVELS as PRIVACY_LEVELS
    from lifecycle.machines.standing import RESTRICTS as STANDING_RESTRICTS
    from lifecycle.machines.standing import order_refusal
    from lifecycle.machines.subaccount import PERMISSIONS as SUBACCOUNT_PERMISSIONS
    from lifecycle.machines.subaccount import id_from_text as subaccount_id
    from lifecycle.machines.verify import Finding
    from lifecycle.machines.versions import (
        Machines,
        Migration,
        UnknownMachineVersion,
    )
    from lifecycle.machines.versions import (
        load as load_machines,
    )
    from lifecycle.machines.violation import TYPES as VIOLATION_TYPES
    from lifecycle.migration import AggregatePlan, DeadlineChange, MigrationReport
    from lifecycle.money import exponent as currency_exponent
    from lifecycle.outbox import RelayStatus, Subscription, SubscriptionStatus
    from lifecycle.policy import Policy, PolicyVersion
    from lifecycle.relay import Relay
    from lifecycle.sandbox import ClockMove, SandboxClock, advance_clock, duration_of, sandbox_clock
    from lifecycle.store.audit import Violation
    from lifecycle.store.deadlines import ScheduledDeadline
    from lifecycle.store.outbox import RelayRow
    from lifecycle.store.reports import Backlog, LedgerSum, ParkedDeadline, StateCount
    from lifecycle.store.repository import HistoryEntry, TrackingRecord
    from lifecycle.strict_json import DuplicateKey, JSONRefused, loads_json
    from lifecycle.telemetry import metrics_exposition, tracing_enabled
    from lifecycle.worker import Backoff, TimerWorker

_LAZY: dict[str, tuple[str, ...]] = {
    "lifecycle.actor": ("ROLES", "Actor"),
    "lifecycle.adapters.errors": ("AdapterError", "EventsRejected", "InvalidWaybill",
        "PaymentDeclined", "SignatureInvalid"),
    "lifecycle.adapters.ports": ("Carrier", "PaymentGateway"),
    "lifecycle.api_keys": ("ApiKey",),
    "lifecycle.brokers": ("Broker", "BrokerUnavailable", "InvalidBrokerUrl", "Message",
        "UnknownBroker", "broker_for", "redacted"),
    "lifecycle.clock": ("Clock", "SimulatedClock", "SystemClock", "time_left_text"),
    "lifecycle.engine": ("Engine",),
    "lifecycle.errors": ("AlreadyExists", "CaptureRefused", "Conflict", "DatabaseExists",
        "DatabaseMissing", "DefinitionChanged", "DefinitionError", "EventsExpired", "Forbidden",
        "GuardFailed", "IdempotencyMismatch", "InvalidPayload", "InvalidTransition",
        "LifecycleError", "MigrationRefused", "NotASandbox", "NotFound", "NotOurDatabase",
        "PolicyMismatch", "ReplayMismatch", "SchemaOutdated", "Unauthenticated", "Unavailable",
        "UnknownKind", "UnknownPolicyValues"),
    "lifecycle.events": ("Event",),
    "lifecycle.machine_registry": ("MachineVersion",),
    "lifecycle.machines": ("ALIASES", "DEFINITIONS", "MACHINES"),
    "lifecycle.machines.coupon": ("voucher_id",),
    "lifecycle.machines.definition": ("Aggregate", "MachineDefinition", "Transition"),
    "lifecycle.machines.order": ("trigger_for_scan",),
    "lifecycle.machines.order_payloads": ("NOT_RECEIVED_REASONS", "RECEIVED_REASONS"),
    "lifecycle.machines.verify": ("Finding",),
    "lifecycle.machines.versions": ("Machines", "Migration", "UnknownMachineVersion"),
    "lifecycle.migration": ("AggregatePlan", "DeadlineChange", "MigrationReport"),
    "lifecycle.outbox": ("RelayStatus", "Subscription", "SubscriptionStatus"),
    "lifecycle.policy": ("Policy", "PolicyVersion"),
    "lifecycle.relay": ("Relay",),
    "lifecycle.sandbox": ("ClockMove", "SandboxClock", "advance_clock", "duration_of",
        "sandbox_clock"),
    "lifecycle.store.audit": ("Violation",),
    "lifecycle.store.deadlines": ("ScheduledDeadline",),
    "lifecycle.store.outbox": ("RelayRow",),
    "lifecycle.store.reports": ("Backlog", "LedgerSum", "ParkedDeadline", "StateCount"),
    "lifecycle.store.repository": ("HistoryEntry", "TrackingRecord"),
    "lifecycle.strict_json": ("DuplicateKey", "JSONRefused", "loads_json"),
    "lifecycle.telemetry": ("metrics_exposition", "tracing_enabled"),
    "lifecycle.worker": ("Backoff", "TimerWorker"),
    "lifecycle.machines.standing": ("order_refusal",),
    "lifecycle.machines.points": ("PointsRecord", "PointsStatement"),
    "lifecycle.machines.message": ("OrderMessage", "Unread"),
    "lifecycle.machines.contact": ("contact_id",),
    "lifecycle.machines.privacy": ("CERTIFIED_STATES", "PRIVATE_KINDS"),
}
_RENAMED: dict[str, tuple[str, str]] = {
    "EVENT_SCHEMA_VERSION": ("lifecycle.events", "SCHEMA_VERSION"),
    "configure_logs": ("lifecycle.logs", "configure"),
    "load_machines": ("lifecycle.machines.versions", "load"),
    "currency_exponent": ("lifecycle.money", "exponent"),
    "STANDING_RESTRICTS": ("lifecycle.machines.standing", "RESTRICTS"),
    "VIOLATION_TYPES": ("lifecycle.machines.violation", "TYPES"),
    "POINTS_CATALOGUE": ("lifecycle.machines.points", "CATALOGUE"),
    "points_catalogue": ("lifecycle.machines.points", "catalogue"),
    "SUBACCOUNT_PERMISSIONS": ("lifecycle.machines.subaccount", "PERMISSIONS"),
    "subaccount_id": ("lifecycle.machines.subaccount", "id_from_text"),
    "NOTIFICATION_CATEGORIES": ("lifecycle.machines.notifications", "CATEGORIES"),
    "PROCUREMENT_FREQUENCIES": ("lifecycle.machines.profile", "FREQUENCIES"),
    "PRIVACY_LEVELS": ("lifecycle.machines.profile", "LEVELS"),
}
_WHERE: dict[str, tuple[str, str]] = {
    **{name: (module, name) for module, names in _LAZY.items() for name in names},
    **_RENAMED,
}


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use and kept on the package."""
    if name == "__version__":  # read from the installed metadata, which costs an import too
        value: Any = _installed_version()
    elif name in _WHERE:
        module, attribute = _WHERE[name]
        value = getattr(import_module(module), attribute)
    else:
        raise AttributeError(f"module 'lifecycle' has no attribute {name!r}")
    setattr(sys.modules[__name__], name, value)
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE, "__version__"})




def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lifecycle")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "0.0.0"

DEFAULT_URL = "sqlite:///lifecycle.db"


def definitions() -> Mapping[str, MachineDefinition]:
    """Every machine the engine runs, by kind: the same definitions `Engine.definition` returns,
    for code that needs them without a database (diagrams, help texts)."""
    from types import MappingProxyType

    from lifecycle.machines import DEFINITIONS

    return MappingProxyType(DEFINITIONS)


def definition(kind: str) -> MachineDefinition:
    """One machine by kind or alias (``"onboarding"`` is ``"seller"``); `UnknownKind` if none."""
    from lifecycle.errors import UnknownKind
    from lifecycle.machines import ALIASES, DEFINITIONS

    found = DEFINITIONS.get(ALIASES.get(kind, kind)) if isinstance(kind, str) else None
    if found is None:
        raise UnknownKind(repr(kind) if not isinstance(kind, str) else kind, DEFINITIONS)
    return found


def open(
    url: str = DEFAULT_URL,
    *,
    clock: Clock | None = None,
    policy: Policy | None = None,
    update_policy: bool = False,
    upgrade: bool | None = None,
    log: str | None = None,
    payments: str | PaymentGateway = "sandbox",
    carriers: Mapping[str, Carrier] | None = None,
    adapter_seed: int = 0,
    webhook_secrets: Mapping[str, Sequence[str | bytes]] | None = None,
    machines: Iterable[MachineDefinition | Migration] | str | None = None,
) -> Engine:
    """Open an engine on a database URL (``sqlite:///file.db``, ``postgresql+psycopg://…``).

    ``policy``: the policy values deadlines are scheduled with, which live in the database so
    that every process uses the same ones (SPEC §2). A database without one stores ``policy``
    (or the defaults) as version 1. ``policy=None`` uses the stored one. A ``policy`` that
    differs from the stored one is refused with `PolicyMismatch`, naming each value (stored
    and given) and writing nothing, unless ``update_policy=True``: then it is stored as the
    next version, and every engine on the database schedules with it from its next trigger.
    ``upgrade``: bring the schema to this version first. By default (None) a SQLite file is
    upgraded (created when new, for embedded use) and a PostgreSQL database must be upgraded
    with ``lifecycle db upgrade``; ``False`` never creates or alters a database (what the CLI
    does): a missing file is `DatabaseMissing`, an empty or older schema `SchemaOutdated`.
    A database that is not lifecycle's (another application's tables, or not a database at
    all) is refused with `NotOurDatabase` whatever ``upgrade`` says, and left untouched.
    ``clock``: on a sandbox database (``lifecycle db init --sandbox``) leave it None: the
    engine then reads the sandbox's stored clock (`SandboxClock`), the one every process on it
    shares; a ``clock`` given for a sandbox is refused (`InvalidPayload`).
    ``log``: configure structlog at this level (``"info"``); leave it None when the service
    configures structlog itself.
    ``payments``: a gateway name from the registry (built in: ``"sandbox"``; others from the
    ``lifecycle.payments`` entry points) or a `PaymentGateway` object. ``carriers``: carrier
    objects by name; any other carrier is built by name from the registry on first use (built
    in: sandbox dhl, ups, fedex, tnt, postal, sea_freight, air_freight). ``adapter_seed`` seeds
    the sandbox adapters. ``webhook_secrets``: per adapter name (``"sandbox"``, ``"dhl"``, ...)
    the Standard Webhooks secrets (``whsec_<base64>`` or bytes, newest first) the built-in
    sandboxes sign and verify callbacks and pushes with; one with none listed uses the
    published sandbox secret, which is not a secret (docs/webhooks.md).
    ``machines``: more versions of the machines, and the migrations between them, beside the
    shipped ones (SPEC §13, docs/versions.md): definitions and `Migration` objects, or a module
    that offers them as ``MACHINES`` (what ``--machines`` names). New aggregates start on each
    kind's newest version; every aggregate runs the version it is pinned to. Every process on
    a database must bring the versions its aggregates run. A definition whose version the
    database ran under another shape is refused with `DefinitionChanged`, naming what changed.
    """
    from lifecycle import machine_registry
    from lifecycle.adapter_calls import Adapters
    from lifecycle.clock import SystemClock
    from lifecycle.engine import Engine
    from lifecycle.errors import InvalidPayload
    from lifecycle.logs import configure
    from lifecycle.policy import Policy
    from lifecycle.store.database import connect, ensure_schema, where
    from lifecycle.store.sandbox import SandboxClock, is_sandbox

    if log is not None:
        configure(log)
    given_clock = clock
    # Adapters first: a malformed webhook secret is refused before any database is touched;
    # they are configured again below on a sandbox's stored clock.
    adapters = Adapters.configure(clock or SystemClock(), payments, carriers, seed=adapter_seed,
                                  webhook_secrets=webhook_secrets)
    registry = with_machines(machines)
    database = connect(url)
    try:
        allowed = upgrade if upgrade is not None else database.dialect.name == "sqlite"
        ensure_schema(database, upgrade_allowed=allowed)
        if is_sandbox(database):
            if given_clock is not None:
                raise InvalidPayload("clock", f"{where(database)} is a sandbox: its clock is "
                                              "stored in it and shared by every process; open "
                                              "it without clock=")
            clock = SandboxClock(database)
            adapters = Adapters.configure(clock, payments, carriers, seed=adapter_seed,
                                          webhook_secrets=webhook_secrets)
        clock = clock or SystemClock()
    except BaseException:
        database.dispose()
        raise
    engine = Engine(database, clock, policy or Policy(), adapters, registry)
    try:
        machine_registry.register(engine.store, clock, registry)
        engine._policy.put(policy, update=update_policy)
    except BaseException:
        engine.close()
        raise
    return engine


def with_machines(machines: Iterable[MachineDefinition | Migration] | str | None) -> Machines:
    """The shipped machines and ``machines`` (as `open` takes them) in one registry; bad
    definitions or migrations are `DefinitionError`, before any database is touched."""
    from lifecycle.machines import MACHINES
    from lifecycle.machines.versions import load as load_machines

    if machines is None:
        return MACHINES
    return MACHINES.with_more(load_machines(machines) if isinstance(machines, str) else machines)


def verify(kind: str | None = None, *,
           machines: Iterable[MachineDefinition | Migration] | str | None = None) -> list[Finding]:
    """`lifecycle verify` without a database: every check of every version's graph (SPEC §13)
    of the shipped machines and ``machines``; of ``kind`` only, when given."""
    from lifecycle.errors import UnknownKind
    from lifecycle.machines import ALIASES
    from lifecycle.machines.verify import verify as verify_machines

    registry = with_machines(machines)
    if kind is not None:
        kind = ALIASES.get(kind, kind)
        if kind not in registry:
            raise UnknownKind(kind, registry)
    return verify_machines(registry, kind)


# --- for front ends that work without an engine: the CLI's `db`, `carriers` and logging ------


def upgrade_schema(url: str) -> tuple[str | None, str]:
    """Create or upgrade the schema of the database at ``url`` to this version's newest
    migration (what ``lifecycle db upgrade`` does; `open` upgrades a SQLite file by itself).
    Returns the revision before (None for an empty database) and the revision after.
    Refuses another application's database untouched (`NotOurDatabase`) and a SQLite file
    whose folder does not exist (`DatabaseMissing`). Raises `Unavailable` when the database
    cannot be reached."""
    from lifecycle.store.database import connect
    from lifecycle.store.database import upgrade as to_newest

    database = connect(url)
    try:
        return to_newest(database)
    finally:
        database.dispose()


@dataclass(frozen=True)
class NewDatabase:
    """What `init_database` made: the database (a SQLite file's path, else the URL without
    its password), its schema revision, and, for a sandbox, its clock's first time."""

    database: str
    schema: str
    sandbox: bool
    clock: datetime | None


def init_database(url: str, *, sandbox: bool = False,
                  start: datetime | None = None) -> NewDatabase:
    """Create a new lifecycle database at ``url`` (what ``lifecycle db init`` does): a SQLite
    file that does not exist yet, or an empty database, given this version's schema and the
    default policy. ``sandbox=True`` marks it a sandbox whose clock starts at ``start`` (an
    aware datetime; default: the wall clock now, to the second) and moves only when told to
    (`advance_clock`). Refuses, writing nothing: a lifecycle database already there
    (`DatabaseExists`: `upgrade_schema` migrates one), another application's
    (`NotOurDatabase`), a file whose folder does not exist (`DatabaseMissing`)."""
    from lifecycle.clock import SystemClock
    from lifecycle.errors import DatabaseExists, InvalidPayload
    from lifecycle.store.database import (
        connect,
        inspect_database,
        refuse_unusable,
        upgrade,
        where,
    )
    from lifecycle.store.sandbox import make_sandbox

    if start is not None and (not isinstance(start, datetime) or start.tzinfo is None):
        raise InvalidPayload("start", "must be an aware datetime (e.g. 2026-01-01T00:00:00+00:00)")
    begins = None
    database = connect(url)
    try:
        name = where(database)
        found = inspect_database(database)
        refuse_unusable(database, found)
        if found.what == "ours":
            raise DatabaseExists(name, found.revision or "")
        _, schema = upgrade(database)
        if sandbox:
            begins = (start or SystemClock().now().replace(microsecond=0)).astimezone(UTC)
            make_sandbox(database, begins)
    finally:
        database.dispose()
    open(url, upgrade=False).close()  # stores the default policy, as the first open does
    return NewDatabase(name, schema, sandbox, begins)


def carrier(name: str) -> Carrier:
    """The carrier ``name`` built as `open` builds it on first use, without a database: a
    built-in sandbox carrier on the system clock with the default seed, any other from its
    ``lifecycle.carriers`` entry point. For quotes and waybill checks outside a transition;
    `UnknownAdapter` names the carriers installed (`lifecycle.adapters.carrier_names`)."""
    from lifecycle.adapter_calls import Adapters
    from lifecycle.clock import SystemClock

    return Adapters.configure(SystemClock()).carrier(name)


__all__ = [
    "ALIASES",
    "CERTIFIED_STATES",
    "DEFAULT_URL",
    "DEFINITIONS",
    "EVENT_SCHEMA_VERSION",
    "MACHINES",
    "NOTIFICATION_CATEGORIES",
    "NOT_RECEIVED_REASONS",
    "POINTS_CATALOGUE",
    "PRIVACY_LEVELS",
    "PRIVATE_KINDS",
    "PROCUREMENT_FREQUENCIES",
    "RECEIVED_REASONS",
    "ROLES",
    "STANDING_RESTRICTS",
    "SUBACCOUNT_PERMISSIONS",
    "VIOLATION_TYPES",
    "Actor",
    "AdapterError",
    "Aggregate",
    "AggregatePlan",
    "AlreadyExists",
    "ApiKey",
    "Backlog",
    "Backoff",
    "Broker",
    "BrokerUnavailable",
    "CaptureRefused",
    "Carrier",
    "Clock",
    "ClockMove",
    "Conflict",
    "DatabaseExists",
    "DatabaseMissing",
    "DeadlineChange",
    "DefinitionChanged",
    "DefinitionError",
    "DuplicateKey",
    "Engine",
    "Event",
    "EventsExpired",
    "EventsRejected",
    "Finding",
    "Forbidden",
    "GuardFailed",
    "HistoryEntry",
    "IdempotencyMismatch",
    "InvalidBrokerUrl",
    "InvalidPayload",
    "InvalidTransition",
    "InvalidWaybill",
    "JSONRefused",
    "LedgerSum",
    "LifecycleError",
    "MachineDefinition",
    "MachineVersion",
    "Machines",
    "Message",
    "Migration",
    "MigrationRefused",
    "MigrationReport",
    "NewDatabase",
    "NotASandbox",
    "NotFound",
    "NotOurDatabase",
    "OrderMessage",
    "ParkedDeadline",
    "PaymentDeclined",
    "PaymentGateway",
    "PointsRecord",
    "PointsStatement",
    "Policy",
    "PolicyMismatch",
    "PolicyVersion",
    "Relay",
    "RelayRow",
    "RelayStatus",
    "ReplayMismatch",
    "SandboxClock",
    "ScheduledDeadline",
    "SchemaOutdated",
    "SignatureInvalid",
    "SimulatedClock",
    "StateCount",
    "Subscription",
    "SubscriptionStatus",
    "SystemClock",
    "TimerWorker",
    "TrackingRecord",
    "Transition",
    "Unauthenticated",
    "Unavailable",
    "UnknownBroker",
    "UnknownKind",
    "UnknownMachineVersion",
    "UnknownPolicyValues",
    "Unread",
    "Violation",
    "__version__",
    "advance_clock",
    "broker_for",
    "carrier",
    "configure_logs",
    "contact_id",
    "currency_exponent",
    "definition",
    "definitions",
    "duration_of",
    "init_database",
    "load_machines",
    "loads_json",
    "metrics_exposition",
    "open",
    "order_refusal",
    "points_catalogue",
    "redacted",
    "sandbox_clock",
    "subaccount_id",
    "time_left_text",
    "tracing_enabled",
    "trigger_for_scan",
    "upgrade_schema",
    "verify",
    "voucher_id",
    "with_machines",
]

