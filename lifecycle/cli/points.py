"""``lifecycle points …``: a seller's points centre (SPEC §12).

The account's id is the seller's: ``lifecycle points show acme`` reads seller acme's points.
``show`` prints the balance and every earning, redemption, correction and penalty record;
the seller and operators may read it, nobody else.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click

import lifecycle
from lifecycle import PointsStatement
from lifecycle.cli import output
from lifecycle.cli.actions import (
    NOTE,
    Action,
    Field,
    action_command,
    actor_for,
    build_payload,
    common_params,
    offers,
    report,
)
from lifecycle.cli.options import as_option, json_option, resolve_actor
from lifecycle.cli.reading import View, field, reading_commands
from lifecycle.cli.session import Noun, Session, pass_session

KIND = "points_account"
DEFAULTS = lifecycle.Policy()

VIEW = View(
    kind=KIND,
    noun="points account",
    created="opened_at",
    details=(
        ("balance", field("balance")),
        ("earned", field("earned")),
        ("redeemed", field("redeemed")),
        ("penalised", field("penalised")),
        ("items", field("items")),
        ("opened", field("opened_at")),
        ("closed", field("closed_at")),
    ),
    columns=(
        ("balance", field("balance")),
        ("earned", field("earned")),
        ("redeemed", field("redeemed")),
        ("opened", field("opened_at")),
    ),
)

REASON = Field("--reason", "reason", "Why (kept in the account's records).", required=True)
EARN_FIELDS = (
    Field("--reason", "reason", "The action rewarded: order_paid or quotation_answered.",
          type=click.Choice(["order_paid", "quotation_answered"]), required=True),
    Field("--reference", "reference", "The order's or the quotation's id: it earns once.",
          required=True),
)
REDEEM_FIELDS = (
    Field("--item", "item", "The catalogue item (lifecycle points catalogue).",
          type=click.Choice(list(lifecycle.POINTS_CATALOGUE)), required=True),
    Field("--quantity", "quantity", "How many of it (default 1).", type=click.IntRange(1, 1000)),
)
CORRECT_FIELDS = (
    Field("--points", "points", "Points to add, or to take back when negative (--points=-50).",
          type=int, required=True),
    REASON,
)
PENALISE_FIELDS = (
    Field("--points", "points", "Penalty points to take (at most the balance is taken).",
          type=click.IntRange(min=1), required=True),
    REASON,
    Field("--reference", "reference", "What the penalty is for (a violation's id)."),
)

for _trigger in ("earn", "redeem", "correct", "penalise", "close"):
    offers(KIND, _trigger, f"points {_trigger} ID")  # the group is `points`, not the kind
ACTIONS = (
    Action("earn", KIND, "earn", "Earn the policy's points for an action the platform rewards.",
           EARN_FIELDS),
    Action("redeem", KIND, "redeem", "Spend points on a catalogue item.", REDEEM_FIELDS,
           self_acting=True),
    Action("correct", KIND, "correct", "Add or take back points, with a reason (operators).",
           CORRECT_FIELDS),
    Action("penalise", KIND, "penalise", "Record a penalty that takes points, with a reason.",
           PENALISE_FIELDS),
    Action("close", KIND, "close", "Close the points account (at a zero balance).", (REASON,)),
)


def open_command() -> click.Command:
    def run(session: Session, id: str, actor: str | None, payload: str | None,
            key: str | None, as_json: bool, note: str | None) -> None:
        body = build_payload((NOTE,), payload, {"note": note})
        who = actor_for(KIND, "open", actor, id, self_acting=True)
        report(session.engine.create(KIND, who, body, id=id, idempotency_key=key), as_json)

    offers(KIND, "open", "points open ID")
    return click.Command(
        "open",
        params=[click.Argument(["id"], metavar="SELLER"), NOTE.param(),
                *common_params(KIND, "open", self_acting=True, create=True)],
        callback=pass_session(run),
        help="Open the points account of seller SELLER (its first earning opens it too)."
             "\n\nFires open (seller, operator or system).",
        short_help="Open a seller's points account",
    )


def statement_json(shown: PointsStatement) -> dict[str, Any]:
    return {"seller": shown.seller, "state": shown.state, "balance": shown.balance,
            "records": [{**asdict(record), "at": record.at.isoformat(), "actor": str(record.actor)}
                        for record in shown.records]}


def statement_text(shown: PointsStatement) -> str:
    rows = [(r.seq, output.stamp(r.at.isoformat()), r.record, f"{r.points:+d}", r.balance,
             str(r.actor), _about(r)) for r in shown.records]
    head = f"points account {shown.seller} ({shown.state}): balance {shown.balance}"
    if not rows:
        return f"{head}\nno records yet"
    return "\n".join([head, output.table(
        ["seq", "at", "record", "points", "balance", "by", "for"], rows)])


def _about(record: lifecycle.PointsRecord) -> str:
    item = f"{record.quantity} x {record.item}" if record.item else None
    asked = f"(asked {record.asked})" if record.asked is not None else None
    return " ".join(str(part) for part in (record.reason, record.reference, item, asked) if part)


def show_command() -> click.Command:
    @click.command("show")
    @click.argument("seller", metavar="SELLER")
    @as_option("Who reads: the seller (a bare ID) or an operator. Default: operator:$USER.")
    @json_option
    @pass_session
    def show(session: Session, seller: str, actor: str | None, as_json: bool) -> None:
        """The balance of seller SELLER's points, and every earning, redemption, correction
        and penalty record with the balance after it."""
        who = resolve_actor(actor, ("seller", "operator"), what="points show")
        shown = session.engine.points(seller, who)
        if as_json:
            output.echo_json(statement_json(shown))
        else:
            output.echo(statement_text(shown))

    return show


def catalogue_command() -> click.Command:
    @click.command("catalogue")
    @json_option
    @pass_session
    def catalogue(session: Session, as_json: bool) -> None:
        """What points redeem for: each catalogue item with its price in points (the
        database's policy)."""
        prices = lifecycle.points_catalogue(session.engine.policy)
        if as_json:
            output.echo_json(prices)
        else:
            output.echo(output.table(["item", "points"], sorted(prices.items())))

    return catalogue


@click.group(cls=Noun)
def points() -> None:
    """A seller's points centre: earn, redeem for catalogue items, corrections and penalties."""


points.add_command(show_command())
points.add_command(open_command())
for _action in ACTIONS:
    points.add_command(action_command(_action))
points.add_command(catalogue_command())
for _command in reading_commands(VIEW):
    if _command.name != "show":  # `points show` prints the records
        points.add_command(_command)
