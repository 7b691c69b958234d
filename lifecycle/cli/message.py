"""``lifecycle message …``: the buyer and the seller of an order write to each other, read,
label and mark their messages, count the unread ones and search by label (SPEC §12)."""

from __future__ import annotations

from collections.abc import Sequence

import click

from lifecycle import Actor
from lifecycle.cli import output
from lifecycle.cli.actions import Action, Field, action_command, actor_for, fire, offers, report
from lifecycle.cli.conversation import message_json, messages_table
from lifecycle.cli.options import json_option, key_option, operator_actor, resolve_actor
from lifecycle.cli.reading import View, field, history_command, show_command
from lifecycle.cli.session import Noun, Session, pass_session

PARTIES = ("buyer", "seller")
MARKS = ("starred", "flagged")
AS_PARTY = "Whose side, as buyer:ID or seller:ID (the order's own buyer or seller)."

VIEW = View(
    kind="message",
    noun="message",
    created="sent_at",
    details=(
        ("order", field("order")),
        ("from", field("sender")),
        ("to", field("to")),
        ("text", field("text")),
        ("sent", field("sent_at")),
        ("read", field("read_at")),
        ("buyer's labels", field("labels", "buyer")),
        ("seller's labels", field("labels", "seller")),
        ("buyer's marks", field("marks", "buyer")),
        ("seller's marks", field("marks", "seller")),
        ("removed", field("removed_reason")),
    ),
    columns=(),
)


def party(text: str | None, what: str) -> Actor:
    """``--as`` of a side's command: a buyer or a seller (a bare ID is refused: say which)."""
    return resolve_actor(text, PARTIES, what=what)


@click.group(cls=Noun)
def message() -> None:
    """Order messages: send, list and read an order's, label and mark them, unread counts, search."""


@message.command("send")
@click.argument("order", metavar="ORDER")
@click.option("--text", required=True, help="What to say (at most policy message_text_max characters).")
@click.option("--as", "actor", default=None, metavar="ROLE:ID", help=AS_PARTY + " Required.")
@key_option
@json_option
@pass_session
def send(session: Session, order: str, text: str, actor: str | None, key: str | None,
         as_json: bool) -> None:
    """Write to the other side of the order ORDER: a new message, unread until they read it."""
    sent = session.engine.send_message(order, party(actor, "message send"), text,
                                       idempotency_key=key)
    report(sent, as_json)


offers("message", "send", "message send ORDER")


@message.command("list")
@click.argument("order", metavar="ORDER")
@click.option("--as", "actor", default=None, metavar="ROLE:ID",
              help="Who reads: the order's buyer or seller (their labels and marks), or an "
                   "operator. Default: operator:$USER.")
@json_option
@pass_session
def list_messages(session: Session, order: str, actor: str | None, as_json: bool) -> None:
    """The messages of the order ORDER, oldest first; marks nothing read (see message read)."""
    found = session.engine.messages(order, operator_actor(actor))
    if as_json:
        output.echo_json({"order": order, "items": [message_json(m) for m in found]})
    else:
        output.echo(messages_table([message_json(m) for m in found]))


@message.command("read")
@click.argument("order", metavar="ORDER")
@click.option("--as", "actor", default=None, metavar="ROLE:ID", help=AS_PARTY + " Required.")
@json_option
@pass_session
def read(session: Session, order: str, actor: str | None, as_json: bool) -> None:
    """Read the order ORDER's messages: those the other side sent you and you had not read
    are marked read (one read each, in one transaction); prints them all."""
    engine = session.engine
    reader = party(actor, "message read")
    before = sum(m.unread for m in engine.messages(order, reader))
    found = engine.read_messages(order, reader)
    if as_json:
        output.echo_json({"order": order, "marked_read": before,
                          "items": [message_json(m) for m in found]})
    else:
        output.echo(f"{before} message(s) marked read\n"
                    f"{messages_table([message_json(m) for m in found])}")


offers("message", "read", "message read ORDER")


def _side_change(verb: str, trigger: str, undo: str, argument: str, help_text: str,
                 choices: Sequence[str] | None = None) -> click.Command:
    def run(session: Session, id: str, value: str, remove: bool, actor: str | None,
            expect_version: int | None, as_json: bool) -> None:
        fired = undo if remove else trigger
        who = actor_for("message", fired, actor)
        moved = fire(session.engine, "message", id, fired, who, {argument: value}, None,
                     expect_version)
        report(moved, as_json)

    offers("message", trigger, f"message {verb} ID {argument.upper()}")
    offers("message", undo, f"message {verb} ID {argument.upper()} --remove")
    return click.Command(
        verb, callback=pass_session(run), help=help_text,
        short_help=help_text.split(".")[0],
        params=[
            click.Argument(["id"], metavar="ID"),
            click.Argument(["value"], metavar=argument.upper(),
                           type=click.Choice(choices) if choices else None),
            click.Option(["--remove"], is_flag=True, help=f"Take the {argument} off instead."),
            click.Option(["--as", "actor"], default=None, metavar="ROLE:ID",
                         help=AS_PARTY + " Required."),
            click.Option(["--expect-version", "expect_version"], type=click.IntRange(min=1),
                         default=None, metavar="N",
                         help="Apply only if the message is still at version N."),
            click.Option(["--json", "as_json"], is_flag=True,
                         help="Print the message as JSON instead of a line."),
        ],
    )


message.add_command(_side_change(
    "label", "label", "unlabel", "label",
    "Put LABEL on the message ID for your side only (lower-case letters, digits, - and _, at "
    "most 32; the other side never sees it). --remove takes it off."))
message.add_command(_side_change(
    "mark", "mark", "unmark", "mark",
    "Mark the message ID starred or flagged, for your side only. --remove unmarks it.",
    MARKS))


@message.command("unread")
@click.option("--as", "actor", default=None, metavar="ROLE:ID", help=AS_PARTY + " Required.")
@json_option
@pass_session
def unread(session: Session, actor: str | None, as_json: bool) -> None:
    """How many messages the other side sent you that you have not read: in all, by order."""
    counts = session.engine.unread(party(actor, "message unread"))
    if as_json:
        output.echo_json({"total": counts.total, "by_order": dict(counts.by_order)})
        return
    lines = [f"{counts.total} unread message(s)"]
    if counts.by_order:
        lines.append(output.table(["order", "unread"], sorted(counts.by_order.items())))
    output.echo("\n".join(lines))


@message.command("search")
@click.option("--label", default=None, help="Only messages your side labelled LABEL.")
@click.option("--mark", type=click.Choice(MARKS), default=None,
              help="Only messages your side marked so.")
@click.option("--as", "actor", default=None, metavar="ROLE:ID", help=AS_PARTY + " Required.")
@json_option
@pass_session
def search(session: Session, label: str | None, mark: str | None, actor: str | None,
           as_json: bool) -> None:
    """Every message across your orders that your side labelled (and/or marked), oldest first."""
    found = session.engine.search_messages(party(actor, "message search"), label=label, mark=mark)
    if as_json:
        output.echo_json({"label": label, "mark": mark, "items": [message_json(m) for m in found]})
    else:
        output.echo(messages_table([message_json(m) for m in found]))


message.add_command(action_command(Action(
    "remove", "message", "remove",
    "An operator removes a message (abuse, personal data): the parties no longer see its "
    "text; its history keeps it.",
    (Field("--reason", "reason", "Why, kept in the history.", required=True),))))
message.add_command(show_command(VIEW))
message.add_command(history_command(VIEW))

