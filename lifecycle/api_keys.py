"""API keys (issue #16): who may call the service, and as whom.

A key is bound to one actor (a buyer's key acts only as that buyer, a seller's only for that
store) or is a role scope (``actor_id`` None: it acts as any actor of its role, and each call
names which). Its token, ``lck_<key id>_<secret>``, is shown once, when the key is made; the
database keeps only the SHA-256 of the secret, so a copy of the database lets nobody in.

SHA-256 and not a slow password hash (bcrypt, scrypt, argon2): the secret is 32 random bytes
from `secrets`, not something a person chose, so there is no dictionary to try and 256 bits
are out of reach of any number of guesses; a slow hash would only make each request slower.
Authenticating is one primary-key read and a constant-time comparison of the digests.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from lifecycle.actor import ROLES, Actor
from lifecycle.clock import Clock
from lifecycle.errors import Forbidden, InvalidPayload, NotFound, Unauthenticated
from lifecycle.ids import identifier
from lifecycle.store.datastore import Store
from lifecycle.store.keys import StoredKey

log = structlog.get_logger("lifecycle")

TOKEN_PREFIX = "lck"
# "k" and 12 hex digits (48 random bits: ids need only be unique, the secret is what protects).
KEY_ID = re.compile(r"k[0-9a-f]{12}")
# secrets.token_urlsafe(32): 43 characters of the URL-safe base64 alphabet.
SECRET_BYTES = 32
TOKEN = re.compile(rf"{TOKEN_PREFIX}_(?P<id>{KEY_ID.pattern})_(?P<secret>[A-Za-z0-9_-]{{43}})")
LABEL_LIMIT = 200
ACTOR_ID_LIMIT = 100  # as `Actor` allows
# What an unknown key's secret is compared with, so that it costs what a known one does.
_NO_DIGEST = hashlib.sha256(b"no such key").hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as anyone may see it: never its token or the digest of its secret."""

    id: str  # "k" + 12 hex characters, public (shown in lists and logs)
    role: str  # one of lifecycle.ROLES
    actor_id: str | None  # bound to this actor; None: a role scope (any actor of the role)
    label: str
    created_at: datetime
    revoked_at: datetime | None

    def acting_as(self, requested: str | None = None) -> Actor:
        """The actor a call made with this key acts as.

        A bound key acts as its actor: ``requested`` may be omitted or name that same actor;
        another id is `Forbidden`. A role scope acts as the actor ``requested`` names (a valid
        actor id, else `InvalidPayload`), and must be told: without it, `Forbidden`.
        """
        if self.actor_id is not None:
            if requested is None or requested == self.actor_id:
                return Actor(self.role, self.actor_id)
            raise Forbidden(self.role, self.actor_id, f"act as {self.role} {requested}",
                            f"API key {self.id} acts only as {self.role} {self.actor_id}")
        if requested is None:
            raise Forbidden(self.role, "*", "act without naming the actor",
                            f"API key {self.id} is a role scope (any {self.role}): the call "
                            f"must name the {self.role} it acts as")
        return Actor(self.role, requested)

    @classmethod
    def of(cls, stored: StoredKey) -> ApiKey:
        return cls(stored.id, stored.role, stored.actor_id, stored.label, stored.created_at,
                   stored.revoked_at)


class ApiKeys:
    """Making, listing, revoking and checking keys, on the engine's store and clock."""

    def __init__(self, store: Store, clock: Clock):
        self.store = store
        self.clock = clock

    def create(self, role: str, actor_id: str | None = None,
               label: str = "") -> tuple[ApiKey, str]:
        """A new key and its token (shown this once; only its digest is kept)."""
        role, actor_id, label = _role_of(role), _actor_id_of(actor_id), _label_of(label)
        if actor_id is not None:
            # The actor the key will act as must be one: a sub-account's (``acme/ana``) only
            # for a seller key, refused before anything is written.
            Actor(role, actor_id)
        now = self.clock.now().astimezone(UTC)
        for _attempt in range(5):
            key_id = f"k{secrets.token_hex(6)}"
            secret = secrets.token_urlsafe(SECRET_BYTES)
            stored = StoredKey(key_id, role, actor_id, label, _digest(secret), now, None)
            try:
                with self.store.transaction() as records:
                    records.store_key(stored)
            except self.store.duplicate:
                continue  # 48 random bits met an id already taken: draw another
            log.info("api_key.created", key=key_id, role=role, actor_id=actor_id)
            return ApiKey.of(stored), f"{TOKEN_PREFIX}_{key_id}_{secret}"
        raise RuntimeError("no free API key id after 5 draws")  # pragma: no cover

    def listed(self, include_revoked: bool = False) -> list[ApiKey]:
        with self.store.reading() as records:
            return [ApiKey.of(stored)
                    for stored in records.stored_keys(include_revoked=include_revoked)]

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke the key from now on; a key revoked already keeps its first revocation."""
        key_id = identifier(key_id, "key_id", limit=100)
        with self.store.transaction() as records:
            records.revoke_key(key_id, self.clock.now().astimezone(UTC))
            stored = records.stored_key(key_id)
        if stored is None:
            raise NotFound("api key", key_id)
        log.info("api_key.revoked", key=key_id, revoked_at=stored.revoked_at)
        return ApiKey.of(stored)

    def authenticate(self, token: object) -> ApiKey:
        """The key ``token`` is the token of; `Unauthenticated` (one message for every reason)
        when it is missing, malformed, unknown, has the wrong secret or is revoked."""
        found = TOKEN.fullmatch(token) if isinstance(token, str) else None
        if found is None:
            log.info("api_key.refused", reason="malformed")
            raise Unauthenticated()
        key_id = found["id"]
        with self.store.quick() as records:
            stored = records.stored_key(key_id)
        matches = hmac.compare_digest(_digest(found["secret"]),
                                      stored.secret_sha256 if stored is not None else _NO_DIGEST)
        if stored is None or not matches or stored.revoked_at is not None:
            reason = ("unknown" if stored is None else "wrong secret" if not matches
                      else "revoked")
            log.info("api_key.refused", key=key_id, reason=reason)
            raise Unauthenticated()
        return ApiKey.of(stored)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _role_of(role: object) -> str:
    if not isinstance(role, str) or role not in ROLES:
        raise InvalidPayload("role", f"{role!r} is not one of {', '.join(ROLES)}")
    return role


def _actor_id_of(actor_id: object) -> str | None:
    return None if actor_id is None else identifier(actor_id, "actor_id", limit=ACTOR_ID_LIMIT)


def _label_of(label: object) -> str:
    """Free text for people (spaces allowed), but nothing a reader cannot see."""
    if not isinstance(label, str):
        raise InvalidPayload("label", f"must be a string, got {type(label).__name__}")
    if len(label) > LABEL_LIMIT:
        raise InvalidPayload("label", f"must be at most {LABEL_LIMIT} characters, got {len(label)}")
    if not label.isprintable():
        raise InvalidPayload("label", "must not contain control or invisible characters")
    return label
