"""The ``lifecycle`` command: a thin skin over the public API.

Exit codes: 0 done; 1 refused by the domain (wrong state, guard, role, conflict, not found);
2 bad usage or payload. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, NoReturn, TypeVar

import click

import lifecycle
from lifecycle import Actor, Aggregate, Engine, HistoryEntry, LifecycleError, ScheduledDeadline

F = TypeVar("F", bound=Callable[..., Any])

EPILOG = """\b
Exit codes:
  0  done
  1  refused by the domain: wrong state, guard, role or owner, conflict, not found
  2  bad usage or payload
"""


class Refused(click.ClickException):
    """A `LifecycleError` as the CLI reports it: one line, its own exit code."""

    def __init__(self, error: LifecycleError):
        super().__init__(str(error))
        self.exit_code = error.exit_code  # type: ignore[misc]  # click reads it per instance

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class Session:
    """The context object: opens the engine on first use, so ``--help`` touches no database."""

    def __init__(self, url: str):
        self.url = url
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = lifecycle.open(self.url)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()


pass_session = click.make_pass_decorator(Session)


def refusals(fn: F) -> F:
    """Turn the engine's errors into one-line refusals with their exit codes."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LifecycleError as error:
            raise Refused(error) from None

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper  # type: ignore[return-value]


def default_url() -> str:
    return lifecycle.DEFAULT_URL


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", envvar="LIFECYCLE_DB", default=default_url, show_default=True,
              help="Database URL (or LIFECYCLE_DB): sqlite:///FILE or postgresql+psycopg://…")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="warning", show_default=True, help="Log events at this level and above, on stderr.")
@click.version_option(lifecycle.__version__, prog_name="lifecycle")
@click.pass_context
def cli(ctx: click.Context, db: str, log_level: str) -> None:
    """lifecycle: seller onboarding, orders and disputes as persisted state machines."""
    from lifecycle.logs import configure

    configure(log_level)
    session = Session(db)
    ctx.obj = session
    ctx.call_on_close(session.close)


# --- options shared by commands ------------------------------------------------------------


def actor_option(default_operator: bool = False) -> Callable[[F], F]:
    help_text = "Who acts, as ROLE:ID (buyer:b-1, seller:s-1, operator:ana, system:timer)."
    if default_operator:
        return click.option("--as", "actor", default=None, metavar="ROLE:ID",
                            help=help_text + " Default: operator:$USER.")
    return click.option("--as", "actor", required=True, metavar="ROLE:ID", help=help_text)


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(fn)


def parse_actor(text: str | None) -> Actor:
    if text is None:
        return Actor("operator", _user())
    return Actor.parse(text)


def _user() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "operator"


def parse_payload(text: str | None) -> dict[str, Any]:
    """``--payload`` as JSON text, ``@file`` or ``-`` (stdin)."""
    if text is None:
        return {}
    try:
        if text == "-":
            text = sys.stdin.read()
        elif text.startswith("@"):
            with open(text[1:], encoding="utf-8") as handle:
                text = handle.read()
        value = json.loads(text, parse_float=str, parse_constant=_refuse_constant)
    except OSError as error:
        raise lifecycle.InvalidPayload("payload", f"cannot read {text[1:]!r}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        problem = f"not valid JSON ({error.msg} at char {error.pos})"
        raise lifecycle.InvalidPayload("payload", problem) from None
    if not isinstance(value, dict):
        raise lifecycle.InvalidPayload("payload", "must be a JSON object")
    return value


def _refuse_constant(name: str) -> NoReturn:
    raise lifecycle.InvalidPayload("payload", f"{name} is not a number lifecycle accepts")


# --- output --------------------------------------------------------------------------------


def aggregate_json(aggregate: Aggregate, allowed: Sequence[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": aggregate.kind,
        "id": aggregate.id,
        "state": aggregate.state,
        "version": aggregate.version,
        "data": dict(aggregate.data),
    }
    if allowed is not None:
        out["allowed"] = list(allowed)
    return out


def history_json(entry: HistoryEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "trigger": entry.trigger,
        "source": entry.source,
        "dest": entry.dest,
        "actor": str(entry.actor),
        "payload": dict(entry.payload),
        "idempotency_key": entry.idempotency_key,
        "at": entry.at.isoformat(),
    }


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Aligned columns, the way operators read them."""
    cells = [[str(h) for h in headers], *([("" if c is None else str(c)) for c in r] for r in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def describe(aggregate: Aggregate, allowed: Sequence[str]) -> str:
    head = [
        f"{aggregate.kind} {aggregate.id}",
        f"  state    {aggregate.state}",
        f"  version  {aggregate.version}",
        f"  allowed  {', '.join(allowed) or '-'}",
    ]
    data = [f"  {key:<18} {_short(value)}" for key, value in sorted(aggregate.data.items())]
    return "\n".join([*head, "  data", *data])


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if isinstance(value, Mapping | list) else str(value)
    return text if len(text) <= 90 else text[:87] + "..."


# --- commands ------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@pass_session
@refusals
def db_upgrade(session: Session) -> None:
    """Create or upgrade the schema to this version's newest migration."""
    from lifecycle.store.database import connect, upgrade

    database = connect(session.url)
    try:
        before, after = upgrade(database)
    finally:
        database.dispose()
    click.echo(f"schema at {after} (was {before or 'empty'})")


@cli.command()
@click.argument("kind")
@actor_option()
@click.option("--payload", metavar="JSON", help="The trigger's payload: JSON text, @FILE, or - for stdin.")
@click.option("--id", "id", default=None, help="Choose the new aggregate's id.")
@click.option("--key", default=None, help="Idempotency key: a retry with the same key changes nothing.")
@json_option
@pass_session
@refusals
def create(session: Session, kind: str, actor: str, payload: str | None, id: str | None,
           key: str | None, as_json: bool) -> None:
    """Create an aggregate with its kind's first trigger (seller: register, order: place)."""
    who = parse_actor(actor)
    created = session.engine.create(kind, who, parse_payload(payload), id=id, idempotency_key=key)
    if as_json:
        echo_json(aggregate_json(created))
    else:
        click.echo(f"{created.kind} {created.id} is {created.state} (version {created.version})")


@cli.command()
@click.argument("kind")
@click.argument("id")
@click.argument("trigger")
@actor_option()
@click.option("--payload", metavar="JSON", help="The trigger's payload: JSON text, @FILE, or - for stdin.")
@click.option("--key", default=None, help="Idempotency key: a retry with the same key changes nothing.")
@click.option("--expect-version", type=int, default=None,
              help="Apply only if the aggregate is still at this version.")
@json_option
@pass_session
@refusals
def fire(session: Session, kind: str, id: str, trigger: str, actor: str, payload: str | None,
         key: str | None, expect_version: int | None, as_json: bool) -> None:
    """Fire TRIGGER on one aggregate."""
    who = parse_actor(actor)
    moved = session.engine.fire(kind, id, trigger, who, parse_payload(payload), idempotency_key=key,
                                expected_version=expect_version)
    if as_json:
        echo_json(aggregate_json(moved))
    else:
        click.echo(f"{moved.kind} {moved.id} is {moved.state} (version {moved.version})")


@cli.command()
@click.argument("kind")
@click.argument("id")
@actor_option(default_operator=True)
@json_option
@pass_session
@refusals
def show(session: Session, kind: str, id: str, actor: str | None, as_json: bool) -> None:
    """An aggregate's state, version, data and the triggers the actor may fire now."""
    engine = session.engine
    aggregate = engine.get(kind, id)
    allowed = engine.allowed(kind, id, parse_actor(actor))
    if as_json:
        echo_json(aggregate_json(aggregate, allowed))
    else:
        click.echo(describe(aggregate, allowed))


@cli.command()
@click.argument("kind")
@click.argument("id")
@json_option
@pass_session
@refusals
def history(session: Session, kind: str, id: str, as_json: bool) -> None:
    """Every committed transition of one aggregate, oldest first."""
    entries = session.engine.history(kind, id)
    if as_json:
        echo_json([history_json(e) for e in entries])
        return
    click.echo(table(
        ["seq", "at", "trigger", "from", "to", "actor", "key"],
        ([e.seq, e.at.strftime("%Y-%m-%d %H:%M:%S"), e.trigger, e.source or "-", e.dest,
          str(e.actor), e.idempotency_key or ""] for e in entries),
    ))


@cli.command("list")
@click.argument("kind")
@click.option("--state", default=None, help="Only aggregates in this state.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--after", default=None, metavar="ID", help="Page on: the last id of the previous page.")
@json_option
@pass_session
@refusals
def list_(session: Session, kind: str, state: str | None, limit: int, after: str | None,
          as_json: bool) -> None:
    """Aggregates of one kind, in id order, a page at a time."""
    found = session.engine.find(kind, state=state, limit=limit, after_id=after)
    if as_json:
        echo_json([aggregate_json(a) for a in found])
        return
    click.echo(table(["id", "state", "version"], ([a.id, a.state, a.version] for a in found)))


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="lifecycle")


# --- timers ----------------------------------------------------------------------------------


@cli.group()
def timers() -> None:
    """Durable deadlines: run the worker, list what is scheduled."""


@timers.command("run")
@click.option("--once", is_flag=True, help="Fire what is due now, then exit.")
@click.option("--interval", type=click.FloatRange(0.05, 3600), default=1.0, show_default=True,
              help="Seconds to wait when nothing is due.")
@click.option("--batch", type=click.IntRange(1, 100_000), default=500, show_default=True,
              help="Deadlines to fire before looking again.")
@pass_session
@refusals
def timers_run(session: Session, once: bool, interval: float, batch: int) -> None:
    """Fire due deadlines as the system actor. SIGINT/SIGTERM finish the current one and exit."""
    import signal
    import threading

    stopping = threading.Event()

    def stop(signum: int, _frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    engine = session.engine
    total = 0
    while not stopping.is_set():
        fired = engine.run_due_timers(limit=batch, stop=stopping.is_set)
        total += fired
        if once and fired < batch:
            break
        if fired == 0:
            stopping.wait(interval)
    click.echo(f"fired {total} deadline{'s' if total != 1 else ''}")


@timers.command("list")
@click.option("--due", is_flag=True, help="Only deadlines due now.")
@click.option("--failed", is_flag=True, help="Only deadlines parked after repeated failures.")
@click.option("--kind", default=None)
@click.option("--id", "id", default=None, help="Only this aggregate's deadlines.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@json_option
@pass_session
@refusals
def timers_list(session: Session, due: bool, failed: bool, kind: str | None, id: str | None,
                limit: int, as_json: bool) -> None:
    """Scheduled deadlines, earliest first."""
    engine = session.engine
    found = engine.deadlines(due=due, failed=failed, kind=kind, id=id, limit=limit)
    now = engine.clock.now()
    if as_json:
        echo_json([deadline_json(d) for d in found])
        return
    click.echo(table(
        ["kind", "id", "trigger", "status", "due_at", "left", "attempts", "last_error"],
        ([d.kind, d.aggregate_id, d.trigger, d.status, d.due_at.strftime("%Y-%m-%d %H:%M:%S"),
          _left(d.remaining if d.remaining is not None else d.due_at - now), d.attempts,
          d.last_error or ""] for d in found),
    ))


def deadline_json(deadline: ScheduledDeadline) -> dict[str, Any]:
    return {
        "kind": deadline.kind,
        "id": deadline.aggregate_id,
        "state": deadline.state,
        "trigger": deadline.trigger,
        "status": deadline.status,
        "due_at": deadline.due_at.isoformat(),
        "remaining_seconds": deadline.remaining.total_seconds() if deadline.remaining else None,
        "attempts": deadline.attempts,
        "last_error": deadline.last_error,
    }


def _left(delta: timedelta) -> str:
    if delta <= timedelta(0):
        return "due"
    days, seconds = delta.days, delta.seconds
    return f"{days}d {seconds // 3600:02d}h{seconds % 3600 // 60:02d}m" if days else \
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@cli.command()
@json_option
@pass_session
@refusals
def check(session: Session, as_json: bool) -> None:
    """Verify the whole database: histories replay, ledger invariants hold. Exit 1 on any violation."""
    violations = session.engine.check()
    if as_json:
        echo_json({"ok": not violations, "violations": [
            {"kind": v.kind, "id": v.id, "rule": v.rule, "detail": v.detail} for v in violations
        ]})
    elif not violations:
        click.echo("ok: every history replays to its state; every ledger invariant holds")
    else:
        for violation in violations:
            click.echo(str(violation))
    if violations:
        click.echo(f"error: {len(violations)} violation(s)", err=True)
        raise SystemExit(1)
