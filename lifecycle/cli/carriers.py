"""``lifecycle carriers …``: quotes to choose a carrier by, and waybill checks."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

import click

import lifecycle
from lifecycle import LifecycleError
from lifecycle.adapters import Parcel, Quote, carrier_names, normalise_waybill
from lifecycle.cli import output
from lifecycle.cli.options import json_option
from lifecycle.cli.session import BadUsage, Noun, Refused


@click.group(cls=Noun)
def carriers() -> None:
    """Logistics carriers: compare quotes for a parcel, check a waybill number."""


def _decimal(text: str, option: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise BadUsage(f"{option} {text!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise BadUsage(f"{option} must be greater than zero")
    return value


def _parcel(weight: str, dims: str) -> Parcel:
    sides = re.split(r"[xX×*]", dims)
    if len(sides) != 3:
        raise BadUsage(f"--dims {dims!r} is not LxWxH in centimetres (for example 30x20x10)")
    length, width, height = (_decimal(side, "--dims") for side in sides)
    return Parcel(_decimal(weight, "--weight"), length, width, height)


@carriers.command()
@click.option("--weight", required=True, metavar="KG", help="Actual weight in kilograms.")
@click.option("--dims", required=True, metavar="LxWxH", help="Outer size in centimetres.")
@click.option("--from", "origin", default="CN", show_default=True, metavar="CC",
              help="Origin country (ISO 3166 alpha-2).")
@click.option("--to", "destination", required=True, metavar="CC", help="Destination country.")
@click.option("--carrier", "names", multiple=True, metavar="NAME",
              help="Only these carriers (repeat); default every carrier installed.")
@click.option("--by", type=click.Choice(["price", "days"]), default="price", show_default=True,
              help="Cheapest first, or fastest first.")
@json_option
def quote(weight: str, dims: str, origin: str, destination: str, names: tuple[str, ...],
          by: str, as_json: bool) -> None:
    """Every service that takes the parcel to its destination, with price and transit days.
    Chargeable weight is the larger of the actual and the volumetric (LxWxH / 5000)."""
    parcel = _parcel(weight, dims)
    found: list[Quote] = []
    try:
        for name in names or carrier_names():
            found += lifecycle.carrier(name).quote(parcel, origin.upper(), destination.upper())
    except LifecycleError as error:
        raise Refused(error) from None
    found.sort(key=(lambda q: (q.price, q.transit_days)) if by == "price"
               else (lambda q: (q.transit_days, q.price)))
    if as_json:
        output.echo_json([{"carrier": q.carrier, "service": q.service,
                           "price": output.amount(q.price, q.currency),
                           "currency": q.currency, "transit_days": q.transit_days,
                           "chargeable_weight_kg": str(q.chargeable_weight)} for q in found])
        return
    output.echo(output.table(
        ["carrier", "service", "price", "currency", "days", "chargeable kg"],
        ([q.carrier, q.service, output.amount(q.price, q.currency), q.currency, q.transit_days,
          q.chargeable_weight]
         for q in found),
    ))


@carriers.command()
@click.argument("carrier")
@click.argument("number")
@json_option
def validate(carrier: str, number: str, as_json: bool) -> None:
    """Check a waybill number as CARRIER would: format and check digit. Exit 1 if invalid.

    With --json, prints {"carrier", "waybill", "valid", "problem"} whether valid or not (exit 1
    when not); an unknown carrier is an error line, exit 2.
    """
    waybill = normalise_waybill(number)
    try:
        checker = lifecycle.carrier(carrier)
    except LifecycleError as error:
        raise Refused(error) from None
    try:
        checker.validate_waybill(waybill)
    except LifecycleError as error:
        if not as_json:
            raise Refused(error) from None
        output.echo_json({"carrier": carrier, "waybill": waybill, "valid": False,
                          "problem": str(error)})
        raise SystemExit(error.exit_code) from None
    if as_json:
        output.echo_json({"carrier": carrier, "waybill": waybill, "valid": True, "problem": None})
        return
    output.echo(f"{carrier} waybill {waybill} is valid")
