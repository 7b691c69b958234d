"""Order messages (SPEC §12, issue #20): some buyers ask the seller about an order once it is
paid, and every buyer who opens a dispute writes to the seller about it; the side written to
reads the message (a transition), labels or marks it, and the seller answers. An operator
removes some answers in disputes (personal data in the text).

A conversation's messages are numbered on the order: ``sim-o0000042-m1`` (the buyer's
question) and ``-m2`` (the seller's answer); ``-m3`` and ``-m4`` in a dispute. Odd numbers are
the buyer's, even ones the seller's answer to the message before."""

from __future__ import annotations

from datetime import datetime

from lifecycle import Actor, Aggregate, HistoryEntry
from lifecycle.simulation.vocabulary import Act, Create, Decision, Event, Marketplace, Turn
from lifecycle.simulation.world import number_of, unit

ASKED, DISPUTED = 1, 3  # the buyer's first message of each conversation
TEXTS = {1: "Hello, when will my order ship?", 2: "It ships within the handling time; thanks.",
         3: "I opened a dispute: please look at the photos.", 4: "Sorry about that: we will "
                                                                  "make it right."}
LABELS = {1: "shipping", 3: "dispute"}  # what the seller labels the buyer's message
REMOVED = 0.3  # of disputes: an operator removes the seller's answer


def message_id(order: str, k: int) -> str:
    return f"{order}-m{k}"


def order_of(message: str) -> str:
    return message.rsplit("-m", 1)[0]


def number_of_message(message: str) -> int:
    return int(message.rsplit("-m", 1)[1])


class MessageActors:
    """The buyers and sellers who write on orders, and the operators who remove messages."""

    kind = "message"

    def __init__(self, market: Marketplace):
        self.market = market

    # --- reacting -------------------------------------------------------------------------

    def watch(self, event: Event, at: datetime) -> None:
        """An order paid (some buyers ask a question) or a dispute opened (every buyer writes)."""
        m, seq = self.market, event["seq"]
        if event["kind"] == "order" and event["trigger"] == "pay":
            order = event["aggregate_id"]
            if unit(m.seed, "asks", number_of(order)) < m.behaviour.order_messages:
                m.later("message", message_id(order, ASKED), "send", seq, 1, 24, at)
        elif event["kind"] == "dispute" and event["trigger"] == "open":
            order = event["payload"]["order"]
            m.later("message", message_id(order, DISPUTED), "send", seq, 0.5, 12, at)

    def on_event(self, event: Event, at: datetime) -> None:
        m, id, trigger, seq = self.market, event["aggregate_id"], event["trigger"], event["seq"]
        k = number_of_message(id)
        if trigger == "send":
            m.later("message", id, "read", seq, 1, 24, at)
        elif trigger == "read":
            m.later("message", id, "label", seq, 0.1, 2, at)
            if k % 2:
                m.later("message", message_id(order_of(id), k + 1), "send", seq, 0.1, 6, at)
            elif k == DISPUTED + 1 and unit(m.seed, "removed", id) < REMOVED:
                m.later("message", id, "remove", seq, 24, 72, at)

    def resume(self, aggregate: Aggregate, history: list[HistoryEntry]) -> None:
        if aggregate.state == "unread":
            self.market.later("message", aggregate.id, "read", aggregate.version, 1, 24)

    # --- deciding -------------------------------------------------------------------------

    def decide(self, message: Aggregate | None, turn: Turn) -> Decision:
        k = number_of_message(turn.id)
        if message is None:
            return self._send(turn.id, k) if turn.purpose == "send" else None
        data = message.data
        buyer, seller = Actor("buyer", data["buyer"]), Actor("seller", data["seller"])
        recipient = seller if k % 2 else buyer
        if message.state == "removed":
            return None
        if turn.purpose == "read" and message.state == "unread":
            return Act("read", recipient)
        if turn.purpose == "label":
            if k % 2:
                return Act("label", seller, {"label": LABELS[k]})
            return Act("mark", buyer, {"mark": "starred"})
        if turn.purpose == "remove":
            return Act("remove", self.market.operator, {"reason": "personal data in the text"})
        return None

    def _send(self, id: str, k: int) -> Decision:
        order = self.market.get("order", order_of(id))
        sender = Actor("buyer", order.data["buyer"]) if k % 2 else \
            Actor("seller", order.data["seller"])
        return Create("message", id, sender, {"order": order.id, "text": TEXTS[k]})
