"""With the telemetry extra, a request's span (opentelemetry-instrumentation-fastapi) is the
parent of the engine's span for the trigger it fired."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import lifecycle
import lifecycle.service
from tests.builders import REGISTRATION

pytest.importorskip("opentelemetry.instrumentation.fastapi")


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    """The process's SDK provider (set once per process, maybe by another module) with a
    memory exporter added."""
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def test_the_request_span_is_the_parent_of_the_trigger_span(
    engine: lifecycle.Engine, exporter: InMemorySpanExporter
) -> None:
    _, token = engine.create_key("seller", actor_id="s-1")
    app = lifecycle.service.create_app(engine)

    async def register() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://test") as client:
            return await client.post("/v1/sellers?id=s-1", json=REGISTRATION,
                                     headers={"Authorization": f"Bearer {token}"})

    assert asyncio.run(register()).status_code == 201

    spans = exporter.get_finished_spans()
    [trigger] = [s for s in spans if s.name == "lifecycle seller.register"]
    [request] = [s for s in spans if s.parent is None and s.name.startswith("POST")]
    assert trigger.parent is not None
    assert trigger.parent.span_id == request.context.span_id
    assert trigger.context.trace_id == request.context.trace_id


def test_without_an_sdk_provider_the_app_is_not_instrumented() -> None:
    """No SDK set up: no request middleware (it would record nothing and cost every request);
    the same app once a provider is set is instrumented. In a process of its own, since this
    one's provider is set for good by the test above."""
    probe = (
        "import lifecycle, lifecycle.service\n"
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "engine = lifecycle.open('sqlite://')\n"
        "bare = lifecycle.service.create_app(engine)\n"
        "trace.set_tracer_provider(TracerProvider())\n"
        "traced = lifecycle.service.create_app(engine)\n"
        "flag = '_is_instrumented_by_opentelemetry'\n"
        "print(getattr(bare, flag, False), getattr(traced, flag, False))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["False", "True"]
