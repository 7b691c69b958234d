"""The generic commands, for scripts: any kind, any trigger, a payload as JSON."""

from __future__ import annotations

import click

import lifecycle
from lifecycle import Actor, Engine
from lifecycle.cli import output
from lifecycle.cli.actions import next_steps, system_steps
from lifecycle.cli.options import (
    as_option,
    expect_version_option,
    json_option,
    key_option,
    operator_actor,
    parse_payload,
    payload_option,
)
from lifecycle.cli.session import Session, pass_session

ACTOR_HELP = "Who acts, as ROLE:ID (buyer:b-1, seller:s-1, operator:ana, system:timer)."


@click.command()
@click.argument("kind")
@click.option("--as", "actor", required=True, metavar="ROLE:ID", help=ACTOR_HELP)
@payload_option
@click.option("--id", "id", default=None, help="Choose the new aggregate's id.")
@key_option
@json_option
@pass_session
def create(session: Session, kind: str, actor: str, payload: str | None, id: str | None,
           key: str | None, as_json: bool) -> None:
    """Create an aggregate with its kind's first trigger (seller: register, order: place)."""
    created = session.engine.create(kind, Actor.parse(actor), parse_payload(payload), id=id,
                                    idempotency_key=key)
    if as_json:
        output.echo_json(output.aggregate_json(created))
    else:
        output.echo(output.moved(created))


@click.command()
@click.argument("kind")
@click.argument("id")
@click.argument("trigger")
@click.option("--as", "actor", required=True, metavar="ROLE:ID", help=ACTOR_HELP)
@payload_option
@key_option
@expect_version_option
@json_option
@pass_session
def fire(session: Session, kind: str, id: str, trigger: str, actor: str, payload: str | None,
         key: str | None, expect_version: int | None, as_json: bool) -> None:
    """Fire TRIGGER on one aggregate."""
    moved = session.engine.fire(kind, id, trigger, Actor.parse(actor), parse_payload(payload),
                                idempotency_key=key, expected_version=expect_version)
    if as_json:
        output.echo_json(output.aggregate_json(moved))
    else:
        output.echo(output.moved(moved))


@click.command()
@click.argument("kind")
@click.argument("id")
@as_option(ACTOR_HELP + " Default: operator:$USER.")
@json_option
@pass_session
def show(session: Session, kind: str, id: str, actor: str | None, as_json: bool) -> None:
    """An aggregate's state, version, data and the commands the actor may run now."""
    engine = session.engine
    who = operator_actor(actor)
    aggregate = engine.get(kind, id)
    refuse_private(engine, aggregate, who)
    aggregate = engine.without_money(aggregate, who)
    allowed = engine.allowed(kind, id, who)
    commands = next_steps(aggregate.kind, aggregate.id, allowed)[0]
    if as_json:
        output.echo_json({**output.aggregate_json(aggregate, allowed), "commands": commands})
    else:
        output.echo(output.describe(aggregate, commands,
                                    system_steps(aggregate.kind, aggregate.state)))


def refuse_private(engine: Engine, aggregate: lifecycle.Aggregate, reader: Actor) -> None:
    """A profile's (or contact's) data whole only to its owner and operators (issue #20):
    anyone else reads a profile as its privacy lets them, through ``lifecycle profile show``."""
    definition = engine.definition(aggregate.kind)
    if aggregate.kind in lifecycle.PRIVATE_KINDS and not definition.owns(reader, aggregate.id,
                                                                         aggregate.data):
        raise lifecycle.Forbidden(
            reader.role, reader.id, "show",
            f"a {aggregate.kind}'s data is shown whole to its owner and operators only; read "
            f"the profile as others see it with lifecycle profile show SELLER --as {reader}")


@click.command()
@click.argument("kind")
@click.argument("id")
@json_option
@pass_session
def history(session: Session, kind: str, id: str, as_json: bool) -> None:
    """Every committed transition of one aggregate, oldest first."""
    engine = session.engine
    entries = engine.history(kind, id)
    if as_json:
        currency = output.currency_of(engine.get(kind, id).data)
        output.echo_json([output.history_json(e, currency) for e in entries])
    else:
        output.echo(output.history_table(entries))


@click.command("list")
@click.argument("kind")
@click.option("--state", default=None, help="Only aggregates in this state.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--after", default=None, metavar="ID", help="Page on: the last id of the previous page.")
@json_option
@pass_session
def list_(session: Session, kind: str, state: str | None, limit: int, after: str | None,
          as_json: bool) -> None:
    """Aggregates of one kind, in id order, a page at a time."""
    found = session.engine.find(kind, state=state, limit=limit, after_id=after)
    if as_json:
        output.echo_json([output.aggregate_json(a) for a in found])
        return
    output.echo(output.table(["id", "state", "version"], ([a.id, a.state, a.version] for a in found)))


@click.command()
@json_option
@pass_session
def check(session: Session, as_json: bool) -> None:
    """Verify the whole database: histories replay, ledger invariants hold. Exit 1 on any violation."""
    violations = session.engine.check()
    captures = _unexpected_captures(session.engine)
    if as_json:
        output.echo_json({"ok": not violations, "violations": [
            {"kind": v.kind, "id": v.id, "rule": v.rule, "detail": v.detail} for v in violations
        ], "unexpected_captures": captures})
    elif not violations:
        output.echo("ok: every history replays to its state; every ledger invariant holds")
    else:
        for violation in violations:
            output.echo(str(violation))
    if not as_json and any(captures.values()):
        output.echo(f"unexpected captures (kept and refunded, never paid an order): "
                    f"{captures['refunded']} refunded, {captures['refund_pending']} refund pending")
    if violations:
        output.echo(f"error: {len(violations)} violation(s)", err=True)
        raise SystemExit(1)


def _unexpected_captures(engine: Engine) -> dict[str, int]:
    """How many captures no order could take are refunded, and how many still wait."""
    counts = {}
    for state in lifecycle.definition("unexpected_capture").states:
        counts[state], after = 0, None
        while page := engine.find("unexpected_capture", state=state, limit=1000, after_id=after):
            counts[state] += len(page)
            after = page[-1].id
    return counts


COMMANDS = (create, fire, show, history, list_, check)
