"""How a sandbox adapter answers one call: the error an injected fault surfaces as, and telling a
retry with an idempotency key from the key reused for another request."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lifecycle.adapters.errors import AdapterError
from lifecycle.adapters.faults import Fault
from lifecycle.adapters.webhooks import Secret, webhook_keys

# Why a provider declined, by operation: the same words every time, so a retry reads the same.
DECLINED: Mapping[str, str] = {
    "capture": "card declined by the issuer",
    "charge_fee": "card declined by the issuer",
    "refund": "refund declined: the original payment method cannot receive it",
    "payout": "payout declined: the seller's account cannot receive funds",
    "book_pickup": "no courier available for this pickup",
    "cancel_pickup": "the courier is already on the way",
}


def failure(adapter: str, operation: str, fault: Fault) -> AdapterError:
    """The error an injected fault surfaces as."""
    if fault == "decline":
        return AdapterError(adapter, operation, DECLINED[operation])
    if fault == "error":
        return AdapterError(adapter, operation, "provider answered with a server error", retryable=True)
    if fault == "timeout_unprocessed":
        return AdapterError(adapter, operation, "timed out before the provider received the request",
                            timeout=True)
    return AdapterError(adapter, operation, "timed out waiting for the provider's reply", timeout=True)


def fingerprint(*request: object) -> int:
    """Stands in for a request to tell a retry (same request) from a reused key (another one):
    equal requests hash equal, and a 64-bit collision between two requests sent with the same
    key is a risk a sandbox can take for not keeping every request."""
    return hash(request)


def keys(secrets: Secret | Sequence[Secret] | None, secret: Secret | None) -> tuple[bytes, ...]:
    """A sandbox's webhook keys from ``secrets=`` (one or several) or ``secret=`` (one): exactly
    one of them is given."""
    if secrets is not None and secret is None:
        return webhook_keys(secrets)
    if secret is not None and secrets is None:
        return webhook_keys(secret)
    raise ValueError("give a sandbox adapter its webhook secrets= or secret=, not both or neither")
