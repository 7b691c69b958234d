"""The reads of order messages (issue #20) that need a shape of their own: an order's (or a
dispute's order's) messages as the key's actor sees them, reading them, the actor's unread
counts and a search by label or mark. Sending, labelling and marking are the generic routes of
the ``message`` kind (``POST /v1/messages``, ``POST /v1/messages/{id}/label``, ...)."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

import lifecycle
from lifecycle.service.auth import Acting
from lifecycle.service.representation import plain


def _engine(request: Request) -> lifecycle.Engine:
    engine: lifecycle.Engine = request.app.state.engine
    return engine


def _listed(kind: str, id: str, read: Callable[[], list[lifecycle.OrderMessage]]) -> Response:
    try:
        found = read()
    except lifecycle.Forbidden as error:
        if error.kind:
            raise
        # Not theirs: answered as a read of it is, as if it did not exist (404, not 403).
        raise lifecycle.NotFound(kind, id) from None
    return JSONResponse({kind: id, "items": [plain(m) for m in found]})


def message_routes(routes: APIRouter) -> None:
    tags: list[str | Enum] = ["message"]

    def order_messages(request: Request, id: str, actor: Acting) -> Response:
        """The order's messages, oldest first, as the key's actor sees them: its buyer or
        seller (their own labels and marks) or an operator."""
        return _listed("order", id, lambda: _engine(request).messages(id, actor))

    def read_order_messages(request: Request, id: str, actor: Acting) -> Response:
        """The order's buyer or seller reads its messages: those addressed to them and unread
        are marked read, in one transaction; the messages come back."""
        return _listed("order", id, lambda: _engine(request).read_messages(id, actor))

    def dispute_messages(request: Request, id: str, actor: Acting) -> Response:
        """The messages of the dispute's order: what an operator reads beside the dispute."""
        return _listed("dispute", id, lambda: _engine(request).dispute_messages(id, actor))

    def unread(request: Request, actor: Acting) -> Response:
        """The messages the other side sent the key's actor and it has not read, by order."""
        counts = _engine(request).unread(actor)
        return JSONResponse({"total": counts.total, "by_order": dict(counts.by_order)})

    def search(request: Request, actor: Acting,
               label: Annotated[str | None, Query(max_length=100)] = None,
               mark: Annotated[str | None, Query(max_length=100)] = None) -> Response:
        """Every message across the actor's orders that its side labelled ``label`` and/or
        marked ``mark``, oldest first."""
        found = _engine(request).search_messages(actor, label=label, mark=mark)
        return JSONResponse({"label": label, "mark": mark, "items": [plain(m) for m in found]})

    routes.add_api_route("/orders/{id}/messages", order_messages, methods=["GET"], tags=tags,
                         operation_id="order_messages")
    routes.add_api_route("/orders/{id}/messages/read", read_order_messages, methods=["POST"],
                         tags=tags, operation_id="read_order_messages")
    routes.add_api_route("/disputes/{id}/messages", dispute_messages, methods=["GET"],
                         tags=tags, operation_id="dispute_messages")
    routes.add_api_route("/mailbox/unread", unread, methods=["GET"], tags=tags,
                         operation_id="unread_messages")
    routes.add_api_route("/mailbox/search", search, methods=["GET"], tags=tags,
                         operation_id="search_messages")
