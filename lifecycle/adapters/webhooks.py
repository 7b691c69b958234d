"""Webhooks: the Standard Webhooks scheme (https://www.standardwebhooks.com) for the callbacks
and pushes a provider sends us, and the sandbox's mailbox of them.

A delivery carries three headers: ``webhook-id`` (the message's id, the same on every retry),
``webhook-timestamp`` (unix seconds when this attempt was signed) and ``webhook-signature``:
space-separated ``v1,<base64 HMAC-SHA256(key, f"{id}.{timestamp}.{body}")>`` entries, any one of
which may match (a sender rotating its secret signs with both). The timestamp must be within
`TOLERANCE` of the engine's clock (not the system clock: a simulation runs on a simulated one),
so a captured delivery cannot be replayed later; the engine de-duplicates by event id within it.
The body is checked against `MAX_BODY_BYTES` before it is hashed, and verified before it is
parsed: nothing in an unsigned body is trusted, not even its JSON.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from lifecycle.adapters.errors import AdapterError, SignatureInvalid
from lifecycle.adapters.faults import chance
from lifecycle.clock import Clock

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"
TOLERANCE = timedelta(minutes=5)
"""How far a delivery's ``webhook-timestamp`` may be from the engine's clock, either way."""
MAX_BODY_BYTES = 1024 * 1024
"""The largest body `verify` reads: a callback or push is a few hundred bytes; 1 MiB is ample."""
_VERSION = "v1"

Secret = str | bytes
"""A webhook secret: ``whsec_<base64>`` text as Standard Webhooks prints it, or the raw key bytes."""


def webhook_key(secret: Secret) -> bytes:
    """The HMAC key of ``secret``: the base64-decoded part of ``whsec_<base64>``, or raw bytes as
    they are. Anything else (other text, bad base64, an empty key) is a `ValueError` saying so."""
    if isinstance(secret, bytes | bytearray):
        key = bytes(secret)
    elif isinstance(secret, str):
        if not secret.startswith(SECRET_PREFIX):
            raise ValueError(f"a webhook secret given as text is {SECRET_PREFIX}<base64>; "
                             "pass bytes for a raw key")
        # Unpadded base64 is common in the wild: pad it to a whole number of quads.
        encoded = secret[len(SECRET_PREFIX):].rstrip("=")
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"webhook secret {SECRET_PREFIX}… is not valid base64 after the "
                             "prefix") from None
    else:
        raise ValueError(f"a webhook secret is str ({SECRET_PREFIX}<base64>) or bytes, "
                         f"got {type(secret).__name__}")
    if not key:
        raise ValueError("a webhook secret must not be empty")
    return key


def webhook_keys(secrets: Secret | Sequence[Secret]) -> tuple[bytes, ...]:
    """The keys of one secret or several (rotation: the first signs, any one verifies)."""
    given = [secrets] if isinstance(secrets, str | bytes | bytearray) else list(secrets)
    if not given:
        raise ValueError("at least one webhook secret is needed")
    return tuple(webhook_key(secret) for secret in given)


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` entry (``v1,<base64>``) that signs ``body`` as message
    ``message_id`` at ``timestamp`` (unix seconds) with ``key``."""
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return f"{_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signed_headers(key: bytes, message_id: str, at: datetime, body: bytes) -> dict[str, str]:
    """The three headers of a delivery of ``body`` as message ``message_id``, signed ``at`` (an
    aware datetime; a sender signs each attempt when it makes it)."""
    timestamp = _unix_seconds(at)
    return {ID_HEADER: message_id, TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(key, message_id, timestamp, body)}


def _unix_seconds(at: datetime) -> int:
    if at.tzinfo is None:
        raise ValueError("a webhook timestamp needs an aware datetime (tzinfo=UTC)")
    return math.floor(at.timestamp())


def delivery(body: Any, headers: Any, *, adapter: str, operation: str) -> tuple[bytes, dict[str, str]]:
    """A delivery as a web framework hands it over, in the one form adapters read: the body as
    bytes, the headers as a dict from lower-case name to text.

    Accepted: a body of bytes (or bytearray, memoryview) or str (encoded UTF-8); headers as a
    mapping or as an iterable of (name, value) pairs (ASGI's ``[(b"name", b"value")]``), names
    and values str or bytes (bytes read as ISO-8859-1, as HTTP sends them). Names are
    case-insensitive; a name given twice has its values joined with ", " (RFC 9110 §5.3), so
    every signature sent is read, not only the first. A body over `MAX_BODY_BYTES` (as bytes,
    or as text encoded) and anything else is an `AdapterError`.
    """
    return _body(body, adapter, operation), _headers(headers, adapter, operation)


def _body(body: Any, adapter: str, operation: str) -> bytes:
    # The cap is checked here, before anything is copied, encoded or hashed: every adapter's
    # delivery passes through, whether or not its parser calls `verify`.
    size = body.nbytes if isinstance(body, memoryview) else (
        len(body) if isinstance(body, bytes | bytearray | str) else 0)
    if size > MAX_BODY_BYTES:
        raise _too_large(adapter, operation)
    if isinstance(body, bytes):
        return body
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        try:
            encoded = body.encode("utf-8")
        except UnicodeEncodeError:
            raise AdapterError(adapter, operation, "malformed delivery: the body is not text "
                                                   "UTF-8 can carry") from None
        if len(encoded) > MAX_BODY_BYTES:  # fewer characters than the cap, more bytes
            raise _too_large(adapter, operation)
        return encoded
    raise AdapterError(adapter, operation, "malformed delivery: the body must be bytes or str, "
                                           f"got {type(body).__name__}")


class _Read(dict[str, str]):
    """Headers `delivery` has read already: names lower-cased, repeats joined. A delivery is
    read three times on its way (the ingestion, the adapter, `verify`); once is enough."""


def _headers(headers: Any, adapter: str, operation: str) -> dict[str, str]:
    if type(headers) is _Read:
        return headers
    pairs: Iterable[Any]
    if isinstance(headers, Mapping):
        pairs = headers.items()
    elif isinstance(headers, str | bytes | bytearray) or not isinstance(headers, Iterable):
        raise AdapterError(adapter, operation, "malformed delivery: the headers must be a mapping "
                                               f"or (name, value) pairs, got {type(headers).__name__}")
    else:
        pairs = headers
    found: dict[str, str] = {}
    for pair in pairs:
        if not isinstance(pair, tuple | list) or len(pair) != 2:
            raise AdapterError(adapter, operation, "malformed delivery: a header is not a "
                                                   f"(name, value) pair: {pair!r:.60}")
        name, value = (_text(part, adapter, operation) for part in pair)
        name = name.lower()
        found[name] = f"{found[name]}, {value}" if name in found else value
    return _Read(found)


def _text(part: Any, adapter: str, operation: str) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, bytes | bytearray):
        return part.decode("latin-1")
    raise AdapterError(adapter, operation, "malformed delivery: header names and values must be "
                                           f"str or bytes, got {type(part).__name__}")


def verify(keys: Sequence[bytes], body: Any, headers: Any, *, now: datetime, adapter: str,
           operation: str, tolerance: timedelta = TOLERANCE) -> None:
    """Return if ``headers`` carry a valid Standard Webhooks signature of ``body`` by any of
    ``keys``, timestamped within ``tolerance`` of ``now`` (the engine's clock).

    Raises `SignatureInvalid` naming what is wrong (a header missing, malformed, a timestamp too
    old or too new, no signature matching), or `AdapterError` for a delivery in no form
    `delivery` reads or a body over `MAX_BODY_BYTES` (checked before anything is hashed).
    """
    body, found = delivery(body, headers, adapter=adapter, operation=operation)  # checks the cap
    message_id, timestamp, given = _signature_headers(found, adapter, operation)
    _check_timestamp(timestamp, now, tolerance, adapter, operation)
    candidates = _signatures(given, adapter, operation)
    # surrogatepass: a header value made up in Python may hold what no HTTP request can.
    signed = f"{message_id}.{timestamp}.".encode("utf-8", "surrogatepass") + body
    for key in keys:
        expected = hmac.new(key, signed, hashlib.sha256).digest()
        # compare_digest: the time taken must not reveal how much of a forged signature was right.
        if any(hmac.compare_digest(expected, candidate) for candidate in candidates):
            return
    raise SignatureInvalid(adapter, operation, "no signature matches the body with any of the "
                                               f"{len(keys)} configured secret(s)")


def _too_large(adapter: str, operation: str) -> AdapterError:
    return AdapterError(adapter, operation, f"the body is over {MAX_BODY_BYTES} bytes")


def _signature_headers(found: Mapping[str, str], adapter: str, operation: str) -> tuple[str, int, str]:
    missing = [name for name in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER) if not found.get(name)]
    if missing:
        raise SignatureInvalid(adapter, operation, f"unsigned: no {', '.join(missing)} header")
    raw = found[TIMESTAMP_HEADER].strip()
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise SignatureInvalid(adapter, operation, f"malformed {TIMESTAMP_HEADER}: expected unix "
                                                   f"seconds, got {raw!r:.40}")
    return found[ID_HEADER], int(raw), found[SIGNATURE_HEADER]


def _check_timestamp(timestamp: int, now: datetime, tolerance: timedelta, adapter: str,
                     operation: str) -> None:
    skew = timestamp - _unix_seconds(now)
    limit = math.floor(tolerance.total_seconds())
    if skew < -limit:
        raise SignatureInvalid(adapter, operation, f"{TIMESTAMP_HEADER} too old: {-skew}s before the "
                                                   f"engine's clock (tolerance {limit}s)")
    if skew > limit:
        raise SignatureInvalid(adapter, operation, f"{TIMESTAMP_HEADER} too new: {skew}s after the "
                                                   f"engine's clock (tolerance {limit}s)")


def _signatures(given: str, adapter: str, operation: str) -> list[bytes]:
    """The v1 signatures in a ``webhook-signature`` value. Entries of other versions are
    skipped, as the scheme says; a header given twice was joined with ", " by `delivery`."""
    found: list[bytes] = []
    for entry in given.split():
        version, comma, encoded = entry.rstrip(",").partition(",")
        if version != _VERSION or not comma:
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    if not found:
        raise SignatureInvalid(adapter, operation, f"malformed {SIGNATURE_HEADER}: expected "
                                                   f"{_VERSION},<base64> entries")
    return found


@dataclass(frozen=True, slots=True)
class SignedMessage:
    """One webhook delivery as it arrives over HTTP: the raw body and its headers."""

    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeliveryRates:
    """Probability (0 to 1) that a message is delivered twice, or late (after later ones)."""

    duplicate: float = 0.0
    late: float = 0.0

    def __post_init__(self) -> None:
        if not (0 <= self.duplicate <= 1 and 0 <= self.late <= 1):
            raise ValueError("delivery rates are probabilities in [0, 1]")


@dataclass(frozen=True, slots=True)
class _Posted:
    """A message posted and not yet delivered: signed only when it is taken."""

    body: bytes
    message_id: str


class Mailbox:
    """Messages waiting to be delivered, in delivery order, with duplicates and late arrivals.

    A late message skips one `take` and is delivered at the end of the next, after everything
    posted in between: that is how an out-of-order delivery looks to the receiver. Each
    delivery is signed when it is taken, at ``clock.now()``, as a real provider signs each
    attempt: a late one is never outside the receiver's tolerance. A duplicate keeps its
    message's ``webhook-id``.
    """

    def __init__(self, key: bytes, seed: int, rates: DeliveryRates, clock: Clock):
        self._key, self._seed, self._rates, self._clock = key, seed, rates, clock
        self._due: list[_Posted] = []
        self._held: list[_Posted] = []
        self._releasing: list[_Posted] = []
        self._next_duplicate = False
        self._next_late = False

    def inject(self, *, duplicate: bool = False, late: bool = False) -> None:
        """Make the next message posted arrive twice and/or late."""
        self._next_duplicate = self._next_duplicate or duplicate
        self._next_late = self._next_late or late

    def post(self, body: bytes, message_id: str) -> None:
        """Queue ``body`` as message ``message_id``, which also seeds its duplicate and late draws."""
        message = _Posted(body, message_id)
        duplicate = self._next_duplicate or chance(self._rates.duplicate, self._seed, "duplicate", message_id)
        late = self._next_late or chance(self._rates.late, self._seed, "late", message_id)
        self._next_duplicate = self._next_late = False
        (self._held if late else self._due).append(message)
        if duplicate:
            self._due.append(message)

    def take(self) -> list[SignedMessage]:
        """Everything due now, oldest first, then what was held back at the previous take."""
        delivered = self._due + self._releasing
        # Held messages wait one more take, so they land after whatever is posted meanwhile.
        self._due, self._releasing, self._held = [], self._held, []
        return self._signed(delivered)

    def flush(self) -> list[SignedMessage]:
        """Everything still waiting, held ones included (the end of a simulation)."""
        delivered = self._due + self._releasing + self._held
        self._due, self._releasing, self._held = [], [], []
        return self._signed(delivered)

    def pending(self) -> int:
        """How many deliveries are still waiting, held ones included."""
        return len(self._due) + len(self._releasing) + len(self._held)

    def _signed(self, posted: list[_Posted]) -> list[SignedMessage]:
        at = self._clock.now()
        return [SignedMessage(p.body, {**signed_headers(self._key, p.message_id, at, p.body),
                                       "content-type": "application/json"})
                for p in posted]
