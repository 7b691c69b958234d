"""``lifecycle keys …``: the API keys a service lets callers in with (issue #16)."""

from __future__ import annotations

from typing import Any

import click

import lifecycle
from lifecycle import ApiKey
from lifecycle.cli import output
from lifecycle.cli.options import json_option
from lifecycle.cli.session import Noun, Session, pass_session

CREATE_HELP = """Make an API key and print its token, once: only a digest of it is stored, so it
cannot be shown again. Give the token to the caller; it goes in each request's
Authorization: Bearer header.

--id binds the key to one actor: a buyer's key acts only as that buyer, a seller's only for
that store, an operator's only as that operator. Without --id the key is a role scope: it acts
as any actor of the role, and each request names which (the service's Lifecycle-Actor
header); a service key is --role system.
"""


@click.group(cls=Noun)
def keys() -> None:
    """API keys for the service: create (the token is shown once), list, revoke.

    The database keeps only a digest of each key's secret; a revoked key lets nobody in, in
    any process, from the next request on.
    """


@keys.command("create", help=CREATE_HELP, short_help="Make a key; its token is shown once.")
@click.option("--role", required=True, type=click.Choice(lifecycle.ROLES),
              help="The role the key acts in.")
@click.option("--id", "actor_id", default=None, metavar="ID",
              help="The actor the key is bound to (default: any actor of the role).")
@click.option("--label", default="", metavar="TEXT", help="What the key is for, for people.")
@json_option
@pass_session
def create(session: Session, role: str, actor_id: str | None, label: str, as_json: bool) -> None:
    key, token = session.engine.create_key(role, actor_id=actor_id, label=label)
    if as_json:
        output.echo_json({**key_json(key), "token": token})
        return
    click.echo(f"API key {key.id}: {scope(key)}")
    click.echo(token)
    click.echo("This token cannot be shown again: store it now.")


@keys.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include the revoked keys.")
@json_option
@pass_session
def list_(session: Session, include_revoked: bool, as_json: bool) -> None:
    """The keys, oldest first (never their tokens); the revoked ones with --all."""
    found = session.engine.keys(include_revoked=include_revoked)
    if as_json:
        output.echo_json([key_json(key) for key in found])
        return
    if not found:
        click.echo("no API keys" if include_revoked else "no API keys in use (--all lists revoked ones)")
        return
    click.echo(output.table(
        ["id", "role", "actor", "label", "created (UTC)", "revoked (UTC)"],
        [(key.id, key.role, key.actor_id or "(any)", key.label, output.when(key.created_at),
          output.when(key.revoked_at) if key.revoked_at else "") for key in found],
    ))


@keys.command("revoke")
@click.argument("key_id", metavar="KEY_ID")
@json_option
@pass_session
def revoke(session: Session, key_id: str, as_json: bool) -> None:
    """Revoke a key: it authenticates no more. Revoking it again keeps the first time."""
    key = session.engine.revoke_key(key_id)
    if as_json:
        output.echo_json(key_json(key))
        return
    at = output.when(key.revoked_at) if key.revoked_at is not None else "?"
    click.echo(f"API key {key.id} ({scope(key)}) revoked at {at} UTC")


def scope(key: ApiKey) -> str:
    """``operator ana``, or ``any seller`` for a role scope."""
    return output.printable(f"{key.role} {key.actor_id}" if key.actor_id is not None
                            else f"any {key.role}")


def key_json(key: ApiKey) -> dict[str, Any]:
    """``keys list --json`` (see docs/cli.md): never the token or its digest."""
    return {"id": key.id, "role": key.role, "actor_id": key.actor_id, "label": key.label,
            "created_at": key.created_at.isoformat(),
            "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None}
