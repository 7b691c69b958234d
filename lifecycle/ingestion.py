"""What gateways and carriers tell us: payment callbacks, carrier pushes and polls, each
verified by its adapter and then applied through the public trigger path, once.

A capture no order can take (cancelled or already paid, unknown, another currency or amount)
is kept as an ``unexpected_capture``, refunded through the gateway, and refused with
`CaptureRefused`. A scan moves the orders its waybill carries as the order's tracking table
says; one that moves nothing, after shipping, is recorded without a transition: a tracking
row and an ``order.scan_recorded`` event, no history row, no new version (SPEC §4). An
unreadable event in a push holds back none of the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar, cast

import structlog

from lifecycle import telemetry
from lifecycle.actor import Actor
from lifecycle.adapter_calls import Adapters, tracking_trigger
from lifecycle.adapters.errors import AdapterError, EventsRejected
from lifecycle.adapters.ports import PaymentEvent, TrackingEvent
from lifecycle.adapters.webhooks import delivery
from lifecycle.errors import (
    CaptureRefused,
    GuardFailed,
    IdempotencyMismatch,
    InvalidPayload,
    InvalidTransition,
    LifecycleError,
)
from lifecycle.events import scan_recorded_body
from lifecycle.machines import capture
from lifecycle.machines.definition import Aggregate, Scan
from lifecycle.machines.order import recorded_scan_states, trigger_for_scan, waybill_key
from lifecycle.machines.order_payloads import TrackingEvent as ScanPayload
from lifecycle.machines.versions import Machines
from lifecycle.pipeline import Pipeline, validate_payload
from lifecycle.request import outside_key
from lifecycle.unit import Unit

log = structlog.get_logger("lifecycle")

# Headers of a callback or push as frameworks hand them over (see `webhooks.delivery`).
Headers = Mapping[str, str] | Mapping[bytes, bytes] | Iterable[tuple[str | bytes, str | bytes]]
_Parsed = TypeVar("_Parsed")


class Ingestion:
    """Applies callbacks and pushes through the pipeline's public entries."""

    def __init__(self, pipeline: Pipeline, adapters: Adapters):
        self.pipeline = pipeline
        self.adapters = adapters

    # --- payments ---------------------------------------------------------------------------

    def payment_callback(self, gateway: str, body: bytes | str,
                         headers: Headers) -> Aggregate | None:
        """`Engine.ingest_payment_callback`."""
        payments = self.adapters.payments
        if gateway != payments.name:
            raise InvalidPayload("gateway", f"{gateway!r} is not this engine's gateway "
                                            f"({payments.name!r})")
        body, headers = delivery(body, headers, adapter=gateway, operation="parse_callback")
        event = _read(gateway, "parse_callback", lambda: payments.parse_callback(body, headers))
        if event.kind != "captured":
            log.info("payment.callback", gateway=gateway, kind=event.kind, order=event.order_id)
            return None
        key = outside_key("payment", gateway, event.event_id)
        pay = {"payment_ref": event.payment_ref, "amount": str(event.amount),
               "currency": event.currency}
        if self.pipeline.units.key_used(key):
            # Checked before anything else: the same event id with another request must be
            # refused, not answered from the order's state.
            return self._pay(gateway, event, pay, key)
        order = self.pipeline.existing("order", event.order_id)
        id = capture.capture_id(gateway, event.event_id, order.id if order else None)
        recorded = self.pipeline.existing(capture.KIND, id)
        if recorded is not None:  # a redelivery of a capture refused before
            return self._refuse_capture(gateway, event, id, recorded.data["reason"], order)
        if order is not None and order.data.get("payment_ref") == event.payment_ref:
            if (event.amount, event.currency) != (Decimal(order.data["amount_paid"]),
                                                  order.data["currency"]):
                raise GuardFailed("payment.capture_matches_order",
                                  f"the gateway reports its capture {event.payment_ref} as "
                                  f"{event.money}, order {order.id} recorded "
                                  f"{order.data['amount_paid']} {order.data['currency']}",
                                  trigger="pay", state=order.state)
            return order  # our own capture, confirmed
        problem = _why_capture_cannot_pay(order, event)
        if problem is None:
            try:
                return self._pay(gateway, event, pay, key)
            except InvalidTransition as refusal:  # the order moved on meanwhile
                problem = f"order {event.order_id} is {refusal.state}"
                order = self.pipeline.existing("order", event.order_id)
        return self._refuse_capture(gateway, event, id, problem, order)

    def _pay(self, gateway: str, event: PaymentEvent, pay: Mapping[str, Any], key: str) -> Aggregate:
        return self.pipeline.fire("order", event.order_id, "pay", Actor("system", gateway), pay,
                                  idempotency_key=key, expected_version=None)

    def _refuse_capture(self, gateway: str, event: PaymentEvent, id: str, reason: str,
                        order: Aggregate | None) -> Aggregate:
        """Keep a capture no order could take, give the money back, and say so."""
        payload = {"gateway": gateway, "event_id": event.event_id, "order": event.order_id,
                   "payment_ref": event.payment_ref, "amount": str(event.amount),
                   "currency": event.currency, "reason": reason}
        record = self.pipeline.create(capture.KIND, Actor("system", gateway), payload, id=id,
                                      idempotency_key=outside_key("unexpected-capture", gateway,
                                                                  event.event_id))
        if record.state == "refund_pending":
            try:
                record = self.pipeline.fire(capture.KIND, id, "refund", Actor("system", gateway),
                                            None, idempotency_key=f"unexpected-capture-refund:{id}",
                                            expected_version=None)
            except LifecycleError as error:
                # The `refund` deadline retries it with backoff and parks it for an operator.
                log.warning("payment.unexpected_capture_refund_failed", capture=id,
                            error=str(error))
        log.warning("payment.unexpected_capture", capture=id, order=event.order_id,
                    amount=str(event.money), reason=reason, state=record.state)
        raise CaptureRefused(event.order_id, reason, id, record.state == "refunded",
                             state=order.state if order is not None else "")

    # --- carriers ---------------------------------------------------------------------------

    def tracking_push(self, carrier: str, body: bytes | str, headers: Headers) -> list[Aggregate]:
        """`Engine.ingest_tracking`."""
        if not isinstance(carrier, str):
            raise InvalidPayload("carrier", f"must be a carrier's name, got {type(carrier).__name__}")
        adapter = self.adapters.carrier(carrier)
        body, headers = delivery(body, headers, adapter=carrier, operation="parse_push")
        try:
            events = _read(carrier, "parse_push", lambda: adapter.parse_push(body, headers))
        except EventsRejected as partly:
            # One unreadable event must not hold back the rest, on this delivery or any retry.
            _check_scans(carrier, partly.events)
            partly.applied = [order for event in partly.events
                              for order in self._apply(carrier, event)]
            log.warning("tracking.rejected", carrier=carrier, rejected=len(partly.rejected),
                        applied=len(partly.events), reason=partly.reason)
            raise
        _check_scans(carrier, events)
        return [order for event in events for order in self._apply(carrier, event)]

    def track(self, order_id: str) -> Aggregate:
        """`Engine.track`."""
        order = self.pipeline.get("order", order_id)
        carrier, waybill = order.data.get("carrier"), order.data.get("waybill")
        if not carrier or not waybill:
            raise GuardFailed("tracking.waybill", "the order has no waybill yet",
                              trigger="track", kind=order.kind, id=order.id, state=order.state)
        for event in self.adapters.carrier(carrier).track(waybill):
            self._apply(carrier, event)
        return self.pipeline.get("order", order_id)

    def _apply(self, carrier: str, event: TrackingEvent) -> list[Aggregate]:
        """The orders one scan applied to (moved, or recorded on) among those its waybill
        carries."""
        with self.pipeline.units.store.quick() as records:
            found = records.found_by("waybill", waybill_key(carrier, event.waybill))
        if not found:
            log.warning("tracking.unknown_waybill", carrier=carrier, waybill=event.waybill)
        applied = (self._apply_to(carrier, event, kind, order_id) for kind, order_id in found)
        return [order for order in applied if order is not None]

    def _apply_to(self, carrier: str, event: TrackingEvent, kind: str,
                  order_id: str) -> Aggregate | None:
        """One scan of one order: the trigger it fires, or recorded after shipping without one
        (SPEC §4), or nothing. The order as it is after, or None if the scan did nothing."""
        with self.pipeline.units.store.quick() as records:
            order = records.load(kind, order_id)
            seen = records.scan_seen(kind, order_id, event.event_id)
        if order is None or order.data.get("waybill") != event.waybill or seen:
            return None  # a stale waybill, or a duplicate delivery of the same scan
        state = order.state
        machine = self.pipeline.definitions.at(kind, order.machine_version)
        if (trigger_for_scan(state, event.status, machine) is None
                and state in recorded_scan_states(machine)):
            recorded = self._record(carrier, event, kind, order_id)
            if not isinstance(recorded, _MovedOn):
                return recorded
            state = recorded.state
        trigger, payload = tracking_trigger(state, event, machine)
        if trigger is None:
            log.info("tracking.ignored", order=order_id, state=state, status=event.status)
            return None
        try:
            return self.pipeline.fire(
                kind, order_id, trigger, Actor("system", carrier), payload,
                idempotency_key=outside_key("tracking", carrier, event.event_id, order_id),
                expected_version=None)
        except IdempotencyMismatch:
            return None  # the same scan arrived twice while the order moved in between

    def _record(self, carrier: str, event: TrackingEvent, kind: str,
                order_id: str) -> Aggregate | _MovedOn | None:
        """Record a scan that moves nothing: a tracking row and an ``order.scan_recorded``
        event in one unit of work (a savepoint of the thread's open batch), no history row, no
        new version, the order's row untouched. A malformed scan is `InvalidPayload`, nothing
        written."""
        payload = _recorded_payload(carrier, event)
        definitions = self.pipeline.definitions
        recorded = self.pipeline.units.write(
            lambda unit: _record_in(unit, definitions, Actor("system", carrier), kind, order_id,
                                    payload))
        if isinstance(recorded, Aggregate):  # counted once its unit ended, as a trigger is
            telemetry.scan_recorded(carrier)
        return recorded


@dataclass(frozen=True, slots=True)
class _MovedOn:
    """The order moved, before the scan could be recorded, to ``state``, where the scan fires
    a trigger after all."""

    state: str


def _recorded_payload(carrier: str, event: TrackingEvent) -> dict[str, Any]:
    """The recorded scan as its event's payload: every key always there, null when the carrier
    did not say. Checked as a scan's payload is when a trigger takes it (lengths, status)."""
    scan = cast(ScanPayload, validate_payload(ScanPayload, {
        "event_id": event.event_id, "status": event.status, "reported_at": event.at.isoformat(),
        "location": event.location or None, "detail": event.detail or None,
    }, {}))  # given a model, it returns one of it
    return {"carrier": carrier, "waybill": event.waybill, **scan.model_dump(mode="json")}


def _record_in(unit: Unit, definitions: Machines, actor: Actor, kind: str, order_id: str,
               payload: Mapping[str, Any]) -> Aggregate | _MovedOn | None:
    """In ``unit``: read the order again, locked until the unit ends, and decide again; then
    the tracking row (none for a duplicate, even one another process is writing now) and the
    event. The order as it stays, or `_MovedOn`, or None when the scan does nothing now."""
    found = unit.records.lock_for_write(kind, order_id)
    if found is None:
        return None
    order, last_moved = found
    unit.now = max(unit.now, last_moved)  # a scan recorded after the order's last move
    if order.data.get("waybill") != payload["waybill"]:
        return None  # the order took another waybill meanwhile
    machine = definitions.at(kind, order.machine_version)
    if trigger_for_scan(order.state, payload["status"], machine) is not None:
        return _MovedOn(order.state)
    if order.state not in recorded_scan_states(machine):
        log.info("tracking.ignored", order=order_id, state=order.state, status=payload["status"])
        return None
    scan = Scan(carrier=payload["carrier"], waybill=payload["waybill"],
                event_id=payload["event_id"], status=payload["status"],
                reported_at=payload["reported_at"], location=payload["location"],
                detail=payload["detail"], moved=False)
    if not unit.records.record_scan(kind, order_id, scan, unit.now, once=True):
        return None  # a duplicate that another delivery recorded first
    body = scan_recorded_body(kind, order_id, order.version, order.state, actor, dict(payload),
                              unit.now)
    unit.records.append_outbox(body, unit.now)
    unit.events.append(body)
    return order


def _why_capture_cannot_pay(order: Aggregate | None, event: PaymentEvent) -> str | None:
    """Why a gateway's capture may not pay the order it names, or None if it may."""
    if order is None:
        return f"there is no order {event.order_id}"
    currency, total = order.data["currency"], order.data["total"]
    if event.currency != currency:
        return f"the capture is in {event.currency}, order {order.id} in {currency}"
    if event.amount != Decimal(total):
        return f"the capture is {event.money}, order {order.id} totals {total} {currency}"
    if order.state != "awaiting_payment":
        paid = f" (paid with {order.data['payment_ref']})" if order.data.get("payment_ref") else ""
        return f"order {order.id} is {order.state}{paid}"
    return None


def _read(adapter: str, operation: str, parse: Callable[[], _Parsed]) -> _Parsed:
    """What an adapter reads of a callback or push. A bad delivery is an `AdapterError`: an
    outside adapter may fail on one any way its author allowed (a deep JSON body makes
    json.loads raise RecursionError)."""
    try:
        return parse()
    except LifecycleError:
        raise
    except Exception as error:
        raise AdapterError(adapter, operation, f"unreadable: {type(error).__name__}: "
                                               f"{str(error)[:200]}") from error


def _check_scans(carrier: str, events: list[TrackingEvent]) -> None:
    """Refuse a pushed scan whose text PostgreSQL cannot store (a NUL): the waybill is looked
    up before any trigger checks its payload."""
    for n, event in enumerate(events):
        for name in ("event_id", "waybill", "status", "location", "detail", "exception_kind"):
            value = getattr(event, name, None)
            if isinstance(value, str) and "\x00" in value:
                raise AdapterError(carrier, "parse_push",
                                   f"event #{n + 1}: {name} holds a NUL character (\\x00)")
