"""Who acts: the API key in ``Authorization: Bearer <token>``, acting as the actor its scope
allows (``Lifecycle-Actor`` names one when the key is a role scope's)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

import lifecycle

ACTOR_HEADER = "Lifecycle-Actor"
OPERATORS = ("operator", "system")

_bearer = HTTPBearer(auto_error=False, description="An API key made with `lifecycle keys create`.")


def acting_actor(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    lifecycle_actor: Annotated[str | None, Header(alias=ACTOR_HEADER, description=(
        "The actor id to act as, for a key bound to a role rather than one actor"))] = None,
) -> lifecycle.Actor:
    """The actor of this request; `Unauthenticated` (401) without a valid key, `Forbidden`
    (403) when the key may not act as the actor asked for. Checked before anything is read."""
    engine: lifecycle.Engine = request.app.state.engine
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise lifecycle.Unauthenticated()
    key = engine.authenticate(credentials.credentials)
    return key.acting_as(lifecycle_actor)


Acting = Annotated[lifecycle.Actor, Depends(acting_actor)]


def require_operator(actor: lifecycle.Actor, what: str) -> None:
    """Lists, deadlines and the audit are for operator and system keys only."""
    if actor.role not in OPERATORS:
        raise lifecycle.Forbidden(actor.role, actor.id, what,
                                  "only operator and system keys may do that")
