"""Simulation runs (SPEC §9): a marketplace on a simulated clock, through the real engine.

    from lifecycle import simulation
    report = simulation.run_on("sqlite:///sim.db", simulation.Config(sellers=20, orders=300, seed=7,
                               faults=simulation.Faults.parse("decline=0.02,timeout=0.01")))
    print(report.render())                    # aligned tables; report.to_json() for one document
    report.write_html("report/")              # static page with SVG charts
    simulation.run_on("sqlite:///sim.db", resume=True)   # continue a run that was stopped

Sellers onboard, buyers order (some with coupons), pay, cancel or let the payment lapse; sellers
ship online or offline with the carrier and service the quotes make best; the sandbox carriers
push tracking (some late, duplicated, lost, held in customs, returned); buyers confirm or let
``auto_confirm`` do it; disputes of both types go every way SPEC §5 allows; the timers release
the funds. Every step is an `Engine.fire` or `Engine.create`, grouped in batches (one per tick,
at most ``batch_size`` transitions; 1 for a transaction per step): the same seed gives the same
report whatever the batch size.

`run_on` opens the engine itself with a `SimulatedClock` and the seeded sandbox adapters; `run`
takes an engine the caller opened (on a `SimulatedClock`, with the adapters from
`sandbox_adapters`). Only the public API is used: ``lifecycle`` and ``lifecycle.adapters``.
"""

from __future__ import annotations

from datetime import timedelta

import lifecycle
from lifecycle import AlreadyExists, Clock, Engine, NotFound, SimulatedClock
from lifecycle.adapters import (
    SANDBOX_CARRIERS,
    DeliveryRates,
    FaultRates,
    SandboxCarrier,
    SandboxGateway,
    TrackingRates,
)
from lifecycle.simulation import record
from lifecycle.simulation.config import Behaviour, Config, Faults
from lifecycle.simulation.driver import Driver
from lifecycle.simulation.market import Market
from lifecycle.simulation.readback import survey
from lifecycle.simulation.report import Report
from lifecycle.simulation.vocabulary import Progress
from lifecycle.simulation.world import rng

# Not a secret: the sandboxes sign their callbacks and pushes with it, the engine checks them.
SECRET = b"lifecycle-simulation"

__all__ = ["BATCH_SIZE", "Behaviour", "Config", "Faults", "Progress", "Report", "run", "run_on",
           "sandbox_adapters", "simulate"]


def sandbox_adapters(config: Config, clock: Clock, session: int = 0
                     ) -> tuple[SandboxGateway, dict[str, SandboxCarrier]]:
    """The seeded sandbox gateway and carriers a run uses, with its faults and tracking mishaps.

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


BATCH_SIZE = 500
"""The most transitions one batch holds by default (a tick's worth, mostly; benchmarks/RESULTS.md)."""


def run(engine: Engine, config: Config | None = None, *, resume: bool = False,
        progress: Progress | None = None, stop_after_orders: int | None = None,
        name: str | None = None, batch_size: int = BATCH_SIZE) -> Report:
    """Run a simulation on ``engine`` (opened with a `SimulatedClock`) and report on it.

    A new run refuses a database where a run of the same name exists (`AlreadyExists`).
    ``resume=True`` continues the named run with the config it was started with (`NotFound`
    if there is none); a finished run is only reported on. ``stop_after_orders`` stops once
    that many orders have arrived (the run can then be resumed); ``progress`` is called once a
    simulated day with (day, orders arrived, transitions per second); raising from it stops the
    run cleanly too. ``batch_size``: the most transitions one batch (one transaction) holds;
    each tick is a batch of its own, and 1 means no batches.
    """
    name = name or (config.name if config is not None else "sim")
    stored = record.load(engine.database, name)
    clock = engine.clock
    if not isinstance(clock, SimulatedClock):
        raise lifecycle.InvalidPayload("engine", "a simulation runs on an engine opened with a "
                                                 "lifecycle.SimulatedClock")
    if resume:
        if stored is None:
            raise NotFound("simulation", name)
        config = Config.from_dict(stored.config)
        finished = stored.status == "finished"
        if not finished:
            stored.session += 1
        if clock.now() < stored.sim_now:
            clock.set(stored.sim_now)
        market = Market(engine, config, stored, on_progress=progress,
                        stop_after_orders=stop_after_orders, batch_size=batch_size)
        try:
            if finished:
                return survey(market, "finished")
            driver = Driver(market)
            driver.rebuild()
            return survey(market, driver.run())
        finally:
            market.close()
    if stored is not None:
        raise AlreadyExists("simulation", name)
    config = config or Config()
    if clock.now() > config.start:
        raise lifecycle.InvalidPayload("start", f"the engine's clock is already at {clock.now()}, "
                                                f"after the run's start {config.start}")
    clock.set(config.start)
    progress_record = record.Progress(config.name, config.to_dict(), "running", 0, config.start, 0)
    record.save(engine.database, progress_record, config.start, new=True)
    market = Market(engine, config, progress_record, on_progress=progress,
                    stop_after_orders=stop_after_orders, batch_size=batch_size)
    try:
        return survey(market, Driver(market).run())
    finally:
        market.close()


def run_on(url: str, config: Config | None = None, *, resume: bool = False,
           progress: Progress | None = None, stop_after_orders: int | None = None,
           name: str = "sim", log: str | None = None, upgrade: bool | None = None,
           batch_size: int = BATCH_SIZE) -> Report:
    """Open ``url`` with a `SimulatedClock`, the run's sandbox adapters and its policy (the
    defaults, with ``fee_period_days`` when set), then `run` on it. A database whose stored
    policy differs is refused with `lifecycle.PolicyMismatch`; use a database of the run's own.

    With ``resume=True`` the config comes from the database (``config`` may be omitted; its
    name, or ``name``, says which run). ``log`` and ``upgrade`` are passed to `lifecycle.open`.
    """
    name = config.name if config is not None else name
    session = 0
    if resume:
        with lifecycle.open(url, upgrade=upgrade) as probe:
            stored = record.load(probe.database, name)
        if stored is None:
            raise NotFound("simulation", name)
        config = Config.from_dict(stored.config)
        session = stored.session + 1
    config = config or Config()
    clock = SimulatedClock(config.start)
    gateway, carriers = sandbox_adapters(config, clock, session)
    # The run's policy is the defaults with the config's overrides, whatever the database
    # holds, so that the same seed gives the same report. A database that holds another one
    # (someone ran `lifecycle policy set` on it) is refused with `PolicyMismatch`, nothing
    # written: a simulation does not change the policy of a database others use.
    policy = lifecycle.Policy()
    if config.fee_period_days is not None:
        policy = policy.with_overrides(fee_period=timedelta(days=config.fee_period_days))
    with lifecycle.open(url, clock=clock, policy=policy, payments=gateway, carriers=carriers,
                        log=log, upgrade=upgrade) as engine:
        return run(engine, config, resume=resume, progress=progress,
                   stop_after_orders=stop_after_orders, name=name, batch_size=batch_size)


def simulate(db: str, *, sellers: int = 20, orders: int = 300, days: int = 90, seed: int = 0,
             faults: str | None = None, resume: bool = False, report_dir: str | None = None,
             name: str = "sim", progress: Progress | None = None,
             stop_after_orders: int | None = None, log: str | None = None,
             batch_size: int = BATCH_SIZE) -> Report:
    """What ``lifecycle simulate`` does, option for option: run (or resume) on ``db``, write
    the HTML report to ``report_dir`` if given, and return the report to print."""
    config = None if resume else Config(sellers=sellers, orders=orders, days=days, seed=seed,
                                        faults=Faults.parse(faults), name=name)
    report = run_on(db, config, resume=resume, progress=progress,
                    stop_after_orders=stop_after_orders, name=name, log=log,
                    batch_size=batch_size)
    if report_dir is not None:
        report.write_html(report_dir)
    return report
