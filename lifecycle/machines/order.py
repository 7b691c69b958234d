"""The order (SPEC §4): place, pay, ship online or offline, track, complete, release funds.

The machine on one screen: its states, its arrows, its deadlines, and which carrier scan moves
it. What each trigger takes is in `order_payloads`, the rules it passes in `order_rules`, what
it does in `order_effects`.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from lifecycle.errors import DefinitionError
from lifecycle.machines import order_effects as effects
from lifecycle.machines.definition import Context, Deadline, MachineDefinition, Transition
from lifecycle.machines.order_payloads import (
    BookPickup,
    CloseDispute,
    ConfirmPickup,
    OpenDispute,
    Pay,
    PlaceOrder,
    ShipOffline,
    TrackingEvent,
    TrackingException,
    TrackingStatus,
)
from lifecycle.machines.order_rules import (
    AMOUNT_MATCHES,
    BUYERS_CARRIER,
    CHECKLIST,
    COUPON_RULES,
    DELIVERY_WITHIN_WINDOW,
    NOT_RECEIVED_WAIT,
    RECEIVED_AFTER_DELIVERY,
    REF_FROM_GATEWAY,
    REFUND_WITHIN_PAID,
    SELLER_ACTIVE,
    refundable,
)
from lifecycle.machines.payloads import Empty, Reason
from lifecycle.policy import Policy

BUYER, SELLER = frozenset({"buyer"}), frozenset({"seller"})
OPERATOR, SYSTEM = frozenset({"operator"}), frozenset({"system"})

STATES = (
    "awaiting_payment",
    "paid",
    "cancel_requested",
    "awaiting_pickup",
    "shipped",
    "in_transit",
    "delivered",
    "in_dispute",
    "completed",
    "funds_released",
    "cancelled",
    "refunded",
)
DISPUTABLE = ("shipped", "in_transit", "delivered", "completed")
AFTER_SHIPPING = (*DISPUTABLE, "in_dispute")
AWAITING_RECEIPT = ("shipped", "in_transit", "delivered")  # the buyer may confirm receipt

# Which carrier scan fires which order trigger, by the scan's status. The states each fires
# from are its transitions' sources below: `SCAN_MOVES` is derived from both. A scan that fires
# none, after shipping (`RECORDED_SCAN_STATES`), is recorded as it came: a tracking row and an
# outbox event, no transition (SPEC §4; the ingestion writes them).
SCAN_TRIGGERS: Mapping[str, tuple[TrackingStatus, ...]] = {
    "confirm_pickup": ("in_transit", "out_for_delivery"),  # the courier took the booked parcel
    "tracking_in_transit": ("in_transit", "out_for_delivery"),
    "tracking_delivered": ("delivered",),
    "tracking_exception": ("exception", "returned_to_sender"),
}


def _refunds_everything(ctx: Context) -> bool:
    return bool(ctx.payload.refund_amount >= refundable(ctx))


def paused_in(state: str) -> Any:
    def check(ctx: Context) -> bool:
        return bool(ctx.data.get("paused_state") == state)

    check.__name__ = check.__qualname__ = f"paused_in_{state}"
    return check


def days_of(data_field: str) -> Any:
    def duration(policy: Any, data: Any) -> timedelta:
        return timedelta(days=int(data[data_field]))

    return duration


def promised_delivery(policy: Policy, data: Mapping[str, Any]) -> timedelta:
    """The buyer's confirmation window: the delivery time promised with the logistics service
    (at most delivery_window_max when placed; capped again for an order placed under a policy
    that allowed longer)."""
    return min(timedelta(days=int(data["logistics"]["delivery_days"])), policy.delivery_window_max)


def tracking(trigger: str, source: tuple[str, ...], dest: str | None,
             payload: type[TrackingEvent | TrackingException] = TrackingEvent,
             status: str | None = None) -> Transition:
    """A carrier's scan of a shipped order (the system fires it, or an operator for it): kept
    as a row under ``status`` (by default the state it moves to) and stamped in the order as
    ``{status}_at``. ``dest`` None keeps the state."""
    kept = status or dest
    if kept is None:
        raise DefinitionError(f"order: {trigger} keeps its scans under no status")
    return Transition(trigger, source, dest, SYSTEM | OPERATOR, payload, (),
                      effects.track(kept, moves=dest is not None))


# --- the machine --------------------------------------------------------------------------

_BACK = tuple(
    Transition("close_dispute", ("in_dispute",), state, SYSTEM, CloseDispute, (),
               effects.close_dispute, when=paused_in(state), internal=True)
    for state in DISPUTABLE
)

DEFINITION = MachineDefinition(
    "order",
    states=STATES,
    terminal=frozenset({"funds_released", "cancelled", "refunded"}),
    pausing=frozenset({"in_dispute"}),  # an open dispute stops the order's clocks (SPEC §4)
    owners={"buyer": lambda id, data: data["buyer"], "seller": lambda id, data: data["seller"]},
    new_id=lambda actor: f"o-{uuid.uuid4().hex[:16]}",
    transitions=(
        Transition("place", (), "awaiting_payment", BUYER, PlaceOrder,
                   (DELIVERY_WITHIN_WINDOW, SELLER_ACTIVE, *COUPON_RULES), effects.place),
        Transition("pay", ("awaiting_payment",), "paid", BUYER | SYSTEM, Pay,
                   (AMOUNT_MATCHES, REF_FROM_GATEWAY), effects.pay),
        Transition("cancel", ("awaiting_payment",), "cancelled", BUYER | OPERATOR, Empty, (),
                   effects.cancel),
        Transition("payment_timeout", ("awaiting_payment",), "cancelled", SYSTEM, Empty, (),
                   effects.cancel),
        Transition("request_cancel", ("paid",), "cancel_requested", BUYER, Reason, (),
                   effects.request_cancel),
        Transition("accept_cancel", ("cancel_requested",), "cancelled", SELLER, Empty, (),
                   effects.cancel),
        Transition("reject_cancel", ("cancel_requested",), "paid", SELLER, Empty),
        Transition("cancel_request_timeout", ("cancel_requested",), "cancelled", SYSTEM, Empty,
                   (), effects.cancel),
        Transition("ship_deadline", ("paid",), "cancelled", SYSTEM, Empty, (), effects.cancel),
        Transition("book_pickup", ("paid",), "awaiting_pickup", SELLER, BookPickup, (CHECKLIST,),
                   effects.book_pickup),
        Transition("pickup_timeout", ("awaiting_pickup",), "paid", SYSTEM, Empty, (),
                   effects.pickup_lapsed),
        Transition("confirm_pickup", ("awaiting_pickup",), "shipped", SELLER | SYSTEM,
                   ConfirmPickup, (), effects.confirm_pickup),
        Transition("ship_offline", ("paid",), "shipped", SELLER, ShipOffline,
                   (CHECKLIST, BUYERS_CARRIER), effects.ship_offline),
        tracking("tracking_in_transit", ("shipped",), "in_transit"),
        tracking("tracking_delivered", ("shipped", "in_transit"), "delivered"),
        tracking("tracking_exception", ("shipped", "in_transit"), None, TrackingException,
                  status="exception"),
        Transition("confirm_receipt", AWAITING_RECEIPT, "completed", BUYER, Empty, (),
                   effects.complete),
        Transition("auto_confirm", AWAITING_RECEIPT, "completed", SYSTEM, Empty, (),
                   effects.complete),
        Transition("release_funds", ("completed",), "funds_released", SYSTEM | OPERATOR, Empty,
                   (), effects.release),
        Transition("open_dispute", DISPUTABLE, "in_dispute", BUYER, OpenDispute,
                   (REFUND_WITHIN_PAID, NOT_RECEIVED_WAIT, RECEIVED_AFTER_DELIVERY),
                   effects.open_dispute),
        Transition("close_dispute", ("in_dispute",), "refunded", SYSTEM, CloseDispute, (),
                   effects.close_dispute_refunded, when=_refunds_everything, internal=True),
        *_BACK,
    ),
    # A scan that moved nothing was this self-loop before issue #15 (decision 2); databases
    # written then still hold its history rows, which replay as steps that change nothing.
    retired={"record_tracking": AFTER_SHIPPING},
    deadlines=(
        Deadline("awaiting_payment", "payment_timeout", lambda p, d: p.payment_timeout,
                 "placed_at"),
        Deadline("paid", "ship_deadline", days_of("handling_time_days"), "paid_at"),
        Deadline("cancel_requested", "cancel_request_timeout",
                 lambda p, d: p.cancel_request_timeout, "cancel_requested_at"),
        Deadline("awaiting_pickup", "pickup_timeout", lambda p, d: p.pickup_timeout,
                 "pickup_booked_at"),
        Deadline("shipped", "auto_confirm", promised_delivery, "shipped_at"),
        Deadline("in_transit", "auto_confirm", promised_delivery, "shipped_at",
                 continues_from=("shipped",)),
        Deadline("delivered", "auto_confirm", lambda p, d: p.auto_confirm_after_delivery,
                 "delivered_at"),
        Deadline("completed", "release_funds", lambda p, d: p.protection_period, "completed_at"),
    ),
)

# --- carrier scans: the table above, over the transitions' sources ------------------------


def scan_moves(definition: MachineDefinition) -> dict[tuple[str, str], str]:
    """``(state, scan status) → trigger`` for every scan that moves an order of ``definition``:
    each trigger of `SCAN_TRIGGERS`, from each state its transitions leave."""
    return {(state, status): trigger
            for trigger, statuses in SCAN_TRIGGERS.items()
            for state in definition.sources_of(trigger)
            for status in statuses}


SCAN_MOVES: Mapping[tuple[str, str], str] = scan_moves(DEFINITION)

RECORDED_SCAN_STATES = AFTER_SHIPPING
"""The states in which a scan that moves nothing is still recorded (after shipping): a
tracking row and an ``order.scan_recorded`` event, no transition (SPEC §4)."""

waybill_key = effects.waybill_key


def recorded_scan_states(definition: MachineDefinition) -> tuple[str, ...]:
    """`RECORDED_SCAN_STATES` of a version of the order machine: the states a dispute may be
    opened from, and the pausing one (after shipping, whatever states a version adds)."""
    return _scans_of(definition)[1]


def trigger_for_scan(state: str, status: str,
                     definition: MachineDefinition | None = None) -> str | None:
    """The order trigger a carrier scan of ``status`` fires in ``state`` (under ``definition``,
    a version of the order machine; the shipped one by default); None when the scan moves
    nothing (it is recorded, or ignored before shipping). Scans never move an order
    backwards: a late in_transit after delivery is only recorded."""
    if definition is None or definition is DEFINITION:
        return SCAN_MOVES.get((state, status))
    return _scans_of(definition)[0].get((state, status))


@functools.lru_cache(maxsize=32)
def _scans_of(definition: MachineDefinition) -> tuple[dict[tuple[str, str], str], tuple[str, ...]]:
    recorded = (*definition.sources_of("open_dispute"), *sorted(definition.pausing))
    return scan_moves(definition), recorded
