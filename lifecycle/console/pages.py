"""The console's pages: sign-in, search, an aggregate's page and its triggers, the parked
deadlines, simulation runs. Each reads and writes through the public `lifecycle.Engine` only.

The engine is synchronous: the pages are sync functions, run in the server's thread pool as
the API's routes are; a POST reads its form in the event loop and hands the rest to the pool.

A trigger is fired in two steps: its form posts to ``…/confirm``, which shows the payload and
the version it will apply to; confirming posts to ``…/fire`` with that version
(``expected_version``: a change meanwhile is refused, not overwritten) and an idempotency key
made for this confirmation (posting it twice fires once). A refusal is shown as the CLI prints
it (``str(error)`` on one line) and nothing is written.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlparse

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

import lifecycle
from lifecycle.console import auth, diagram, forms, present, search

if TYPE_CHECKING:
    from jinja2 import Environment

TEMPLATES = Path(__file__).parent / "templates"


@cache
def templates() -> Environment:
    """The pages' templates, autoescaped; made on the first page served (importing Jinja2 is a
    tenth of what the CLI takes to start, and the CLI imports the service to offer ``serve``)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    environment = Environment(loader=FileSystemLoader(TEMPLATES),
                              autoescape=select_autoescape(["html"]), trim_blocks=True,
                              lstrip_blocks=True)
    environment.filters["amount"] = present.amount
    environment.filters["when"] = present.when
    environment.filters["as_json"] = present.as_json
    return environment

#: HTTP status of each refusal on a page (most specific class first)
STATUSES: tuple[tuple[type[Exception], int], ...] = (
    (lifecycle.NotFound, 404),
    (lifecycle.UnknownKind, 404),
    (lifecycle.Forbidden, 403),
    (lifecycle.Unauthenticated, 401),
    (lifecycle.InvalidPayload, 422),
    (lifecycle.GuardFailed, 422),
    (lifecycle.IdempotencyMismatch, 422),
    (lifecycle.InvalidTransition, 409),
    (lifecycle.Conflict, 409),
    (lifecycle.AlreadyExists, 409),
    (lifecycle.Unavailable, 503),
)


def status_of(error: Exception) -> int:
    return next((status for cls, status in STATUSES if isinstance(error, cls)), 400)


def engine_of(request: Request) -> lifecycle.Engine:
    engine: lifecycle.Engine = request.app.state.engine
    return engine


def base_of(request: Request) -> str:
    """Where the console is mounted (``/console``): every link starts with it."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    who: auth.Operator | None = context.pop("who", None)
    page = templates().get_template(template).render(
        base=base_of(request), who=who, csrf_field=auth.CSRF_FIELD, kinds=list(lifecycle.definitions()),
        **context)
    return HTMLResponse(page, status_code=status, headers={
        "Cache-Control": "no-store",
        "Content-Security-Policy": "default-src 'self'; style-src 'self'; script-src 'self'; "
                                   "img-src 'self' data:; frame-src 'self'; frame-ancestors 'self'; "
                                   "form-action 'self'",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    })


def refused(request: Request, error: lifecycle.LifecycleError, who: auth.Operator | None,
            title: str = "Refused") -> HTMLResponse:
    return render(request, "error.html", status_of(error), who=who, title=title,
                  message=present.one_line(error))


#: the most a form may post: a trigger's payload is small
FORM_LIMIT = 64 * 1024


class BadForm(Exception):
    """A POST that is not a form of ours: too big, not urlencoded, not UTF-8."""


async def _form(request: Request) -> dict[str, str]:
    """The posted form's fields (urlencoded, as the pages' forms send it; the first of a name
    given twice). Read here rather than by Starlette, which needs python-multipart for it."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise BadForm("the form must be posted as application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_LIMIT:
            raise BadForm(f"the form is larger than {FORM_LIMIT // 1024} KiB")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=500,
                          errors="strict")
    except (UnicodeDecodeError, ValueError) as error:
        raise BadForm(f"the form cannot be read: {error}") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        form.setdefault(name, value)
    return form


def router() -> APIRouter:
    routes = APIRouter()
    routes.add_api_route("/login", login_page, methods=["GET"], response_class=HTMLResponse)
    routes.add_api_route("/login", login, methods=["POST"], response_class=HTMLResponse)
    routes.add_api_route("/logout", logout, methods=["POST"])
    routes.add_api_route("/", home, methods=["GET"], response_class=HTMLResponse)
    routes.add_api_route("/search", find, methods=["GET"], response_class=HTMLResponse)
    routes.add_api_route("/deadlines", parked, methods=["GET"], response_class=HTMLResponse)
    routes.add_api_route("/deadlines/{deadline_id}/retry", retry, methods=["POST"])
    routes.add_api_route("/simulations", simulations, methods=["GET"], response_class=HTMLResponse)
    routes.add_api_route("/simulations/{name}", simulation, methods=["GET"], response_class=HTMLResponse)
    routes.add_api_route("/simulations/{name}/report.html", simulation_report, methods=["GET"],
                         response_class=HTMLResponse)
    routes.add_api_route("/{kind}/{id}", aggregate_page, methods=["GET"], response_class=HTMLResponse)
    routes.add_api_route("/{kind}/{id}/confirm", confirm, methods=["POST"], response_class=HTMLResponse)
    routes.add_api_route("/{kind}/{id}/fire", fire, methods=["POST"], response_class=HTMLResponse)
    return routes


# --- signing in ------------------------------------------------------------------------


def login_page(request: Request, reason: str = "") -> HTMLResponse:
    return render(request, "login.html", reason=reason)


async def login(request: Request) -> Response:
    # The sign-in form has no session to carry a CSRF token: a browser's Origin header must
    # name this host, so that another site's page cannot sign a visitor in with its own key.
    origin = request.headers.get("origin")
    if origin and (origin == "null" or urlparse(origin).netloc != request.headers.get("host")):
        raise auth.CsrfRefused()
    form = await _form(request)
    return await run_in_threadpool(_login, request, form)


def _login(request: Request, form: dict[str, str]) -> Response:
    token, actor_id = form.get("token", "").strip(), form.get("actor", "").strip()
    try:
        actor = auth.sign_in(engine_of(request), token, actor_id or None)
    except lifecycle.LifecycleError as error:
        return render(request, "login.html", status_of(error), error=present.one_line(error),
                      actor=actor_id)
    response = RedirectResponse(f"{base_of(request)}/", status_code=303)
    secure = request.url.scheme == "https"
    path = f"{base_of(request)}/"
    response.set_cookie(auth.TOKEN_COOKIE, token, httponly=True, samesite="strict", secure=secure,
                        path=path)
    if actor_id:
        response.set_cookie(auth.ACTOR_COOKIE, actor.id, httponly=True, samesite="strict",
                            secure=secure, path=path)
    else:
        response.delete_cookie(auth.ACTOR_COOKIE, path=path)
    return response


async def logout(request: Request) -> Response:
    form = await _form(request)
    return await run_in_threadpool(_logout, request, form)


def _logout(request: Request, form: dict[str, str]) -> Response:
    who = auth.operator(request)
    auth.check_csrf(request, who, form.get(auth.CSRF_FIELD))
    response = RedirectResponse(f"{base_of(request)}/login", status_code=303)
    path = f"{base_of(request)}/"
    response.delete_cookie(auth.TOKEN_COOKIE, path=path)
    response.delete_cookie(auth.ACTOR_COOKIE, path=path)
    return response


# --- search ----------------------------------------------------------------------------


def home(request: Request) -> HTMLResponse:
    who = auth.operator(request)
    engine = engine_of(request)
    counts: dict[str, list[tuple[str, int]]] = {}
    for count in engine.state_counts(lifecycle.definitions()):
        counts.setdefault(count.kind, []).append((count.state, count.aggregates))
    return render(request, "home.html", who=who, counts=counts, query=search.Query(),
                  parked=engine.backlog().parked_deadlines, now=engine.clock.now())


def find(request: Request, kind: str = "order", id: str = "", state: str = "", buyer: str = "",
         seller: str = "", created_from: str = "", created_to: str = "", updated_from: str = "",
         updated_to: str = "", after: str = "") -> HTMLResponse:
    who = auth.operator(request)
    engine = engine_of(request)
    asked = {"kind": kind, "id": id, "state": state, "buyer": buyer, "seller": seller,
             "created_from": created_from, "created_to": created_to,
             "updated_from": updated_from, "updated_to": updated_to}
    try:
        query = search.Query(
            kind=engine.definition(kind).kind, id=id.strip(), state=state.strip(),
            buyer=buyer, seller=seller,
            created_from=search.moment(created_from, "created_from"),
            created_to=search.moment(created_to, "created_to"),
            updated_from=search.moment(updated_from, "updated_from"),
            updated_to=search.moment(updated_to, "updated_to"), after=after)
        found = search.run(engine, query)
    except lifecycle.NotFound as error:
        return render(request, "search.html", 404, who=who, asked=asked, found=None,
                      error=present.one_line(error), states=_states(kind))
    except lifecycle.LifecycleError as error:
        return render(request, "search.html", status_of(error), who=who, asked=asked, found=None,
                      error=present.one_line(error), states=_states(kind))
    next_page = None
    if found.next_after:
        next_page = urlencode({**asked, "after": found.next_after})
    return render(request, "search.html", who=who, asked=asked, found=found, next_page=next_page,
                  states=_states(kind))


def _states(kind: str) -> tuple[str, ...]:
    try:
        return lifecycle.definition(kind).states
    except lifecycle.UnknownKind:
        return ()


# --- an aggregate ----------------------------------------------------------------------


def _related(aggregate: lifecycle.Aggregate) -> list[tuple[str, str, str]]:
    """(label, kind, id) of the aggregates this one names: an order's dispute and seller, a
    dispute's order."""
    links = []
    for label, kind, field in (("order", "order", "order"), ("dispute", "dispute", "dispute"),
                               ("seller", "seller", "seller")):
        value = aggregate.data.get(field)
        if isinstance(value, str) and value and (aggregate.kind, aggregate.id) != (kind, value):
            links.append((label, kind, value))
    return links


def _page(request: Request, who: auth.Operator, kind: str, id: str, *, status: int = 200,
          error: str | None = None, fired: str = "",
          form: Mapping[str, str] | None = None, open_trigger: str | None = None) -> HTMLResponse:
    engine = engine_of(request)
    found = engine.get(engine.definition(kind).kind, id)
    definition = engine.definition(kind, found.machine_version)  # the version it runs
    now = engine.clock.now()
    history = engine.history(definition.kind, found.id)
    # What the redirect after a fire says, from the page's own reads (never text from the URL).
    done = None
    if fired and history[-1].trigger == fired:
        done = (f"{fired} fired by {history[-1].actor}: {found.kind} {found.id} is {found.state} "
                f"(version {found.version})")
    parties = []
    for role in ("buyer", "seller"):
        owner = definition.owner_of(role, found.id, found.data)
        if owner:
            parties.append((role, owner, engine.allowed(definition.kind, found.id,
                                                        lifecycle.Actor(role, owner))))
    deadlines = [(d, present.left(d.time_left(now)))
                 for d in engine.deadlines(kind=definition.kind, id=found.id)]
    actions = []
    for trigger in engine.allowed(definition.kind, found.id, who.actor):
        step = definition.step(found.state, trigger)
        model = step.payload if step is not None else None
        actions.append({"trigger": trigger, "inputs": forms.inputs(model),
                        "roles": sorted(step.roles) if step else [],
                        "dests": list(step.dests) if step else []})
    balances = engine.balances(definition.kind, found.id)
    postings = engine.postings(definition.kind, found.id)
    return render(
        request, "aggregate.html", status, who=who, aggregate=found, definition=definition,
        svg=diagram.svg(definition, found.state), history=history, parties=parties,
        scans=engine.tracking(found.id) if definition.kind == "order" else [],
        deadlines=deadlines, now=now, actions=actions, balances=balances, postings=postings,
        related=_related(found), error=error, done=done, form=dict(form or {}),
        open_trigger=open_trigger, messages=_messages(engine, found, who))


def _messages(engine: lifecycle.Engine, found: lifecycle.Aggregate,
              who: auth.Operator) -> list[lifecycle.OrderMessage]:
    """The order messages an order's or a dispute's page shows (issue #20): part of the
    order's record, which the operator reads beside the dispute."""
    if found.kind == "order":
        return engine.messages(found.id, who.actor)
    if found.kind == "dispute":
        return engine.dispute_messages(found.id, who.actor)
    return []


def aggregate_page(request: Request, kind: str, id: str, fired: str = "") -> HTMLResponse:
    who = auth.operator(request)
    try:
        return _page(request, who, kind, id, fired=fired)
    except lifecycle.LifecycleError as error:
        return refused(request, error, who, "Not found" if status_of(error) == 404 else "Refused")


def _trigger_step(engine: lifecycle.Engine, kind: str, found: lifecycle.Aggregate,
                  trigger: str) -> Any:
    """The payload model of ``trigger`` where the aggregate stands (None: no payload)."""
    step = engine.definition(kind, found.machine_version).step(found.state, trigger)
    return step.payload if step is not None else None


async def confirm(request: Request, kind: str, id: str) -> HTMLResponse:
    form = await _form(request)
    return await run_in_threadpool(_confirm, request, kind, id, form)


def _confirm(request: Request, kind: str, id: str, form: dict[str, str]) -> HTMLResponse:
    who = auth.operator(request)
    auth.check_csrf(request, who, form.get(auth.CSRF_FIELD))
    engine = engine_of(request)
    trigger = form.get("trigger", "")
    try:
        definition = engine.definition(kind)
        found = engine.get(definition.kind, id)
        payload = forms.payload(_trigger_step(engine, definition.kind, found, trigger), form)
    except lifecycle.NotFound as error:
        return refused(request, error, who, "Not found")
    except lifecycle.LifecycleError as error:
        return _page(request, who, kind, id, status=status_of(error), error=present.one_line(error),
                     form=form, open_trigger=trigger)
    return render(request, "confirm.html", who=who, aggregate=found, trigger=trigger,
                  payload=payload, payload_text=present.as_json(payload) if payload is not None else "",
                  key=f"console-{secrets.token_hex(12)}")


async def fire(request: Request, kind: str, id: str) -> Response:
    form = await _form(request)
    return await run_in_threadpool(_fire, request, kind, id, form)


def _fire(request: Request, kind: str, id: str, form: dict[str, str]) -> Response:
    who = auth.operator(request)
    auth.check_csrf(request, who, form.get(auth.CSRF_FIELD))
    engine = engine_of(request)
    trigger = form.get("trigger", "")
    try:
        version_text = form.get("version", "")
        if not version_text.isdigit():
            raise lifecycle.InvalidPayload("version", "the version confirmed is missing")
        text = form.get("payload", "").strip()
        payload = lifecycle.loads_json(text) if text else None
        if payload is not None and not isinstance(payload, dict):
            raise lifecycle.InvalidPayload("payload", "must be a JSON object")
        moved = engine.fire(kind, id, trigger, who.actor, payload,
                            idempotency_key=form.get("key") or None,
                            expected_version=int(version_text))
    except ValueError as error:  # JSON refused
        return _page(request, who, kind, id, status=422,
                     error=present.one_line(lifecycle.InvalidPayload("payload", str(error))))
    except lifecycle.NotFound as error:
        return refused(request, error, who, "Not found")
    except lifecycle.LifecycleError as error:
        return _page(request, who, kind, id, status=status_of(error), error=present.one_line(error))
    return RedirectResponse(
        f"{base_of(request)}/{moved.kind}/{quote(moved.id, safe='')}?{urlencode({'fired': trigger})}",
        status_code=303)


# --- parked deadlines --------------------------------------------------------------------


def parked(request: Request, retried: str = "") -> HTMLResponse:
    who = auth.operator(request)
    engine = engine_of(request)
    now = engine.clock.now()
    rows = [(d, present.left(d.time_left(now)))
            for d in engine.deadlines(failed=True, limit=1000)]
    done = None
    if retried.isdigit():
        done = (f"deadline {int(retried)} is queued again, due now: the timer worker "
                "(lifecycle timers run) fires it")
    return render(request, "deadlines.html", who=who, rows=rows, now=now, done=done)


async def retry(request: Request, deadline_id: str) -> Response:
    form = await _form(request)
    return await run_in_threadpool(_retry, request, deadline_id, form)


def _retry(request: Request, deadline_id: str, form: dict[str, str]) -> Response:
    who = auth.operator(request)
    auth.check_csrf(request, who, form.get(auth.CSRF_FIELD))
    engine = engine_of(request)
    try:
        if not deadline_id.isdigit():
            raise lifecycle.InvalidPayload("deadline", f"{deadline_id!r} is not a deadline's id")
        engine.retry_deadline(int(deadline_id), who.actor)
    except lifecycle.LifecycleError as error:
        return refused(request, error, who)
    return RedirectResponse(f"{base_of(request)}/deadlines?{urlencode({'retried': deadline_id})}",
                            status_code=303)


# --- simulations ---------------------------------------------------------------------------


def simulations(request: Request) -> HTMLResponse:
    from lifecycle.simulation import runs  # the simulation is loaded only for these pages

    who = auth.operator(request)
    return render(request, "simulations.html", who=who, runs=runs(engine_of(request)))


def simulation(request: Request, name: str) -> HTMLResponse:
    from lifecycle.simulation import runs

    who = auth.operator(request)
    try:
        run = next((r for r in runs(engine_of(request)) if r.name == name), None)
        if run is None:
            raise lifecycle.NotFound("simulation", name)
    except lifecycle.LifecycleError as error:
        return refused(request, error, who, "Not found")
    return render(request, "simulation.html", who=who, run=run)


def simulation_report(request: Request, name: str) -> HTMLResponse:
    from lifecycle.simulation import stored_report

    who = auth.operator(request)
    try:
        report = stored_report(engine_of(request), name)
    except lifecycle.LifecycleError as error:
        return refused(request, error, who, "Not found")
    return HTMLResponse(report.html(), headers={"Cache-Control": "no-store",
                                                "X-Content-Type-Options": "nosniff"})
