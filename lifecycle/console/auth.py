"""How an operator signs in to the console, and how its forms are protected.

An operator signs in once with an operator API key (``lifecycle keys create --role operator
--id ana``), pasted into the sign-in page; a role-scope key (``--role operator`` without
``--id``) also names the operator it acts as. The token is kept in an ``HttpOnly``,
``SameSite=Strict`` cookie limited to ``/console`` (``Secure`` when served over HTTPS) and is
checked on every request exactly as the API checks a bearer key, so revoking the key
(``lifecycle keys revoke``) signs the console out at its next page. What the operator fires is
recorded in history under the key's operator id.

Every form that changes something carries a CSRF token: an HMAC of the cookie's token, which a
page of another origin can neither read nor compute; a POST without the right one is refused
and changes nothing. ``SameSite=Strict`` keeps the cookie off cross-site requests besides.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from fastapi import Request

import lifecycle

TOKEN_COOKIE = "lifecycle_console"
ACTOR_COOKIE = "lifecycle_console_actor"
CSRF_FIELD = "csrf"
ROLE = "operator"


class SignInNeeded(Exception):
    """No cookie, or its key no longer lets the operator in: back to the sign-in page."""

    def __init__(self, reason: str = ""):
        super().__init__(reason)
        self.reason = reason


class CsrfRefused(Exception):
    """A form posted without the CSRF token of the operator's session."""


@dataclass(frozen=True)
class Operator:
    """The signed-in operator: who acts, by which key, and the session's CSRF token."""

    actor: lifecycle.Actor
    key_id: str
    csrf: str


def csrf_token(token: str) -> str:
    """The CSRF token of a session: HMAC-SHA256 of its API key token, keyed for this use."""
    return hmac.new(b"lifecycle console csrf", token.encode(), hashlib.sha256).hexdigest()


def sign_in(engine: lifecycle.Engine, token: str, actor_id: str | None) -> lifecycle.Actor:
    """The operator ``token`` lets in. `Unauthenticated` for a bad token; `Forbidden` for a key
    of another role, or a role scope without the operator's id (`ApiKey.acting_as`)."""
    key = engine.authenticate(token.strip())
    if key.role != ROLE:
        raise lifecycle.Forbidden(key.role, key.actor_id or "*", "use the console",
                                  f"API key {key.id} is a {key.role} key; the console takes "
                                  "operator keys (lifecycle keys create --role operator)")
    return key.acting_as(actor_id or None)


def operator(request: Request) -> Operator:
    """The operator of this request, from the session cookie; `SignInNeeded` without one."""
    engine: lifecycle.Engine = request.app.state.engine
    token = request.cookies.get(TOKEN_COOKIE)
    if not token:
        raise SignInNeeded()
    try:
        actor = sign_in(engine, token, request.cookies.get(ACTOR_COOKIE))
    except (lifecycle.Unauthenticated, lifecycle.Forbidden, lifecycle.InvalidPayload) as error:
        raise SignInNeeded(str(error)) from None
    key_id = token.split("_")[1] if token.count("_") >= 2 else ""
    return Operator(actor, key_id, csrf_token(token))


def check_csrf(request: Request, who: Operator, sent: str | None) -> None:
    """Refuse a POST whose CSRF token is not the session's."""
    if not sent or not hmac.compare_digest(sent, who.csrf):
        raise CsrfRefused()
