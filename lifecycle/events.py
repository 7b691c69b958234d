"""Domain events as they leave the database (issue #17): the body every transition (and every
carrier scan recorded without one) writes to the outbox, in the versioned schema of
docs/events.md, and `Event`, one as a reader gets it.

The same body is what in-process subscribers receive, what the relay publishes to a broker (the
event's ``id`` as the broker's message id) and what `Engine.events` hands a reader.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lifecycle.actor import Actor
from lifecycle.machines import versions

# The body's schema version (docs/events.md). A change that renames or drops a field, or
# changes one's meaning, is a new version; adding a field is not.
SCHEMA_VERSION = 1


def random_uuid() -> str:
    """A random (version 4) UUID's text, as ``str(uuid.uuid4())`` writes it, from the same
    random bytes but without building a `uuid.UUID` (a third of the cost, once a transition)."""
    digits = os.urandom(16).hex()
    variant = "89ab"[int(digits[16], 16) & 3]  # RFC 4122: the top bits of byte 8 are 10
    return (f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-{variant}{digits[17:20]}-"
            f"{digits[20:]}")


# The name of the event a carrier scan writes when it moves no state (``order.scan_recorded``).
SCAN_RECORDED = "scan_recorded"
# The ``kind`` of a notification's event (issue #20): written beside a transition, for a person.
NOTIFICATION = "notification"
# The trigger, and the event's name, of a migration to another version of a machine.
MIGRATED = versions.MIGRATED


def event_body(kind: str, aggregate_id: str, seq: int, trigger: str, source: str | None,
               dest: str, actor: Actor, payload: dict[str, Any], at: datetime) -> dict[str, Any]:
    """The event of one committed transition: named for the state it entered, or for its
    trigger when the state did not change (``order.shipped``, ``order.tracking_exception``)."""
    name = dest if source != dest else trigger
    return _body(f"{kind}.{name}", kind, aggregate_id, seq, trigger, source, dest, actor,
                 payload, at)


def scan_recorded_body(kind: str, aggregate_id: str, seq: int, state: str, actor: Actor,
                       payload: dict[str, Any], at: datetime) -> dict[str, Any]:
    """The event of a carrier scan recorded on an aggregate it did not move (SPEC §4): no
    transition, so no trigger; ``source`` and ``dest`` are the state it stays in, and ``seq``
    the version it keeps, the one of the transition before it."""
    return _body(f"{kind}.{SCAN_RECORDED}", kind, aggregate_id, seq, None, state, state, actor,
                 payload, at)


def migrated_body(kind: str, aggregate_id: str, seq: int, source: str, dest: str, actor: Actor,
                  payload: dict[str, Any], at: datetime) -> dict[str, Any]:
    """The event of an aggregate moved to another version of its machine (``order.migrated``,
    SPEC §13), whatever state it is in after: its trigger is ``migrated``, its payload the
    versions and the deadlines moved."""
    return _body(f"{kind}.{MIGRATED}", kind, aggregate_id, seq, MIGRATED, source, dest, actor,
                 payload, at)


def notification_body(recipient: str, seq: int, trigger: str, source: str | None, dest: str,
                      actor: Actor, notice: dict[str, Any], at: datetime) -> dict[str, Any]:
    """A message a transition asked to send (``notification.email``, ``notification.sms``;
    docs/account-profile.md). Its ``kind`` is ``notification`` and its ``aggregate_id`` the
    recipient's account, so one recipient's messages keep their order; ``seq``, ``trigger``,
    ``source``, ``dest`` and ``actor`` are those of the transition that asked, which
    ``payload.about`` names; the payload holds the recipient, channel, address, category,
    template and values."""
    return _body(f"notification.{notice['channel']}", NOTIFICATION, recipient, seq, trigger,
                 source, dest, actor, notice, at)


def _body(name: str, kind: str, aggregate_id: str, seq: int, trigger: str | None,
          source: str | None, dest: str, actor: Actor, payload: dict[str, Any],
          at: datetime) -> dict[str, Any]:
    return {
        "id": random_uuid(),  # unique across databases: several may feed one stream
        "version": SCHEMA_VERSION,
        "name": name,
        "kind": kind,
        "aggregate_id": aggregate_id,
        "seq": seq,
        "occurred_at": at.isoformat(),
        "actor": {"role": actor.role, "id": actor.acting_id},
        "trigger": trigger,
        "source": source,
        "dest": dest,
        "payload": payload,
    }


class _Fields:
    """The body's fields as attributes, for `Event` and `OutboxEvent`."""

    __slots__ = ()
    body: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.body["id"])

    @property
    def name(self) -> str:
        return str(self.body["name"])

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def aggregate_id(self) -> str:
        return str(self.body["aggregate_id"])

    @property
    def seq(self) -> int:
        return int(self.body["seq"])


@dataclass(frozen=True, slots=True)
class Event(_Fields):
    """One event as `Engine.events` hands it out: its ``position`` (the reader's cursor; gap-free
    and in commit order) and its ``body`` (docs/events.md), whose fields it also carries."""

    position: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class OutboxEvent(_Fields):
    """An unpublished outbox row as the relay claims it: its row id (what marks it published)
    and its body."""

    row_id: int
    body: dict[str, Any]

    @property
    def key(self) -> str:
        """The aggregate, ``order/o-1``: one aggregate's events keep their order."""
        return f"{self.kind}/{self.aggregate_id}"
