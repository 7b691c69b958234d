"""Inbound webhooks: payment gateways' callbacks and carriers' pushes.

No API key here: the Standard Webhooks signature over the raw body is the authentication, and
the engine verifies it (`Engine.ingest_payment_callback`, `Engine.ingest_tracking`). The body
is read as sent, up to `lifecycle.adapters.MAX_BODY_BYTES`: a larger one is refused with 413
before it is read whole.

Outcomes a provider acts on: 2xx is final (never retry), 401 a bad signature, 400 a delivery
that cannot be read, 413 too large, 409/503 retry later. A capture that could not pay its order
(`CaptureRefused`) is a 200: it is recorded and refunded, and a retry would change nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse

import lifecycle
from lifecycle.service import problems
from lifecycle.service.bodies import capped_body
from lifecycle.service.representation import aggregate

_NAME = Path(pattern=r"^[a-z0-9_\-]{1,50}$", description="The adapter's name (sandbox, dhl)")


Delivery = Annotated[bytes, Depends(capped_body)]


def router() -> APIRouter:
    routes = APIRouter(prefix="/webhooks", tags=["webhooks"], responses={"default": routes_problem()})
    routes.add_api_route("/payments/{gateway}", payment_callback, methods=["POST"],
                         operation_id="payment_callback", openapi_extra=_raw_body())
    routes.add_api_route("/carriers/{carrier}", tracking_push, methods=["POST"],
                         operation_id="tracking_push", openapi_extra=_raw_body())
    return routes


def routes_problem() -> dict[str, Any]:
    return {"description": "A problem (RFC 9457)",
            "content": {problems.MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def _raw_body() -> dict[str, Any]:
    return {"requestBody": {"required": True, "description": "The provider's signed body, as sent",
                            "content": {"application/json": {"schema": {}}}}}


def payment_callback(request: Request, gateway: Annotated[str, _NAME], body: Delivery) -> JSONResponse:
    """A payment gateway's callback: a capture pays its order, once."""
    engine: lifecycle.Engine = request.app.state.engine
    try:
        order = engine.ingest_payment_callback(gateway, body, request.headers.raw)
    except lifecycle.CaptureRefused as refused:
        return JSONResponse({"outcome": "refused", "retry": False, "detail": str(refused),
                             "order_id": refused.order_id, "capture": refused.capture,
                             "refunded": refused.refunded})
    except lifecycle.SignatureInvalid:
        raise
    except lifecycle.AdapterError as unreadable:
        return problems.from_error(unreadable, 400)
    except lifecycle.InvalidPayload as unknown:
        return _unknown_adapter(unknown, "gateway")
    return JSONResponse({"outcome": "applied", "retry": False,
                         "order": aggregate(order) if order is not None else None})


def tracking_push(request: Request, carrier: Annotated[str, _NAME], body: Delivery) -> JSONResponse:
    """A carrier's push of tracking events for the orders its waybills carry."""
    engine: lifecycle.Engine = request.app.state.engine
    try:
        orders = engine.ingest_tracking(carrier, body, request.headers.raw)
    except lifecycle.EventsRejected as partly:
        applied = [a.id for a in partly.applied if isinstance(a, lifecycle.Aggregate)]
        return problems.from_error(partly, 400, {"applied": applied})
    except lifecycle.SignatureInvalid:
        raise
    except lifecycle.AdapterError as unreadable:
        return problems.from_error(unreadable, 400)
    except lifecycle.InvalidPayload as unknown:
        return _unknown_adapter(unknown, "carrier")
    return JSONResponse({"outcome": "applied", "retry": False, "orders": [aggregate(o) for o in orders]})


def _unknown_adapter(error: lifecycle.InvalidPayload, field: str) -> JSONResponse:
    """No such gateway or carrier here: the endpoint does not exist (404), not a bad body."""
    if error.field != field:
        raise error
    return problems.from_error(error, 404)
