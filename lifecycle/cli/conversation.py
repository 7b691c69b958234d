"""Order messages as the CLI prints them: the JSON of one message, the table of several, and
the messages an order's or a dispute's ``show`` adds (issue #20: they are part of the order's
record, which an operator reads beside its dispute)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lifecycle
from lifecycle import Actor, Aggregate, Engine, OrderMessage
from lifecycle.cli import output


def order_messages(engine: Engine, aggregate: Aggregate, reader: Actor) -> list[OrderMessage] | None:
    """The messages of an order, or of a dispute's order, as ``reader`` sees them; None for
    another kind, or a reader who may not read them."""
    try:
        if aggregate.kind == "order":
            return engine.messages(aggregate.id, reader)
        if aggregate.kind == "dispute":
            return engine.dispute_messages(aggregate.id, reader)
    except lifecycle.Forbidden:
        return None
    return None


def message_json(message: OrderMessage) -> dict[str, Any]:
    """One message as ``message list`` and ``message search`` print it (docs/cli.md)."""
    return {
        "id": message.id, "order": message.order, "sender": message.sender,
        "side": message.side, "text": message.text, "state": message.state,
        "sent_at": message.sent_at.isoformat(),
        "read_at": message.read_at.isoformat() if message.read_at else None,
        "unread": message.unread, "labels": list(message.labels), "marks": list(message.marks),
        "version": message.version,
    }


def _state(message: Mapping[str, Any]) -> str:
    """As the reader sees it: ``new`` to them, ``delivered`` while the other side has not
    read it, else the message's state (read, removed)."""
    if message["unread"]:
        return "new"
    return "delivered" if message["state"] == "unread" else str(message["state"])


def messages_table(messages: Sequence[Mapping[str, Any]]) -> str:
    """Messages as `message_json` gives them, one row each, the text cut short."""
    if not messages:
        return "(no messages)"
    rows = [(m["id"], output.stamp(m["sent_at"]), m["sender"], _state(m),
             ",".join((*m["marks"], *m["labels"])) or "-",
             output.short(m["text"] if m["text"] is not None else "(removed by an operator)", 60))
            for m in messages]
    return output.table(["id", "sent", "from", "state", "marks/labels", "text"], rows)
