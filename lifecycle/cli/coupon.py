"""``lifecycle coupon …``: merchant coupons (SPEC §6) and the vouchers buyers claim from them.

A claim creates the buyer's voucher, id ``COUPON:BUYER``; ``lifecycle show voucher ID`` reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

import lifecycle
from lifecycle import voucher_id
from lifecycle.cli.actions import (
    NOTE,
    Action,
    Field,
    action_command,
    actor_for,
    build_payload,
    common_params,
    fire,
    offers,
    report,
)
from lifecycle.cli.reading import View, field, reading_commands
from lifecycle.cli.session import Noun, Session, pass_session


def _value(data: Mapping[str, Any]) -> str | None:
    if "denomination" not in data:
        return None
    threshold = f" on {data['threshold']}" if data.get("threshold") else ""
    return f"{data['denomination']} {data['currency']} off{threshold}"


def _copies(data: Mapping[str, Any]) -> str | None:
    return f"{data['claimed']}/{data['copies']}" if "copies" in data else None


VIEW = View(
    kind="coupon",
    noun="coupon",
    created="defined_at",
    details=(
        ("seller", field("seller")),
        ("title", field("title")),
        ("value", _value),
        ("products", field("products")),
        ("claimed/copies", _copies),
        ("starts", field("starts_at")),
        ("ends", field("ends_at")),
        ("defined", field("defined_at")),
        ("activated", field("activated_at")),
        ("deactivated", field("deactivated_at")),
    ),
    columns=(
        ("seller", field("seller")),
        ("title", field("title")),
        ("value", _value),
        ("claimed/copies", _copies),
        ("ends", field("ends_at")),
    ),
    filters=("seller",),
    currency="currency",
    figures=("denomination", "threshold"),
)

DEFAULTS = lifecycle.Policy()  # the policy's defaults, as the help states the limits
_MINIMUM = "; ".join(f"{amount} {currency}"
                     for currency, amount in DEFAULTS.coupon_min_denomination.items())

CREATE_FIELDS = (
    Field("--title", "title", f"At most {DEFAULTS.coupon_title_max} characters.", required=True),
    Field("--currency", "currency", "ISO 4217 currency (USD).", required=True),
    Field("--denomination", "denomination", f"The amount off (at least {_MINIMUM}).",
          required=True, metavar="AMOUNT"),
    Field("--threshold", "threshold", "The goods subtotal an order must reach (none: any).",
          metavar="AMOUNT"),
    Field("--starts-at", "starts_at", "Start of validity, ISO with a zone (2026-12-01T00:00Z).",
          required=True, metavar="TIME"),
    Field("--ends-at", "ends_at",
          f"End of validity (at most {DEFAULTS.coupon_max_validity.days} days after the start).",
          required=True, metavar="TIME"),
    Field("--copies", "copies", f"Copies issued (at most {DEFAULTS.coupon_max_copies:,}).",
          type=click.IntRange(min=1), required=True),
    Field("--product", "products",
          f"A SKU it applies to (repeat, at most {DEFAULTS.coupon_max_products}; default: all).",
          multiple=True, metavar="SKU"),
)
COPIES = Field("--copies", "copies", "The new number of copies.", type=click.IntRange(min=1),
               required=True)


def create_command() -> click.Command:
    def run(session: Session, id: str | None, actor: str | None, payload: str | None,
            key: str | None, as_json: bool, **values: Any) -> None:
        body = build_payload(CREATE_FIELDS, payload, values)
        who = actor_for("coupon", "create", actor)
        report(session.engine.create("coupon", who, body, id=id, idempotency_key=key), as_json)

    return click.Command(
        "create",
        params=[click.Option(["--id"], default=None, help="Choose the coupon's id."),
                *(f.param() for f in CREATE_FIELDS),
                *common_params("coupon", "create", create=True)],
        callback=pass_session(run),
        help="Define a coupon of the seller's store, as a draft.\n\nFires create (seller).",
        short_help="Define a coupon (draft)",
    )


def claim_command() -> click.Command:
    def run(session: Session, id: str, actor: str | None, payload: str | None, key: str | None,
            expect_version: int | None, as_json: bool, note: str | None) -> None:
        body = build_payload((NOTE,), payload, {"note": note})
        who = actor_for("coupon", "claim", actor)
        engine = session.engine
        coupon = fire(engine, "coupon", id, "claim", who, body, key, expect_version)
        voucher = engine.get("voucher", voucher_id(coupon.id, who.id))
        report(voucher, as_json,
               also=f"; coupon {coupon.id} has {coupon.data['claimed']} of "
                    f"{coupon.data['copies']} claimed")

    return click.Command(
        "claim",
        params=[click.Argument(["id"], metavar="ID"), NOTE.param(),
                *common_params("coupon", "claim")],
        callback=pass_session(run),
        help="A buyer claims one copy of the active coupon ID. Prints the buyer's voucher "
             "(id ID:BUYER), which an order uses with --coupon.\n\nFires claim (buyer).",
        short_help="Claim a copy: the buyer's voucher",
    )


offers("coupon", "create", "coupon create")
offers("coupon", "claim", "coupon claim ID")
ACTIONS = (
    Action("activate", "coupon", "activate", "Put the coupon on offer.", (NOTE,)),
    Action("raise", "coupon", "raise", "Raise the copies of an active coupon.", (COPIES,)),
    Action("lower", "coupon", "lower",
           "Lower the copies of a deactivated coupon (not below those claimed).", (COPIES,)),
    Action("deactivate", "coupon", "deactivate", "Take the coupon off offer.", (NOTE,)),
)


@click.group(cls=Noun)
def coupon() -> None:
    """Merchant coupons: define, activate, change copies, deactivate; buyers claim vouchers."""


coupon.add_command(create_command())
for _action in ACTIONS:
    coupon.add_command(action_command(_action))
coupon.add_command(claim_command())
for _command in reading_commands(VIEW):
    coupon.add_command(_command)
