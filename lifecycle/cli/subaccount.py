"""``lifecycle subaccount …``: a store's staff sub-accounts and their permissions (SPEC §12).

A sub-account is written ``acme/ana`` (how it acts: ``--as seller:acme/ana``) or ``acme:ana``
(its aggregate id, which an HTTP path can hold); every command here takes either. The owner
acts by default: ``--as`` may be left out, and is ``seller:STORE``.
"""

from __future__ import annotations

from typing import Any

import click

import lifecycle
from lifecycle import Actor
from lifecycle.cli import output
from lifecycle.cli.actions import (
    NOTE,
    Field,
    build_payload,
    common_params,
    explained,
    fire,
    offers,
    report,
)
from lifecycle.cli.options import resolve_actor, user
from lifecycle.cli.reading import View, field, scan, show_json, show_text
from lifecycle.cli.session import Noun, Session, pass_session

KIND = "subaccount"

VIEW = View(
    kind=KIND,
    noun="sub-account",
    created="created_at",
    details=(
        ("store", field("seller")),
        ("name", field("name")),
        ("permissions", field("permissions")),
        ("created", field("created_at")),
        ("created by", field("created_by")),
        ("permissions changed", field("permissions_changed_at")),
        ("disabled", field("disabled_at")),
        ("disabled by", field("disabled_by")),
        ("enabled", field("enabled_at")),
        ("removed", field("removed_at")),
    ),
    columns=(
        ("name", field("name")),
        ("permissions", field("permissions")),
        ("created", field("created_at")),
    ),
    filters=("seller",),
)

PERMISSION = Field(
    "--permission", "permissions",
    "A permission to grant (repeat): " + ", ".join(
        f"{name} ({what})" for name, what in lifecycle.SUBACCOUNT_PERMISSIONS.items()) + ".",
    type=click.Choice(list(lifecycle.SUBACCOUNT_PERMISSIONS)), multiple=True, metavar="NAME",
)
NO_PERMISSION = click.Option(["--none", "none"], is_flag=True, default=False,
                             help="Grant no permission at all (instead of --permission).")


def _id(text: str) -> str:
    """``acme/ana`` or ``acme:ana`` → the aggregate id ``acme:ana``."""
    return lifecycle.subaccount_id(text)


def _owner(id: str) -> Actor | None:
    """The store owning the sub-account ``id``, who acts when ``--as`` is left out."""
    store, sep, _name = id.rpartition(":")
    return Actor("seller", store) if sep and store else None


def _actor(trigger: str, text: str | None, id: str) -> Actor:
    roles = lifecycle.definition(KIND).roles_of(trigger)
    owner = _owner(id)
    if text is None and owner is not None:
        return owner  # the owner manages its sub-accounts; say --as for an operator
    return resolve_actor(text, roles, what=f"{KIND} {trigger}", own=owner)


def _permissions(payload: str | None, values: dict[str, Any], none: bool) -> dict[str, Any]:
    body = build_payload((PERMISSION,), payload, values)
    if none:
        body["permissions"] = []
    if "permissions" not in body:
        raise click.UsageError("missing option --permission (repeat it), --none, or "
                               "permissions in --payload")
    return body


def create_command() -> click.Command:
    def run(session: Session, id: str, actor: str | None, payload: str | None, key: str | None,
            as_json: bool, none: bool, **values: Any) -> None:
        id = _id(id)
        body = _permissions(payload, values, none)
        who = _actor("create", actor, id)
        try:
            created = session.engine.create(KIND, who, body, id=id, idempotency_key=key)
        except lifecycle.LifecycleError as error:
            raise explained(error) from None
        report(created, as_json)

    offers(KIND, "create", "subaccount create ID")
    return click.Command(
        "create",
        params=[click.Argument(["id"], metavar="STORE/NAME"), PERMISSION.param(), NO_PERMISSION,
                *common_params(KIND, "create", create=True)],
        callback=pass_session(run),
        help="The store's owner creates the staff sub-account STORE/NAME (it then acts as "
             "--as seller:STORE/NAME) with the permissions given.\n\nFires create (seller).",
        short_help="Create a staff sub-account with permissions",
    )


def permissions_command() -> click.Command:
    def run(session: Session, id: str, actor: str | None, payload: str | None, key: str | None,
            expect_version: int | None, as_json: bool, none: bool, **values: Any) -> None:
        id = _id(id)
        body = _permissions(payload, values, none)
        who = _actor("set_permissions", actor, id)
        report(fire(session.engine, KIND, id, "set_permissions", who, body, key, expect_version),
               as_json)

    offers(KIND, "set_permissions", "subaccount permissions ID")
    return click.Command(
        "permissions",
        params=[click.Argument(["id"], metavar="STORE/NAME"), PERMISSION.param(), NO_PERMISSION,
                *common_params(KIND, "set_permissions")],
        callback=pass_session(run),
        help="Replace the sub-account's permissions with those given; it acts with them from "
             "its next action.\n\nFires set_permissions (seller).",
        short_help="Replace a sub-account's permissions",
    )


def action(verb: str, trigger: str, help: str) -> click.Command:
    def run(session: Session, id: str, actor: str | None, payload: str | None, key: str | None,
            expect_version: int | None, as_json: bool, note: str | None) -> None:
        id = _id(id)
        body = build_payload((NOTE,), payload, {"note": note})
        who = _actor(trigger, actor, id)
        report(fire(session.engine, KIND, id, trigger, who, body, key, expect_version), as_json)

    roles = " or ".join(sorted(lifecycle.definition(KIND).roles_of(trigger)))
    offers(KIND, trigger, f"subaccount {verb} ID")
    return click.Command(
        verb,
        params=[click.Argument(["id"], metavar="STORE/NAME"), NOTE.param(),
                *common_params(KIND, trigger)],
        callback=pass_session(run),
        help=f"{help}\n\nFires {trigger} ({roles}).",
        short_help=help.split(".")[0],
    )


def show_command() -> click.Command:
    @click.command("show")
    @click.argument("id", metavar="STORE/NAME")
    @click.option("--as", "actor", default=None, metavar="ROLE:ID",
                  help="Whose next commands to show. Default: the store's owner.")
    @click.option("--history", "last", type=click.IntRange(0, 10_000), default=5,
                  show_default=True, metavar="N", help="How many of the latest history rows.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON (docs/cli.md).")
    @pass_session
    def show(session: Session, id: str, actor: str | None, last: int, as_json: bool) -> None:
        """A sub-account: its state, permissions, who may act next and its history."""
        id = _id(id)
        who = Actor.parse(actor) if actor else _owner(id) or Actor("operator", user())
        shown = show_json(session.engine, VIEW, id, who, last)
        if as_json:
            output.echo_json(shown)
        else:
            output.echo(show_text(VIEW, shown))

    return show


def list_command() -> click.Command:
    @click.command("list")
    @click.argument("seller", metavar="SELLER")
    @click.option("--state", type=click.Choice(lifecycle.definition(KIND).states), default=None,
                  help="Only sub-accounts in this state.")
    @click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
    @click.option("--after", default=None, metavar="ID", help="Page on: the last id shown.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON (docs/cli.md).")
    @pass_session
    def list_(session: Session, seller: str, state: str | None, limit: int, after: str | None,
              as_json: bool) -> None:
        """The sub-accounts of the store SELLER, in id order."""
        found, next_after = scan(session.engine, KIND, state=state,
                                 keep=lambda a: a.data.get("seller") == seller, limit=limit,
                                 after=after, filtered=True)
        if as_json:
            output.echo_json({"items": [output.aggregate_json(a) for a in found],
                              "next_after": next_after})
            return
        rows = ([a.id, f"seller:{a.data['seller']}/{a.data['name']}", a.state,
                 ", ".join(a.data.get("permissions", [])) or "-"] for a in found)
        output.echo(output.table(["id", "acts as", "state", "permissions"], rows))
        if next_after is not None:
            output.echo(f"(more: --after {next_after})")

    return list_


def history_command() -> click.Command:
    @click.command("history")
    @click.argument("id", metavar="STORE/NAME")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON (docs/cli.md).")
    @pass_session
    def history(session: Session, id: str, as_json: bool) -> None:
        """Every committed transition of one sub-account, oldest first."""
        entries = session.engine.history(KIND, _id(id))
        if as_json:
            output.echo_json([output.history_json(e, None) for e in entries])
        else:
            output.echo(output.history_table(entries))

    return history


@click.group(cls=Noun)
def subaccount() -> None:
    """Staff sub-accounts of a store: the owner creates them with permissions, changes them,
    disables, enables and removes them."""


subaccount.add_command(create_command())
subaccount.add_command(permissions_command())
subaccount.add_command(action("disable", "disable",
                              "Disable the sub-account: refused from its next action on."))
subaccount.add_command(action("enable", "enable", "Give a disabled sub-account its use back."))
subaccount.add_command(action("remove", "remove", "Remove the sub-account for good."))
for _command in (show_command(), list_command(), history_command()):
    subaccount.add_command(_command)
