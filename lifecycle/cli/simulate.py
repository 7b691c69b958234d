"""``lifecycle simulate``: a marketplace on a simulated clock, through the real engine."""

from __future__ import annotations

import sys

import click

from lifecycle.cli import output
from lifecycle.cli.options import json_option
from lifecycle.cli.session import OneLine, Session, pass_session

DEFAULT_DB = "sqlite:///simulation.db"
"""Where a simulation goes when no --db names a database: a file of its own, never the
operator's default database."""


@click.command()
@click.option("--sellers", type=click.IntRange(1, 100_000), default=20, show_default=True)
@click.option("--orders", type=click.IntRange(1, 10_000_000), default=300, show_default=True)
@click.option("--days", type=click.IntRange(1, 3650), default=90, show_default=True,
              help="Simulated days over which orders arrive.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="The same seed and options give the same report.")
@click.option("--db", "db", default=None, metavar="URL",
              help=f"Database for the run (default: the global --db or LIFECYCLE_DB when "
                   f"given, else {DEFAULT_DB}, created when new). It must hold only "
                   f"simulations.")
@click.option("--force", is_flag=True,
              help="Write into a database that holds more than simulations (real sellers, "
                   "orders, ...), mixing the run's sim-* aggregates with them.")
@click.option("--faults", default=None, metavar="SPEC",
              help="Injected faults, e.g. 'decline=0.02, timeout=0.01, duplicate=0.05, conflict=0.01'.")
@click.option("--resume", is_flag=True, help="Continue a run that was stopped part-way.")
@click.option("--report-dir", type=click.Path(file_okay=False), default=None,
              help="Also write an HTML report with charts (opens offline) into this folder.")
@click.option("--name", default="sim", show_default=True,
              help="The run's name: the prefix of every id it creates.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=500, show_default=True,
              help="Most transitions per batch (one transaction; each tick is a batch of its "
                   "own); 1: a transaction per step. The report is the same for any size.")
@click.option("--shards", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Independent sub-markets the sellers and their orders are split into "
                   "(1: one market). Part of the run: the report depends on it, not on "
                   "--workers.")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Processes that run the shards (PostgreSQL only; at most --shards). The "
                   "report is the same for any number.")
@json_option
@pass_session
def simulate(session: Session, sellers: int, orders: int, days: int, seed: int, db: str | None,
             force: bool, faults: str | None, resume: bool, report_dir: str | None, name: str,
             batch_size: int, shards: int, workers: int, as_json: bool) -> None:
    """Sellers onboard, buyers order, parcels travel, disputes open and end, funds are released:
    every step through the real machines, persistence and sandbox adapters. Exit 1 when the
    ledger check of the finished run fails.

    The run writes only into a database of simulations (new, empty, or holding only what
    simulations made), else it is refused and nothing is written, unless --force."""
    from lifecycle.simulation import simulate as run  # loaded only when a simulation runs

    url = db or _global_db(session)
    show_progress = not as_json and sys.stderr.isatty()
    with click.progressbar(length=days, label="simulating", file=sys.stderr,
                           hidden=not show_progress) as bar:
        def progress(day: int, orders_done: int, rate: float) -> None:
            bar.label = f"day {day}, {orders_done:,} orders, {rate:,.0f} transitions/s"
            bar.update(max(0, min(day, days) - bar.pos))

        report = run(url, sellers=sellers, orders=orders, days=days, seed=seed, faults=faults,
                     resume=resume, report_dir=report_dir, name=name, progress=progress,
                     batch_size=batch_size, shards=shards, workers=workers, force=force)
    output.echo(report.to_json() if as_json else report.render())
    if report_dir is not None and not as_json:
        output.echo(f"report written to {report_dir}/index.html")
    if not report.check.get("passed", True):
        raise OneLine(f"the ledger check found {report.check.get('violations')} violation(s)")


def _global_db(session: Session) -> str:
    """The global --db (or LIFECYCLE_DB) when one was given, else the simulation's own file."""
    root = click.get_current_context().find_root()
    source = root.get_parameter_source("db")
    given = source is not None and source is not click.core.ParameterSource.DEFAULT
    return session.url if given else DEFAULT_DB
