"""Domain commands as data: a verb fires one trigger, and its options are the payload's fields.

Every action takes ``--as``, ``--payload`` (the whole payload as JSON; options given too
override its fields), ``--key`` (idempotency), ``--expect-version`` and ``--json``. A field
marked required must come from its option or from ``--payload``; its absence is a usage error
(exit 2) that names both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import click

import lifecycle
from lifecycle import Actor, Aggregate, Engine
from lifecycle.cli import output, payloads
from lifecycle.cli.options import (
    OWNER_ROLES,
    has,
    parse_payload,
    put,
    resolve_actor,
    who_may,
)
from lifecycle.cli.session import BadUsage, Refused, Session, pass_session

#: what a seller confirms before handing a parcel over: the fields of the shipping checklist
CHECKS = tuple(payloads.fields("order", "ship_offline", "checklist"))


# --- the command that fires each trigger -----------------------------------------------------

#: ``(kind, trigger)`` → the command that fires it, after ``lifecycle``, ``ID`` standing for
#: the aggregate's id: ``("order", "confirm_receipt")`` → ``"order confirm ID"``. Each command
#: says what it fires when it is built (`offers`); what no command fires, only the system does.
COMMANDS: dict[tuple[str, str], str] = {}
#: who fires what only the system fires, by kind of trigger
TIMER, SYSTEM = "timer", "system"


def offers(kind: str, trigger: str, command: str) -> None:
    """Record that ``lifecycle COMMAND`` fires ``trigger`` on a ``kind`` (the first wins)."""
    COMMANDS.setdefault((kind, trigger), command)


def command_for(kind: str, trigger: str, id: str) -> str | None:
    """``lifecycle order confirm o-1``: what to type to fire ``trigger`` on ``id``; None when
    no command fires it (a deadline, a follow-up)."""
    command = COMMANDS.get((kind, trigger))
    return f"lifecycle {command.replace('ID', id)}" if command else None


def system_only(kind: str, trigger: str) -> str | None:
    """``"timer"`` for a deadline, ``"system"`` for another trigger only the system fires
    (no command fires it); None for one a person fires with a command."""
    if (kind, trigger) in COMMANDS:
        return None
    definition = lifecycle.definition(kind)
    if any(d.trigger == trigger for d in definition.deadlines):
        return TIMER
    return SYSTEM


def next_steps(kind: str, id: str, triggers: Iterable[str]) -> tuple[list[str], list[str]]:
    """The commands that fire ``triggers`` on ``id`` (each once, in order: ``cancel`` and
    ``request_cancel`` are both ``order cancel``), and the triggers only the system fires, each
    as ``ship_deadline (timer)``."""
    commands: list[str] = []
    system: list[str] = []
    for trigger in triggers:
        command = command_for(kind, trigger, id)
        if command is None:
            system.append(f"{trigger} ({system_only(kind, trigger)})")
        elif command not in commands:
            commands.append(command)
    return commands, system


def system_steps(kind: str, state: str) -> list[str]:
    """What only the system fires from ``state`` (deadlines, as ``auto_confirm (timer)``)."""
    definition = lifecycle.definition(kind)
    return [f"{trigger} ({system_only(kind, trigger)})"
            for trigger in definition.external_triggers_from(state)
            if definition.roles_of(trigger) <= {"system"} and system_only(kind, trigger)]


def in_commands(kind: str, id: str, triggers: Iterable[str], *, by_role: bool = False) -> str:
    """``lifecycle order cancel o-1, lifecycle order ship-offline o-1 (seller); only the
    system: ship_deadline (timer)``; ``none`` when empty. With ``by_role``, each command says
    who may run it."""
    triggers = list(triggers)
    commands, system = next_steps(kind, id, triggers)
    if by_role:
        definition = lifecycle.definition(kind)
        roles = {command_for(kind, t, id): definition.roles_of(t) - {"system"} for t in triggers}
        commands = [f"{c} ({who_may(roles[c])})" if roles.get(c) else c for c in commands]
    text = ", ".join(commands) or "none"
    return f"{text}; only the system: {', '.join(system)}" if system else text


class RefusedInCommands(Refused):
    """A refusal whose "allowed" part names the commands to type, not the triggers."""

    def __init__(self, error: lifecycle.LifecycleError, message: str):
        super().__init__(error)
        self.said = " ".join(message.split())

    def format_message(self) -> str:
        return self.said


def explained(error: lifecycle.LifecycleError) -> lifecycle.LifecycleError | Refused:
    """``error`` with what the actor may do instead said as commands: the engine's refusals
    end ``; allowed from STATE: t1, t2`` or ``; allowed for ROLE: t1`` (`lifecycle.errors`);
    that ending is rewritten, the rest kept word for word. Other errors are returned as
    they are."""
    allowed = getattr(error, "allowed", None)
    kind, id = getattr(error, "kind", ""), getattr(error, "id", "")
    text = str(error)
    head, marker, tail = text.rpartition("; allowed ")
    if allowed is None or not kind or not id or not marker:
        return error
    where, colon, _ = tail.partition(": ")
    if not colon:
        return error
    by_role = isinstance(error, lifecycle.InvalidTransition)
    return RefusedInCommands(error, f"{head}; allowed {where}: "
                                    f"{in_commands(kind, id, allowed, by_role=by_role)}")


@dataclass(frozen=True)
class Field:
    """One option that sets one payload field (``path`` may be nested: ``consignee.name``)."""

    option: str
    path: str
    help: str
    type: Any = None
    required: bool = False
    multiple: bool = False
    flag: bool = False
    convert: Callable[[Any], Any] | None = None
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return self.option.lstrip("-").replace("-", "_")

    def param(self) -> click.Option:
        need = " [required]" if self.required else ""
        if self.flag:
            return click.Option([self.option, self.dest], is_flag=True, default=False,
                                help=self.help)
        return click.Option([self.option, self.dest], type=self.type, multiple=self.multiple,
                            default=None, metavar=self.metavar, help=self.help + need)

    def given(self, value: Any) -> bool:
        if self.flag:
            return bool(value)
        if self.multiple:
            return bool(value)
        return value is not None

    def value(self, value: Any) -> Any:
        if self.convert is not None:
            return self.convert(value)
        return list(value) if self.multiple else value


NOTE = Field("--note", "note", "A note kept in the history with the transition.")


def checklist(items: tuple[str, ...]) -> dict[str, bool]:
    """``--confirm quantity --confirm model …`` (or ``--confirm all``) as the payload checklist."""
    return {check: "all" in items or check in items for check in CHECKS}


CONFIRM = Field(
    "--confirm", "checklist",
    f"What the seller checked before handing over: {', '.join(CHECKS)} or "
    "all (repeat the option). All four are needed to ship.",
    type=click.Choice([*CHECKS, "all"]), multiple=True, required=True, convert=checklist,
    metavar="ITEM",
)


@dataclass(frozen=True)
class Action:
    """``lifecycle NOUN VERB ID``: fire ``trigger`` on a ``kind`` aggregate."""

    verb: str
    kind: str
    trigger: str
    help: str
    fields: tuple[Field, ...] = ()
    self_acting: bool = False  # the aggregate's id is the acting seller's (seller commands)


def build_payload(fields: tuple[Field, ...], payload_text: str | None,
                  values: Mapping[str, Any]) -> dict[str, Any]:
    """``--payload`` first, then each option given on top; every required field present."""
    payload = parse_payload(payload_text)
    for spec in fields:
        value = values.get(spec.dest)
        if spec.given(value):
            put(payload, spec.path, spec.value(value))
    missing = [spec for spec in fields if spec.required and not has(payload, spec.path)]
    if missing:
        names = ", ".join(f"{spec.option}" for spec in missing)
        paths = ", ".join(spec.path for spec in missing)
        raise BadUsage(f"missing option {names} (or {paths} in --payload)")
    return payload


def actor_for(kind: str, trigger: str, text: str | None, id: str | None = None,
              self_acting: bool = False) -> Actor:
    what = f"{kind} {trigger}"
    own = Actor("seller", id) if self_acting and id else None
    return resolve_actor(text, lifecycle.definition(kind).roles_of(trigger), what=what, own=own)


def report(aggregate: Aggregate, as_json: bool, also: str = "") -> None:
    if as_json:
        output.echo_json(output.aggregate_json(aggregate))
    else:
        output.echo(output.moved(aggregate) + also)


def fire(engine: Engine, kind: str, id: str, trigger: str, actor: Actor, payload: Mapping[str, Any],
         key: str | None, expect_version: int | None) -> Aggregate:
    """Fire the trigger; a refusal says what the actor may do instead as commands."""
    try:
        return engine.fire(kind, id, trigger, actor, payload, idempotency_key=key,
                           expected_version=expect_version)
    except lifecycle.LifecycleError as error:
        raise explained(error) from None


def common_params(kind: str, trigger: str, *, self_acting: bool = False,
                  create: bool = False) -> list[click.Parameter]:
    """``--as --payload --key [--expect-version] --json``, with help that says who may act."""
    roles = lifecycle.definition(kind).roles_of(trigger)
    implied = [role for role in OWNER_ROLES if role in roles]
    bare = ("a bare ID is the " + implied[0] if len(implied) == 1 else
            "a bare ID is an operator" if not implied else "say which role")
    default = ("Default: operator:$USER." if "operator" in roles else
               "Default: the seller ID." if self_acting else "Required.")
    params: list[click.Parameter] = [
        click.Option(["--as", "actor"], default=None, metavar="ROLE:ID",
                     help=f"Who acts ({who_may(roles)} may {trigger}): ROLE:ID; {bare}. {default}"),
        click.Option(["--payload", "payload"], metavar="JSON",
                     help="The whole payload: JSON text, @FILE or - for stdin. Options given "
                          "too override its fields."),
        click.Option(["--key", "key"], default=None, metavar="KEY",
                     help="Idempotency key: a retry with the same key changes nothing."),
    ]
    if not create:
        params.append(click.Option(["--expect-version", "expect_version"],
                                   type=click.IntRange(min=1), default=None, metavar="N",
                                   help="Apply only if the aggregate is still at version N."))
    params.append(click.Option(["--json", "as_json"], is_flag=True,
                               help="Print the aggregate as JSON (docs/cli.md) instead of a line."))
    return params


def action_command(action: Action) -> click.Command:
    """A click command that fires ``action.trigger`` with its options as the payload."""

    def run(session: Session, id: str, actor: str | None, payload: str | None, key: str | None,
            expect_version: int | None, as_json: bool, **values: Any) -> None:
        body = build_payload(action.fields, payload, values)
        who = actor_for(action.kind, action.trigger, actor, id, action.self_acting)
        moved = fire(session.engine, action.kind, id, action.trigger, who, body, key, expect_version)
        report(moved, as_json)

    noun = action.kind if action.kind != "seller" else "seller account"
    params: list[click.Parameter] = [
        click.Argument(["id"], metavar="ID"),
        *(spec.param() for spec in action.fields),
        *common_params(action.kind, action.trigger, self_acting=action.self_acting),
    ]
    roles = who_may(lifecycle.definition(action.kind).roles_of(action.trigger))
    offers(action.kind, action.trigger, f"{action.kind} {action.verb} ID")
    return click.Command(
        action.verb, params=params, callback=pass_session(run),
        help=f"{action.help}\n\nFires {action.trigger} on the {noun} ID ({roles}).",
        short_help=action.help.split("\n")[0].rstrip("."),
    )
