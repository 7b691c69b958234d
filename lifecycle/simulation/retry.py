"""Trying again, one way for every loop that does: as a service calling the engine would.

Three kinds of failure, three answers:

- an adapter timeout or server error (the provider may or may not have acted): the same call
  again with the same idempotency key, at once (`SAME_KEY`);
- a `Conflict` (someone wrote since we read): read again and decide again, at once (`REREAD`;
  a message from a sandbox is simply offered again, `REDELIVER`);
- a decline: a new attempt with a new key, some hours later (`Market.again`, not here).

A `Retry` says how many tries, which errors call for another one and what to count each time;
whatever else is raised goes to the caller, who knows what a refusal means there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from lifecycle import AdapterError, Conflict

ADAPTER_RETRIES = 5  # tries with the same idempotency key after a timeout or a server error
CONFLICT_RETRIES = 5  # re-reads after a Conflict
DECLINE_RETRIES = 2  # new attempts (new keys) after a decline, some hours apart

T = TypeVar("T")


class GaveUp(Enum):
    """What `Retry.run` returns when every try failed."""

    GAVE_UP = "gave up"


GAVE_UP = GaveUp.GAVE_UP


@dataclass(frozen=True, slots=True)
class Retry:
    """Up to ``times`` tries. ``counts(error)`` names the counters to add to when ``error``
    calls for another try, or None when it does not (it is raised); ``exhausted`` is counted
    when the last try failed too."""

    times: int
    counts: Callable[[Exception], tuple[str, ...] | None]
    exhausted: str | None = None

    def run(self, action: Callable[[int], T], count: Callable[[str], None]) -> T | GaveUp:
        """``action(attempt)`` (0 first) until it returns; `GAVE_UP` if no try did."""
        for attempt in range(self.times):
            try:
                return action(attempt)
            except Exception as error:
                counters = self.counts(error)
                if counters is None:
                    raise
                for name in counters:
                    count(name)
        if self.exhausted is not None:
            count(self.exhausted)
        return GAVE_UP


def _hiccup(error: Exception) -> tuple[str, ...] | None:
    if isinstance(error, AdapterError) and error.retryable:
        return ("adapter.timeout" if error.timeout else "adapter.error", "retries.same_key")
    return None


def _conflict(error: Exception) -> tuple[str, ...] | None:
    return ("conflicts.retried",) if isinstance(error, Conflict) else None


SAME_KEY = Retry(ADAPTER_RETRIES, _hiccup, exhausted="retries.exhausted")
REREAD = Retry(CONFLICT_RETRIES, _conflict, exhausted="conflicts.given_up")
# A callback or push that loses every race is dropped uncounted, as a sandbox's redelivery ends.
REDELIVER = Retry(CONFLICT_RETRIES, _conflict)
