"""Deterministic sandbox adapters: a payment gateway and seven carriers that behave like real
ones (idempotency keys, signed webhooks, failures, delays, losses) without a network.

Everything is decided by the seed and the inputs, and time comes from the clock passed in, so the
same seed gives the same run. They are real implementations of the ports, not mocks: tests and
simulations drive the engine through them.

`gateway` holds the payment gateway, `carriers` the carriers, `calls` what both answer a call
with when it fails or repeats.
"""

from __future__ import annotations

from lifecycle.adapters.sandbox.carriers import (
    ISSUERS,
    SANDBOX_CARRIERS,
    Issuer,
    SandboxCarrier,
)
from lifecycle.adapters.sandbox.gateway import LedgerEntry, Operation, SandboxGateway

__all__ = [
    "ISSUERS",
    "SANDBOX_CARRIERS",
    "Issuer",
    "LedgerEntry",
    "Operation",
    "SandboxCarrier",
    "SandboxGateway",
]
