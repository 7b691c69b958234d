"""``lifecycle dispute …``: open a dispute on an order, negotiate, arbitrate, return goods
(SPEC §5)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from lifecycle.cli import payloads
from lifecycle.cli.actions import (
    NOTE,
    Action,
    Field,
    action_command,
    actor_for,
    build_payload,
    common_params,
    fire,
    offers,
    report,
)
from lifecycle.cli.options import either
from lifecycle.cli.output import moved
from lifecycle.cli.reading import View, field, reading_commands
from lifecycle.cli.session import Noun, Session, pass_session


def _offer(data: Mapping[str, Any]) -> str | None:
    offer = data.get("offer")
    if not offer:
        return None
    parts = [f"refund {offer['refund_amount']}"]
    if offer.get("return_goods"):
        parts.append("with the goods returned")
    if offer.get("rejected"):
        parts.append("(rejected)")
    return " ".join(parts)


def _return(data: Mapping[str, Any]) -> str | None:
    shipment = data.get("return_shipment")
    return f"{shipment['carrier']} {shipment['waybill']}" if shipment else None


VIEW = View(
    kind="dispute",
    noun="dispute",
    created="opened_at",
    details=(
        ("order", field("order")),
        ("buyer", field("buyer")),
        ("seller", field("seller")),
        ("type", field("type")),
        ("reason", field("reason")),
        ("return goods", field("return_goods")),
        ("evidence", field("evidence")),
        ("offer", _offer),
        ("escalated by", field("escalated_by")),
        ("return", _return),
        ("resolved by", field("resolved_by")),
        ("opened", field("opened_at")),
        ("resolved", field("resolved_at")),
    ),
    columns=(
        ("order", field("order")),
        ("buyer", field("buyer")),
        ("seller", field("seller")),
        ("type", field("type")),
        ("reason", field("reason")),
        ("refund", field("refund_amount")),
        ("opened", field("opened_at")),
    ),
    filters=("seller", "buyer", "order"),
    currency="currency",
    figures=("refund_amount", "refundable", "settlement"),
)

OPEN_FIELDS = (
    Field("--type", "type", "not_received, or received (after delivery).",
          type=click.Choice(payloads.choices("order", "open_dispute", "type")), required=True),
    Field("--reason", "reason",
          "not_received: invalid_tracking, wrong_address, still_in_transit, customs_detention, "
          "returned_to_sender; received: not_as_described, quality, damage, short_shipment, "
          "counterfeit.", required=True),
    Field("--refund-amount", "refund_amount", "The refund asked for (at most what was paid).",
          required=True, metavar="AMOUNT"),
    Field("--return-goods", "return_goods", "The buyer offers to send the goods back.",
          flag=True),
    Field("--evidence", "evidence", "A piece of evidence (repeat the option).", multiple=True,
          metavar="TEXT"),
)


def open_command() -> click.Command:
    def run(session: Session, order: str, actor: str | None, payload: str | None,
            key: str | None, expect_version: int | None, as_json: bool, **values: Any) -> None:
        body = build_payload(OPEN_FIELDS, payload, values)
        who = actor_for("order", "open_dispute", actor)
        engine = session.engine
        paused = fire(engine, "order", order, "open_dispute", who, body, key, expect_version)
        opened = engine.get("dispute", paused.data["dispute"])
        report(opened, as_json, also=f"; {moved(paused)}")

    return click.Command(
        "open",
        params=[click.Argument(["order"], metavar="ORDER"), *(f.param() for f in OPEN_FIELDS),
                *common_params("order", "open_dispute")],
        callback=pass_session(run),
        help="Open a dispute on the order ORDER: its deadlines pause and its escrow is frozen "
             "until the dispute resolves. Prints the dispute (its id is ORDER-dN).\n\n"
             "Fires open_dispute on the order (buyer).",
        short_help="Open a dispute on an order",
    )


offers("order", "open_dispute", "dispute open ID")
DECISIONS = payloads.choices("dispute", "arbitrate", "decision")
ACTIONS = (
    Action("accept", "dispute", "accept_claim",
           "The seller accepts the buyer's claim: refunded (after the goods come back, if the "
           "buyer offered to return them).", (NOTE,)),
    Action("counter", "dispute", "counter_offer",
           "The seller proposes a partial refund, or a return and refund.",
           (Field("--refund-amount", "refund_amount", "The refund offered.", required=True,
                  metavar="AMOUNT"),
            Field("--return-goods", "return_goods", "Only once the goods come back.", flag=True),
            NOTE)),
    Action("accept-offer", "dispute", "accept_offer", "The buyer accepts the seller's offer.",
           (NOTE,)),
    Action("reject-offer", "dispute", "reject_offer", "The buyer rejects the seller's offer.",
           (NOTE,)),
    Action("escalate", "dispute", "escalate",
           "Ask the platform to arbitrate (the seller at once, the buyer from the 4th day).",
           (NOTE,)),
    Action("arbitrate", "dispute", "arbitrate", "An operator decides the dispute.",
           (Field("--decision", "decision", f"{either(DECISIONS)}.",
                  type=click.Choice(DECISIONS), required=True),
            Field("--refund-amount", "refund_amount", "The refund (not with no_refund).",
                  metavar="AMOUNT"),
            NOTE)),
    Action("ship-return", "dispute", "ship_return", "The buyer ships the goods back.",
           (Field("--carrier", "carrier", "The carrier of the return.", required=True),
            Field("--waybill", "waybill", "The return's waybill number.", required=True))),
    Action("confirm-return", "dispute", "confirm_return_received",
           "The returned goods arrived: the agreed refund is paid.", (NOTE,)),
    Action("withdraw", "dispute", "withdraw",
           "The buyer withdraws the claim: no refund; the order resumes.", (NOTE,)),
)


@click.group(cls=Noun)
def dispute() -> None:
    """Disputes: open one on an order, negotiate, escalate, arbitrate, return the goods."""


dispute.add_command(open_command())
for _action in ACTIONS:
    dispute.add_command(action_command(_action))
for _command in reading_commands(VIEW):
    dispute.add_command(_command)
