"""Errors as RFC 9457 problem details (``application/problem+json``).

Every `LifecycleError` becomes one problem: a stable ``type`` URI per error class, its ``title``,
the HTTP ``status``, the error's one line as ``detail``, and the data it carries (kind, id, state,
trigger, allowed, rule, field, ...) as extension members, so a client reads the same facts the
CLI prints. An exception we did not mean to raise is a bare 500: no message, no traceback.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import structlog
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

import lifecycle

log = structlog.get_logger(__name__)

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "tag:lifecycle.dev,2026:problem/"
#: seconds a client should wait before retrying a `Conflict` or an `Unavailable`
RETRY_AFTER: tuple[tuple[type[Exception], str], ...] = (
    (lifecycle.Conflict, "1"),
    (lifecycle.Unavailable, "5"),
)

#: most specific class first: the first one an error is an instance of gives its status
STATUSES: tuple[tuple[type[Exception], int], ...] = (
    (lifecycle.NotFound, 404),
    (lifecycle.Forbidden, 403),
    (lifecycle.Unauthenticated, 401),
    (lifecycle.SignatureInvalid, 401),
    (lifecycle.UnknownKind, 404),
    (lifecycle.InvalidPayload, 422),
    (lifecycle.InvalidTransition, 409),
    (lifecycle.GuardFailed, 422),
    (lifecycle.Conflict, 409),
    (lifecycle.AlreadyExists, 409),
    (lifecycle.IdempotencyMismatch, 422),
    (lifecycle.Unavailable, 503),
    (lifecycle.PaymentDeclined, 402),
    (lifecycle.InvalidWaybill, 422),
    (lifecycle.AdapterError, 502),  # an outgoing call failed; an unreadable delivery is 400
    (lifecycle.SchemaOutdated, 503),
    (lifecycle.EventsExpired, 410),  # pruned by retention: gone, and it will not come back
)

#: the error data a problem may carry: plain values only (never a database URL)
_MEMBERS = ("kind", "id", "state", "trigger", "allowed", "rule", "field", "expected_version",
            "role", "actor_id", "reason", "key", "adapter", "operation", "retryable", "timeout",
            "order_id", "capture", "refunded", "number", "problem", "rejected", "after", "first")


def slug(cls: type[Exception]) -> str:
    """``InvalidTransition`` → ``invalid-transition``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", cls.__name__).lower()


def type_uri(cls: type[Exception]) -> str:
    return TYPE_PREFIX + slug(cls)


def status_of(error: Exception) -> int:
    return next((status for cls, status in STATUSES if isinstance(error, cls)), 500)


def problem(status: int, type: str, title: str, detail: str,
            extra: Mapping[str, Any] | None = None,
            headers: Mapping[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": type, "title": title, "status": status, "detail": detail}
    body.update(extra or {})
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=dict(headers or {}))


def from_error(error: lifecycle.LifecycleError, status: int | None = None,
               extra: Mapping[str, Any] | None = None) -> JSONResponse:
    """The problem for one of our errors; ``status`` overrides the class's (412, 400)."""
    cls = type(error)
    status = status or status_of(error)
    members = {name: _plain(getattr(error, name)) for name in _MEMBERS
               if _plain(getattr(error, name, None)) is not None}
    members.update(extra or {})
    headers = {}
    retry_after = next((seconds for cls_, seconds in RETRY_AFTER if isinstance(error, cls_)), None)
    if retry_after is not None and status != 412:  # a failed If-Match wants a fresh read first
        headers["Retry-After"] = retry_after
    if isinstance(error, lifecycle.Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    uri, title = type_uri(cls), _title(cls)
    if status == 412:
        uri, title = TYPE_PREFIX + "precondition-failed", "Precondition failed"
    return problem(status, uri, title, " ".join(str(error).split()), members, headers)


def _title(cls: type[Exception]) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", " ", cls.__name__).capitalize()


def _plain(value: Any) -> Any:
    """A JSON value for an error's attribute, or None to leave it out."""
    if isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return value or None  # "" is what an error says when it does not know
    if isinstance(value, tuple | list) and all(isinstance(v, str | int | None) for v in value):
        return list(value)
    if isinstance(value, tuple | list) and all(isinstance(v, tuple) for v in value):
        return [list(v) for v in value]  # EventsRejected.rejected: (position, event id, why)
    return None


class MalformedBody(Exception):
    """A request body that is not JSON, or repeats a key (`lifecycle.loads_json`): 400."""


# --- the handlers the app installs ------------------------------------------------------------


async def lifecycle_error(request: Request, error: Exception) -> JSONResponse:
    if not isinstance(error, lifecycle.LifecycleError):
        return await unexpected(request, error)
    return from_error(error)


async def validation_error(request: Request, error: Exception) -> JSONResponse:
    """FastAPI's own checks (a query parameter out of range, a header missing): 422, with
    each error's field as the path it names."""
    if not isinstance(error, RequestValidationError):
        return await unexpected(request, error)
    errors = [{"field": ".".join(str(part) for part in e.get("loc", ())), "message": e.get("msg", "")}
              for e in error.errors()]
    first = errors[0] if errors else {"field": "request", "message": "invalid"}
    return problem(422, TYPE_PREFIX + "invalid-request", "Invalid request",
                   f"invalid {first['field']}: {first['message']}",
                   {"field": first["field"], "errors": errors})


async def malformed_body(request: Request, error: Exception) -> JSONResponse:
    return problem(400, TYPE_PREFIX + "malformed-body", "Malformed body",
                   f"the body is not a JSON document: {' '.join(str(error).split())}",
                   {"field": "body"})


async def http_error(request: Request, error: Exception) -> JSONResponse:
    """Starlette's 404 for a path no route serves, 405 for a method, and our own 413."""
    if not isinstance(error, HTTPException):
        return await unexpected(request, error)
    titles = {404: "Not found", 405: "Method not allowed", 413: "Content too large"}
    headers = dict(error.headers or {})
    detail = str(error.detail)
    if error.status_code in (404, 405):
        detail = f"no route for {request.method} {request.url.path}"
    return problem(error.status_code, TYPE_PREFIX + f"http-{error.status_code}",
                   titles.get(error.status_code, "HTTP error"), detail, headers=headers)


async def unexpected(request: Request, error: Exception) -> JSONResponse:
    log.error("service.unexpected_error", path=request.url.path, error=type(error).__name__,
              exc_info=error)
    return problem(500, TYPE_PREFIX + "internal", "Internal error",
                   "the server failed to handle the request; it has been logged")


#: the OpenAPI schema of a problem body
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
    },
    "additionalProperties": True,
}
