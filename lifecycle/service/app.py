"""The FastAPI app over one engine, and the factory uvicorn's workers call to open their own."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.exceptions import HTTPException

import lifecycle
from lifecycle.service import problems, reference, routes, webhooks
from lifecycle.service.representation import AGGREGATE_SCHEMA

DESCRIPTION = """The lifecycle engine over HTTP: create and fire on every kind, read what a key
may read, and receive payment and carrier webhooks. Authenticate with `Authorization: Bearer
<key>`; errors are RFC 9457 problem details. See docs/service.md."""


def create_app(engine: lifecycle.Engine, *, close_engine: bool = False) -> FastAPI:
    """The app serving ``engine``. ``close_engine``: close it when the app shuts down (the
    factory's engine; a caller's own engine stays theirs)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if close_engine:
            engine.close()

    app = FastAPI(title="lifecycle", version=lifecycle.__version__, description=DESCRIPTION,
                  docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.engine = engine
    # The routes join the app's own router rather than being included: an included router is
    # matched through FastAPI's wrapper per candidate route, twice a request, and with ~120
    # generated routes that was a fifth of what a request cost.
    for router in (routes.router(), webhooks.router(), reference.router()):
        app.router.routes.extend(router.routes)
    _install_handlers(app)
    _add_plain_routes(app, engine)
    # The operator's console (issue #19): HTML pages with their own sign-in and error pages.
    from lifecycle.console import create_console

    app.mount("/console", create_console(engine))
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    _instrument(app)
    return app


def app_from_environment() -> FastAPI:
    """For ``uvicorn --factory lifecycle.service:app_from_environment`` and each worker of
    ``lifecycle serve``: the engine on ``LIFECYCLE_DB`` (else `lifecycle.DEFAULT_URL`),
    logging at ``LIFECYCLE_LOG_LEVEL`` (default warning), the adapters' webhook secrets from
    ``LIFECYCLE_WEBHOOK_SECRETS`` as the CLI reads them (docs/webhooks.md), and the versions
    of the machines ``LIFECYCLE_MACHINES`` names (docs/versions.md). Like every command but
    ``lifecycle db init`` and ``db upgrade``, it never creates or migrates a database: a
    mistyped path is refused, not created (issue #19)."""
    lifecycle.configure_logs(os.environ.get("LIFECYCLE_LOG_LEVEL", "warning"))
    engine = lifecycle.open(os.environ.get("LIFECYCLE_DB", lifecycle.DEFAULT_URL),
                            webhook_secrets=webhook_secrets(os.environ),
                            machines=os.environ.get("LIFECYCLE_MACHINES") or None,
                            upgrade=False)
    return create_app(engine, close_engine=True)


SECRETS_VARIABLE = "LIFECYCLE_WEBHOOK_SECRETS"


def webhook_secrets(environ: Mapping[str, str]) -> Any:
    """``{"sandbox": ["whsec_new", "whsec_old"], "dhl": [...]}``: each adapter's secrets,
    newest first; None (the sandboxes' published default) when unset. `lifecycle.open`
    refuses a malformed one before anything runs, so a worker never starts with it."""
    text = environ.get(SECRETS_VARIABLE, "").strip()
    if not text:
        return None
    try:
        return lifecycle.loads_json(text)
    except lifecycle.JSONRefused:
        raise lifecycle.InvalidPayload(SECRETS_VARIABLE, "is not JSON lifecycle accepts") from None


def _install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(lifecycle.LifecycleError, problems.lifecycle_error)
    app.add_exception_handler(RequestValidationError, problems.validation_error)
    app.add_exception_handler(HTTPException, problems.http_error)
    app.add_exception_handler(problems.MalformedBody, problems.malformed_body)
    app.add_exception_handler(Exception, problems.unexpected)


def _add_plain_routes(app: FastAPI, engine: lifecycle.Engine) -> None:
    @app.get("/healthz", tags=["operations"], operation_id="healthz")
    def healthz() -> dict[str, str]:
        """Liveness: the process answers (no key needed)."""
        return {"status": "ok"}

    @app.get("/metrics", tags=["operations"], operation_id="metrics",
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
    def metrics() -> Response:
        """Prometheus metrics of this server (no key needed: scrape it on the private network)."""
        body, content_type = lifecycle.metrics_exposition(engine)
        return Response(body, media_type=content_type)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with each trigger's payload model in its components (the routes
    read the body themselves, strictly, so FastAPI does not see the models)."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(title=app.title, version=app.version, description=app.description,
                           routes=app.routes)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, model in routes.payload_models().items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    schemas["Problem"] = problems.PROBLEM_SCHEMA
    schemas["Aggregate"] = AGGREGATE_SCHEMA
    app.openapi_schema = document
    return document


def _instrument(app: FastAPI) -> None:
    """The request's span, parent of the engine's trigger spans, when the ``telemetry`` extra
    is installed and an SDK tracer provider is set (in code before `create_app`, or by
    ``opentelemetry-instrument``, which instruments FastAPI itself). Without one the
    middleware would record nothing and still cost each request about 0.5 ms of CPU, a third
    of what the app adds to a trigger."""
    if not lifecycle.tracing_enabled():
        return
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    except ImportError:
        return
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,metrics")
