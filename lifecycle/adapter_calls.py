"""The adapters an engine talks to, and carrying out the calls a transition asks for.

Machines stay pure: an effect appends a `Call` (capture, refund, book a pickup, ...); the
engine carries it out here, inside the transition's transaction and before it writes, with an
idempotency key derived from the transition, so a retry never charges twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from lifecycle.adapters import registry
from lifecycle.adapters.errors import AdapterError
from lifecycle.adapters.ports import Carrier, Money, Parcel, PaymentGateway, TrackingEvent
from lifecycle.adapters.webhooks import Secret, webhook_keys
from lifecycle.clock import Clock
from lifecycle.errors import InvalidPayload, LifecycleError
from lifecycle.machines.definition import Call, MachineDefinition
from lifecycle.machines.order import trigger_for_scan

# Not a secret: it is published here. The built-in sandbox adapters sign and verify their
# callbacks and pushes with it unless `configure` is given secrets for them (webhook_secrets).
SANDBOX_SECRET = b"lifecycle-sandbox-secret"


class Adapters:
    """The payment gateway and the carriers (built by name on first use, then kept)."""

    def __init__(self, payments: PaymentGateway, carrier: Callable[[str], Carrier]):
        self.payments = payments
        self._build_carrier = carrier
        self._carriers: dict[str, Carrier] = {}

    @classmethod
    def configure(
        cls,
        clock: Clock,
        payments: str | PaymentGateway = "sandbox",
        carriers: Mapping[str, Carrier] | None = None,
        secret: bytes = SANDBOX_SECRET,
        seed: int = 0,
        webhook_secrets: Mapping[str, Sequence[Secret]] | None = None,
    ) -> Adapters:
        """Adapters by name from the registry (built-ins and entry points), or given objects.

        ``webhook_secrets``: per adapter name (``"sandbox"`` for the gateway, ``"dhl"``, ...),
        the secrets its callbacks or pushes are signed with, newest first (``whsec_<base64>``
        or bytes). A built-in sandbox with none listed uses ``secret`` (the published
        `SANDBOX_SECRET` by default). A malformed secret is refused here, before anything runs.
        """
        configured = _webhook_secrets(webhook_secrets)
        if isinstance(payments, str):
            options: dict[str, Any] = {}
            if payments in registry.builtin_payment_gateways():
                options = {"secrets": configured.get(payments, (secret,)), "seed": seed,
                           "clock": clock, "remembers_everything": False}
            payments = registry.payment_gateway(payments, **options)
        given = dict(carriers or {})

        def build(name: str) -> Carrier:
            if name in given:
                return given[name]
            if name in registry.builtin_carriers():
                return registry.carrier(name, clock=clock, secrets=configured.get(name, (secret,)),
                                        seed=seed)
            return registry.carrier(name)

        return cls(payments, build)

    def carrier(self, name: str) -> Carrier:
        if name not in self._carriers:
            self._carriers[name] = self._build_carrier(name)
        return self._carriers[name]

    def carrier_names(self) -> list[str]:
        return registry.carrier_names()


def _webhook_secrets(given: Mapping[str, Sequence[Secret]] | None) -> dict[str, tuple[bytes, ...]]:
    """Each adapter's webhook keys, read now so that a malformed secret fails at `open`."""
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise InvalidPayload("webhook_secrets", "must map adapter names to lists of secrets")
    keys: dict[str, tuple[bytes, ...]] = {}
    for name, secrets in given.items():
        if isinstance(secrets, str | bytes) or not isinstance(secrets, Sequence):
            raise InvalidPayload("webhook_secrets", f"{name!r} must list its secrets (newest first)")
        try:
            keys[str(name)] = webhook_keys(secrets)
        except ValueError as error:
            raise InvalidPayload("webhook_secrets", f"{name!r}: {error}") from None
    return keys


def carry_out(adapters: Adapters, call: Call, key: str) -> Any:
    """Perform one call; any failure becomes a `LifecycleError` naming adapter and operation."""
    adapter = call.carrier if call.port == "carrier" else adapters.payments.name
    try:
        if call.port == "payments":
            return _payments(adapters.payments, call, key)
        if call.port == "carrier" and call.carrier is not None:
            return _carrier(adapters.carrier(call.carrier), call, key)
        raise InvalidPayload("call", f"no port {call.port!r}")
    except LifecycleError:
        raise
    except Exception as error:  # an outside adapter may fail any way its author allowed
        raise AdapterError(str(adapter), call.operation, f"{type(error).__name__}: {error}") from error


def _payments(gateway: PaymentGateway, call: Call, key: str) -> Any:
    args = call.args
    money = Money(Decimal(args["amount"]), args["currency"])
    if call.operation == "capture":
        return gateway.capture(args["order_id"], money, key)
    if call.operation == "refund":
        return gateway.refund(args["payment_ref"], money, key)
    if call.operation == "payout":
        return gateway.payout(args["seller_id"], money, key)
    if call.operation == "charge_fee":
        return gateway.charge_fee(args["seller_id"], money, key)
    raise InvalidPayload("call", f"payment gateways do not {call.operation}")


def _carrier(carrier: Carrier, call: Call, key: str) -> Any:
    args = call.args
    if call.operation == "resolve":
        return None  # building it was the point: an unknown carrier is refused
    if call.operation == "validate_waybill":
        carrier.validate_waybill(args["number"])
        return args["number"]
    if call.operation == "book_pickup":
        parcel = Parcel(**{name: Decimal(value) for name, value in args["parcel"].items()})
        return carrier.book_pickup(args["order_id"], parcel, args["origin"], args["destination"],
                                   args["service"], key)
    if call.operation == "cancel_pickup":
        carrier.cancel_pickup(args["waybill"], key)
        return None
    raise InvalidPayload("call", f"carriers do not {call.operation}")


def tracking_trigger(state: str, event: TrackingEvent,
                     definition: MachineDefinition | None = None) -> tuple[str | None, dict[str, Any]]:
    """The order trigger for ``event`` in ``state`` (under ``definition``, the order's version
    of its machine), and its payload; None when the scan moves nothing there (the ingestion
    records it after shipping, SPEC §4). Events never move an order backwards: a late
    in_transit after delivery is only recorded."""
    trigger = trigger_for_scan(state, event.status, definition)
    common: dict[str, Any] = {"event_id": event.event_id, "reported_at": event.at.isoformat()}
    if event.location:
        common["location"] = event.location
    if event.detail:
        common["detail"] = event.detail
    if trigger == "confirm_pickup":
        return trigger, {}
    if trigger == "tracking_exception":
        kind = "returned_to_sender" if event.status == "returned_to_sender" else event.exception_kind
        return trigger, {**common, "kind": kind}
    if trigger is not None:
        return trigger, common
    return None, {}
