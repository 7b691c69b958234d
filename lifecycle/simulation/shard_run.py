"""One process's shards of a run (issue #15): each on an engine of its own, stepped in time order.

A shard needs a clock of its own (its people act at their own moments) and its own sandboxes,
so it gets an engine of its own, opened as `run_on` always opened one: a `SimulatedClock`, the
seeded sandbox adapters, the run's policy. One process steps its shards' drivers a tick at a
time, the shard whose next tick ends first going next, so that its daily progress reads as
one market's would; which shard goes first changes nothing in any of them.

A shard's progress row says where it stands: ``new`` (never started: it starts fresh, its
first session), ``running`` or ``stopped`` (it resumes from its last committed batch, with
sandboxes seeded anew), ``finished`` (left alone).
"""

from __future__ import annotations

import contextlib
import heapq
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import lifecycle
from lifecycle import Clock, Engine, SimulatedClock
from lifecycle.adapters import (
    SANDBOX_CARRIERS,
    DeliveryRates,
    FaultRates,
    SandboxCarrier,
    SandboxGateway,
    TrackingRates,
)
from lifecycle.simulation import record
from lifecycle.simulation.config import Config
from lifecycle.simulation.driver import Driver
from lifecycle.simulation.market import Market
from lifecycle.simulation.report import peak_rss_mb
from lifecycle.simulation.shards import shard_config, stop_after
from lifecycle.simulation.vocabulary import Progress
from lifecycle.simulation.world import rng

# Not a secret: the sandboxes sign their callbacks and pushes with it, the engine checks them.
SECRET = b"lifecycle-simulation"

ShardDay = Callable[[int, int, int, float], None]  # (shard, day, orders arrived, transitions/s)


@dataclass(frozen=True)
class Options:
    """How the shards run, the same in every process of a run (plain data: it crosses to
    worker processes)."""

    url: str
    batch_size: int
    stop_after_orders: int | None = None
    log: str | None = None
    upgrade: bool | None = None


@dataclass(frozen=True)
class Effort:
    """What one process spent on its shards, for the report's wall-clock figures."""

    session_transitions: int
    cpu_seconds: float
    peak_rss_mb: float = 0.0


def sandbox_adapters(config: Config, clock: Clock, session: int = 0
                     ) -> tuple[SandboxGateway, dict[str, SandboxCarrier]]:
    """The seeded sandbox gateway and carriers a run (or a shard) uses, with its faults and
    tracking mishaps.

    ``session`` counts resumes: a resumed run gets sandboxes seeded anew, so that the waybills
    they issue do not repeat those issued before the restart (a sandbox forgets on exit).
    """
    seed = config.seed if session == 0 else rng(config.seed, "session", session).getrandbits(48)
    f, b = config.faults, config.behaviour
    faults = FaultRates(decline=f.decline, timeout=f.timeout,
                        timeout_unprocessed=f.timeout_unprocessed, error=f.error)
    gateway = SandboxGateway(clock=clock, secret=SECRET, seed=seed, faults=faults,
                             callbacks=DeliveryRates(duplicate=f.duplicate, late=f.late),
                             remembers_everything=False)
    tracking = TrackingRates(delay=b.tracking_delay, customs_hold=b.customs_hold, lost=b.lost,
                             returned=b.returned, missed_pickup=b.missed_pickup)
    pushes = DeliveryRates(duplicate=f.duplicate, late=min(1.0, b.late_push + f.late))
    carriers = {name: SandboxCarrier(name, clock=clock, secret=SECRET, seed=seed, faults=faults,
                                     tracking=tracking, pushes=pushes)
                for name in SANDBOX_CARRIERS}
    return gateway, carriers


def policy_of(config: Config) -> lifecycle.Policy:
    """The run's policy: the defaults with the config's overrides, whatever the database
    holds, so that the same seed gives the same report. A database that holds another one
    (someone ran `lifecycle policy set` on it) is refused with `PolicyMismatch` when the
    engine opens, nothing written: a simulation does not change the policy of a database
    others use."""
    policy = lifecycle.Policy()
    if config.fee_period_days is not None:
        policy = policy.with_overrides(fee_period=timedelta(days=config.fee_period_days))
    if config.violation_points_period_days is not None:
        policy = policy.with_overrides(
            violation_points_period=timedelta(days=config.violation_points_period_days))
    return policy


def open_engine(options: Options, config: Config, session: int) -> Engine:
    """An engine for one shard (or for the run's own reads, with ``session`` 0)."""
    clock = SimulatedClock(config.start)
    gateway, carriers = sandbox_adapters(config, clock, session)
    return lifecycle.open(options.url, clock=clock, policy=policy_of(config), payments=gateway,
                          carriers=carriers, log=options.log, upgrade=options.upgrade)


def market_for(engine: Engine, config: Config, row: record.Progress, options: Options,
               on_progress: Progress | None) -> Market:
    """The market of one shard that has not finished, on ``engine`` (``options`` as the
    shard takes them, `shard_options`): fresh if its row is
    ``new`` (the row marked running first, so that a crash after any commit resumes it), else
    rebuilt from the database to go on from its last committed batch."""
    clock = engine.clock
    if not isinstance(clock, SimulatedClock):
        raise lifecycle.InvalidPayload("engine", "a simulation runs on an engine opened with a "
                                                 "lifecycle.SimulatedClock")
    fresh = row.status == "new"
    if fresh:
        clock.set(config.start)
        row.status = "running"
        record.update_row(engine.database, row, record.saved_at())
    else:
        row.session += 1
        clock.set(max(clock.now(), row.sim_now))
    market = Market(engine, config, row, on_progress=on_progress,
                    stop_after_orders=options.stop_after_orders, batch_size=options.batch_size)
    if not fresh:
        Driver(market).rebuild()
    return market


def drive(options: Options, config: Config, shards: Sequence[int], on_day: ShardDay,
          on_done: Callable[[int], None]) -> Effort:
    """Run ``shards`` of the run (`Config` of the whole run) to their end or a stop, in this
    process; ``on_day`` hears each shard's days, ``on_done`` each shard that ended (or had)."""
    cpu = time.process_time()
    with lifecycle.open(options.url, upgrade=options.upgrade) as probe:
        rows = {s: record.load(probe.database, shard_config(config, s).label) for s in shards}
    with contextlib.ExitStack() as stack:
        markets: list[tuple[int, Market]] = []
        for s in shards:
            row = rows[s]
            if row is None:
                raise lifecycle.NotFound("simulation", shard_config(config, s).label)
            if row.status == "finished":
                on_done(s)
                continue
            sub = shard_config(config, s)
            session = 0 if row.status == "new" else row.session + 1
            engine = stack.enter_context(open_engine(options, sub, session))
            market = market_for(engine, sub, row, shard_options(options, config, s),
                                _reporting(on_day, s))
            stack.callback(market.close)
            markets.append((s, market))
        interleave([(s, Driver(m).ticks()) for s, m in markets], on_done)
        transitions = sum(m.session_transitions for _, m in markets)
    return Effort(transitions, time.process_time() - cpu, peak_rss_mb())


def shard_options(options: Options, config: Config, shard: int) -> Options:
    """The options as one shard takes them: its share of ``stop_after_orders``."""
    return Options(options.url, options.batch_size,
                   stop_after(options.stop_after_orders, config, shard), options.log,
                   options.upgrade)


def _reporting(on_day: ShardDay, shard: int) -> Progress:
    def progress(day: int, orders: int, rate: float) -> None:
        on_day(shard, day, orders, rate)
    return progress


def interleave(ticks: Sequence[tuple[int, Generator[datetime, None, str]]],
               on_done: Callable[[int], None]) -> dict[int, str]:
    """Step each shard's driver (`Driver.ticks`) a tick at a time, the earliest next tick
    first, until all have ended; returns each shard's status. If one raises (a stop from the
    progress callback, a crash), the others are closed, which saves each as stopped."""
    statuses: dict[int, str] = {}
    steps = dict(ticks)
    queue = [(datetime.min.replace(tzinfo=UTC), s) for s in steps]
    heapq.heapify(queue)
    try:
        while queue:
            _, s = heapq.heappop(queue)
            try:
                at = next(steps[s])
            except StopIteration as done:
                statuses[s] = str(done.value)
                on_done(s)
                continue
            heapq.heappush(queue, (at, s))
    except BaseException:
        for step in steps.values():
            step.close()
        raise
    return statuses
