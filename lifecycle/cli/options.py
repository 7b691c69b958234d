"""Options every command shares, and how their text becomes an actor, a payload or a moment.

``--as``: ``ROLE:ID`` is taken as given. A bare ``ID`` takes the role the command implies: the
buyer or the seller when exactly one of them may fire the trigger (``order pay O-1 --as b-1``
is ``buyer:b-1``), an operator when neither may. Without ``--as``, a trigger an operator may fire
is fired by ``operator:$USER``, and a seller's trigger on their own account by that seller;
anything else must say who acts.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

import lifecycle
from lifecycle import Actor
from lifecycle.cli.session import BadUsage, Session

F = TypeVar("F", bound=Callable[..., Any])

ROLE_ORDER = lifecycle.ROLES
#: the roles that own aggregates (buyers and sellers), as opposed to operators and the system
OWNER_ROLES = tuple(role for role in lifecycle.ROLES
                    if any(role in d.owners for d in lifecycle.definitions().values()))


def user() -> str:
    """The operator's name: ``$USER``, else the login name, else ``operator``."""
    try:
        return os.environ.get("USER") or getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "operator"


def resolve_actor(text: str | None, roles: Iterable[str], *, what: str,
                  own: Actor | None = None) -> Actor:
    """The actor of ``--as TEXT`` for a trigger ``roles`` may fire (see the module's doc)."""
    roles = frozenset(roles)
    if text is None:
        if "operator" in roles:
            return Actor("operator", user())
        if own is not None and own.role in roles:
            return own
        raise BadUsage(f"missing option '--as': say who does {what} ({who_may(roles)}), "
                       "as ROLE:ID or a bare ID")
    if ":" in text:
        return Actor.parse(text)
    implied = [role for role in OWNER_ROLES if role in roles]
    if len(implied) > 1:
        raise BadUsage(f"--as {text!r} is ambiguous for {what}: say "
                       + " or ".join(f"{role}:{text}" for role in implied))
    return Actor(implied[0] if implied else "operator", text)


def who_may(roles: Iterable[str]) -> str:
    """``"buyer or system"``: the roles in a stable order."""
    present = set(roles)
    return " or ".join(role for role in ROLE_ORDER if role in present)


def either(names: Iterable[str]) -> str:
    """``"a, b or c"``: the choices a help text lists."""
    *first, last = names
    return f"{', '.join(first)} or {last}" if first else last


def operator_actor(text: str | None) -> Actor:
    """``--as`` of a reading command: ``operator:$USER`` unless it names another actor."""
    if text is None:
        return Actor("operator", user())
    return resolve_actor(text, ROLE_ORDER, what="show")


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
    except (OSError, ValueError) as error:  # ValueError: a NUL in the path, a file not UTF-8
        reason = getattr(error, "strerror", None) or str(error)
        raise lifecycle.InvalidPayload("payload", f"cannot read {text[1:]!r}: {reason}") from None
    try:
        value = json.loads(text, parse_float=str, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        problem = f"not valid JSON ({error.msg} at char {error.pos})"
        raise lifecycle.InvalidPayload("payload", problem) from None
    except (ValueError, RecursionError) as error:  # too many digits, nested too deep
        raise lifecycle.InvalidPayload("payload", f"not JSON lifecycle accepts: {error}") from None
    if not isinstance(value, dict):
        raise lifecycle.InvalidPayload("payload", "must be a JSON object")
    return value


def _refuse_constant(name: str) -> NoReturn:
    raise lifecycle.InvalidPayload("payload", f"{name} is not a number lifecycle accepts")


def put(payload: dict[str, Any], path: str, value: Any) -> None:
    """Set ``payload["consignee"]["name"]`` for the path ``consignee.name``."""
    *parents, leaf = path.split(".")
    here = payload
    for name in parents:
        child = here.get(name)
        if not isinstance(child, dict):
            child = here[name] = {}
        here = child
    here[leaf] = value


def has(payload: Mapping[str, Any], path: str) -> bool:
    here: Any = payload
    for name in path.split("."):
        if not isinstance(here, Mapping) or name not in here:
            return False
        here = here[name]
    return True


if TYPE_CHECKING:
    _ParamType = click.ParamType[datetime, Any]
else:  # click made ParamType generic in a later 8.x; keep it plain at run time
    _ParamType = click.ParamType


class Moment(_ParamType):
    """A point in time: an ISO date or date-time (UTC unless it says otherwise), or an age
    such as ``7d``, ``12h`` or ``30m`` (that long before now by the engine's clock, which is
    simulated in tests and sandboxes)."""

    name = "TIME"
    _AGE = re.compile(r"^(\d+)([dhm])$")

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        age = self._AGE.match(text)
        if age:
            unit = {"d": "days", "h": "hours", "m": "minutes"}[age.group(2)]
            now = self._now(ctx)
            try:
                return now - timedelta(**{unit: int(age.group(1))})
            # ValueError: more digits than int() reads (4300); OverflowError: past timedelta's
            # or datetime's range. Either way, before year 1.
            except (OverflowError, ValueError):
                self.fail(f"{text!r} reaches back before the calendar begins", param, ctx)
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{text!r} is not an ISO date or time, nor an age like 7d, 12h or 30m",
                      param, ctx)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    @staticmethod
    def _now(ctx: click.Context | None) -> datetime:
        """Now by the engine's clock; the wall clock only outside a ``lifecycle`` command."""
        session = ctx.find_object(Session) if ctx is not None else None
        return session.engine.clock.now() if session is not None else datetime.now(UTC)


MOMENT = Moment()


# --- decorators ----------------------------------------------------------------------------


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True,
                        help="Print JSON (the shapes are in docs/cli.md) instead of text.")(fn)


def as_option(help_text: str) -> Callable[[F], F]:
    return click.option("--as", "actor", default=None, metavar="ROLE:ID", help=help_text)


def payload_option(fn: F) -> F:
    return click.option(
        "--payload", metavar="JSON",
        help="The trigger's payload: JSON text, @FILE or - for stdin. Options given too "
             "override its fields.",
    )(fn)


def key_option(fn: F) -> F:
    return click.option("--key", default=None, metavar="KEY",
                        help="Idempotency key: a retry with the same key changes nothing.")(fn)


def expect_version_option(fn: F) -> F:
    return click.option("--expect-version", type=click.IntRange(min=1), default=None,
                        metavar="N", help="Apply only if the aggregate is still at version N.")(fn)
