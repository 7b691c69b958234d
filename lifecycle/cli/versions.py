"""``lifecycle migrate``, ``lifecycle verify`` and ``lifecycle machines``: versions of the
machines (SPEC §13, docs/versions.md)."""

from __future__ import annotations

from typing import Any

import click

import lifecycle
from lifecycle.cli import output
from lifecycle.cli.options import as_option, json_option, operator_actor
from lifecycle.cli.session import BadUsage, Session, pass_session


@click.command()
@click.argument("kind")
@click.option("--to", "to", type=click.IntRange(min=1), required=True, metavar="N",
              help="The version of KIND's machine to move its in-flight aggregates to.")
@click.option("--dry-run", is_flag=True,
              help="Write nothing: say what would happen to each aggregate, and which the new "
                   "version would strand.")
@click.option("--where", "where", default=None, metavar="state=STATE",
              help="Only the aggregates in this state.")
@as_option("Who the migrated history rows name (default operator:$USER).")
@json_option
@pass_session
def migrate(session: Session, kind: str, to: int, dry_run: bool, where: str | None,
            actor: str | None, as_json: bool) -> None:
    """Move in-flight aggregates of KIND to version N of its machine.

    Each aggregate not in a terminal state and not on N yet gets its state through the
    declared migrations' state maps, its deadlines moved, a `migrated` history row and an
    event, in a transaction of its own. If the new version would strand any of them (a state
    it lacks, money held in a state that ends), nothing is migrated and the command fails:
    run --dry-run to see why, per aggregate."""
    state = _where(where)
    report = session.engine.migrate(kind, to, dry_run=dry_run, state=state,
                                    actor=operator_actor(actor))
    if as_json:
        output.echo_json(report.to_json())
        return
    output.echo("\n".join(_report_lines(report)))
    if dry_run and report.stranded:
        raise click.exceptions.Exit(1)


def _where(where: str | None) -> str | None:
    if where is None:
        return None
    name, sep, value = where.partition("=")
    if not sep or name.strip() != "state" or not value.strip():
        raise BadUsage(f"--where takes state=STATE, got {where!r}")
    return value.strip()


def _report_lines(report: lifecycle.MigrationReport) -> list[str]:
    verb = "would migrate" if report.dry_run else "migrated"
    count = len(report.plans) if report.dry_run else report.migrated
    lines = [f"{report.kind}: {verb} {count} in-flight aggregate{'s' if count != 1 else ''} "
             f"to version {report.to_version}; {report.terminal_left} in terminal states stay "
             f"on their version, {report.already} already on it"]
    if report.plans:
        lines.append(output.table(
            ["id", "from", "state", "to", "new state", "deadlines", "escrow", "ends by timers",
             "stranded"],
            ([p.id, f"v{p.from_version}", p.state, f"v{p.to_version}", p.new_state,
              "; ".join(_deadline(d) for d in p.deadlines) or "-",
              ", ".join(f"{amount} {currency}" for currency, amount in p.escrow.items()) or "-",
              "yes" if p.ends_by_timers else "no", "; ".join(p.problems) or "no"]
             for p in report.plans)))
    stranded = len(report.stranded)
    money = "every money invariant holds" if not any(
        "escrow" in problem for p in report.plans for problem in p.problems) else \
        "money would be stranded"
    lines.append(f"stranded: {stranded}; {money}")
    return lines


def _deadline(change: lifecycle.DeadlineChange) -> str:
    if change.action == "moved":
        if change.remaining_after is not None and change.status == "paused":
            return (f"{change.trigger} paused, {output.left(change.remaining_before)} → "  # type: ignore[arg-type]
                    f"{output.left(change.remaining_after)} left")
        return (f"{change.trigger} moved {output.when(change.due_before)} → "  # type: ignore[arg-type]
                f"{output.when(change.due_after)}")  # type: ignore[arg-type]
    if change.action == "scheduled":
        return f"{change.trigger} scheduled {output.when(change.due_after)}"  # type: ignore[arg-type]
    if change.action == "dropped":
        return f"{change.trigger} dropped"
    return f"{change.trigger} kept"


@click.command()
@click.argument("kind", required=False)
@json_option
@click.pass_context
def verify(ctx: click.Context, kind: str | None, as_json: bool) -> None:
    """Check every version of every machine's graph (of KIND only, when given): every state
    reachable, every non-terminal state able to end, every deadline firable from its state,
    follow-ups between machines consistent, migrations mapping every state. Needs no
    database; exit code 1 if any check fails."""
    session: Session = ctx.find_object(Session)  # type: ignore[assignment]
    findings = lifecycle.verify(kind, machines=session.machines if session else None)
    failed = [f for f in findings if not f.ok]
    if as_json:
        output.echo_json({"ok": not failed, "checks": [f.to_json() for f in findings]})
    else:
        for f in findings:
            mark = "ok  " if f.ok else "FAIL"
            output.echo(f"{mark} {f.kind} v{f.version} {f.check}: "
                        f"{'; '.join(f.problems) if f.problems else f.detail}")
        output.echo(f"{len(findings) - len(failed)} of {len(findings)} checks passed")
    if failed:
        raise click.exceptions.Exit(1)


@click.command()
@json_option
@pass_session
def machines(session: Session, as_json: bool) -> None:
    """The versions of each machine: which this process runs, which the database has run
    (and since when), and how many aggregates are on each."""
    found = session.engine.machine_versions()
    if as_json:
        output.echo_json([v.to_json() for v in found])
        return
    output.echo(output.table(
        ["kind", "version", "here", "database since", "aggregates", "new ones start here",
         "fingerprint"],
        ([v.kind, v.version, "yes" if v.here else "no",
          output.when(v.registered_at) if v.registered_at else "-", v.aggregates,
          "yes" if v.newest else "", v.fingerprint[:12]] for v in found)))


COMMANDS: list[Any] = [migrate, verify, machines]
