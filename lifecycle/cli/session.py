"""What every command shares: the engine opened on first use, and errors as one line on stderr.

Exit codes: 0 done; 1 refused by the domain (wrong state, guard, role or owner, conflict, not
found) or the database failed; 2 bad usage or payload; 3 the database is unavailable (retry).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from importlib import import_module
from typing import IO, TYPE_CHECKING, Any

import click
from click.exceptions import NoArgsIsHelpError

import lifecycle
from lifecycle import LifecycleError

if TYPE_CHECKING:
    from lifecycle import Engine

USAGE = 2
WEBHOOK_SECRETS_ENV = "LIFECYCLE_WEBHOOK_SECRETS"


class Session:
    """The context object: opens the engine on first use, so ``--help`` touches no database.

    Never creates or alters a database (``upgrade=False``): a missing file, an empty or older
    schema and another application's database are refused untouched, naming it; only
    ``lifecycle db init`` and ``db upgrade`` create or migrate one (issue #19)."""

    def __init__(self, url: str, machines: str | None = None):
        self.url = url
        self.machines = machines or None  # ``--machines``: more versions of the machines
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = lifecycle.open(self.url, upgrade=False,
                                          webhook_secrets=webhook_secrets(),
                                          machines=self.machines)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()


pass_session = click.make_pass_decorator(Session)


def webhook_secrets() -> dict[str, list[str]] | None:
    """Each adapter's webhook secrets from ``LIFECYCLE_WEBHOOK_SECRETS``: a JSON object from
    adapter name to a list of ``whsec_<base64>`` secrets, newest first (docs/webhooks.md).
    Unset or empty: every sandbox keeps its published default. Malformed: a usage error that
    names the variable but never echoes a secret."""
    text = os.environ.get(WEBHOOK_SECRETS_ENV, "").strip()
    if not text:
        return None
    from lifecycle.adapters import webhook_key

    try:
        value = lifecycle.loads_json(text)
    except lifecycle.JSONRefused as error:
        raise BadUsage(f"{WEBHOOK_SECRETS_ENV} is not JSON lifecycle accepts: {error}") from None
    if not isinstance(value, dict):
        raise BadUsage(f"{WEBHOOK_SECRETS_ENV} must be a JSON object: adapter name -> list of secrets")
    for name, secrets in value.items():
        if not isinstance(secrets, list) or not secrets or not all(isinstance(s, str) for s in secrets):
            raise BadUsage(f"{WEBHOOK_SECRETS_ENV}: {name!r} must be a non-empty list of "
                           "whsec_<base64> strings")
        for n, secret in enumerate(secrets):
            try:
                webhook_key(secret)
            except ValueError as error:
                raise BadUsage(f"{WEBHOOK_SECRETS_ENV}: {name!r} secret #{n + 1}: {error}") from None
    return value


class OneLine(click.ClickException):
    """An error as the CLI reports it: ``error: …`` on one line of stderr, with its exit code."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(" ".join(message.split()))
        self.exit_code = exit_code  # type: ignore[misc]  # click reads it per instance

    def show(self, file: IO[Any] | None = None) -> None:
        from lifecycle.cli import output

        output.echo(f"error: {self.format_message()}", err=True)


class Refused(OneLine):
    """A `LifecycleError`: its own one-line message and exit code (1 domain, 2 payload,
    3 database unavailable)."""

    def __init__(self, error: LifecycleError):
        super().__init__(str(error), error.exit_code)
        self.error = error


class BadUsage(OneLine):
    """A usage error: an option missing or malformed, a command that does not exist."""

    def __init__(self, message: str):
        super().__init__(message, USAGE)


def usage_error(error: click.UsageError) -> BadUsage:
    """click's four-line usage report, folded into one line that says where help is."""
    message = error.format_message().rstrip(".")
    if error.ctx is not None:
        message += f" (see '{error.ctx.command_path} --help')"
    return BadUsage(message)


class Root(click.Group):
    """The ``lifecycle`` group: every error leaves as one line with a documented exit code,
    whether click, the engine or the database raised it. ``LIFECYCLE_DEBUG=1`` re-raises
    unexpected errors with their traceback, for developers.

    Sub-commands run inside `invoke`, so this one place covers the whole command tree.

    Its commands are named in `lazy` and imported when one runs or help lists them: a command
    pays only for the modules it needs, and ``lifecycle --version`` for none (issue #19).
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, tuple[str, str]] = {}

    def add_lazy(self, commands: Mapping[str, tuple[str, str]]) -> None:
        """Name each command by its module (in `lifecycle.cli`) and attribute."""
        self.lazy.update(commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        # the domain's nouns first, as registered
        return list(dict.fromkeys([*self.lazy, *self.commands]))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            from lifecycle.cli import helptext

            module, attribute = self.lazy[cmd_name]
            command = getattr(import_module(f"lifecycle.cli.{module}"), attribute)
            helptext.complete(command)  # group listings give each command a whole sentence
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except NoArgsIsHelpError:
            raise  # `lifecycle` alone prints its help
        except click.UsageError as error:
            raise usage_error(error) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (OneLine, NoArgsIsHelpError):
            raise
        except click.UsageError as error:
            raise usage_error(error) from None
        except (click.exceptions.Exit, click.Abort, click.ClickException):
            raise
        except LifecycleError as error:
            raise Refused(error) from None
        except Exception as error:
            # SQLAlchemy's errors, without importing it for commands that never open a database
            found = sys.modules.get("sqlalchemy.exc")
            if found is not None and isinstance(error, found.ArgumentError):
                raise OneLine(f"invalid --db: {error}", USAGE) from None
            if os.environ.get("LIFECYCLE_DEBUG"):
                raise
            what = "database error" if found is not None and isinstance(
                error, found.SQLAlchemyError) else f"unexpected {type(error).__name__}"
            raise OneLine(f"{what}: {_first_line(error)} (LIFECYCLE_DEBUG=1 shows the traceback)",
                          1) from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


class Noun(click.Group):
    """A group per noun; ``--help`` lists its verbs in the order of the lifecycle, not A to Z."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)
