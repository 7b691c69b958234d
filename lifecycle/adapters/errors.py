"""Errors raised by payment gateways and carriers, each naming the adapter and the operation.

The engine lets any of these roll the whole transition back; the message is what the user reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lifecycle.errors import InvalidPayload, LifecycleError


class AdapterError(LifecycleError):
    """An adapter call failed: ``adapter`` (``"dhl"``), ``operation`` (``"book_pickup"``), why.

    ``timeout`` means the caller cannot know whether the provider acted; ``retryable`` means
    trying again with the same idempotency key is safe (every timeout is retryable).
    """

    exit_code = 1

    def __init__(
        self,
        adapter: str,
        operation: str,
        reason: str,
        *,
        timeout: bool = False,
        retryable: bool = False,
        message: str | None = None,
    ):
        self.adapter, self.operation, self.reason = adapter, operation, reason
        self.timeout = timeout
        self.retryable = retryable or timeout
        hint = "; retry with the same idempotency key" if self.retryable else ""
        super().__init__(message or f"{adapter} {operation} failed: {reason}{hint}")


class PaymentDeclined(AdapterError):
    """The gateway refused the payment (card declined, insufficient funds). Not retryable."""


class SignatureInvalid(AdapterError):
    """A callback or push whose HMAC signature is missing, malformed or does not match."""


class EventsRejected(AdapterError):
    """Some events of a push could not be read; the others could.

    A carrier's ``parse_push`` raises it with the ``events`` it did read, so one bad event
    does not hold back the rest; the engine applies those, fills in ``applied`` (the orders
    they moved or were recorded on) and raises it on to its caller. ``rejected`` says, per
    refused event, which one (its position in the push and its id, if it had one) and why.
    """

    def __init__(self, adapter: str, operation: str, events: list[Any],
                 rejected: list[tuple[int, str | None, str]], total: int):
        self.events = list(events)
        self.rejected = list(rejected)
        self.applied: list[Any] = []
        listed = "; ".join(f"event #{n + 1}{f' {event_id!r}' if event_id else ''}: {why}"
                           for n, event_id, why in self.rejected[:5])
        more = f"; and {len(self.rejected) - 5} more" if len(self.rejected) > 5 else ""
        super().__init__(
            adapter, operation, listed,
            message=f"{adapter} {operation}: {len(self.rejected)} of {total} events rejected "
                    f"({listed}{more}); the other {total - len(self.rejected)} were applied",
        )


class InvalidWaybill(AdapterError):
    """A waybill number the carrier would not accept.

    ``problem`` is one of ``length``, ``characters``, ``prefix``, ``country``, ``check_digit``;
    ``reason`` says it in words (``"bad check digit: expected 4, got 5"``).
    """

    def __init__(self, carrier: str, number: str, problem: str, reason: str):
        self.number, self.problem = number, problem
        super().__init__(
            carrier, "validate_waybill", reason, message=f"{carrier} waybill {number!r} is invalid: {reason}"
        )


class UnknownAdapter(InvalidPayload):
    """No adapter of that name among the built-ins and installed entry points."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        self.kind, self.name = kind, name
        self.known = tuple(sorted(known))
        super().__init__(kind, f"no {kind} named {name!r}; known: {', '.join(self.known) or 'none'}")


class DuplicateAdapter(LifecycleError):
    """Two providers declare the same adapter name; using either silently would be a guess."""

    exit_code = 2

    def __init__(self, kind: str, name: str, providers: Iterable[str]):
        self.kind, self.name = kind, name
        self.providers = tuple(providers)
        super().__init__(f"{kind} {name!r} is declared more than once: {', '.join(self.providers)}")
