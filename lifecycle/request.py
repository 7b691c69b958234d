"""A trigger as it was asked for, and the checks of what a caller hands the engine: ids, keys,
actors and payloads (a NUL anywhere in one is refused before anything is read or written).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lifecycle.actor import Actor
from lifecycle.errors import InvalidPayload
from lifecycle.ids import identifier


@dataclass(frozen=True, slots=True)
class Request:
    """One trigger as it was asked for: by a caller, a deadline, or a follow-up."""

    kind: str
    id: str | None
    trigger: str
    actor: Actor
    payload: Mapping[str, Any]
    idempotency_key: str | None

    def fingerprint(self) -> str:
        """What makes a retry "the same request" for its idempotency key."""
        text = json.dumps(
            [self.kind, self.id, self.trigger, self.actor.role, self.actor.acting_id, self.payload],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(text.encode()).hexdigest()


def payload_of(payload: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A caller's payload: a mapping (None is empty) with no NUL character anywhere in it."""
    if payload is None:
        return {}
    if not isinstance(payload, Mapping):
        raise InvalidPayload("payload", f"must be a JSON object, got {type(payload).__name__}")
    if not payload:
        return payload  # most triggers: nothing to look through
    refusal = _nul_in(payload)
    if refusal is not None:
        raise refusal
    return payload


# Where a value sits in a payload, as a linked list from the value up: (parent's place, key).
_Place = tuple[Any, str | int] | None


def _nul_in(payload: Mapping[str, Any]) -> InvalidPayload | None:
    """The refusal of the first NUL character in the payload, in any string or field name at
    any depth, naming the field; None when there is none. PostgreSQL stores no NUL in text or
    JSON (SQLite would), so both refuse it before anything is written.

    One pass over the payload, no copy and no serialising; the path is put together only for
    the refusal. Each list and mapping is visited once, so a payload that contains itself ends
    (the payload model then refuses it).
    """
    # Only containers go on the stack; strings are checked where they are met. Exact types
    # are tested first: they are the common case, and much cheaper than an ABC's isinstance.
    stack: list[tuple[Any, _Place]] = [(payload, None)]
    seen = {id(payload)}
    while stack:
        container, place = stack.pop()
        items = (container.items() if type(container) is dict or isinstance(container, Mapping)
                 else enumerate(container))
        for key, item in items:
            if isinstance(key, str) and "\x00" in key:
                return InvalidPayload(_field(place), "a field name must not contain a NUL "
                                                     f"character (\\x00): {key!r}")
            kind = type(item)
            if kind is str or kind is int or kind is bool or item is None:
                if kind is str and "\x00" in item:
                    return InvalidPayload(_field((place, key)),
                                          "must not contain a NUL character (\\x00)")
            elif kind is dict or kind is list or isinstance(item, Mapping | list | tuple):
                if id(item) not in seen:
                    seen.add(id(item))
                    stack.append((item, (place, key)))
            elif isinstance(item, str) and "\x00" in item:
                return InvalidPayload(_field((place, key)), "must not contain a NUL character (\\x00)")
    return None


def _field(place: _Place) -> str:
    """``lines.0.sku``, as the payload models name fields; ``payload`` for the whole of it."""
    parts: list[str] = []
    while place is not None:
        place, key = place
        parts.append(str(key))
    return ".".join(reversed(parts)) or "payload"


def actor_of(actor: Any) -> Actor:
    if not isinstance(actor, Actor):
        raise InvalidPayload("actor", "must be a lifecycle.Actor")
    return actor


def id_of(id: Any, field: str = "id") -> str:
    return identifier(id, field)


def key_of(key: Any) -> str | None:
    return None if key is None else identifier(key, "idempotency_key")


def outside_key(*parts: str) -> str:
    """An idempotency key built from a provider's ids (its event id), which may hold what a
    key may not (spaces, anything past 200 characters): then their digest stands in."""
    key = ":".join(parts)
    try:
        return identifier(key, "idempotency_key")
    except InvalidPayload:
        return f"{parts[0]}:sha256:{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()}"
