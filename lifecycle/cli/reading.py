"""``show``, ``list`` and ``history`` for each noun, built from a `View` of its kind.

Lists filter by buyer, seller and creation time in the CLI, over `Engine.find` pages in id
order: the engine filters only by state today.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import click

import lifecycle
from lifecycle import Actor, Aggregate, Engine
from lifecycle.cli import conversation, output
from lifecycle.cli.actions import next_steps, system_steps
from lifecycle.cli.options import MOMENT, OWNER_ROLES, as_option, json_option, operator_actor
from lifecycle.cli.session import Session, pass_session

Getter = Callable[[Mapping[str, Any]], Any]

#: how many rows `Engine.find` returns per page while a list filters in the CLI
SCAN_PAGE = 500


def field(*path: str) -> Getter:
    """Read ``data[path[0]][path[1]]…``, or None if any step is missing."""

    def get(data: Mapping[str, Any]) -> Any:
        here: Any = data
        for name in path:
            if not isinstance(here, Mapping) or name not in here:
                return None
            here = here[name]
        return here

    return get


@dataclass(frozen=True)
class View:
    """How one kind reads on a terminal."""

    kind: str
    noun: str
    created: str  # the data field holding the creation time: what --since/--until compare
    details: tuple[tuple[str, Getter], ...]
    columns: tuple[tuple[str, Getter], ...]
    filters: tuple[str, ...] = ()  # data fields a list may filter on: seller, buyer, order
    currency: str | None = None  # the data field naming the currency of the figures
    figures: tuple[str, ...] = ()  # money fields of the data, shown under "money"
    tracked: bool = False  # carrier scans are recorded on it (orders)


# --- show --------------------------------------------------------------------------------


def show_json(engine: Engine, view: View, id: str, actor: Actor, last: int) -> dict[str, Any]:
    """Everything `show` prints, in the shape docs/cli.md documents."""
    definition = engine.definition(view.kind)
    # A sub-account without view_money sees no money: no ledger, no figures (SPEC §12).
    sees_money = engine.sees_money(actor)
    aggregate = engine.without_money(engine.get(view.kind, id), actor)
    parties = {}
    for role in OWNER_ROLES:
        owner = definition.owner_of(role, aggregate.id, aggregate.data)
        if owner:
            allowed = engine.allowed(view.kind, id, Actor(role, owner))
            parties[role] = {"id": owner, "allowed": allowed,
                             "commands": next_steps(view.kind, id, allowed)[0]}
    now = engine.clock.now()
    deadlines = [
        {"trigger": d.trigger, "state": d.state, "status": d.status, "due_at": d.due_at.isoformat(),
         "left_seconds": d.time_left(now).total_seconds(), "attempts": d.attempts,
         "last_error": d.last_error}
        for d in engine.deadlines(kind=view.kind, id=aggregate.id)
    ]
    data = aggregate.data
    currency = output.currency_of(data)
    entries = engine.history(view.kind, id)
    allowed = engine.allowed(view.kind, id, actor)
    return {
        **output.aggregate_json(aggregate),
        "actor": str(actor),
        "allowed": allowed,
        "commands": next_steps(view.kind, id, allowed)[0],
        "system": system_steps(view.kind, aggregate.state),
        "parties": parties,
        "deadlines": deadlines,
        "money": {
            "currency": data.get(view.currency) if view.currency else None,
            "figures": {name: output.amount(data[name], currency)
                        for name in view.figures if name in data} if sees_money else {},
            "balances": (output.balances_json(engine.balances(view.kind, id, actor=actor))
                         if sees_money else {}),
            **({} if sees_money else {"hidden": "needs the view_money permission"}),
        },
        "history": [output.history_json(e, currency) for e in entries[-last:]] if last else [],
        "history_total": len(entries),
        "tracking": [output.scan_json(t) for t in engine.tracking(id)] if view.tracked else [],
        "messages": _messages_json(engine, aggregate, actor),
    }


def _messages_json(engine: Engine, aggregate: Aggregate, actor: Actor) -> list[dict[str, Any]]:
    found = conversation.order_messages(engine, aggregate, actor) or []
    return [conversation.message_json(m) for m in found]


def show_text(view: View, shown: Mapping[str, Any]) -> str:
    actor_role, _, actor_id = str(shown["actor"]).partition(":")
    lines = [
        f"{shown['kind']} {shown['id']}",
        *output.pairs([("state", shown["state"]), ("version", shown["version"]),
                       ("as", shown["actor"])]),
    ]
    parties = [(role, party["id"], party["commands"]) for role, party in shown["parties"].items()]
    if (actor_role, actor_id) not in {(role, id) for role, id, _ in parties}:
        parties.append((actor_role, actor_id, shown["commands"]))
    who: list[tuple[str, str, str]] = []
    for role, id, commands in parties:
        who += [(role, id, commands[0] if commands else "-"),
                *(("", "", command) for command in commands[1:])]
    who += [("system", "", "only the system: " + step) for step in shown["system"]]
    lines += ["who may act", *output.indented(output.table(["role", "id", "may run"], who))]
    details = [(label, _render(get(shown["data"]))) for label, get in view.details]
    if shown.get("tracking"):
        details.append(("tracking", _scans(shown["tracking"])))
    lines += ["details", *output.pairs((k, v) for k, v in details if v not in (None, ""))]
    if shown["deadlines"]:
        rows = [(d["trigger"], d["status"], output.stamp(d["due_at"]),
                 output.left(timedelta(seconds=d["left_seconds"]))) for d in shown["deadlines"]]
        lines += ["deadlines", *output.indented(output.table(["trigger", "status", "due", "left"], rows))]
    money = shown["money"]
    if money.get("hidden"):
        lines += ["money", *output.pairs([("hidden", money["hidden"])])]
    elif money["figures"] or money["balances"]:
        balances = [
            (f"balance {currency}" if currency != money["currency"] else "balance",
             "  ".join(f"{account} {amount}" for account, amount in accounts.items()))
            for currency, accounts in money["balances"].items()
        ]
        title = f"money ({money['currency']})" if money["currency"] else "money"
        lines += [title, *output.pairs([*money["figures"].items(), *balances])]
    if shown["history"]:
        lines += [f"history (last {len(shown['history'])} of {shown['history_total']})"]
        steps = [(e["seq"], output.stamp(e["at"]), e["trigger"], e["source"] or "-", e["dest"],
                  e["actor"]) for e in shown["history"]]
        lines += output.indented(output.table(["seq", "at", "trigger", "from", "to", "actor"], steps))
    if shown.get("messages"):
        order = shown["data"].get("order", shown["id"])
        lines += [f"messages of order {order}",
                  *output.indented(conversation.messages_table(shown["messages"]))]
    return "\n".join(lines)


def _scans(scans: list[Mapping[str, Any]]) -> str:
    last = scans[-1]
    kind = f" ({last['exception_kind']})" if last.get("exception_kind") else ""
    return f"{len(scans)} event(s), last {last['status'] or 'recorded'}{kind}"


def _render(value: Any) -> Any:
    if isinstance(value, bool):
        return "yes" if value else None
    if isinstance(value, str) and len(value) >= 19 and value[10:11] == "T":
        return output.stamp(value)
    if isinstance(value, list | Mapping):
        return output.short(value) if value else None
    return value


def show_command(view: View) -> click.Command:
    @click.command("show")
    @click.argument("id")
    @as_option("Whose next commands to show (beside each party's), as ROLE:ID. Default: operator:$USER.")
    @click.option("--history", "last", type=click.IntRange(0, 10_000), default=5, show_default=True,
                  metavar="N", help="How many of the latest history rows to show.")
    @json_option
    @pass_session
    def show(session: Session, id: str, actor: str | None, last: int, as_json: bool) -> None:
        shown = show_json(session.engine, view, id, operator_actor(actor), last)
        if as_json:
            output.echo_json(shown)
        else:
            output.echo(show_text(view, shown))

    article = "An" if view.noun[0] in "aeiou" else "A"
    show.help = (f"{article} {view.noun}'s state, the commands each party may run next, "
                 "pending deadlines with the time left, money and the latest history.")
    return show


# --- list --------------------------------------------------------------------------------


def scan(engine: Engine, kind: str, *, state: str | None, keep: Callable[[Aggregate], bool],
         limit: int, after: str | None, filtered: bool) -> tuple[list[Aggregate], str | None]:
    """Up to ``limit`` aggregates that ``keep`` accepts, after the id ``after``; and the id to
    pass as ``--after`` for the next page (None when this page is the last)."""
    page_size = SCAN_PAGE if filtered else limit
    found: list[Aggregate] = []
    cursor = after
    while True:
        page = engine.find(kind, state=state, limit=page_size, after_id=cursor)
        for aggregate in page:
            if keep(aggregate):
                found.append(aggregate)
                if len(found) == limit:
                    return found, aggregate.id
        if len(page) < page_size:
            return found, None
        cursor = page[-1].id


def _created_between(view: View, since: datetime | None,
                     until: datetime | None) -> Callable[[Aggregate], bool]:
    def keep(aggregate: Aggregate) -> bool:
        if since is None and until is None:
            return True
        text = aggregate.data.get(view.created)
        if not text:
            return False
        created = datetime.fromisoformat(str(text))
        return (since is None or created >= since) and (until is None or created < until)

    return keep


def list_command(view: View) -> click.Command:
    states = lifecycle.definition(view.kind).states

    def run(session: Session, state: str | None, since: datetime | None, until: datetime | None,
            limit: int, after: str | None, as_json: bool, **wanted: str | None) -> None:
        in_time = _created_between(view, since, until)
        matches = {name: value for name, value in wanted.items() if value is not None}

        def keep(aggregate: Aggregate) -> bool:
            owned = all(aggregate.data.get(name) == value for name, value in matches.items())
            return owned and in_time(aggregate)

        filtered = bool(matches) or since is not None or until is not None
        found, next_after = scan(session.engine, view.kind, state=state, keep=keep, limit=limit,
                                 after=after, filtered=filtered)
        if as_json:
            output.echo_json({"items": [output.aggregate_json(a) for a in found],
                              "next_after": next_after})
            return
        headers = ["id", "state", *(name for name, _ in view.columns)]
        rows = ([a.id, a.state, *(_cell(get(output.amounts(a.data, None))) for _, get in view.columns)]
                for a in found)
        output.echo(output.table(headers, rows))
        if next_after is not None:
            output.echo(f"(more: --after {next_after})")

    params: list[click.Parameter] = [
        click.Option(["--state"], type=click.Choice(states), default=None,
                     help=f"Only {view.noun}s in this state."),
        *(click.Option([f"--{name}"], default=None, metavar="ID", help=f"Only this {name}'s.")
          for name in view.filters),
        click.Option(["--since"], type=MOMENT, default=None,
                     help=f"Only {view.noun}s created at or after TIME (ISO, or an age: 7d, 12h)."),
        click.Option(["--until"], type=MOMENT, default=None,
                     help=f"Only {view.noun}s created before TIME."),
        click.Option(["--limit"], type=click.IntRange(1, 10_000), default=50, show_default=True),
        click.Option(["--after"], default=None, metavar="ID",
                     help="Page on: the next_after (or last id) of the previous page."),
        click.Option(["--json", "as_json"], is_flag=True,
                     help="Print JSON (the shapes are in docs/cli.md) instead of a table."),
    ]
    return click.Command(
        "list", params=params, callback=pass_session(run),
        help=f"{view.noun.capitalize()}s in id order, a page at a time, filtered.",
    )


def _cell(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 19 and value[10:11] == "T":
        return output.stamp(value)
    if isinstance(value, str) and len(value) > 40:
        return value[:37] + "..."
    return value


# --- history -----------------------------------------------------------------------------


def history_command(view: View) -> click.Command:
    @click.command("history")
    @click.argument("id")
    @json_option
    @pass_session
    def history(session: Session, id: str, as_json: bool) -> None:
        engine = session.engine
        entries = engine.history(view.kind, id)
        if as_json:
            currency = output.currency_of(engine.get(view.kind, id).data)
            output.echo_json([output.history_json(e, currency) for e in entries])
        else:
            output.echo(output.history_table(entries))

    history.help = f"Every committed transition of one {view.noun}, oldest first."
    return history


def reading_commands(view: View) -> Sequence[click.Command]:
    return (show_command(view), list_command(view), history_command(view))
