"""Metrics and spans per trigger (issue #16): what each trigger counts, times and traces, the
database's backlog at scrape time, and the worker's ``--metrics-port``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

import lifecycle
from lifecycle.cli import cli
from lifecycle.store.tables import deadlines
from tests.builders import buyer, console_script, order_in, order_payload, seller_in


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def transitions(kind: str, trigger: str, outcome: str) -> float:
    return sample("lifecycle_transitions_total", kind=kind, trigger=trigger, outcome=outcome)


def gauges(engine: lifecycle.Engine) -> dict[str, float]:
    text, content_type = lifecycle.metrics_exposition(engine)
    assert content_type.startswith("text/plain")
    return {family.name: family.samples[0].value
            for family in text_string_to_metric_families(text.decode())
            if family.type == "gauge" and family.samples
            and family.name in ("lifecycle_parked_deadlines", "lifecycle_outbox_backlog",
                                "lifecycle_deadlines_due")}


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    """Spans of this process, kept in memory. The global provider is set once per process: if
    another test module set an SDK one already, ours is added to it."""
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
        provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    exporter.clear()
    yield exporter
    exporter.clear()


def named(found: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in found.get_finished_spans() if span.name == name]


# --- counters and the latency histogram ------------------------------------------------------


def test_each_trigger_counts_once_with_its_kind_trigger_and_outcome(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    paid, timed = transitions("order", "pay", "ok"), sample("lifecycle_fire_seconds_count", kind="order")
    created = transitions("order", "place", "ok")

    engine.fire("order", order.id, "pay", buyer())
    engine.create("order", buyer(), order_payload())

    assert transitions("order", "pay", "ok") == paid + 1
    assert transitions("order", "place", "ok") == created + 1
    assert sample("lifecycle_fire_seconds_count", kind="order") == timed + 2
    assert sample("lifecycle_fire_seconds_sum", kind="order") > 0


def test_a_refusal_counts_under_its_error_class_and_an_unknown_trigger_as_other(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    refused, other = (transitions("order", "confirm_receipt", "InvalidTransition"),
                      transitions("order", "other", "InvalidTransition"))
    ok = transitions("order", "confirm_receipt", "ok")

    with pytest.raises(lifecycle.InvalidTransition):
        engine.fire("order", order.id, "confirm_receipt", buyer())
    with pytest.raises(lifecycle.InvalidTransition):
        engine.fire("order", order.id, "no_such_trigger_xyz", buyer())

    assert transitions("order", "confirm_receipt", "InvalidTransition") == refused + 1
    assert transitions("order", "other", "InvalidTransition") == other + 1
    assert transitions("order", "confirm_receipt", "ok") == ok
    # the caller's word never becomes a label value
    assert REGISTRY.get_sample_value("lifecycle_transitions_total", {
        "kind": "order", "trigger": "no_such_trigger_xyz", "outcome": "InvalidTransition"}) is None


def test_a_conflict_counts_as_a_conflict(engine: lifecycle.Engine,
                                         clock: lifecycle.SimulatedClock) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    conflicts = sample("lifecycle_conflicts_total", kind="order")
    refused = transitions("order", "pay", "Conflict")

    with pytest.raises(lifecycle.Conflict):
        engine.fire("order", order.id, "pay", buyer(), expected_version=order.version + 5)

    assert sample("lifecycle_conflicts_total", kind="order") == conflicts + 1
    assert transitions("order", "pay", "Conflict") == refused + 1
    assert engine.get("order", order.id).state == "awaiting_payment"


def test_a_fired_deadline_counts_and_its_lag_is_observed_on_the_engine_clock(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, spans: InMemorySpanExporter) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    lags = sample("lifecycle_deadline_lag_seconds_count")
    lag_sum = sample("lifecycle_deadline_lag_seconds_sum")
    fired = transitions("order", "payment_timeout", "ok")
    clock.advance(engine.policy.payment_timeout + timedelta(seconds=300))

    assert engine.run_due_timers() == 1

    assert engine.get("order", order.id).state == "cancelled"
    assert transitions("order", "payment_timeout", "ok") == fired + 1
    assert sample("lifecycle_deadline_lag_seconds_count") == lags + 1
    assert sample("lifecycle_deadline_lag_seconds_sum") - lag_sum == pytest.approx(300.0)
    [span] = named(spans, "lifecycle order.payment_timeout")
    assert span.attributes is not None
    assert span.attributes["lifecycle.actor.role"] == "system"
    assert span.attributes["lifecycle.outcome"] == "ok"


def test_a_discarded_deadline_counts_under_the_refusal_and_observes_no_lag(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order_in(engine, clock, "awaiting_payment")
    # The deadline's trigger is one the machine refuses from the order's state.
    engine.execute(update(deadlines).where(deadlines.c.kind == "order").values(trigger="confirm_receipt"))
    clock.advance(engine.policy.payment_timeout + timedelta(seconds=1))
    lags, refused = (sample("lifecycle_deadline_lag_seconds_count"),
                     transitions("order", "confirm_receipt", "InvalidTransition"))

    assert engine.run_due_timers() == 0

    assert transitions("order", "confirm_receipt", "InvalidTransition") == refused + 1
    assert sample("lifecycle_deadline_lag_seconds_count") == lags
    assert engine.deadlines(kind="order") == []


# --- spans ----------------------------------------------------------------------------------


def test_a_trigger_is_a_span_under_the_current_one_with_its_attributes(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, spans: InMemorySpanExporter) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    spans.clear()
    tracer = trace.get_tracer("tests")

    with tracer.start_as_current_span("POST /orders/{id}/pay") as outer:
        engine.fire("order", order.id, "pay", buyer())

    [span] = named(spans, "lifecycle order.pay")
    assert span.parent is not None
    assert span.parent.span_id == outer.get_span_context().span_id
    assert span.context is not None
    assert span.context.trace_id == outer.get_span_context().trace_id
    assert dict(span.attributes or {}) == {
        "lifecycle.kind": "order", "lifecycle.id": order.id, "lifecycle.trigger": "pay",
        "lifecycle.actor.role": "buyer", "lifecycle.outcome": "ok"}
    assert span.status.status_code is trace.StatusCode.UNSET
    assert trace.get_current_span() is trace.INVALID_SPAN  # nothing left attached


def test_a_refused_trigger_is_an_error_span_naming_the_refusal(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, spans: InMemorySpanExporter) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    spans.clear()

    with pytest.raises(lifecycle.Forbidden):
        engine.fire("order", order.id, "pay", buyer("b-other"))

    [span] = named(spans, "lifecycle order.pay")
    assert span.attributes is not None
    assert span.attributes["lifecycle.outcome"] == "Forbidden"
    assert span.status.status_code is trace.StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]


def test_a_created_aggregate_s_span_names_its_new_id(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, spans: InMemorySpanExporter) -> None:
    seller_in(engine, "active")
    spans.clear()

    order = engine.create("order", buyer(), order_payload())

    [span] = named(spans, "lifecycle order.place")
    assert span.attributes is not None
    assert span.attributes["lifecycle.id"] == order.id
    assert span.attributes["lifecycle.outcome"] == "ok"


# --- the database's gauges ------------------------------------------------------------------


def test_the_gauges_are_the_database_s_counts_whichever_engine_reads_them(
        engine: lifecycle.Engine, db_url: str, clock: lifecycle.SimulatedClock) -> None:
    order_in(engine, clock, "awaiting_payment")
    order_in(engine, clock, "paid", buyer_id="b-2")
    outbox = engine.backlog().outbox_backlog
    assert outbox > 0

    with lifecycle.open(db_url, clock=clock) as other:
        assert gauges(other) == {"lifecycle_parked_deadlines": 0, "lifecycle_outbox_backlog": outbox,
                                 "lifecycle_deadlines_due": 0}
        third = order_in(engine, clock, "awaiting_payment", buyer_id="b-3")
        engine.fire("order", third.id, "pay", buyer("b-3"))
        clock.advance(engine.policy.payment_timeout + timedelta(seconds=1))
        engine.execute(update(deadlines).where(deadlines.c.trigger == "ship_deadline")
                       .values(status="failed"))

        assert gauges(other) == {"lifecycle_parked_deadlines": 2,
                                 "lifecycle_outbox_backlog": engine.backlog().outbox_backlog,
                                 "lifecycle_deadlines_due": 1}
        assert engine.backlog().outbox_backlog > outbox


def test_the_exposition_aggregates_every_process_in_multiprocess_mode(
        engine: lifecycle.Engine, db_url: str, clock: lifecycle.SimulatedClock, tmp_path: Path) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    directory = tmp_path / "prometheus"
    directory.mkdir()
    fire = ("import lifecycle, sys\n"
            "e = lifecycle.open(sys.argv[1])\n"
            "e.fire('order', sys.argv[2], sys.argv[3], lifecycle.Actor('buyer', 'b-1'))\n")
    scrape = ("import lifecycle, sys\n"
              "sys.stdout.write(lifecycle.metrics_exposition(lifecycle.open(sys.argv[1]))[0].decode())\n")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    for trigger in ("pay", "confirm_receipt"):  # the second refused: an order paid, not delivered
        subprocess.run([sys.executable, "-c", fire, db_url, order.id, trigger], env=env,
                       capture_output=True, text=True, check=trigger == "pay")
    scraped = subprocess.run([sys.executable, "-c", scrape, db_url], env=env, capture_output=True,
                             text=True, check=True).stdout

    values = {(s.name, tuple(sorted(s.labels.items()))): s.value
              for family in text_string_to_metric_families(scraped) for s in family.samples}
    counted = "lifecycle_transitions_total"
    assert values[(counted, (("kind", "order"), ("outcome", "ok"), ("trigger", "pay")))] == 1
    assert values[(counted, (("kind", "order"), ("outcome", "InvalidTransition"),
                             ("trigger", "confirm_receipt")))] == 1
    assert values[("lifecycle_outbox_backlog", ())] == engine.backlog().outbox_backlog


# --- lifecycle timers run --metrics-port -----------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_worker_serves_metrics_while_it_runs(engine: lifecycle.Engine, db_url: str,
                                                 clock: lifecycle.SimulatedClock) -> None:
    order_in(engine, clock, "paid")
    port = free_port()
    command = [console_script(), "--db", db_url, "timers", "run", "--interval", "0.05",
               "--metrics-port", str(port)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as worker:
        try:
            body = _get(f"http://127.0.0.1:{port}/metrics", worker)
            with pytest.raises(urllib.error.HTTPError) as missing:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=5)
            missing.value.close()
            assert missing.value.code == 404
        finally:
            worker.send_signal(signal.SIGTERM)
            out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert out.startswith("fired ")  # the worker ran to its end after the scrape
    families = {family.name: family for family in text_string_to_metric_families(body)}
    assert families["lifecycle_outbox_backlog"].samples[0].value == engine.backlog().outbox_backlog
    assert "lifecycle_transitions" in families


def _get(url: str, worker: subprocess.Popen[str]) -> str:
    give_up = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                assert answer.headers["Content-Type"].startswith("text/plain")
                return str(answer.read().decode())
        except (urllib.error.URLError, ConnectionError):
            if worker.poll() is not None or time.monotonic() > give_up:
                raise
            time.sleep(0.1)


@pytest.mark.parametrize("port", ["-1", "65536", "nine"])
def test_a_bad_metrics_port_is_a_usage_error(db_url: str, port: str) -> None:
    result = CliRunner().invoke(cli, ["--db", db_url, "timers", "run", "--once", "--metrics-port", port])
    assert result.exit_code == 2
    assert "--metrics-port" in result.output


def test_a_metrics_port_in_use_is_an_error_before_the_worker_runs(db_url: str) -> None:
    lifecycle.open(db_url).close()  # only db init and db upgrade create one from the CLI
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["--db", db_url, "timers", "run", "--once",
                                          "--metrics-port", str(port)])
    assert result.exit_code == 1
    assert "cannot serve metrics" in result.output
    assert "fired" not in result.output


def test_without_an_sdk_a_trigger_does_no_span_work(db_url: str) -> None:
    # A process of its own: this one has an SDK provider set for the span tests.
    script = ("import lifecycle\n"
              "from lifecycle import telemetry\n"
              "from lifecycle.machines import DEFINITIONS\n"
              "seen = telemetry.observe('order', 'pay', DEFINITIONS['order'].machine.events, 'buyer')\n"
              "seen.finish()\n"
              "print(telemetry._tracer() is None, seen.span is None)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          env={k: v for k, v in os.environ.items() if not k.startswith("OTEL_")})
    assert done.stdout.split() == ["True", "True"]


@pytest.mark.pg
def test_the_gauges_count_on_postgresql(pg_engine: lifecycle.Engine,
                                        clock: lifecycle.SimulatedClock) -> None:
    order_in(pg_engine, clock, "awaiting_payment")
    before = pg_engine.backlog()
    clock.advance(pg_engine.policy.payment_timeout + timedelta(seconds=1))
    pg_engine.execute(update(deadlines).where(deadlines.c.kind == "seller").values(status="failed"))

    after = pg_engine.backlog()

    assert before.deadlines_due == 0
    assert after.deadlines_due == 1
    assert after.parked_deadlines == len(pg_engine.deadlines(failed=True)) > 0
    assert after.outbox_backlog == before.outbox_backlog > 0
