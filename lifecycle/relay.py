"""The relay behind ``lifecycle relay --to URL`` (issue #17): outbox events to a broker, at least
once and in order per aggregate, until told to stop.

Each round claims a batch of unpublished events (`Engine.claim_unpublished`), publishes them in
id order on one connection and marks as published the leading ones the broker confirmed. A
broker stores one connection's messages in the order they were sent, and a claim never takes
an aggregate's event while another relay holds an earlier one, so an aggregate's events reach
the broker in seq order; a crash between the broker's confirm and the mark publishes them
again (the event id is the message id, so JetStream's dedupe drops the copy).

A broker or database outage is waited out with backoff and logged twice: when it starts and
when it ends. A stop (SIGTERM) is looked at between batches: the batch in hand is finished.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol

import orjson
import structlog

from lifecycle import telemetry
from lifecycle.brokers import Broker, BrokerUnavailable, Message
from lifecycle.errors import Unavailable
from lifecycle.events import OutboxEvent
from lifecycle.outbox import Claim
from lifecycle.worker import Backoff, Stop

log = structlog.get_logger(__name__)

HEARTBEAT_EVERY = 10.0  # seconds between an idle relay's heartbeats (`lifecycle relay status`)


class OutboxClaims(Protocol):
    """The part of `lifecycle.Engine` a relay drives."""

    def claim_unpublished(self, limit: int, *, relay: str,
                          target: str) -> AbstractContextManager[Claim]: ...

    def relay_seen(self, relay: str, target: str) -> None: ...


def subject(prefix: str, name: str) -> str:
    """``lifecycle.order.shipped``: the event's name under the prefix (none when empty)."""
    return f"{prefix}.{name}" if prefix else name


def messages(events: Sequence[OutboxEvent], prefix: str) -> list[Message]:
    return [Message(id=event.id, subject=subject(prefix, event.name),
                    body=orjson.dumps(event.body), key=event.key) for event in events]


class Relay:
    """Publishes ``engine``'s outbox to ``broker``, ``batch`` events a claim, waiting
    ``interval`` seconds when there is nothing to publish. ``name`` tells this relay apart in
    `lifecycle relay status`; ``target`` is the broker URL as shown there (no password)."""

    def __init__(self, engine: OutboxClaims, broker: Broker, *, name: str, target: str,
                 prefix: str = "lifecycle", batch: int = 500, interval: float = 0.2,
                 backoff: Backoff | None = None):
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self.engine, self.broker = engine, broker
        self.name, self.target, self.prefix = name, target, prefix
        self.batch, self.interval = batch, interval
        self.backoff = backoff or Backoff()
        self.published = 0
        self._down_since: float | None = None
        self._seen_at = 0.0

    def run_once(self) -> int:
        """One claim: publish it and mark what the broker confirmed; how many were. Raises
        `BrokerUnavailable` or `Unavailable` (the database) when one is out of reach, and
        `BrokerUnavailable` too when the broker confirmed only part of the batch (the part it
        confirmed is marked)."""
        started = time.perf_counter()
        with self.engine.claim_unpublished(self.batch, relay=self.name,
                                           target=self.target) as claim:
            if not claim.events:
                return 0
            confirmed = self.broker.publish(messages(claim.events, self.prefix))
            claim.published(claim.events[:confirmed])
        self.published += confirmed
        telemetry.RELAY_PUBLISHED.labels(self.target).inc(confirmed)
        telemetry.RELAY_BATCH_SECONDS.labels(self.target).observe(time.perf_counter() - started)
        self._seen_at = time.monotonic()
        if confirmed < len(claim.events):
            raise BrokerUnavailable(self.target, f"it confirmed {confirmed} of "
                                                 f"{len(claim.events)} events")
        return confirmed

    def run(self, stop: Stop) -> int:
        """Publish until ``stop`` is set; how many events this run published."""
        start = self.published
        self._heartbeat(force=True)
        while not stop.is_set():
            try:
                published = self.run_once()
            except (BrokerUnavailable, Unavailable) as error:
                stop.wait(self._outage(error))
                continue
            self._back()
            if published < self.batch:
                self._heartbeat()
                stop.wait(self.interval)
        return self.published - start

    def _heartbeat(self, *, force: bool = False) -> None:
        if force or time.monotonic() - self._seen_at >= HEARTBEAT_EVERY:
            try:
                self.engine.relay_seen(self.name, self.target)
            except Unavailable:
                return  # the next round finds the outage and backs off
            self._seen_at = time.monotonic()

    def _outage(self, error: Exception) -> float:
        telemetry.RELAY_FAILURES.labels(self.target).inc()
        wait = self.backoff.next()
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("relay.unavailable", target=self.target, reason=str(error), retry_in=wait)
        return wait

    def _back(self) -> None:
        self.backoff.reset()
        if self._down_since is not None:
            log.warning("relay.back", target=self.target,
                        down_seconds=round(time.monotonic() - self._down_since, 1))
            self._down_since = None
