"""An unexpected capture (SPEC §7): money a gateway captured that no order could take.

A capture for a cancelled order, a second capture for a paid one, one for an order that does
not exist, or one whose currency or amount differs from the order's never pays an order. The
buyer's money is still at the gateway, so it is recorded here — in escrow on its own ledger —
and refunded through the same gateway: at once when the engine can, else by the ``refund``
deadline, retried with backoff and parked for an operator like every deadline.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

from lifecycle.ledger import transfer
from lifecycle.machines.definition import Call, Context, Deadline, MachineDefinition, Post, Transition
from lifecycle.machines.payloads import Amount, Currency, Empty, LongText, Payload, Text, iso
from lifecycle.money import check_amount

SYSTEM = frozenset({"system"})
OPERATOR = frozenset({"operator"})

KIND = "unexpected_capture"


def capture_id(gateway: str, event_id: str, order_id: str | None) -> str:
    """The record of one gateway event: the same for every redelivery of that event. It
    starts with the id of the order it names when that order exists, so the two share a
    shard key (SPEC §11) and a simulation's prefix."""
    digest = hashlib.sha256(f"{gateway}\x1f{event_id}".encode()).hexdigest()[:20]
    if order_id is not None and len(order_id) <= 170:
        return f"{order_id}-uc-{digest}"
    return f"uc-{digest}"


class UnexpectedCapture(Payload):
    gateway: Text
    event_id: Text
    order: Text  # the order the gateway named, which may not exist
    payment_ref: Text
    amount: Amount
    currency: Currency
    reason: LongText

    def check(self, data: Mapping[str, Any]) -> None:
        check_amount(self.amount, self.currency, "amount")


def _record(ctx: Context) -> None:
    capture: UnexpectedCapture = ctx.payload
    ctx.data.update(capture.model_dump(mode="json"), recorded_at=iso(ctx.now))
    ctx.follow_ups.append(Post(transfer("unexpected_capture", capture.currency,
                                        ("buyer", "escrow", capture.amount))))


def _refund(ctx: Context) -> None:
    """Give the money back through the gateway that took it, and empty the escrow."""
    amount, currency = Decimal(ctx.data["amount"]), ctx.data["currency"]
    ctx.follow_ups.append(Call("payments", "refund", {
        "payment_ref": ctx.data["payment_ref"], "amount": str(amount), "currency": currency,
    }, result="refund_ref"))
    ctx.follow_ups.append(Post(transfer("refund", currency, ("escrow", "buyer", amount))))
    ctx.data["refunded_at"] = iso(ctx.now)


DEFINITION = MachineDefinition(
    KIND,
    states=("refund_pending", "refunded"),
    terminal=frozenset({"refunded"}),
    owners={},
    # The engine names each record after its gateway event (`capture_id`); this is for an
    # operator recording one by hand.
    new_id=lambda actor: f"uc-{uuid.uuid4().hex[:20]}",
    transitions=(
        Transition("record", (), "refund_pending", SYSTEM, UnexpectedCapture, (), _record),
        Transition("refund", ("refund_pending",), "refunded", SYSTEM | OPERATOR, Empty, (),
                   _refund),
    ),
    # Due at once: the engine refunds right after recording; this is the retry if that failed.
    deadlines=(Deadline("refund_pending", "refund", lambda p, d: timedelta(0), "recorded_at"),),
)
