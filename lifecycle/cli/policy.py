"""``lifecycle policy …``: the policy values every process reads from the database (SPEC §2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from lifecycle import Policy, PolicyVersion
from lifecycle.cli import output
from lifecycle.cli.options import json_option
from lifecycle.cli.session import BadUsage, Noun, Session, pass_session

SET_HELP = """Store new policy values as the next version; every process (services, timer
workers, this command) schedules with it from its next trigger on. Deadlines already
scheduled keep their due times.

\b
NAME=VALUE, as `lifecycle policy show` lists the names:
  durations   90m  1h  15d  2d12h  30s   (days, hours, minutes, seconds)
  decimals    commission_rate=0.04
  tables      annual_fee.default=1000.00  annual_fee.fashion=800.00
              coupon_min_denomination.EUR=5   (NAME.KEY= with no value removes KEY)
  counts      coupon_max_copies=20000
  currency    annual_fee_currency=EUR

A bad name or value is an error naming it, and nothing is written. Prints each value that
changed and the new version.
"""


@click.group(cls=Noun)
def policy() -> None:
    """The policy values (durations, fees, limits) every process schedules with.

    They live in the database, one version per change: `lifecycle policy show` lists them,
    `lifecycle policy set NAME=VALUE ...` stores a new version.
    """


@policy.command("show")
@json_option
@pass_session
def show(session: Session, as_json: bool) -> None:
    """Every value with its unit, the version in force and when it was set."""
    stored = session.engine.stored_policy()
    if as_json:
        output.echo_json(policy_json(stored))
        return
    click.echo(f"policy version {stored.version}, set {output.when(stored.set_at)} UTC")
    click.echo(output.table(["name", "value", "unit"], _with_money(stored.policy)))


@policy.command("set", help=SET_HELP)
@click.argument("settings", nargs=-1, required=True, metavar="NAME=VALUE...")
@json_option
@pass_session
def set_(session: Session, settings: tuple[str, ...], as_json: bool) -> None:
    pairs = []
    for setting in settings:
        name, equals, value = setting.partition("=")
        if not equals or not name.strip():
            raise BadUsage(f"{setting!r} is not NAME=VALUE (e.g. protection_period=15d)")
        pairs.append((name.strip(), value.strip()))
    engine = session.engine
    current = engine.stored_policy()
    wanted = current.policy.with_settings(pairs)
    # Only if nobody changed the policy since we read it: their change is not undone unseen.
    stored = engine.set_policy(wanted, expected_version=current.version)
    changed = current.policy.differences(stored.policy)
    if as_json:
        output.echo_json({"version": stored.version, "was": current.version,
                          "changed": [{"name": name, "from": before, "to": after}
                                      for name, before, after in changed]})
        return
    if stored.version == current.version:
        click.echo(f"no change: policy version {current.version} already has these values")
        return
    for name, before, after in changed:
        click.echo(f"{name}: {before} -> {after}")
    click.echo(f"policy version {stored.version} (was {current.version})")


#: the policy tables that hold money: the currency of each key (the fee's currency for every
#: business category; the key itself for the per-currency minimum)
MONEY_TABLES: dict[str, Callable[[Policy, str], str]] = {
    "annual_fee": lambda policy, key: policy.annual_fee_currency,
    "coupon_min_denomination": lambda policy, key: key,
}


def _with_money(policy: Policy) -> list[tuple[str, str, str]]:
    """`Policy.settings`, each amount of money with its currency's minor units."""
    rows = []
    for name, value, unit in policy.settings():
        table, _, key = name.partition(".")
        if table in MONEY_TABLES and key:
            value = output.amount(value, MONEY_TABLES[table](policy, key))
        rows.append((name, value, unit))
    return rows


def policy_json(stored: PolicyVersion) -> dict[str, Any]:
    """``policy show --json``: the values as stored (see docs/cli.md), amounts of money with
    their currency's minor units (``"5.00"``, as `policy set` takes them too)."""
    values = stored.policy.to_json()
    for table, currency in MONEY_TABLES.items():
        values[table] = {key: output.amount(amount, currency(stored.policy, key))
                         for key, amount in values[table].items()}
    return {"version": stored.version, "set_at": stored.set_at.isoformat(), "values": values}
