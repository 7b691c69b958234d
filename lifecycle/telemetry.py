"""Metrics and traces (issue #16): a Prometheus count, a latency and an OpenTelemetry span per
trigger, and the database's backlog read at scrape time.

Every public trigger (`Pipeline.create` and `fire`, so ingestion's too) and every deadline the
timers fire is watched by an `Observed`: it counts the trigger in
``lifecycle_transitions_total{kind,trigger,outcome}``, times it in ``lifecycle_fire_seconds``,
counts a `Conflict` in ``lifecycle_conflicts_total`` and, when an OpenTelemetry SDK is installed
and configured, records a span ``lifecycle <kind>.<trigger>`` as a child of the current one (the
HTTP request's). Without an SDK the global tracer provider is the API's proxy, and no span work
is done at all: one dictionary lookup and a type check per trigger. A carrier scan recorded
on an order it did not move is no trigger: ``lifecycle_scans_recorded_total{carrier}``.

The gauges (parked deadlines, unpublished outbox rows, deadlines due) are not kept in this
process: `DatabaseCollector` counts them in the database on each scrape, so every process,
and every worker of a multi-process server, answers the same. `metrics_exposition` is what
``/metrics`` serves, in prometheus_client's multiprocess mode too (``PROMETHEUS_MULTIPROC_DIR``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Iterator
from contextvars import Token
from types import TracebackType
from typing import Protocol

import structlog
from opentelemetry import context, trace
from opentelemetry.environment_variables import OTEL_PYTHON_TRACER_PROVIDER
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as _generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = structlog.get_logger("lifecycle")

OK = "ok"
# A trigger the kind does not define is counted under this name: the label's values stay the
# definitions' triggers, whatever a caller sends.
OTHER_TRIGGER = "other"

TRANSITIONS = Counter(
    "lifecycle_transitions", "Triggers fired, by kind, trigger and outcome (ok, or the error's class).",
    ["kind", "trigger", "outcome"])
FIRE_SECONDS = Histogram(
    "lifecycle_fire_seconds", "Wall time of a trigger, its commit included when not in a batch.",
    ["kind"], buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
CONFLICTS = Counter(
    "lifecycle_conflicts", "Triggers refused because another writer moved the aggregate first.",
    ["kind"])
# A carrier scan that moves no state is no trigger (SPEC §4): counted here, by carrier.
SCANS_RECORDED = Counter(
    "lifecycle_scans_recorded", "Carrier scans recorded on an order they did not move (no transition).",
    ["carrier"])
DEADLINE_LAG = Histogram(
    "lifecycle_deadline_lag_seconds", "How late a deadline fired: the engine clock's now minus its due time.",
    buckets=(.1, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400))

# The outbox relay (issue #17), labelled by the broker it publishes to (its URL, no password).
RELAY_PUBLISHED = Counter(
    "lifecycle_relay_published", "Outbox events a relay published and marked.", ["target"])
RELAY_BATCH_SECONDS = Histogram(
    "lifecycle_relay_batch_seconds", "Wall time of one relay batch: claim, publish, confirm, mark.",
    ["target"], buckets=(.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
RELAY_FAILURES = Counter(
    "lifecycle_relay_failures", "Relay batches that failed: the broker or the database unavailable.",
    ["target"])

_PROXIES = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)


def _tracer() -> trace.Tracer | None:
    """The tracer of the global provider, or None while it is the API's proxy (no SDK set up):
    then a trigger does no span work."""
    global _provider, _cached
    # `get_tracer_provider` looks up an environment variable on each call until a provider is
    # set (1.4 µs, half of all the rest a trigger's instruments cost): read the API's global
    # instead while nothing set it, nor may the environment name one.
    if getattr(trace, "_TRACER_PROVIDER", _UNREAD) is None and not _PROVIDER_FROM_ENVIRONMENT:
        return None
    provider = trace.get_tracer_provider()
    if provider is _provider:
        return _cached
    # A provider is set once per process, so this runs once, or again after a test resets it.
    _provider = provider
    _cached = None if isinstance(provider, _PROXIES) else provider.get_tracer("lifecycle")
    return _cached


def tracing_enabled() -> bool:
    """Whether an OpenTelemetry SDK tracer provider is set, so that spans are recorded. Front
    ends ask before instrumenting themselves: without one, a request span would cost a
    request ~0.5 ms of CPU and record nothing."""
    return _tracer() is not None


_provider: trace.TracerProvider | None = None
_cached: trace.Tracer | None = None
_UNREAD = object()  # the API moved its global: always ask it
_PROVIDER_FROM_ENVIRONMENT = OTEL_PYTHON_TRACER_PROVIDER in os.environ

# The labelled children, found once per label values: `labels()` costs more than `inc()`.
_children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}


def _instruments(kind: str, trigger: str, outcome: str) -> tuple[Counter, Histogram]:
    key = (kind, trigger, outcome)
    found = _children.get(key)
    if found is None:
        found = _children[key] = (TRANSITIONS.labels(kind, trigger, outcome), FIRE_SECONDS.labels(kind))
    return found


class Observed:
    """One trigger being watched, from its start to `finish` (or the end of a ``with`` block,
    whose exception, if any, is the outcome)."""

    __slots__ = ("_scope", "_started", "error", "id", "kind", "outcome", "span", "trigger")

    def __init__(self, kind: str, trigger: str, triggers: Collection[str], role: str,
                 id: str | None):
        self.kind = kind
        self.trigger = trigger if trigger in triggers else OTHER_TRIGGER
        self.id = id  # set by the caller once known (a created aggregate's)
        # What `finish` reports when not told: a caller that handles a refusal itself (the
        # timers discard a deadline the machine refuses) sets these.
        self.outcome = OK
        self.error: BaseException | None = None
        self.span: trace.Span | None = None
        self._scope: Token[context.Context] | None = None
        tracer = _tracer()
        if tracer is not None:
            attributes = {"lifecycle.kind": kind, "lifecycle.trigger": trigger,
                          "lifecycle.actor.role": role}
            if id is not None:
                attributes["lifecycle.id"] = id
            # A child of the current span (the HTTP request's), and current itself until the
            # trigger ends, so what the trigger calls (an adapter's HTTP client) nests under it.
            self.span = tracer.start_span(f"lifecycle {kind}.{trigger}", attributes=attributes)
            self._scope = context.attach(trace.set_span_in_context(self.span))
        self._started = time.perf_counter()

    def __enter__(self) -> Observed:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.finish(OK if kind is None else kind.__name__, error)

    def finish(self, outcome: str | None = None, error: BaseException | None = None) -> None:
        """Count, time and end the span: ``outcome`` is "ok" or the refusal's class name
        (`outcome` and `error` when not given)."""
        if outcome is None:
            outcome, error = self.outcome, self.error
        seconds = time.perf_counter() - self._started
        counter, histogram = _instruments(self.kind, self.trigger, outcome)
        counter.inc()
        histogram.observe(seconds)
        if outcome == "Conflict":
            CONFLICTS.labels(self.kind).inc()
        if self.span is not None:
            self._end_span(self.span, outcome, error)

    def _end_span(self, span: trace.Span, outcome: str, error: BaseException | None) -> None:
        span.set_attribute("lifecycle.outcome", outcome)
        if self.id is not None:
            span.set_attribute("lifecycle.id", self.id)
        if outcome != OK:
            span.set_status(trace.Status(trace.StatusCode.ERROR, str(error) if error else outcome))
            if error is not None:
                span.record_exception(error)
        if self._scope is not None:
            context.detach(self._scope)
        span.end()


def observe(kind: str, trigger: str, triggers: Collection[str], role: str,
            id: str | None = None) -> Observed:
    """Start watching one trigger of ``kind`` (``triggers``: those the kind defines)."""
    return Observed(kind, trigger, triggers, role, id)


def scan_recorded(carrier: str) -> None:
    """A carrier's scan was recorded on an order without moving it."""
    SCANS_RECORDED.labels(carrier).inc()


def deadline_fired(lag_seconds: float) -> None:
    """A deadline fired ``lag_seconds`` after it was due (by the engine's clock)."""
    DEADLINE_LAG.observe(max(lag_seconds, 0.0))


# --- the database's backlog, read at scrape time ------------------------------------------


class Backlog(Protocol):
    """What `Engine.backlog` answers (`lifecycle.store.reports.Backlog`)."""

    @property
    def parked_deadlines(self) -> int: ...

    @property
    def outbox_backlog(self) -> int: ...

    @property
    def deadlines_due(self) -> int: ...


class Counts(Protocol):
    """The part of `lifecycle.Engine` the gauges read."""

    def backlog(self) -> Backlog: ...


class DatabaseCollector(Collector):
    """The gauges, counted in the database on each collect. A database out of reach leaves
    them out of that scrape (logged) rather than failing the whole exposition."""

    def __init__(self, engine: Counts):
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        try:
            counts = self.engine.backlog()
        except Exception as error:
            log.warning("metrics.database_unreadable", error=str(error))
            return
        yield GaugeMetricFamily("lifecycle_parked_deadlines",
                                "Deadlines parked as failed after their retries, waiting for an operator.",
                                value=counts.parked_deadlines)
        yield GaugeMetricFamily("lifecycle_outbox_backlog", "Outbox rows not yet published.",
                                value=counts.outbox_backlog)
        yield GaugeMetricFamily("lifecycle_deadlines_due",
                                "Pending deadlines due by the engine clock, not yet fired.",
                                value=counts.deadlines_due)


class _Forward(Collector):
    """Another registry's metrics, as a collector of a registry built per scrape."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()


def registry_for(engine: Counts) -> CollectorRegistry:
    """A registry with this process's metrics (or, in multiprocess mode, every process's,
    aggregated from ``PROMETHEUS_MULTIPROC_DIR``) and ``engine``'s database gauges."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Forward(REGISTRY))
    registry.register(DatabaseCollector(engine))
    return registry


def metrics_exposition(engine: Counts) -> tuple[bytes, str]:
    """What ``GET /metrics`` answers: the Prometheus text exposition and its content type."""
    return _generate_latest(registry_for(engine)), CONTENT_TYPE_LATEST
