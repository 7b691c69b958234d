"""Injected failures for the sandbox adapters: scripted ("the next capture times out") or drawn at
seeded rates, so a simulation's failures are the same on every run with the same seed.

Each draw hashes the seed, the operation, the idempotency key and the attempt number, instead of
pulling from one shared random stream: the outcome of a call then does not depend on how many
other calls happened before it, and a retry gets a fresh draw.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Literal, get_args

Fault = Literal["decline", "timeout", "timeout_unprocessed", "error"]
"""``decline``: the provider refused (not retryable). ``timeout``: the provider acted but the reply
was lost. ``timeout_unprocessed``: the request never got there. ``error``: the provider answered
with a server error and did nothing."""

FAULTS: tuple[Fault, ...] = get_args(Fault)


def roll(*parts: object) -> float:
    """A number in [0, 1) determined by ``parts`` alone."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def chance(rate: float, *parts: object) -> bool:
    """True with probability ``rate``, decided by ``parts`` alone; no hashing when it is 0."""
    return rate > 0 and roll(*parts) < rate


def digest(*parts: object, size: int = 12) -> str:
    """A short hex string determined by ``parts`` alone; for references and event ids."""
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:size]


@dataclass(frozen=True, slots=True)
class FaultRates:
    """Probability of each fault per call (0 to 1). Probabilities, not money: floats are fine."""

    decline: float = 0.0
    timeout: float = 0.0
    timeout_unprocessed: float = 0.0
    error: float = 0.0

    def __post_init__(self) -> None:
        rates = (self.decline, self.timeout, self.timeout_unprocessed, self.error)
        if any(not 0 <= rate <= 1 for rate in rates) or sum(rates) > 1:
            raise ValueError("fault rates are probabilities in [0, 1] that sum to at most 1")


class FaultPlan:
    """Decides, per call, whether a sandbox operation fails and how."""

    def __init__(self, seed: int, rates: FaultRates):
        self._seed, self._rates = seed, rates
        self._any = any((rates.decline, rates.timeout, rates.timeout_unprocessed, rates.error))
        self._scripted: defaultdict[str, deque[Fault]] = defaultdict(deque)
        self._attempts: defaultdict[tuple[str, str], int] = defaultdict(int)

    def inject(self, operation: str, fault: Fault, times: int = 1) -> None:
        """Make the next ``times`` calls of ``operation`` fail with ``fault``."""
        if fault not in FAULTS:
            raise ValueError(f"{fault!r} is not one of {', '.join(FAULTS)}")
        self._scripted[operation].extend([fault] * times)

    def attempts(self, operation: str, key: str) -> int:
        """How many times ``operation`` was called with ``key``."""
        return self._attempts[operation, key]

    def draw(self, operation: str, key: str) -> Fault | None:
        """The fault for this call of ``operation`` with ``key``, or None. Counts the attempt."""
        self._attempts[operation, key] += 1
        if self._scripted[operation]:
            return self._scripted[operation].popleft()
        if not self._any:
            return None  # no rates set: nothing to draw (the draw is a SHA-256 per call)
        point = roll(self._seed, operation, key, self._attempts[operation, key])
        rates = self._rates
        for fault, rate in zip(FAULTS, (rates.decline, rates.timeout, rates.timeout_unprocessed, rates.error),
                               strict=True):
            if point < rate:
                return fault
            point -= rate
        return None
