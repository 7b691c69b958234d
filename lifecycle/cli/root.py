"""The root ``lifecycle`` group: the database, logging, version, and the command tree."""

from __future__ import annotations

import click

import lifecycle
from lifecycle.cli.session import Root, Session

EPILOG = """\b
Exit codes:
  0  done
  1  refused by the domain: wrong state, guard, role or owner, conflict,
     not found (or the database failed)
  2  bad usage or payload: missing or malformed option, malformed JSON,
     invalid field, unknown kind
  3  database unavailable: it could not be reached or the connection was
     lost; try again when it is back
Errors are one line on stderr: 'error: ...', naming what was refused and
what is allowed. Nothing is written when a command fails.

\b
Who acts: --as ROLE:ID (buyer:b-1, seller:acme, operator:ana, system:dhl),
or a bare ID for the role the command implies (order pay O-1 --as b-1 is
buyer:b-1). Commands an operator may run act as operator:$USER by default;
a seller's commands on their own account act as that seller.

\b
Shell completion (bash; zsh_source and fish_source likewise):
  eval "$(_LIFECYCLE_COMPLETE=bash_source lifecycle)"
Reference and --json shapes: docs/cli.md.
"""


@click.group(cls=Root, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", envvar="LIFECYCLE_DB", default=lifecycle.DEFAULT_URL, show_default=True,
              help="Database URL (or LIFECYCLE_DB): sqlite:///FILE or postgresql+psycopg://…; "
                   "only `db init` and `db upgrade` create one.")
@click.option("--machines", envvar="LIFECYCLE_MACHINES", default=None, metavar="MODULE",
              help="More versions of the machines, and their migrations (or "
                   "LIFECYCLE_MACHINES): a module or .py file offering MACHINES "
                   "(docs/versions.md). Every process on a database needs the same.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="warning", show_default=True, help="Log events at this level and above, on stderr.")
# The version is read from the package's metadata only when asked for.
@click.version_option(package_name="lifecycle", prog_name="lifecycle")
@click.pass_context
def cli(ctx: click.Context, db: str, machines: str | None, log_level: str) -> None:
    """lifecycle: seller onboarding, orders, disputes and coupons as persisted state machines."""
    lifecycle.configure_logs(log_level)
    session = Session(db, machines)
    ctx.obj = session
    ctx.call_on_close(session.close)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="lifecycle")
