"""A profile's email or phone being confirmed (SPEC §12, issue #20): kind ``contact``, one per
seller and channel (``acme:email``, ``acme:phone``).

A new address takes effect on the profile only once confirmed. Giving one (the profile's
``create`` or ``update``) sends a six-digit code to it through the notification outbox
(``notification.email`` / ``notification.sms``, category account_security: always sent) and
waits ``unverified``; ``confirm`` with the code moves it to ``verified`` and writes the address
on the profile. The code expires after the policy's ``contact_code_expiry`` (30 minutes): a
deadline moves the contact to ``expired``. Only a salted SHA-256 of the code is kept in the
data; a wrong or expired code is refused, each with its own rule, and writes nothing.

A new code always enters a state, so that its deadline starts afresh (a transition that stays
in its state keeps the clocks running): a code asked for while one is outstanding moves
``unverified`` to ``reissued`` and back, both "waiting for a code".
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import StringConstraints

from lifecycle.machines.definition import (
    Context,
    Deadline,
    Fire,
    Guard,
    MachineDefinition,
    Transition,
    sends,
)
from lifecycle.machines.notifications import ACCOUNT_SECURITY, notify
from lifecycle.machines.payloads import Empty, Payload, iso
from lifecycle.policy import in_words

SELLER, SYSTEM = frozenset({"seller"}), frozenset({"system"})
OPERATOR = frozenset({"operator"})

CHANNELS = ("email", "phone")
WAITING = ("unverified", "reissued")  # a code is out, not yet confirmed
STATES = (*WAITING, "verified", "expired", "closed")
CODE_DIGITS = 6


def contact_id(seller: str, channel: str) -> str:
    """The contact of one seller's email or phone: ``acme:email``."""
    return f"{seller}:{channel}"


class ContactRequest(Payload):
    """Written by the profile's create or update; never sent by a caller. The address was
    checked there (`contact_points`)."""

    seller: str
    channel: Literal["email", "phone"]
    address: Annotated[str, StringConstraints(min_length=1, max_length=254)]


class Confirmation(Payload):
    code: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9]{6}$")]


# --- the code: made here, sent once, kept only as a digest ------------------------------------


def _digest(salt: str, code: str) -> str:
    return hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()


def _send_code(ctx: Context, address: str) -> None:
    """A fresh code for ``address``: its digest and expiry in the data, the code itself only
    in the notification (the one place a person reads it)."""
    code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
    salt = secrets.token_hex(8)
    expires = ctx.now + ctx.policy.contact_code_expiry
    ctx.data.update(pending=address, code_salt=salt, code_sha256=_digest(salt, code),
                    code_sent_at=iso(ctx.now), code_expires_at=iso(expires))
    channel = ctx.data["channel"]
    notify(ctx, account=ctx.data["seller"], category=ACCOUNT_SECURITY,
           template=f"contact.verify_{channel}", channel="email" if channel == "email" else "sms",
           address=address,
           values={"code": code, "expires_at": iso(expires),
                   "valid_for": in_words(ctx.policy.contact_code_expiry)})


def _forget_code(ctx: Context) -> None:
    for name in ("pending", "code_salt", "code_sha256", "code_sent_at", "code_expires_at"):
        ctx.data.pop(name, None)


# --- rules --------------------------------------------------------------------------------


def _unexpired(ctx: Context) -> bool:
    """Until the deadline has moved it to ``expired`` (where confirm is no transition), the
    code's time is checked here: a timer worker may run late."""
    return ctx.now < datetime.fromisoformat(ctx.data["code_expires_at"])


def _code_matches(ctx: Context) -> bool:
    given = _digest(ctx.data["code_salt"], ctx.payload.code)
    return hmac.compare_digest(given, ctx.data["code_sha256"])


def _expired_words(ctx: Context) -> str:
    return (f"the code has expired (codes are valid for "
            f"{in_words(ctx.policy.contact_code_expiry)}); ask for a new one")


CODE_UNEXPIRED = Guard("contact.code_unexpired", _unexpired, _expired_words, uses_payload=False)
CODE_MATCHES = Guard("contact.code_matches", _code_matches,
                     "the code is wrong: nothing was changed; check the latest message")


# --- effects ------------------------------------------------------------------------------


def _request(ctx: Context) -> None:
    ctx.data.update(seller=ctx.payload.seller, channel=ctx.payload.channel)
    _send_code(ctx, ctx.payload.address)


def _change(ctx: Context) -> None:
    _send_code(ctx, ctx.payload.address)


def _resend(ctx: Context) -> None:
    _send_code(ctx, ctx.data["pending"])


@sends(("profile", "apply_contact"))
def _confirm(ctx: Context) -> None:
    address = ctx.data["pending"]
    _forget_code(ctx)
    ctx.data.update(address=address, verified_at=iso(ctx.now))
    ctx.follow_ups.append(Fire("profile", ctx.data["seller"], "apply_contact",
                               {"channel": ctx.data["channel"], "address": address}))


def _expire(ctx: Context) -> None:
    # The address stays pending: ``resend`` sends it a new code.
    for name in ("code_salt", "code_sha256", "code_sent_at", "code_expires_at"):
        ctx.data.pop(name, None)
    ctx.data["expired_at"] = iso(ctx.now)


def _has_pending(ctx: Context) -> bool:
    return "pending" in ctx.data


def _internal(trigger: str, source: tuple[str, ...], dest: str | None, payload: Any,
              effect: Any) -> Transition:
    return Transition(trigger, source, dest, SYSTEM, payload, (), effect, internal=True)


HAS_PENDING = Guard("contact.has_pending", _has_pending,
                    "no address is waiting for a code: change the email or phone first",
                    uses_payload=False)

DEFINITION = MachineDefinition(
    "contact",
    states=STATES,
    terminal=frozenset({"closed"}),
    owners={"seller": lambda id, data: data["seller"]},
    new_id=lambda actor: "",  # never used: a contact's id is its seller's and channel's
    transitions=(
        _internal("request", (), "unverified", ContactRequest, _request),
        # A new address: a new code, and a state entered afresh so its deadline starts anew.
        _internal("change", ("unverified",), "reissued", ContactRequest, _change),
        _internal("change", ("reissued", "verified", "expired"), "unverified", ContactRequest,
                  _change),
        Transition("resend", ("unverified",), "reissued", SELLER | OPERATOR, Empty,
                   (HAS_PENDING,), _resend),
        Transition("resend", ("reissued", "expired"), "unverified", SELLER | OPERATOR, Empty,
                   (HAS_PENDING,), _resend),
        Transition("confirm", WAITING, "verified", SELLER, Confirmation,
                   (CODE_UNEXPIRED, CODE_MATCHES), _confirm),
        Transition("expire", WAITING, "expired", SYSTEM, Empty, (), _expire),
        _internal("close", (*WAITING, "verified", "expired"), "closed", Empty, _forget_code),
    ),
    deadlines=tuple(Deadline(state, "expire", lambda policy, data: timedelta(0), "code_expires_at")
                    for state in WAITING),
)
