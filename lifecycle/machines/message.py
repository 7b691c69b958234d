"""Order messages (SPEC §12): the buyer and the seller of an order write to each other.

One aggregate per message, created against an order (``send``), so a message's history is its
own and nothing reads an order's hundreds of messages to count one side's unread ones. The
message is ``unread`` until the side it is addressed to reads it, then ``read``; an operator may
``remove`` one (abuse, personal data), which ends it. Each side marks (``starred``,
``flagged``) and labels messages for itself: the buyer's labels are not the seller's, and both
are kept in the message's data, one list per side.

What finds messages without loading them one by one are lookups the transitions index
(`Index`): an order's messages (``message.order``), a side's inbox (``message.inbox``, joined
with the ``unread`` state for the counts), and each side's labels and marks
(``message.label``, ``message.mark``). A label or mark taken off leaves its lookup row (there
is no un-index): reads filter on the message's data, so a lookup only ever finds more.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, StringConstraints

from lifecycle.actor import Actor
from lifecycle.errors import InvalidPayload
from lifecycle.machines.definition import (
    Aggregate,
    Context,
    Guard,
    Index,
    MachineDefinition,
    Transition,
)
from lifecycle.machines.payloads import Code, Payload, Reason, iso
from lifecycle.policy import in_words

PARTIES = frozenset({"buyer", "seller"})
OPERATOR = frozenset({"operator"})
LIVE = ("unread", "read")  # a removed message is no longer labelled, marked or read
MARKS = ("starred", "flagged")

#: the lookups a message is found by (`store.messages` reads them)
BY_ORDER, INBOX, LABELLED, MARKED = "message.order", "message.inbox", "message.label", "message.mark"

# The order's end, for the window in which its parties may still write (`policy.message_after_end`).
ENDED_AT = {"funds_released": "released_at", "cancelled": "cancelled_at"}

_LABEL = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
LABEL_RULE = ("a label is 1 to 32 lower-case letters, digits, - or _, starting with a letter or "
              "digit (e.g. refund, to-ship)")


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _a_label(value: str) -> str:
    if not _LABEL.match(value):
        raise ValueError(LABEL_RULE)
    return value


# One spelling per label: "Refund" and " refund " are the label "refund".
LabelName = Annotated[str, BeforeValidator(_lower), AfterValidator(_a_label)]
# The hard bound a payload model can hold; the policy's `message_text_max` is the rule.
MessageText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                               max_length=100_000)]


class Send(Payload):
    order: Code
    text: MessageText


class Label(Payload):
    label: LabelName


class Mark(Payload):
    mark: Literal["starred", "flagged"]


def label_name(value: Any, field: str = "label") -> str:
    """``value`` as a label (lower-cased, stripped), or `InvalidPayload` naming ``field``:
    what a search by label is checked with, as a `Label` payload is."""
    cleaned = _lower(value)
    if not isinstance(cleaned, str) or not _LABEL.match(cleaned):
        raise InvalidPayload(field, LABEL_RULE if isinstance(cleaned, str) else "must be text")
    return cleaned


def mark_name(value: Any, field: str = "mark") -> str:
    if value not in MARKS:
        raise InvalidPayload(field, f"must be {' or '.join(MARKS)} (got {value!r})")
    return str(value)


# --- the rules, each its own error ------------------------------------------------------------


def _order_exists(ctx: Context) -> bool:
    return ctx.load("order", ctx.payload.order) is not None


def _text_short(ctx: Context) -> bool:
    return len(ctx.payload.text) <= ctx.policy.message_text_max


def _order_still_open(ctx: Context) -> bool:
    """An ended order takes messages for `message_after_end` after it ended (a question about
    the refund, the goods after release); a live order always does."""
    order = ctx.load("order", ctx.payload.order)
    assert order is not None  # `_order_exists` ran first
    ended = order_ended_at(order, ctx.load)
    return ended is None or ctx.now <= ended + ctx.policy.message_after_end


def order_ended_at(order: Aggregate, load: Any) -> datetime | None:
    """When the order reached its terminal state; None while it is live. An order refunded
    by its dispute ended when the dispute resolved."""
    if order.state == "refunded":
        dispute = load("dispute", order.data.get("dispute", ""))
        stamp = dispute.data.get("resolved_at") if dispute is not None else None
    else:
        stamp = order.data.get(ENDED_AT.get(order.state, ""))
    return datetime.fromisoformat(stamp) if stamp else None


def _recipient(ctx: Context) -> bool:
    return bool(ctx.actor.role == ctx.data["to"])


def _label_new(ctx: Context) -> bool:
    return ctx.payload.label not in ctx.data["labels"][ctx.actor.role]


def _label_held(ctx: Context) -> bool:
    return ctx.payload.label in ctx.data["labels"][ctx.actor.role]


def _labels_room(ctx: Context) -> bool:
    return len(ctx.data["labels"][ctx.actor.role]) < ctx.policy.message_labels_max


def _mark_new(ctx: Context) -> bool:
    return ctx.payload.mark not in ctx.data["marks"][ctx.actor.role]


def _mark_held(ctx: Context) -> bool:
    return ctx.payload.mark in ctx.data["marks"][ctx.actor.role]


def _at_most_text(ctx: Context) -> str:
    return (f"a message has at most {ctx.policy.message_text_max:,} characters, "
            f"got {len(ctx.payload.text):,}")


def _too_late(ctx: Context) -> str:
    return (f"order {ctx.payload.order} ended more than "
            f"{in_words(ctx.policy.message_after_end)} ago: it takes no more messages")


def _at_most_labels(ctx: Context) -> str:
    return f"a message carries at most {ctx.policy.message_labels_max} labels per side"


# Rule names keep the spec's default numbers, as the coupon's do: stable identifiers.
ORDER_EXISTS = Guard("message.order_exists", _order_exists,
                     lambda ctx: f"there is no order {ctx.payload.order}")
TEXT_MAX = Guard("message.text_max_2000", _text_short, _at_most_text)
ORDER_WINDOW = Guard("message.within_30_days_of_end", _order_still_open, _too_late)
RECIPIENT_READS = Guard("message.recipient_reads", _recipient,
                        lambda ctx: f"only the {ctx.data['to']} reads this message: it is "
                                    f"the {ctx.data['from']}'s own", uses_payload=False)
LABEL_NEW = Guard("message.label_new", _label_new,
                  lambda ctx: f"the message already carries the label {ctx.payload.label!r}")
LABEL_HELD = Guard("message.label_held", _label_held,
                   lambda ctx: f"the message carries no label {ctx.payload.label!r}")
LABELS_MAX = Guard("message.labels_max_20", _labels_room, _at_most_labels)
MARK_NEW = Guard("message.mark_new", _mark_new,
                 lambda ctx: f"the message is already {ctx.payload.mark}")
MARK_HELD = Guard("message.mark_held", _mark_held,
                  lambda ctx: f"the message is not {ctx.payload.mark}")


# --- effects ------------------------------------------------------------------------------


def _send(ctx: Context) -> None:
    order = ctx.load("order", ctx.payload.order)
    assert order is not None
    side = ctx.actor.role
    to = "seller" if side == "buyer" else "buyer"
    ctx.data.update(
        order=order.id, buyer=order.data["buyer"], seller=order.data["seller"],
        # ``sender`` is who wrote it (a seller's staff sub-account is its own id); ``from`` the side
        **{"from": side}, to=to, sender=str(ctx.actor), text=ctx.payload.text,
        sent_at=iso(ctx.now), labels={"buyer": [], "seller": []},
        marks={"buyer": [], "seller": []},
    )
    ctx.follow_ups += [Index(BY_ORDER, order.id), Index(INBOX, f"{to}:{order.data[to]}")]


def side_key(role: str, owner: str, name: str) -> str:
    """The lookup value of one side's label or mark: ``buyer:b-1:refund``."""
    return f"{role}:{owner}:{name}"


def _label(ctx: Context) -> None:
    side = ctx.actor.role
    ctx.data["labels"][side] = [*ctx.data["labels"][side], ctx.payload.label]
    ctx.follow_ups.append(Index(LABELLED, side_key(side, ctx.data[side], ctx.payload.label)))


def _unlabel(ctx: Context) -> None:
    side = ctx.actor.role
    ctx.data["labels"][side] = [x for x in ctx.data["labels"][side] if x != ctx.payload.label]


def _mark(ctx: Context) -> None:
    side = ctx.actor.role
    ctx.data["marks"][side] = [*ctx.data["marks"][side], ctx.payload.mark]
    ctx.follow_ups.append(Index(MARKED, side_key(side, ctx.data[side], ctx.payload.mark)))


def _unmark(ctx: Context) -> None:
    side = ctx.actor.role
    ctx.data["marks"][side] = [x for x in ctx.data["marks"][side] if x != ctx.payload.mark]


def _read(ctx: Context) -> None:
    ctx.data.update(read_at=iso(ctx.now), read_by=str(ctx.actor))


def _remove(ctx: Context) -> None:
    # The parties no longer see the text; the history keeps it, as it keeps everything.
    ctx.data.update(removed_at=iso(ctx.now), removed_by=str(ctx.actor),
                    removed_reason=ctx.payload.reason)


DEFINITION = MachineDefinition(
    "message",
    states=(*LIVE, "removed"),
    terminal=frozenset({"removed"}),
    owners={"buyer": lambda id, data: data["buyer"], "seller": lambda id, data: data["seller"]},
    new_id=lambda actor: f"m-{uuid.uuid4().hex[:16]}",
    transitions=(
        Transition("send", (), "unread", PARTIES, Send, (ORDER_EXISTS, TEXT_MAX, ORDER_WINDOW),
                   _send),
        Transition("read", ("unread",), "read", PARTIES, None, (RECIPIENT_READS,), _read),
        Transition("label", LIVE, None, PARTIES, Label, (LABEL_NEW, LABELS_MAX), _label),
        Transition("unlabel", LIVE, None, PARTIES, Label, (LABEL_HELD,), _unlabel),
        Transition("mark", LIVE, None, PARTIES, Mark, (MARK_NEW,), _mark),
        Transition("unmark", LIVE, None, PARTIES, Mark, (MARK_HELD,), _unmark),
        Transition("remove", LIVE, "removed", OPERATOR, Reason, (), _remove),
    ),
)


# --- reading: who sees what --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderMessage:
    """One message as its reader sees it: the reader's side's labels and marks only (an
    operator's view has neither), and no text once an operator removed it."""

    id: str
    order: str
    sender: str  # ROLE:ID of who wrote it
    side: str  # the side it came from: buyer or seller
    text: str | None
    state: str
    sent_at: datetime
    read_at: datetime | None
    unread: bool  # addressed to the reader's side and not read yet
    labels: tuple[str, ...]
    marks: tuple[str, ...]
    version: int


@dataclass(frozen=True, slots=True)
class Unread:
    """A side's messages from the other side it has not read: in all, and by order."""

    total: int
    by_order: Mapping[str, int]


def seen_by(message: Aggregate, reader: Actor) -> OrderMessage:
    data = message.data
    side = reader.role if reader.role in PARTIES else None
    stamp = data.get("read_at")
    return OrderMessage(
        id=message.id, order=data["order"], sender=data["sender"], side=data["from"],
        text=None if message.state == "removed" else data["text"], state=message.state,
        sent_at=datetime.fromisoformat(data["sent_at"]),
        read_at=datetime.fromisoformat(stamp) if stamp else None,
        unread=message.state == "unread" and side == data["to"],
        labels=tuple(data["labels"][side]) if side else (),
        marks=tuple(data["marks"][side]) if side else (),
        version=message.version,
    )


def unread_for(side: str, message: Aggregate) -> bool:
    return message.state == "unread" and message.data["to"] == side


def labelled(message: Aggregate, side: str, label: str | None, mark: str | None) -> bool:
    """Whether ``side`` still holds the label and the mark asked for (a lookup may be stale)."""
    if message.state == "removed":
        return False
    if label is not None and label not in message.data["labels"][side]:
        return False
    return mark is None or mark in message.data["marks"][side]
