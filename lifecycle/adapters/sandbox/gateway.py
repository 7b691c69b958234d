"""The sandbox payment gateway: captures, refunds, payouts and fees in memory, with idempotency
keys, signed callbacks (duplicated and late as configured) and seeded failures."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from lifecycle.adapters.errors import AdapterError, PaymentDeclined
from lifecycle.adapters.faults import Fault, FaultPlan, FaultRates, digest
from lifecycle.adapters.ports import Money, PaymentEvent, PaymentEventKind
from lifecycle.adapters.sandbox.calls import DECLINED, failure, fingerprint, keys
from lifecycle.adapters.webhooks import (
    DeliveryRates,
    Mailbox,
    Secret,
    SignedMessage,
    delivery,
    verify,
)
from lifecycle.clock import Clock
from lifecycle.errors import InvalidPayload
from lifecycle.strict_json import loads_json

Operation = Literal["capture", "refund", "payout", "charge_fee"]
_REF_PREFIX: Mapping[Operation, str] = {
    "capture": "pay", "refund": "rfd", "payout": "po", "charge_fee": "fee",
}


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """Money the sandbox gateway actually moved: one entry per operation, however many retries."""

    operation: Operation
    key: str
    ref: str
    subject: str  # the order (capture), payment reference (refund) or seller (payout, fee)
    amount: Money


@dataclass(slots=True)
class _Capture:
    """A capture, kept for the refunds that may follow it."""

    order_id: str
    amount: Money
    refunded: Decimal = Decimal(0)


def _reference(operation: Operation, token: str) -> str:
    """The reference of what a key did: the same for every retry with it."""
    return f"{_REF_PREFIX[operation]}_{token}"


class SandboxGateway:
    """A payment gateway in memory. Implements `PaymentGateway`.

    ``fail_next`` scripts failures; ``faults`` draws them at seeded rates. ``take_callbacks``
    hands over the signed callbacks it would have POSTed, with duplicates and late ones as
    configured by ``callbacks`` or ``inject_callback``.

    ``secrets``: one webhook secret or several (``whsec_<base64>`` or raw bytes; ``secret=``
    is the same for one): callbacks are signed with the first, and verified if any one
    matches. ``clock``: the engine's, which timestamps callbacks and checks their tolerance.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        secrets: Secret | Sequence[Secret] | None = None,
        secret: Secret | None = None,
        seed: int = 0,
        name: str = "sandbox",
        faults: FaultRates | None = None,
        callbacks: DeliveryRates | None = None,
        remembers_everything: bool = True,
    ):
        # A sandbox lives in one process; an engine opened per CLI command refunds captures
        # an earlier process made. With remembers_everything=False, a refund of a capture it
        # never saw is taken on trust instead of refused; and, so that a long simulation stays
        # small, no ledger is kept, only totals by operation (`ledger` and a `total` for one
        # subject then refuse).
        self._remembers_everything = remembers_everything
        self._name, self._seed, self._clock = name, seed, clock
        self._keys = keys(secrets, secret)
        self._faults = FaultPlan(seed, faults or FaultRates())
        self._mailbox = Mailbox(self._keys[0], seed, callbacks or DeliveryRates(), clock)
        # What each key did, to replay to a retry with it: one entry per key for the sandbox's
        # lifetime, so a small one. The reference and a decline's reason follow from the
        # operation and the key; kept are the request's `fingerprint`, by operation and key,
        # and the few keys that were declined.
        self._requests: dict[Operation, dict[str, int]] = {operation: {} for operation in _REF_PREFIX}
        self._declined: set[tuple[Operation, str]] = set()
        self._captures: dict[str, _Capture] = {}  # by payment reference
        self._ledger: list[LedgerEntry] = []  # only when remembering everything
        self._totals: dict[tuple[Operation, str], Decimal] = {}  # by (operation, currency)

    @property
    def name(self) -> str:
        return self._name

    # --- the port -------------------------------------------------------------------------

    def capture(self, order_id: str, amount: Money, key: str) -> str:
        """Capture into escrow. Emits a ``captured`` callback, or ``failed`` when declined."""
        return self._call("capture", key, order_id, amount)

    def refund(self, payment_ref: str, amount: Money, key: str) -> str:
        """Refund from a capture; never more than was captured less earlier refunds."""
        return self._call("refund", key, payment_ref, amount)

    def payout(self, seller_id: str, amount: Money, key: str) -> str:
        """Pay a seller out."""
        return self._call("payout", key, seller_id, amount)

    def charge_fee(self, seller_id: str, amount: Money, key: str) -> str:
        """Charge a seller a fee."""
        return self._call("charge_fee", key, seller_id, amount)

    def parse_callback(self, body: bytes, headers: Mapping[str, str]) -> PaymentEvent:
        """Verify the signature, then parse. A replay parses to the same event (same event id).
        Body and headers may come in any form `webhooks.delivery` reads."""
        body, headers = delivery(body, headers, adapter=self._name, operation="parse_callback")
        verify(self._keys, body, headers, now=self._clock.now(), adapter=self._name,
               operation="parse_callback")
        try:
            data = loads_json(body)
            return PaymentEvent(
                event_id=str(data["event_id"]),
                kind=data["kind"],
                order_id=str(data["order_id"]),
                payment_ref=data["payment_ref"],
                amount=Decimal(data["amount"]),
                currency=str(data["currency"]),
                reason=data.get("reason"),
            )
        except (ValueError, KeyError, TypeError, AttributeError, ArithmeticError,
                InvalidPayload) as exc:
            raise AdapterError(self._name, "parse_callback", f"malformed callback: {exc}") from None

    # --- injection and inspection ---------------------------------------------------------

    def fail_next(self, operation: Operation, fault: Fault, times: int = 1) -> None:
        """Make the next ``times`` calls of ``operation`` fail with ``fault``."""
        self._faults.inject(operation, fault, times)

    def inject_callback(self, *, duplicate: bool = False, late: bool = False) -> None:
        """Make the next callback arrive twice and/or late (after later ones)."""
        self._mailbox.inject(duplicate=duplicate, late=late)

    def take_callbacks(self) -> list[SignedMessage]:
        """The callbacks due for delivery now, in delivery order."""
        return self._mailbox.take()

    def flush_callbacks(self) -> list[SignedMessage]:
        """Every callback still waiting, late ones included."""
        return self._mailbox.flush()

    @property
    def ledger(self) -> tuple[LedgerEntry, ...]:
        """What was actually done, in order: retries with the same key add nothing. Kept only
        by a gateway that remembers everything (the default)."""
        if not self._remembers_everything:
            raise ValueError("this sandbox gateway keeps totals, not a ledger "
                             "(it was made with remembers_everything=False)")
        return tuple(self._ledger)

    def total(self, operation: Operation, subject: str | None = None) -> Decimal:
        """Sum of ``operation`` amounts, optionally for one order / payment / seller (which
        needs the `ledger`)."""
        if subject is None:
            sums = {currency: amount for (done, currency), amount in self._totals.items()
                    if done == operation}
        else:
            sums = {}
            for e in self.ledger:
                if e.operation == operation and e.subject == subject:
                    sums[e.amount.currency] = sums.get(e.amount.currency, Decimal(0)) + e.amount.amount
        if len(sums) > 1:
            raise ValueError(f"{operation} entries are in several currencies; pass a subject")
        return next(iter(sums.values()), Decimal(0))

    def attempts(self, operation: Operation, key: str) -> int:
        """How many calls were made for ``operation`` with ``key``, failed ones included."""
        return self._faults.attempts(operation, key)

    # --- inside ---------------------------------------------------------------------------

    def _call(self, operation: Operation, key: str, subject: str, amount: Money) -> str:
        if not isinstance(amount, Money):
            raise InvalidPayload("amount", "must be a Money (Decimal amount and currency)")
        fault = self._faults.draw(operation, key)
        if fault in ("timeout_unprocessed", "error"):
            raise failure(self._name, operation, fault)
        # Names both what the key did (its reference) and the callback telling of it.
        token = digest(self._name, self._seed, operation, key)
        request = self._requests[operation].get(key)
        if request is None:
            self._act(operation, key, token, subject, amount, declined=fault == "decline")
        elif request != fingerprint(subject, amount):
            raise AdapterError(self._name, operation,
                               f"idempotency key {key!r} was already used for a different request")
        if (operation, key) in self._declined:
            raise PaymentDeclined(self._name, operation, DECLINED[operation])
        if fault == "timeout":  # the money moved; only the reply is lost
            raise failure(self._name, operation, fault)
        return _reference(operation, token)

    def _act(self, operation: Operation, key: str, token: str, subject: str, amount: Money, *,
             declined: bool) -> None:
        if declined:
            self._declined.add((operation, key))
            if operation == "capture":
                self._emit("failed", token, subject, None, amount, DECLINED[operation])
        else:
            order_id = self._take_refund(subject, amount) if operation == "refund" else subject
            ref = _reference(operation, token)
            self._record(LedgerEntry(operation, key, ref, subject, amount))
            if operation == "capture":
                self._captures[ref] = _Capture(subject, amount)
                self._emit("captured", token, subject, ref, amount)
            elif operation == "refund":
                self._emit("refunded", token, order_id, subject, amount)
        self._requests[operation][key] = fingerprint(subject, amount)

    def _record(self, entry: LedgerEntry) -> None:
        key = (entry.operation, entry.amount.currency)
        self._totals[key] = self._totals.get(key, Decimal(0)) + entry.amount.amount
        if self._remembers_everything:
            self._ledger.append(entry)

    def _take_refund(self, payment_ref: str, amount: Money) -> str:
        """Count a refund against its capture, refusing what a real gateway would; returns the
        order the payment belongs to."""
        capture = self._captures.get(payment_ref)
        if capture is None:
            if not self._remembers_everything:
                return payment_ref
            raise AdapterError(self._name, "refund", f"no capture with reference {payment_ref!r}")
        captured = capture.amount
        if amount.currency != captured.currency:
            raise AdapterError(self._name, "refund",
                               f"refund in {amount.currency} of a capture in {captured.currency}")
        if capture.refunded + amount.amount > captured.amount:
            raise AdapterError(self._name, "refund",
                               f"refund of {amount} exceeds what is left of the capture "
                               f"({captured.amount - capture.refunded} {captured.currency})")
        capture.refunded += amount.amount
        return capture.order_id

    def _emit(self, kind: PaymentEventKind, token: str, order_id: str, payment_ref: str | None,
              amount: Money, reason: str | None = None) -> None:
        event_id = f"evt_{token}"
        body = {
            "event_id": event_id,
            "kind": kind,
            "order_id": order_id,
            "payment_ref": payment_ref,
            "amount": str(amount.amount),
            "currency": amount.currency,
            "reason": reason,
        }
        self._mailbox.post(json.dumps(body, sort_keys=True).encode(), event_id)
