"""Follow-ups: what a transition asks for beyond moving its own aggregate.

An effect appends them to its `Context`; the engine carries them out in the same database
transaction — adapter calls (`Call`) before the transition is written, the rest after it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from lifecycle.ledger import Posting


@dataclass(frozen=True, slots=True)
class Create:
    """A follow-up: create another aggregate in the same transaction."""

    kind: str
    id: str
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Fire:
    """A follow-up: fire a trigger on another aggregate in the same transaction."""

    kind: str
    id: str
    trigger: str
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Claim:
    """A follow-up: reserve a unique value (a store's domain, a waybill) for this aggregate.

    ``value`` may be a function of the aggregate's data, for values an adapter call supplies.
    """

    name: str
    value: str | Callable[[Mapping[str, Any]], str]


@dataclass(frozen=True, slots=True)
class Index:
    """A follow-up: make this aggregate findable by a value that others may share (a waybill
    carrying several orders of one buyer). ``value`` may be a function of the data."""

    name: str
    value: str | Callable[[Mapping[str, Any]], str]


@dataclass(frozen=True, slots=True)
class Call:
    """Ask an adapter to act before the transition is written: ``port`` is ``payments`` or
    ``carrier`` (then ``carrier`` names which). The answer, if ``result`` names a field, is
    stored in the aggregate's data. A failure rolls the whole transition back.
    """

    port: str
    operation: str
    args: Mapping[str, Any]
    carrier: str | None = None
    result: str | None = None


@dataclass(frozen=True, slots=True)
class Post:
    """A follow-up: write a ledger posting against this aggregate."""

    posting: Posting


@dataclass(frozen=True, slots=True)
class Scan:
    """A follow-up: keep a carrier's scan of this aggregate as a row of its own (never in the
    aggregate's data, which would grow with every scan). ``moved`` says whether it moved the
    aggregate; ``reported_at`` is the carrier's ISO timestamp."""

    carrier: str
    waybill: str
    event_id: str | None
    status: str | None
    exception_kind: str | None = None
    reported_at: str | None = None
    location: str | None = None
    detail: str | None = None
    moved: bool = False


@dataclass(frozen=True, slots=True)
class Notify:
    """A follow-up: ask for a message to a person (issue #20), written to the outbox as a
    ``notification.CHANNEL`` event in the transition's transaction; a notification service
    reads and sends it. Built by `lifecycle.machines.notifications.notify`, which decides
    (subscriptions) whether to ask at all."""

    recipient_role: str
    recipient_id: str
    channel: str  # email or sms
    address: str | None  # where to: None when the account has none on its profile yet
    category: str
    template: str
    values: Mapping[str, Any]


FollowUp = Create | Fire | Claim | Index | Post | Call | Scan | Notify

_Fn = TypeVar("_Fn", bound=Callable[..., Any])


def sends(*pairs: tuple[str, str]) -> Callable[[_Fn], _Fn]:
    """Declare on an effect the `Fire` and `Create` follow-ups it may ask for, as ``(kind,
    trigger)`` (a creating trigger for `Create`): what `lifecycle verify` checks across
    machines, and what the engine holds it to when it runs."""

    def declared(effect: _Fn) -> _Fn:
        effect.sends = pairs  # type: ignore[attr-defined]
        return effect

    return declared
