"""The driver: the simulated clock, and what happens as it moves.

Time moves in ticks (an hour by default). Within a tick, orders arrive and people take their
turns in time order, the clock set to each moment; at the end of each tick the timer worker
fires the deadlines that fell due, payment callbacks are delivered, and every few ticks the
carriers' tracking pushes. Ticks in which nothing can happen are skipped. Each tick is one batch
(group commit), the run's progress saved in it, so that a stopped or killed run resumes
(`rebuild`) from the last batch that committed. Once a simulated day the driver samples the
order states and, after the tick's commit, an operator sweeps the parked deadlines.
"""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Callable, Generator, Iterator, Mapping
from datetime import datetime, timedelta

import lifecycle
from lifecycle import Aggregate, LifecycleError
from lifecycle.simulation.market import Market, ceil_to
from lifecycle.simulation.retry import REDELIVER
from lifecycle.simulation.world import arrival

DAY = timedelta(days=1)
# Parked deadlines people settle by hand, and the turn that does it.
SETTLED_BY_HAND = {
    ("order", "release_funds"): "release",
    ("order", "ship_deadline"): "settle",
    ("order", "cancel_request_timeout"): "settle",
    ("dispute", "seller_response_timeout"): "settle",
}
# The kinds whose open aggregates a resumed run reads back.
RESUMED = ("seller", "coupon", "voucher", "order", "dispute", "subaccount", "violation",
           "standing", "points_account", "message", "profile", "contact", "avatar")
# How many deadlines `_next_deadline` looks at; see there.
LOOKAHEAD = 16


class Driver:
    """Moves one market's clock to the end of its run."""

    def __init__(self, market: Market):
        self.market = market
        self.tick = timedelta(minutes=market.config.tick_minutes)
        self._arrival: tuple[int, datetime] = (-1, market.start)  # the next arrival, computed once

    def run(self) -> str:
        """Run until every order has ended (or the drain limit), or a stop; returns the status."""
        ticks = self.ticks()
        while True:
            try:
                next(ticks)
            except StopIteration as done:
                return str(done.value)

    def ticks(self) -> Generator[datetime, None, str]:
        """`run`, a tick at a time: yields the moment the next tick ends, between two ticks
        (no batch open), so that one process can step several shards' markets in time order
        (`shard_run`); returns the status. Closing it early saves the progress as stopped.

        Each tick is one batch (`Market.batch`; rolled over mid-tick once it holds
        ``batch_size`` transitions), the run's progress saved in it. The operator's daily sweep
        and the progress callback come after the tick's commit: the sweep reads the parked
        deadlines on a connection of its own, which sees only what is committed."""
        m, tick = self.market, self.tick
        boundary = m.start + tick * ((m.now() - m.start) // tick + 1)
        try:
            while True:
                with m.batch():
                    self._until(boundary)
                    m.clock.set(boundary)
                    day = self._tick(boundary)
                    if m.batch_size <= 1:
                        m.moved()
                if day is not None:
                    self._daily(day)
                status = self._status()
                if status is not None:
                    with m.batch():
                        if status == "finished":
                            self._flush()
                    m.checkpoint(status)
                    return status
                boundary = self._next_boundary(boundary)
                yield boundary
        except BaseException:
            # A stop from the progress callback, Ctrl-C, a crash: whatever committed stays
            # committed; remember how far we got so that resume continues from here (and let
            # the original error through even if the database is what failed). A batch lost
            # on the way took the triggers the driver saw with it: its last saved progress,
            # written with the last batch that committed, is where resume goes on from.
            if not m.lost_batch:
                with contextlib.suppress(Exception):
                    m.checkpoint("stopped")
            raise

    # --- skipping idle time ---------------------------------------------------------------

    def _next_boundary(self, boundary: datetime) -> datetime:
        """The next tick, or a later one when nothing can happen before it: no turn, arrival,
        carrier scan or pending deadline. Never past the next day, which is sampled."""
        m = self.market
        step = boundary + self.tick
        soonest = [t for t in (m.turns[0].at if m.turns else None, self._next_arrival(),
                               self._next_scan()) if t is not None]
        if soonest and min(soonest) < step:
            return step
        day = m.start + DAY * ((boundary - m.start) // DAY + 1)
        target = min([*soonest, day])
        if target <= step:
            return step
        known, due = self._next_deadline()
        if not known:
            return step
        if due is not None:
            target = min(target, due)
        return max(step, ceil_to(m.start, target, self.tick))

    def _next_scan(self) -> datetime | None:
        """The push tick that will deliver the next carrier scan."""
        m = self.market
        if not m.scans:
            return None
        return max(m.scans[0], ceil_to(m.start, m.now(), m.push_every))

    def _next_deadline(self) -> tuple[bool, datetime | None]:
        """(known, when the next pending deadline falls due). Not known when sixteen paused or
        parked deadlines come first: what listing the first sixteen has always answered, kept
        because it decides which idle ticks are skipped, and so a seed's report."""
        listed = self.market.engine.first_deadlines(LOOKAHEAD, prefix=self.market.prefix)
        for status, due in listed:
            if status == "pending":
                return True, due
        return len(listed) < LOOKAHEAD, None

    # --- within a tick --------------------------------------------------------------------

    def _until(self, boundary: datetime) -> None:
        """Arrivals and turns before ``boundary``, in time order."""
        m = self.market
        while True:
            arrival = self._next_arrival()
            turn_at = m.turns[0].at if m.turns else None
            if arrival is not None and (turn_at is None or arrival <= turn_at):
                if arrival >= boundary:
                    return
                m.clock.set(max(arrival, m.now()))
                m.orders.place(m.next_order)
                m.next_order += 1
                m.roll()
                if m.stop_after_orders is not None and m.next_order >= m.stop_after_orders:
                    m.stopping = True
                continue
            if turn_at is None or turn_at >= boundary:
                return
            turn = heapq.heappop(m.turns)
            m.clock.set(max(turn.at, m.now()))
            m.take_turn(turn)
            m.roll()

    def _next_arrival(self) -> datetime | None:
        m = self.market
        if m.stopping or m.next_order >= m.config.orders:
            return None
        n, at = self._arrival
        if n != m.next_order:
            at = m.start + arrival(m.config, m.next_order)
            self._arrival = (m.next_order, at)
        return at

    def _tick(self, boundary: datetime) -> int | None:
        """The end of a tick; returns the day when it ends one (its sample taken, in the
        tick's batch), for `_daily` after the commit."""
        m = self.market
        m.engine.run_due_timers(prefix=m.prefix)
        m.drain()
        m.roll()
        if m.gateway is not None:
            for message in m.gateway.take_callbacks():
                self._callback(message.body, message.headers)
                m.roll()
        since = boundary - m.start
        if since % m.push_every == timedelta(0):
            self._deliver_pushes()
        if since % DAY != timedelta(0):
            return None
        day = since // DAY
        m.tally.samples.append({"day": day, "orders": {s: n for s, n in
                                                       sorted(m.states["order"].items()) if n}})
        return day

    def _deliver_pushes(self) -> None:
        m = self.market
        now = m.now()
        while m.scans and m.scans[0] <= now:
            m.scan_ticks.discard(heapq.heappop(m.scans))
        for name, carrier in m.carriers.items():
            for message in carrier.take_pushes():
                self._push(name, message.body, message.headers)
                m.roll()

    def _callback(self, body: bytes, headers: Mapping[str, str]) -> None:
        """Hand a payment callback from the sandbox gateway to the engine."""
        m, gateway = self.market, self.market.gateway
        if gateway is not None:
            name = gateway.name
            self._deliver("callbacks", lambda _: m.engine.ingest_payment_callback(name, body, headers))

    def _push(self, carrier: str, body: bytes, headers: Mapping[str, str]) -> None:
        """Hand a tracking push from a sandbox carrier to the engine."""
        m = self.market
        self._deliver("pushes", lambda _: m.engine.ingest_tracking(carrier, body, headers))

    def _deliver(self, what: str, ingest: Callable[[int], object]) -> None:
        """Ingest one message, offered again while it loses races; count what became of it."""
        m = self.market
        m.count(f"{what}.delivered")
        before = m.applied()  # a push that only recorded scans applied them too
        try:
            REDELIVER.run(ingest, m.count)
        except lifecycle.CaptureRefused:
            # A capture for an order that ended meanwhile: recorded and refunded (only a
            # payment callback is refused so).
            m.count(f"{what}.unexpected_captures")
        except LifecycleError:
            m.count(f"{what}.refused")
        m.drain()
        m.count(f"{what}.applied" if m.applied() > before else f"{what}.ignored")

    def _status(self) -> str | None:
        m = self.market
        if m.stopping:
            return "stopped"
        now = m.now()
        if now >= m.arrivals_end + timedelta(days=m.config.drain_days):
            return "finished"
        if m.next_order < m.config.orders or now < m.arrivals_end:
            return None
        if m.open_orders() <= m.stuck_orders:  # nothing left that can still move
            return "finished"
        return None

    def _daily(self, day: int) -> None:
        m = self.market
        self._operator_sweep()
        if m.on_progress is not None:
            m.on_progress(day, m.next_order, m.rate())

    def _operator_sweep(self) -> None:
        """Parked deadlines, once a simulated day. A timer that keeps failing keeps its
        idempotency key, so a declined payout or refund is declined again on every retry until
        it parks; people then do it by hand, with new keys: an operator pays the seller out,
        a buyer asks to cancel an order the seller never shipped, a seller accepts the
        cancellation or the claim they let lapse. What nobody can fire is reported as stuck."""
        m = self.market
        day = (m.now() - m.start) // DAY
        stuck: set[str] = set()
        for kind, id, trigger in m.engine.parked_deadlines(prefix=m.prefix):
            if kind not in ("order", "dispute"):
                continue
            if (kind, trigger) in SETTLED_BY_HAND:
                m.schedule(m.now(), kind, id, SETTLED_BY_HAND[kind, trigger], day)
            else:
                stuck.add(m.disputes.order_of(id) if kind == "dispute" else id)
        m.stuck_orders = len(stuck)

    def _flush(self) -> None:
        """The end: deliver what the sandboxes still hold back, late messages included."""
        m = self.market
        if m.gateway is not None:
            for message in m.gateway.flush_callbacks():
                self._callback(message.body, message.headers)
        for name, carrier in m.carriers.items():
            for message in carrier.flush_pushes():
                self._push(name, message.body, message.headers)
        m.engine.run_due_timers(prefix=m.prefix)
        m.drain()

    # --- resume ---------------------------------------------------------------------------

    def rebuild(self) -> None:
        """After a restart: count states and queue the turns every open aggregate waits for,
        from the database alone. Tracking continues because the carriers are told again about
        the parcels still on their way."""
        m = self.market
        latest = m.now()
        for kind in RESUMED:
            terminal = lifecycle.definition(kind).terminal
            for aggregate in self._scan(kind):
                m.states[kind][aggregate.state] += 1
                if aggregate.state in terminal:
                    continue
                history = m.engine.history(kind, aggregate.id)
                latest = max(latest, history[-1].at)
                m.actors[kind].resume(aggregate, history)
        m.clock.set(latest)

    def _scan(self, kind: str, page: int = 500) -> Iterator[Aggregate]:
        """Every aggregate of ``kind`` this run made, a page at a time. (Not from the prefix
        on: the database's collation may order ids otherwise than Python does.)"""
        m = self.market
        after: str | None = None
        while True:
            found = m.engine.find(kind, limit=page, after_id=after)
            for aggregate in found:
                if aggregate.id.startswith(m.prefix):
                    yield aggregate
            if len(found) < page:
                return
            after = found[-1].id
