"""``lifecycle order …``: place, pay, ship online or offline, track, confirm, cancel, release
(SPEC §4)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import click

import lifecycle
from lifecycle.cli import payloads
from lifecycle.cli.actions import (
    CONFIRM,
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
from lifecycle.cli.options import either, put, who_may
from lifecycle.cli.reading import View, field, reading_commands
from lifecycle.cli.session import BadUsage, Noun, Session, pass_session


def _lines(data: Mapping[str, Any]) -> str | None:
    lines = data.get("lines") or []
    return ", ".join(f"{line['quantity']} x {line['sku']} @ {line['unit_price']}" for line in lines) or None


def _consignee(data: Mapping[str, Any]) -> str | None:
    who = data.get("consignee")
    return f"{who['name']}, {who['address']} ({who['country']})" if who else None


def _logistics(data: Mapping[str, Any]) -> str | None:
    chosen = data.get("logistics")
    if not chosen:
        return None
    return (f"{chosen['carrier']} {chosen['service']}, fee {chosen['shipping_fee']}, "
            f"{chosen['delivery_days']} days")


def _shipment(data: Mapping[str, Any]) -> str | None:
    if "shipped_at" not in data and "pickup_booked_at" not in data:
        return None
    method = data.get("shipping_method", "online (pickup booked)")
    return " ".join(str(part) for part in (method, data.get("carrier"), data.get("waybill")) if part)


VIEW = View(
    kind="order",
    noun="order",
    created="placed_at",
    details=(
        ("buyer", field("buyer")),
        ("seller", field("seller")),
        ("lines", _lines),
        ("consignee", _consignee),
        ("logistics", _logistics),
        ("sample", field("sample")),
        ("coupon", field("coupon")),
        ("shipment", _shipment),
        ("dispute", field("dispute")),
        ("paused in", field("paused_state")),
        ("cancel reason", field("cancel_reason")),
        ("cancelled by", field("cancelled_by")),
        ("placed", field("placed_at")),
        ("paid", field("paid_at")),
        ("shipped", field("shipped_at")),
        ("delivered", field("delivered_at")),
        ("completed", field("completed_at")),
        ("released", field("released_at")),
    ),
    columns=(
        ("buyer", field("buyer")),
        ("seller", field("seller")),
        ("total", field("total")),
        ("currency", field("currency")),
        ("placed", field("placed_at")),
    ),
    filters=("seller", "buyer"),
    currency="currency",
    figures=("goods_total", "coupon_amount", "shipping_fee", "total", "amount_paid", "refunded",
             "commission", "payout"),
    tracked=True,
)

ORDER = lifecycle.definition("order")
DEFAULTS = lifecycle.Policy()  # the policy's defaults, as the help states the limits

PLACE_FIELDS = (
    Field("--seller", "seller", "The seller's id (an active store).", required=True),
    Field("--currency", "currency", "ISO 4217 currency of every amount (USD).", required=True),
    Field("--consignee-name", "consignee.name", "Who receives the parcel.", required=True),
    Field("--consignee-address", "consignee.address", "Where.", required=True),
    Field("--consignee-country", "consignee.country", "ISO 3166 alpha-2 country (PT).",
          required=True),
    Field("--consignee-phone", "consignee.phone", "A phone number for the carrier."),
    Field("--carrier", "logistics.carrier", "The carrier the buyer chose (dhl).", required=True),
    Field("--service", "logistics.service", "Its service level (express).", required=True),
    Field("--shipping-fee", "logistics.shipping_fee", "The logistics fee (7.50).", required=True,
          metavar="AMOUNT"),
    Field("--delivery-days", "logistics.delivery_days",
          "The delivery time promised with the service, in days "
          f"(1 to {DEFAULTS.delivery_window_max.days}).", type=int, required=True),
    Field("--sample", "sample", "A sample order (no coupon applies).", flag=True),
    Field("--coupon", "coupon", "A voucher the buyer claimed (COUPON:BUYER).", metavar="VOUCHER"),
)
LINE_OPTIONS: tuple[click.Parameter, ...] = (
    click.Option(["--line"], multiple=True, metavar="SKU:QTY:PRICE",
                 help="An order line (repeat the option): robot:2:19.99."),
    click.Option(["--sku"], multiple=True, help="A line's SKU; with --quantity and --unit-price, "
                                                "repeated once per line."),
    click.Option(["--quantity"], multiple=True, type=click.IntRange(min=1)),
    click.Option(["--unit-price"], multiple=True, metavar="AMOUNT"),
)


def order_lines(line: tuple[str, ...], sku: tuple[str, ...], quantity: tuple[int, ...],
                unit_price: tuple[str, ...]) -> list[dict[str, Any]]:
    """``--line SKU:QTY:PRICE`` and ``--sku/--quantity/--unit-price`` as payload lines."""
    lines = []
    for text in line:
        parts = text.rsplit(":", 2)  # a SKU may itself hold a colon
        if len(parts) != 3 or not parts[1].isdigit() or not parts[0]:
            raise BadUsage(f"--line {text!r} is not SKU:QTY:PRICE (for example robot:2:19.99)")
        lines.append({"sku": parts[0], "quantity": int(parts[1]), "unit_price": parts[2]})
    if not len(sku) == len(quantity) == len(unit_price):
        raise BadUsage(f"--sku, --quantity and --unit-price come once per line: got {len(sku)}, "
                       f"{len(quantity)} and {len(unit_price)}")
    lines += [{"sku": s, "quantity": q, "unit_price": p}
              for s, q, p in zip(sku, quantity, unit_price, strict=True)]
    return lines


def place_command() -> click.Command:
    def run(session: Session, id: str | None, actor: str | None, payload: str | None,
            key: str | None, as_json: bool, line: tuple[str, ...], sku: tuple[str, ...],
            quantity: tuple[int, ...], unit_price: tuple[str, ...], **values: Any) -> None:
        lines = order_lines(line, sku, quantity, unit_price)
        body = build_payload(PLACE_FIELDS, payload, values)
        if lines:
            put(body, "lines", lines)
        if not body.get("lines"):
            raise BadUsage("missing option --line (or --sku/--quantity/--unit-price, or lines "
                           "in --payload)")
        who = actor_for("order", "place", actor)
        placed = session.engine.create("order", who, body, id=id, idempotency_key=key)
        report(placed, as_json)

    return click.Command(
        "place",
        params=[click.Option(["--id"], default=None, help="Choose the order's id."),
                *LINE_OPTIONS, *(f.param() for f in PLACE_FIELDS),
                *common_params("order", "place", create=True)],
        callback=pass_session(run),
        help="Place an order with an active seller: lines, currency, consignee and the "
             "logistics service the buyer chose.\n\nFires place (buyer).",
        short_help="Place an order",
    )


#: the carrier statuses `track --status` records by hand
BY_HAND = ("in_transit", "delivered", "exception")


def recorded_by_hand(status: str) -> str:
    """The trigger an event of ``status`` recorded by hand fires: the one a carrier's scan of
    that status fires (`lifecycle.trigger_for_scan`) that an operator may fire. (The same scan
    before shipping confirms the pickup, which is the seller's or the carrier's to do.)"""
    fired = {lifecycle.trigger_for_scan(state, status) for state in ORDER.states}
    found = sorted(t for t in fired if t is not None and "operator" in ORDER.roles_of(t))
    if len(found) != 1:
        raise lifecycle.DefinitionError(f"order: a {status} scan by hand fires {found or 'nothing'}, "
                                        "not one trigger")
    return found[0]


TRACKING = {status: recorded_by_hand(status) for status in BY_HAND}
for _status, _trigger in TRACKING.items():
    offers("order", _trigger, f"order track ID --status {_status}")
offers("order", "place", "order place")
offers("order", "cancel", "order cancel ID")
offers("order", "request_cancel", "order cancel ID --reason TEXT")
offers("order", "accept_cancel", "order cancel ID --accept")
offers("order", "reject_cancel", "order cancel ID --reject")
TRACK_FIELDS = (
    Field("--kind", "kind", "With --status exception: what happened.",
          type=click.Choice(payloads.choices("order", TRACKING["exception"], "kind"))),
    Field("--event-id", "event_id", "The carrier's id for the event."),
    Field("--location", "location", "Where the parcel is."),
    Field("--detail", "detail", "What the carrier said."),
)


def track_command() -> click.Command:
    def run(session: Session, id: str, status: str | None, actor: str | None, payload: str | None,
            key: str | None, expect_version: int | None, as_json: bool, **values: Any) -> None:
        if status is None:
            given = [name for name, value in (("--as", actor), ("--payload", payload),
                                              ("--key", key), ("--expect-version", expect_version),
                                              *((f.option, values.get(f.dest)) for f in TRACK_FIELDS))
                     if value is not None]
            if given:
                verb = "go" if len(given) > 1 else "goes"
                raise BadUsage(f"{', '.join(given)} {verb} with --status: without it the carrier "
                               "is polled and its events applied as system:CARRIER")
            tracked, applied = _poll(session.engine, id)
            report(tracked, as_json, also=applied)
            return
        if status == "exception" and values.get("kind") is None and not payload:
            raise BadUsage("missing option --kind: an exception says what happened")
        if status != "exception" and values.get("kind") is not None:
            raise BadUsage("--kind goes with --status exception only")
        trigger = TRACKING[status]  # in a state without it, refused with what is allowed
        body = build_payload(TRACK_FIELDS, payload, values)
        who = actor_for("order", trigger, actor)
        report(fire(session.engine, "order", id, trigger, who, body, key, expect_version), as_json)

    return click.Command(
        "track",
        params=[click.Argument(["id"], metavar="ID"),
                click.Option(["--status"], type=click.Choice(list(TRACKING)), default=None,
                             help=f"Record this event by hand: {either(TRACKING)}. "
                                  "Without it, poll the carrier."),
                *(f.param() for f in TRACK_FIELDS),
                *common_params("order", TRACKING["delivered"])],
        callback=pass_session(run),
        help="Track the order ID. Without --status, poll its carrier for the waybill's events "
             "and apply those not yet seen (as system:CARRIER). With --status, record one event "
             "by hand: in_transit moves a shipped order, delivered delivers it, an exception "
             "(lost, customs hold, returned to sender, delay) is recorded and the state kept."
             f"\n\nFires {either(TRACKING.values())} ({who_may(_roles(TRACKING.values()))}).",
        short_help="Poll the carrier, or record a tracking event",
    )


def _poll(engine: lifecycle.Engine, id: str) -> tuple[lifecycle.Aggregate, str]:
    """Poll the order's carrier: the order after, and how many of its events were new. Counted
    by the order's tracking rows, since a scan that moves nothing is no transition (it adds no
    version); plus the scan that confirmed a booked pickup, which moves the order and keeps
    no row."""
    before, rows = engine.get("order", id), len(engine.tracking(id))
    tracked = engine.track(id)
    confirmed = [e for e in engine.history("order", id)[before.version:]
                 if e.trigger == "confirm_pickup"]
    applied = len(engine.tracking(id)) - rows + len(confirmed)
    return tracked, f"; {applied} new tracking event{'' if applied == 1 else 's'} applied"


def _roles(triggers: Iterable[str]) -> frozenset[str]:
    return frozenset().union(*(ORDER.roles_of(trigger) for trigger in triggers))


#: the buyer's ways to cancel an order: at once before payment, by asking after it
CANCELLING = ("cancel", "request_cancel")


def cancelling(state: str) -> str:
    """The one of `CANCELLING` the order definition allows from ``state``. Where it allows
    neither, the request, whose refusal names the state and what it allows."""
    allowed = ORDER.external_triggers_from(state)
    return next((trigger for trigger in CANCELLING if trigger in allowed), CANCELLING[-1])


def cancel_command() -> click.Command:
    def run(session: Session, id: str, accept: bool, reject: bool, reason: str | None,
            actor: str | None, payload: str | None, key: str | None, expect_version: int | None,
            as_json: bool) -> None:
        if accept and reject:
            raise BadUsage("--accept and --reject exclude each other")
        engine = session.engine
        if accept or reject:
            trigger = "accept_cancel" if accept else "reject_cancel"
            version = expect_version
        else:
            current = engine.get("order", id)
            trigger = cancelling(current.state)
            # The trigger was chosen for this version; a change since then is a conflict.
            version = expect_version or current.version
            needs_reason = (ORDER.step(current.state, trigger) is not None
                            and payloads.takes("order", trigger, "reason", required=True))
            if needs_reason and not reason and not payload:
                raise BadUsage("missing option --reason: a buyer's request to cancel a paid "
                               "order says why")
        reason_field = "reason" if payloads.takes("order", trigger, "reason") else "note"
        body = build_payload((Field("--reason", reason_field, ""),), payload, {"reason": reason})
        who = actor_for("order", trigger, actor)
        report(fire(engine, "order", id, trigger, who, body, key, version), as_json)

    return click.Command(
        "cancel",
        params=[click.Argument(["id"], metavar="ID"),
                click.Option(["--accept"], is_flag=True,
                             help="The seller accepts the buyer's request: cancelled, refunded."),
                click.Option(["--reject"], is_flag=True,
                             help="The seller rejects the buyer's request: back to paid."),
                click.Option(["--reason", "--note", "reason"], default=None, metavar="TEXT",
                             help="Why (required for a buyer's request after payment); kept "
                                  "in the history. --note is the same option."),
                *common_params("order", "cancel")],
        callback=pass_session(run),
        help="Cancel the order ID. Before payment the buyer or an operator cancels at once "
             "(cancel); after payment the buyer asks (request_cancel, with --reason) and the "
             "seller answers with --accept (accept_cancel: cancelled and refunded) or --reject "
             "(reject_cancel: back to paid).",
        short_help="Cancel, or ask or answer a cancellation",
    )


ACTIONS = (
    Action("pay", "order", "pay", "Capture the payment into escrow (the buyer, or the gateway's "
           "callback as system:GATEWAY).",
           (Field("--payment-ref", "payment_ref", "The gateway's payment reference."),
            Field("--amount", "amount", "The amount captured; must equal the order total.",
                  metavar="AMOUNT"))),
    Action("book-pickup", "order", "book_pickup",
           "Ship online: book a door-to-door pickup with the buyer's chosen carrier, which "
           "issues the waybill.",
           (CONFIRM,
            Field("--weight-kg", "parcel.weight_kg", "The parcel's actual weight.",
                  required=True, metavar="KG"),
            Field("--length-cm", "parcel.length_cm", "Its outer length.", required=True,
                  metavar="CM"),
            Field("--width-cm", "parcel.width_cm", "Its outer width.", required=True,
                  metavar="CM"),
            Field("--height-cm", "parcel.height_cm", "Its outer height.", required=True,
                  metavar="CM"))),
    Action("confirm-pickup", "order", "confirm_pickup",
           "The carrier picked the parcel up: shipped.",
           (Field("--waybill", "waybill", "The waybill the carrier issued."),)),
    Action("ship-offline", "order", "ship_offline",
           "Ship offline: hand the parcel to a carrier and enter its waybill.",
           (Field("--carrier", "carrier", "The carrier (dhl, ups, fedex, …).", required=True),
            Field("--waybill", "waybill", "The waybill number.", required=True),
            CONFIRM)),
    Action("confirm", "order", "confirm_receipt", "The buyer confirms receipt: completed.",
           (NOTE,)),
    Action("release", "order", "release_funds",
           "Release the escrow to the seller, less commission (the timer does it after the "
           "protection period).", (NOTE,)),
)


@click.group(cls=Noun)
def order() -> None:
    """Orders: place, pay, ship, track, confirm, cancel, release; show and list them."""


order.add_command(place_command())
for _action in ACTIONS[:4]:
    order.add_command(action_command(_action))
order.add_command(track_command())
for _action in ACTIONS[4:]:
    order.add_command(action_command(_action))
order.add_command(cancel_command())
for _command in reading_commands(VIEW):
    order.add_command(_command)
