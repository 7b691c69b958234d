"""``lifecycle violation …`` and ``lifecycle standing …``: violations and penalties (SPEC §12).

An operator records a violation against a store; the seller appeals it within the appeal
window; an operator upholds or overturns the appeal. The store's standing (its active points
and the restriction they reach) moves with each violation; ``standing show`` reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

import lifecycle
from lifecycle import Aggregate, Engine
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
from lifecycle.cli.options import json_option
from lifecycle.cli.reading import View, field, reading_commands
from lifecycle.cli.session import Noun, Session, pass_session

TYPES = lifecycle.VIOLATION_TYPES
DEFAULTS = lifecycle.Policy()
_DEFAULT_POINTS = ", ".join(
    f"{name} {getattr(DEFAULTS, f'violation_points_{name}')}" for name in TYPES)

VIOLATION_VIEW = View(
    kind="violation",
    noun="violation",
    created="recorded_at",
    details=(
        ("seller", field("seller")),
        ("type", field("type")),
        ("points", field("points")),
        ("note", field("note")),
        ("recorded", field("recorded_at")),
        ("recorded by", field("recorded_by")),
        ("appeal until", field("appeal_until")),
        ("appeal", field("appeal_reason")),
        ("decision", field("decision")),
        ("decided by", field("decided_by")),
        ("decision note", field("decision_note")),
        ("points expire", field("expires_at")),
    ),
    columns=(
        ("seller", field("seller")),
        ("type", field("type")),
        ("points", field("points")),
        ("recorded", field("recorded_at")),
        ("expires", field("expires_at")),
    ),
    filters=("seller",),
)
STANDING_VIEW = View(
    kind="standing",
    noun="standing",
    created="opened_at",
    details=(("points", field("points")), ("violations", field("violations"))),
    columns=(("points", field("points")), ("changed", field("changed_at"))),
)

RECORD_FIELDS = (
    Field("--type", "type", f"What the store did: {', '.join(TYPES)}.",
          type=click.Choice(TYPES), required=True),
    Field("--points", "points", f"Penalty points (default: the type's, by default "
                                f"{_DEFAULT_POINTS}).", type=int, metavar="N"),
    NOTE,
)
REASON = Field("--reason", "reason", "Why.", required=True)


def record_command() -> click.Command:
    def run(session: Session, seller: str, id: str | None, actor: str | None,
            payload: str | None, key: str | None, as_json: bool, **values: Any) -> None:
        body = {"seller": seller, **build_payload(RECORD_FIELDS, payload, values)}
        who = actor_for("violation", "record", actor)
        recorded = session.engine.create("violation", who, body, id=id, idempotency_key=key)
        standing = session.engine.get("standing", recorded.data["seller"])
        report(recorded, as_json, also=f"; store {standing.id} has {standing.data['points']} "
                                       f"points: {standing.state}")

    return click.Command(
        "record",
        params=[click.Argument(["seller"], metavar="SELLER"),
                click.Option(["--id"], default=None, help="Choose the violation's id."),
                *(f.param() for f in RECORD_FIELDS),
                *common_params("violation", "record", create=True)],
        callback=pass_session(run),
        help="Record a violation against the store SELLER, with its penalty points; the "
             "store's standing moves with it (and at the suspension threshold the seller is "
             "suspended).\n\nFires record (operator).",
        short_help="Record a violation against a store",
    )


offers("violation", "record", "violation record SELLER")
VIOLATION_ACTIONS = (
    Action("appeal", "violation", "appeal",
           f"The seller appeals the violation (within "
           f"{DEFAULTS.violation_appeal_window.days} days of its recording by default).",
           (REASON,)),
    Action("uphold", "violation", "uphold", "Uphold an appealed violation: its points stay.",
           (NOTE,)),
    Action("overturn", "violation", "overturn",
           "Overturn an appealed violation: its points are removed, and restrictions they "
           "caused are lifted.", (REASON,)),
)


@click.group(cls=Noun)
def violation() -> None:
    """Violations: operators record them against stores, sellers appeal, operators decide."""


violation.add_command(record_command())
for _action in VIOLATION_ACTIONS:
    violation.add_command(action_command(_action))
for _command in reading_commands(VIOLATION_VIEW):
    violation.add_command(_command)


# --- standing ----------------------------------------------------------------------------


def standing_json(engine: Engine, seller: str) -> dict[str, Any]:
    """A store's standing as `standing show --json` prints it; a seller never penalised
    is clear with no points."""
    seller_account = engine.get("seller", seller)
    try:
        found: Aggregate | None = engine.get("standing", seller_account.id)
    except lifecycle.NotFound:
        found = None
    policy = engine.policy
    data: Mapping[str, Any] = found.data if found else {}
    level = found.state if found else "clear"
    active = [{"id": id, **v} for id, v in sorted(
        data.get("violations", {}).items(), key=lambda item: item[1]["expires_at"])]
    return {
        "seller": seller_account.id,
        "seller_state": seller_account.state,
        "points": data.get("points", 0),
        "level": level,
        "restricts": lifecycle.STANDING_RESTRICTS.get(level, "nothing (closed)"),
        "thresholds": data.get("thresholds") or {
            "promotion_restricted": policy.penalty_promotion_restricted_at,
            "orders_refused": policy.penalty_orders_refused_at,
            "store_suspended": policy.penalty_store_suspended_at},
        "period": data.get("period") or f"{policy.violation_points_period.days} days",
        "suspension": data.get("suspension"),
        "active_violations": active,
        "version": found.version if found else 0,
    }


def standing_text(shown: Mapping[str, Any]) -> str:
    thresholds = shown["thresholds"]
    details = [
        ("points", f"{shown['points']} in the last {shown['period']}"),
        ("level", shown["level"]),
        ("restricts", shown["restricts"]),
        ("thresholds", f"{thresholds['promotion_restricted']} promotion restricted, "
                       f"{thresholds['orders_refused']} orders refused, "
                       f"{thresholds['store_suspended']} store suspended"),
        ("seller", shown["seller_state"]),
    ]
    suspension = shown["suspension"]
    if suspension:
        said = f"by penalties at {output.stamp(suspension['at'])}"
        if suspension.get("liftable_since"):
            said += (f"; points below the threshold since "
                     f"{output.stamp(suspension['liftable_since'])}: an operator may "
                     f"reinstate (lifecycle seller reinstate {shown['seller']})")
        details.append(("suspended", said))
    lines = [f"standing {shown['seller']}", *output.pairs(details)]
    rows = [(v["id"], v["type"], v["points"], output.stamp(v["recorded_at"]),
             output.stamp(v["expires_at"])) for v in shown["active_violations"]]
    if rows:
        lines += ["active violations", *output.indented(
            output.table(["id", "type", "points", "recorded", "expires"], rows))]
    return "\n".join(lines)


@click.command("show")
@click.argument("seller", metavar="SELLER")
@json_option
@pass_session
def show_standing(session: Session, seller: str, as_json: bool) -> None:
    """A store's standing: its active penalty points, the level they reach and what it
    restricts, and its active violations with the date each one's points expire."""
    shown = standing_json(session.engine, seller)
    if as_json:
        output.echo_json(shown)
    else:
        output.echo(standing_text(shown))


@click.command("violations")
@click.argument("seller", metavar="SELLER")
@json_option
@pass_session
def store_violations(session: Session, seller: str, as_json: bool) -> None:
    """Every violation recorded against the store SELLER, active or not."""
    found = session.engine.violations(seller)
    if as_json:
        output.echo_json({"items": [output.aggregate_json(v) for v in found]})
        return
    rows = [(v.id, v.state, v.data["type"], v.data["points"], output.stamp(v.data["recorded_at"]),
             output.stamp(v.data["expires_at"]) if v.state in ("recorded", "appealed", "final")
             else "-") for v in found]
    output.echo(output.table(["id", "state", "type", "points", "recorded", "expires"], rows))


@click.group(cls=Noun)
def standing() -> None:
    """Store standings: penalty points over the last 365 days and the restriction they bring."""


standing.add_command(show_standing)
standing.add_command(store_violations)
standing.add_command(action_command(Action(
    "close", "standing", "close",
    "Close the standing of a closed store with no active violations.", (NOTE,))))
for _command in reading_commands(STANDING_VIEW)[1:]:  # show is the store's own, above
    standing.add_command(_command)
