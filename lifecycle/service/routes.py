"""The ``/v1`` routes, generated from the machine definitions: create, get and fire on every
kind, each trigger's payload model as its request body in the OpenAPI document, and the reads
(history, allowed, balances, ledger, deadlines, tracking, lists)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

import lifecycle
from lifecycle.service import problems
from lifecycle.service.auth import Acting, require_operator
from lifecycle.service.bodies import capped_body
from lifecycle.service.messages import message_routes
from lifecycle.service.representation import aggregate, aggregate_response, plain, posting

#: the schemas the routes refer to by name, for the OpenAPI document's components
AGGREGATE_REF = {"$ref": "#/components/schemas/Aggregate"}
PROBLEM = {"description": "A problem (RFC 9457)",
           "content": {problems.MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
_ETAG = re.compile(r'^"(\d{1,18})"$')
#: kinds created from an upload's bytes by a route of their own, not from a JSON payload
UPLOADED = frozenset({"avatar"})


def plural(kind: str) -> str:
    """The collection's name in paths: ``order`` → ``orders``."""
    return f"{kind}s"


def payload_models() -> dict[str, type[BaseModel]]:
    """Every trigger's payload model by name, for the OpenAPI document."""
    return {t.payload.__name__: t.payload for d in lifecycle.definitions().values()
            for t in d.transitions if t.payload is not None and not t.internal}


# The request's body as sent, up to the cap (413 past it): the routes parse it themselves,
# strictly (duplicate keys refused), and the engine validates it against the trigger's model.
Body = Annotated[bytes, Depends(capped_body)]
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", max_length=200,
    description="A retry with the same key returns the first result")]
IfMatch = Annotated[str | None, Header(
    alias="If-Match", pattern=r'^(\*|"[0-9]{1,18}")$',
    description='The version read, as its ETag ("3"): stale is 412')]


def parsed(body: bytes) -> Any:
    """The JSON payload, or None for an empty body (a trigger that takes nothing)."""
    if not body.strip():
        return None
    try:
        return lifecycle.loads_json(body)
    except ValueError as error:  # not JSON, not UTF-8, a key given twice
        raise problems.MalformedBody(str(error)) from None


def expected_version(if_match: str | None) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    match = _ETAG.match(if_match.strip())
    if match is None:
        raise lifecycle.InvalidPayload("If-Match", f'{if_match!r} is not an ETag this API sent ("3")')
    return int(match.group(1))


def readable(engine: lifecycle.Engine, actor: lifecycle.Actor, kind: str, id: str) -> lifecycle.Aggregate:
    """The aggregate if ``actor`` may read it; another's is `NotFound`, as if absent. What it
    holds of a store's money is left out for a sub-account that may not see it."""
    found = engine.get(kind, id)
    if not lifecycle.definition(kind).owns(actor, found.id, found.data):
        raise lifecycle.NotFound(kind, id)
    return engine.without_money(found, actor)


#: a read of one aggregate: (engine, the aggregate as the actor may see it, the actor) → JSON
Read = Callable[[lifecycle.Engine, lifecycle.Aggregate, lifecycle.Actor], Any]


def engine_of(request: Request) -> lifecycle.Engine:
    engine: lifecycle.Engine = request.app.state.engine
    return engine


def router() -> APIRouter:
    routes = APIRouter(prefix="/v1", responses={"default": PROBLEM})
    for definition in lifecycle.definitions().values():
        _kind_routes(routes, definition)
    _operator_routes(routes)
    message_routes(routes)  # issue #20: order messages
    _profile_routes(routes)
    return routes


def _kind_routes(routes: APIRouter, definition: lifecycle.MachineDefinition) -> None:
    kind, base = definition.kind, f"/{plural(definition.kind)}"
    tags: list[str | Any] = [kind]
    if not definition.creation.internal and kind not in UPLOADED:
        routes.add_api_route(base, _create(definition), methods=["POST"], status_code=201, tags=tags,
                             summary=f"{definition.creation.trigger} a {kind}",
                             openapi_extra=_body_of(definition.creation),
                             responses={201: _aggregate_doc("Created")},
                             operation_id=f"create_{kind}")
    routes.add_api_route(base, _list(kind), methods=["GET"], tags=tags, summary=f"list {kind}s",
                         operation_id=f"list_{kind}s")
    routes.add_api_route(base + "/{id}", _get(kind), methods=["GET"], tags=tags, summary=f"get a {kind}",
                         responses={200: _aggregate_doc("The aggregate")}, operation_id=f"get_{kind}")
    # Each read gets the actor too: the ledger's reads refuse a sub-account that may not see
    # money (`Engine.sees_money`).
    reads: dict[str, Read] = {
        "history": lambda e, a, who: [plain(entry) for entry in e.history(kind, a.id)],
        "balances": lambda e, a, who: plain(e.balances(kind, a.id, actor=who)),
        "ledger": lambda e, a, who: [posting(entry) for entry in e.postings(kind, a.id, actor=who)],
        "deadlines": lambda e, a, who: [plain(d) for d in e.deadlines(kind=kind, id=a.id)],
    }
    if kind == "order":
        reads["tracking"] = lambda e, a, who: [plain(scan) for scan in e.tracking(a.id)]
    if kind == "standing":  # the store's violations, active or not (SPEC §12)
        reads["violations"] = lambda e, a, who: [aggregate(v) for v in e.violations(a.id)]
    for name, read in reads.items():
        routes.add_api_route(f"{base}/{{id}}/{name}", _read(kind, read), methods=["GET"], tags=tags,
                             summary=f"a {kind}'s {name}", operation_id=f"{kind}_{name}")
    routes.add_api_route(f"{base}/{{id}}/allowed", _allowed(kind), methods=["GET"], tags=tags,
                         summary=f"the triggers the key's actor may fire on a {kind}",
                         operation_id=f"{kind}_allowed")
    seen: set[str] = set()
    for transition in definition.transitions:
        if transition.internal or transition is definition.creation or transition.trigger in seen:
            continue
        seen.add(transition.trigger)
        routes.add_api_route(f"{base}/{{id}}/{transition.trigger}", _fire(kind, transition.trigger),
                             methods=["POST"], tags=tags, openapi_extra=_body_of(transition),
                             summary=f"{transition.trigger} ({', '.join(sorted(transition.roles))})",
                             responses={200: _aggregate_doc("The aggregate after the trigger")},
                             operation_id=f"{kind}_{transition.trigger}")


def _aggregate_doc(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": AGGREGATE_REF}},
            "headers": {"ETag": {"description": 'The version, quoted ("3")',
                                 "schema": {"type": "string"}}}}


def _body_of(transition: lifecycle.Transition) -> dict[str, Any]:
    if transition.payload is None:
        return {}
    schema = {"$ref": f"#/components/schemas/{transition.payload.__name__}"}
    return {"requestBody": {"required": False, "content": {"application/json": {"schema": schema}}}}


def _create(definition: lifecycle.MachineDefinition) -> Callable[..., Response]:
    kind = definition.kind

    def create(request: Request, actor: Acting, body: Body, idempotency_key: IdempotencyKey = None,
               id: Annotated[str | None, Query(description="The new aggregate's id")] = None,
               ) -> Response:
        engine = engine_of(request)
        created = engine.create(kind, actor, parsed(body), id=id, idempotency_key=idempotency_key)
        return aggregate_response(engine.without_money(created, actor), 201,
                                  f"/v1/{plural(kind)}/{created.id}")

    return create


def _fire(kind: str, trigger: str) -> Callable[..., Response]:
    def fire(request: Request, id: str, actor: Acting, body: Body,
             idempotency_key: IdempotencyKey = None, if_match: IfMatch = None) -> Response:
        engine = engine_of(request)
        version = expected_version(if_match)
        payload = parsed(body)
        try:
            fired = engine.fire(kind, id, trigger, actor, payload, idempotency_key=idempotency_key,
                                expected_version=version)
        except lifecycle.Conflict as error:
            if version is None:
                raise
            return problems.from_error(error, 412)  # the If-Match precondition failed
        except lifecycle.Forbidden as error:
            if error.kind:
                raise  # a role refusal, on the actor's own aggregate: it may know it exists
            # Not theirs: answered as a read of it is, as if it did not exist (404, not 403).
            raise lifecycle.NotFound(kind, id) from None
        return aggregate_response(engine.without_money(fired, actor))

    return fire


def _get(kind: str) -> Callable[..., Response]:
    def get(request: Request, id: str, actor: Acting) -> Response:
        return aggregate_response(readable(engine_of(request), actor, kind, id))

    return get


def _read(kind: str, read: Read) -> Callable[..., Response]:
    def get(request: Request, id: str, actor: Acting) -> Response:
        engine = engine_of(request)
        return JSONResponse(read(engine, readable(engine, actor, kind, id), actor))

    return get


def _allowed(kind: str) -> Callable[..., Response]:
    def allowed(request: Request, id: str, actor: Acting) -> Response:
        engine = engine_of(request)
        found = readable(engine, actor, kind, id)
        return JSONResponse({"actor": plain(actor), "allowed": engine.allowed(kind, found.id, actor)})

    return allowed


def _list(kind: str) -> Callable[..., Response]:
    def find(request: Request, actor: Acting,
             state: Annotated[str | None, Query(max_length=100)] = None,
             limit: Annotated[int, Query(ge=1, le=1000)] = 100,
             after: Annotated[str | None, Query(max_length=200, description="`next` of the page before")]
             = None) -> Response:
        require_operator(actor, f"list {kind}s")
        found = engine_of(request).find(kind, state=state, limit=limit + 1, after_id=after)
        page = found[:limit]
        following = page[-1].id if len(found) > limit else None
        return JSONResponse({"items": [aggregate(a) for a in page], "next": following})

    return find


def _operator_routes(routes: APIRouter) -> None:
    def deadlines(request: Request, actor: Acting, due: bool = False, failed: bool = False,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 1000) -> Response:
        """Scheduled deadlines: all, those due by the engine's clock, or the failed ones."""
        require_operator(actor, "list deadlines")
        found = engine_of(request).deadlines(due=due, failed=failed, limit=limit)
        return JSONResponse([plain(d) for d in found])

    def check(request: Request, actor: Acting) -> Response:
        """Verify the whole database (`Engine.check`): the violations, none when it is sound."""
        require_operator(actor, "check")
        violations = engine_of(request).check()
        return JSONResponse({"ok": not violations, "violations": [plain(v) for v in violations]})

    routes.add_api_route("/deadlines", deadlines, methods=["GET"], tags=["operator"],
                         operation_id="deadlines")
    _event_routes(routes)
    routes.add_api_route("/check", check, methods=["POST"], tags=["operator"], operation_id="check")


# --- events out of the database (issue #17, docs/events.md) ---------------------------------

Cursor = Annotated[int, Query(ge=0, le=2**62, description="The position of the last event read "
                                                          "(0: from the oldest kept)")]
PageSize = Annotated[int, Query(ge=1, le=1000)]
SubscriptionName = Annotated[str, Path(max_length=100, pattern=r"^[^\s]+$")]


def _page(events: list[lifecycle.Event]) -> Response:
    """A page of events and the cursor to ask with next (the last position, or None)."""
    return JSONResponse({"items": [{"position": e.position, "event": e.body} for e in events],
                         "next": events[-1].position if events else None})


def _event_routes(routes: APIRouter) -> None:
    """Events for services that run no broker: pages by position, and durable subscriptions
    whose position the database keeps. Every event of every aggregate: operator and system
    keys only."""

    def events(request: Request, actor: Acting, after: Cursor = 0, limit: PageSize = 100) -> Response:
        """Committed events after position ``after``, in commit order (410 when retention
        pruned some of those)."""
        require_operator(actor, "read events")
        return _page(engine_of(request).events(after=after, limit=limit))

    def poll(request: Request, name: SubscriptionName, actor: Acting,
             limit: PageSize = 100) -> Response:
        """The next events of the durable subscription ``name`` (made on first use): the same
        ones until acknowledged."""
        require_operator(actor, "read events")
        return _page(engine_of(request).subscription(name).poll(limit=limit))

    def ack(request: Request, name: SubscriptionName, actor: Acting, body: Body) -> Response:
        """Acknowledge every event of ``name`` up to ``cursor`` (``{"cursor": 42}``); never
        moves it back."""
        require_operator(actor, "acknowledge events")
        cursor = parsed(body)
        if not isinstance(cursor, dict) or set(cursor) != {"cursor"}:
            raise lifecycle.InvalidPayload("body", 'must be {"cursor": POSITION}')
        subscription = engine_of(request).subscription(name)
        subscription.ack(cursor["cursor"])
        return JSONResponse({"name": subscription.name, "cursor": subscription.cursor})

    routes.add_api_route("/events", events, methods=["GET"], tags=["events"], operation_id="events")
    routes.add_api_route("/subscriptions/{name}/events", poll, methods=["GET"], tags=["events"],
                         operation_id="poll_subscription")
    routes.add_api_route("/subscriptions/{name}/ack", ack, methods=["POST"], tags=["events"],
                         operation_id="ack_subscription",
                         openapi_extra={"requestBody": {"required": True, "content": {
                             "application/json": {"schema": {
                                 "type": "object", "required": ["cursor"],
                                 "additionalProperties": False,
                                 "properties": {"cursor": {"type": "integer", "minimum": 0}}}}}}})


# --- the seller's profile and avatar (issue #20, docs/account-profile.md) -------------------


def _profile_routes(routes: APIRouter) -> None:
    """The profile as the key's actor may see it (its privacy levels applied), an avatar's
    upload from its JPEG bytes, and an avatar's image. The generic reads of a profile, a
    contact and an avatar (``GET /v1/profiles/{id}``, its history, ...) answer its owner and
    operators only, as for every kind; anyone else reads a profile through ``/view``."""

    def view(request: Request, id: str, actor: Acting) -> Response:
        """The seller's profile as the key's actor may see it (SPEC §12: privacy)."""
        return JSONResponse(engine_of(request).profile(id, actor))

    async def upload(request: Request, actor: Acting) -> Response:
        """A new avatar from the request's body: the bytes of a JPEG (Content-Type
        image/jpeg), at most the policy's avatar_max_bytes."""
        engine = engine_of(request)
        image = await _capped(request, engine.policy.avatar_max_bytes)
        created = engine.upload_avatar(actor, image)
        return aggregate_response(created, 201, f"/v1/avatars/{created.id}")

    def image(request: Request, id: str, actor: Acting) -> Response:
        """An avatar's JPEG: any to its seller and operators, an approved one to anyone."""
        return Response(engine_of(request).avatar_image(id, actor), media_type="image/jpeg")

    routes.add_api_route("/profiles/{id}/view", view, methods=["GET"], tags=["profile"],
                         operation_id="profile_view")
    routes.add_api_route("/avatars", upload, methods=["POST"], status_code=201, tags=["avatar"],
                         summary="upload an avatar (seller): the body is the JPEG",
                         operation_id="create_avatar",
                         responses={201: _aggregate_doc("Created")},
                         openapi_extra={"requestBody": {"required": True, "content": {
                             "image/jpeg": {"schema": {"type": "string", "format": "binary"}}}}})
    routes.add_api_route("/avatars/{id}/image", image, methods=["GET"], tags=["avatar"],
                         operation_id="avatar_image",
                         responses={200: {"content": {"image/jpeg": {}}}})


async def _capped(request: Request, cap: int) -> bytes:
    """The body, read no further than ``cap``: more is `InvalidPayload` naming ``image``
    (from Content-Length, else as it streams in), nothing written."""
    too_big = lifecycle.InvalidPayload("image", f"is over {cap} bytes: an avatar is at most "
                                                f"{cap} bytes (policy avatar_max_bytes)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)
