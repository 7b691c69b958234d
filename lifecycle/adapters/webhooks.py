"""Webhooks: HMAC-SHA256 signed messages a provider sends us, and the sandbox's mailbox of them.

The signature is ``sha256=<hex of HMAC-SHA256(secret, body)>`` in the ``X-Lifecycle-Signature``
header. The body is verified before it is parsed: nothing in an unsigned body is trusted, not even
its JSON. Replay protection is the engine's job (it de-duplicates by event id), so there is no
timestamp to check here and no clock needed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lifecycle.adapters.errors import AdapterError, SignatureInvalid
from lifecycle.adapters.faults import chance

SIGNATURE_HEADER = "X-Lifecycle-Signature"
_SCHEME = "sha256="


def signature(secret: bytes, body: bytes) -> str:
    """The header value that signs ``body`` with ``secret``."""
    return _SCHEME + hmac.new(secret, body, hashlib.sha256).hexdigest()


def delivery(body: Any, headers: Any, *, adapter: str, operation: str) -> tuple[bytes, dict[str, str]]:
    """A delivery as a web framework hands it over, in the one form adapters read: the body as
    bytes, the headers as a dict from lower-case name to text.

    Accepted: a body of bytes (or bytearray, memoryview) or str (encoded UTF-8); headers as a
    mapping or as an iterable of (name, value) pairs (ASGI's ``[(b"name", b"value")]``), names
    and values str or bytes (bytes read as ISO-8859-1, as HTTP sends them). Names are
    case-insensitive; a name given twice has its values joined with ", " (RFC 9110 §5.3), so
    a second signature cannot hide behind the first. Anything else is an `AdapterError`.
    """
    return _body(body, adapter, operation), _headers(headers, adapter, operation)


def _body(body: Any, adapter: str, operation: str) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        try:
            return body.encode("utf-8")
        except UnicodeEncodeError:
            raise AdapterError(adapter, operation, "malformed delivery: the body is not text "
                                                   "UTF-8 can carry") from None
    raise AdapterError(adapter, operation, "malformed delivery: the body must be bytes or str, "
                                           f"got {type(body).__name__}")


def _headers(headers: Any, adapter: str, operation: str) -> dict[str, str]:
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
    return found


def _text(part: Any, adapter: str, operation: str) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, bytes | bytearray):
        return part.decode("latin-1")
    raise AdapterError(adapter, operation, "malformed delivery: header names and values must be "
                                           f"str or bytes, got {type(part).__name__}")


def verify(secret: bytes, body: Any, headers: Any, *, adapter: str, operation: str) -> None:
    """Return if ``headers`` carry a valid signature of ``body``; else raise `SignatureInvalid`
    (or `AdapterError` for a delivery in no form `delivery` reads)."""
    body, found = delivery(body, headers, adapter=adapter, operation=operation)
    given = found.get(SIGNATURE_HEADER.lower())
    if given is None:
        raise SignatureInvalid(adapter, operation, f"unsigned: no {SIGNATURE_HEADER} header")
    if not given.startswith(_SCHEME):
        raise SignatureInvalid(adapter, operation, f"malformed signature: expected {_SCHEME}<hex>")
    # compare_digest: the time taken must not reveal how much of a forged signature was right.
    # surrogatepass: a header value made up in Python may hold what no HTTP request can.
    if not hmac.compare_digest(given.encode("utf-8", "surrogatepass"),
                               signature(secret, body).encode()):
        raise SignatureInvalid(adapter, operation, "signature does not match the body")


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


class Mailbox:
    """Messages waiting to be delivered, in delivery order, with duplicates and late arrivals.

    A late message skips one `take` and is delivered at the end of the next, after everything
    posted in between: that is how an out-of-order delivery looks to the receiver.
    """

    def __init__(self, secret: bytes, seed: int, rates: DeliveryRates):
        self._secret, self._seed, self._rates = secret, seed, rates
        self._due: list[SignedMessage] = []
        self._held: list[SignedMessage] = []
        self._releasing: list[SignedMessage] = []
        self._next_duplicate = False
        self._next_late = False

    def inject(self, *, duplicate: bool = False, late: bool = False) -> None:
        """Make the next message posted arrive twice and/or late."""
        self._next_duplicate = self._next_duplicate or duplicate
        self._next_late = self._next_late or late

    def post(self, body: bytes, message_id: str) -> None:
        """Sign ``body`` and queue it; ``message_id`` seeds its duplicate and late draws."""
        message = SignedMessage(body, {SIGNATURE_HEADER: signature(self._secret, body),
                                       "Content-Type": "application/json"})
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
        return delivered

    def flush(self) -> list[SignedMessage]:
        """Everything still waiting, held ones included (the end of a simulation)."""
        delivered = self._due + self._releasing + self._held
        self._due, self._releasing, self._held = [], [], []
        return delivered

    def pending(self) -> int:
        """How many deliveries are still waiting, held ones included."""
        return len(self._due) + len(self._releasing) + len(self._held)
