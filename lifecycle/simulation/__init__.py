"""Simulation runs (SPEC §9): a marketplace on a simulated clock, through the real engine.

    from lifecycle import simulation
    report = simulation.run_on("sqlite:///sim.db", simulation.Config(sellers=20, orders=300, seed=7,
                               faults=simulation.Faults.parse("decline=0.02,timeout=0.01")))
    print(report.render())                    # aligned tables; report.to_json() for one document
    report.write_html("report/")              # static page with SVG charts
    simulation.run_on("sqlite:///sim.db", resume=True)   # continue a run that was stopped
    simulation.run_on("postgresql+psycopg://…/sim", config, workers=4)  # shards on 4 processes
    simulation.runs(engine); simulation.stored_report(engine, "sim")  # read back, nothing written

Sellers onboard, buyers order (some with coupons), pay, cancel or let the payment lapse; sellers
ship online or offline with the carrier and service the quotes make best; the sandbox carriers
push tracking (some late, duplicated, lost, held in customs, returned); buyers confirm or let
``auto_confirm`` do it; disputes of both types go every way SPEC §5 allows; the timers release
the funds. Every step is an `Engine.fire` or `Engine.create`, grouped in batches (one per tick,
at most ``batch_size`` transitions; 1 for a transaction per step): the same seed gives the same
report whatever the batch size.

The market is ``Config.shards`` independent shards (`shards`, issue #15), each with its own
sellers, orders, clock and sandboxes; the report depends on the seed and the shards, never on
how many processes (``workers``, PostgreSQL only: `workers`) run them.

`run_on` opens the engines itself (one a shard, each with a `SimulatedClock` and the seeded
sandbox adapters); `run` takes an engine the caller opened (on a `SimulatedClock`, with the
adapters from `sandbox_adapters`), for a run of one shard. Only the public API is used:
``lifecycle`` and ``lifecycle.adapters``.
"""

from __future__ import annotations

import time

from sqlalchemy.engine import make_url

import lifecycle
from lifecycle import AlreadyExists, Engine, NotFound, SimulatedClock, redacted
from lifecycle.simulation import record
from lifecycle.simulation.config import Behaviour, Config, Faults
from lifecycle.simulation.driver import Driver
from lifecycle.simulation.readback import Seen, survey
from lifecycle.simulation.report import Report
from lifecycle.simulation.shard_run import (
    Effort,
    Options,
    drive,
    market_for,
    open_engine,
    sandbox_adapters,
)
from lifecycle.simulation.shards import Combined, merge, shard_configs
from lifecycle.simulation.stored import StoredRun, runs, stored_report
from lifecycle.simulation.vocabulary import Progress
from lifecycle.simulation.workers import WorkerFailed, run_workers

__all__ = ["BATCH_SIZE", "Behaviour", "Config", "Faults", "NotASimulation", "Progress", "Report",
           "RunExists", "StoredRun", "WorkerFailed", "refuse_other_data", "run", "run_on", "runs",
           "sandbox_adapters", "simulate", "stored_report"]

BATCH_SIZE = 500
"""The most transitions one batch holds by default (a tick's worth, mostly; benchmarks/RESULTS.md)."""


def run(engine: Engine, config: Config | None = None, *, resume: bool = False,
        progress: Progress | None = None, stop_after_orders: int | None = None,
        name: str | None = None, batch_size: int = BATCH_SIZE) -> Report:
    """Run a simulation of one shard on ``engine`` (opened with a `SimulatedClock`) and
    report on it; a run of several shards needs an engine (a clock) per shard: `run_on`.

    A new run refuses a database where a run of the same name exists (`AlreadyExists`).
    ``resume=True`` continues the named run with the config it was started with (`NotFound`
    if there is none); a finished run is only reported on. ``stop_after_orders`` stops once
    that many orders have arrived (the run can then be resumed); ``progress`` is called once a
    simulated day with (day, orders arrived, transitions per second); raising from it stops the
    run cleanly too. ``batch_size``: the most transitions one batch (one transaction) holds;
    each tick is a batch of its own, and 1 means no batches.
    """
    wall = time.perf_counter()
    name = name or (config.name if config is not None else "sim")
    clock = engine.clock
    if not isinstance(clock, SimulatedClock):
        raise lifecycle.InvalidPayload("engine", "a simulation runs on an engine opened with a "
                                                 "lifecycle.SimulatedClock")
    config = _config_of(engine, config, resume, name)
    if config.shards > 1:
        raise lifecycle.InvalidPayload("shards", f"the run has {config.shards} shards, each "
                                                 f"with a clock of its own: use run_on")
    if not resume:
        if clock.now() > config.start:
            raise lifecycle.InvalidPayload("start", f"the engine's clock is already at "
                                                    f"{clock.now()}, after the run's start "
                                                    f"{config.start}")
        _start(engine, config)
    row = record.load(engine.database, name)
    if row is None:
        raise NotFound("simulation", name)
    started = time.perf_counter()
    effort = Effort(0, 0.0)
    if row.status != "finished":
        options = Options("", batch_size, stop_after_orders)
        market = market_for(engine, config, row, options, progress)
        try:
            Driver(market).run()
        finally:
            market.close()
        effort = Effort(market.session_transitions, market.cpu_seconds())
    return _report(engine, config, wall, time.perf_counter() - started, effort)


def run_on(url: str, config: Config | None = None, *, resume: bool = False,
           progress: Progress | None = None, stop_after_orders: int | None = None,
           name: str = "sim", log: str | None = None, upgrade: bool | None = None,
           batch_size: int = BATCH_SIZE, workers: int = 1, force: bool = False) -> Report:
    """Run (or resume) a simulation on ``url``: each shard on an engine of its own, opened
    with a `SimulatedClock`, the shard's sandbox adapters and the run's policy (the defaults,
    with ``fee_period_days`` when set). A database whose stored policy differs is refused with
    `lifecycle.PolicyMismatch`; use a database of the run's own.

    ``workers``: how many processes run the shards (`workers`); more than one needs
    PostgreSQL and at most as many as the run has shards, else `InvalidPayload`, nothing
    written. A worker that dies raises `WorkerFailed`; the run can be resumed.

    With ``resume=True`` the config comes from the database (``config`` may be omitted; its
    name, or ``name``, says which run). ``log`` and ``upgrade`` are passed to `lifecycle.open`.

    A run writes only into a database of simulations (issue #19): a new one (a SQLite file
    that does not exist yet is created), an empty one, or one whose every seller, order,
    dispute, coupon and voucher a simulation run made. Any other is refused with
    `NotASimulation` before anything is written, as is one at an older schema (a run never
    migrates a database), unless ``force=True``. Another application's database is refused
    always (`lifecycle.NotOurDatabase`).
    """
    wall = time.perf_counter()
    name = config.name if config is not None else name
    if not force:
        refuse_other_data(url)
    if resume:
        with lifecycle.open(url, upgrade=upgrade) as probe:
            config = _config_of(probe, config, resume, name)
    config = config or Config()
    _check_workers(url, config, workers)
    options = Options(url, batch_size, stop_after_orders, log, upgrade)
    # The run's own engine, for its rows and its report; opening it refuses a database with
    # another policy before anything is written.
    with open_engine(options, config, 0) as engine:
        if not resume:
            _start(engine, config)
        started = time.perf_counter()
        shards = range(config.shards)
        combined = Combined(progress, shards)
        if workers == 1:
            effort = drive(options, config, shards, combined.day, combined.finished)
        else:
            effort = run_workers(options, config, workers, combined)
        return _report(engine, config, wall, time.perf_counter() - started, effort)


def simulate(db: str, *, sellers: int = 20, orders: int = 300, days: int = 90, seed: int = 0,
             faults: str | None = None, resume: bool = False, report_dir: str | None = None,
             name: str = "sim", progress: Progress | None = None,
             stop_after_orders: int | None = None, log: str | None = None,
             batch_size: int = BATCH_SIZE, shards: int = 1,
             workers: int = 1, force: bool = False) -> Report:
    """What ``lifecycle simulate`` does, option for option: run (or resume) on ``db``, write
    the HTML report to ``report_dir`` if given, and return the report to print."""
    config = None if resume else Config(sellers=sellers, orders=orders, days=days, seed=seed,
                                        faults=Faults.parse(faults), name=name, shards=shards)
    report = run_on(db, config, resume=resume, progress=progress,
                    stop_after_orders=stop_after_orders, name=name, log=log,
                    batch_size=batch_size, workers=workers, force=force)
    if report_dir is not None:
        report.write_html(report_dir)
    return report


class NotASimulation(lifecycle.LifecycleError):
    """A simulation asked to write into a database that holds more than simulations (real
    sellers, orders, ...), or one at an older schema: nothing was written. ``force=True``
    (``lifecycle simulate --force``) writes there anyway."""

    exit_code = 2

    def __init__(self, database: str, reason: str, *, forcible: bool = True):
        self.database, self.reason = database, reason
        force = ", or pass --force" if forcible else ""
        super().__init__(f"{database} {reason}; a simulation writes only into a database of "
                         "simulations: give it one of its own (simulate --db "
                         f"sqlite:///simulation.db, the default){force}")


class RunExists(AlreadyExists):
    """A new run named like one the database holds already: nothing was written."""

    def __init__(self, name: str):
        super().__init__("simulation", name)
        self.args = (f"a simulation named {name!r} already ran in this database: continue it "
                     f"with --resume (and --name {name}), or start another with --name NAME",)


def refuse_other_data(url: str) -> None:
    """`NotASimulation` unless ``url`` is new, empty, or holds only what simulations made.
    Reads only (a missing file stays missing)."""
    try:
        probe = lifecycle.open(url, upgrade=False)
    except lifecycle.DatabaseMissing:
        return  # a new file: the run creates it
    except lifecycle.SchemaOutdated as error:
        if error.current is None:
            return  # an empty database: the run gives it the schema
        raise NotASimulation(redacted(url), f"has schema {error.current}, not this "
                                            "lifecycle's newest, and a simulation does not "
                                            "migrate a database (`lifecycle db upgrade` does)") from None
    with probe:
        if isinstance(probe.clock, lifecycle.SandboxClock):
            raise NotASimulation(redacted(url), "is a sandbox, whose stored clock only "
                                                "`lifecycle clock advance` moves",
                                 forcible=False)
        found = record.others(probe.database)
    if found:
        raise NotASimulation(redacted(url), f"holds {found} seller(s), order(s), dispute(s), "
                                            "coupon(s) or voucher(s) no simulation made")


def _config_of(engine: Engine, config: Config | None, resume: bool, name: str) -> Config:
    """The run's config: the one given (or the defaults), or, to resume, the stored one."""
    if not resume:
        return config or Config()
    stored = record.load(engine.database, name)
    if stored is None:
        raise NotFound("simulation", name)
    return Config.from_dict(stored.config)


def _check_workers(url: str, config: Config, workers: int) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise lifecycle.InvalidPayload("workers", f"is a whole number of at least 1, got {workers!r}")
    if workers == 1:
        return
    if make_url(url).get_backend_name() != "postgresql":
        raise lifecycle.InvalidPayload(
            "workers", "several workers need PostgreSQL (SQLite takes one writer at a time): "
                       "run with --workers 1, or on a postgresql+psycopg:// database")
    if workers > config.shards:
        raise lifecycle.InvalidPayload(
            "workers", f"at most {config.shards}, the run's shards (a worker runs whole "
                       f"shards): start the run with --shards {workers} or more (e.g. 16)")


def _start(engine: Engine, config: Config) -> None:
    """A new run's rows, all or none: the run's (its config), and each shard's (``new``)."""
    shards = shard_configs(config)
    names = dict.fromkeys([config.name, *(c.label for c in shards)])
    for name in names:
        if record.load(engine.database, name) is not None:
            raise RunExists(name)
    rows = [record.Progress(config.name, config.to_dict(), "new" if len(shards) == 1 else "running",
                            0, config.start, 0)]
    rows += [record.Progress(c.label, c.to_dict(), "new", 0, c.start, 0)
             for c in shards if c.label != config.name]
    record.create(engine.database, rows, config.start)


def _order_states(engine: Engine, label: str) -> dict[str, int]:
    """How many of a shard's orders are in each state now."""
    return {count.state: count.aggregates
            for count in engine.state_counts(("order",), prefix=f"{label}-")}


def _report(engine: Engine, config: Config, wall: float, running: float, effort: Effort) -> Report:
    """The run's report, from its shards' rows and the database; a run of several shards
    also saves its own row's status (finished once every shard is)."""
    shards = shard_configs(config)
    rows = [record.load(engine.database, c.label) for c in shards]
    found = [row for row in rows if row is not None]
    if len(found) < len(shards):
        raise NotFound("simulation", config.name)
    status = "finished" if all(row.status == "finished" for row in found) else "stopped"
    end = max(row.sim_now for row in found)
    finals = [_order_states(engine, c.label) for c in shards] if len(shards) > 1 else [{}]
    tally = merge([record.Tally(row.tally) for row in found], finals)
    if len(shards) > 1:
        run_row = record.Progress(config.name, config.to_dict(), status, 0, end,
                                  sum(row.next_order for row in found), tally.to_dict())
        record.update_row(engine.database, run_row, record.saved_at())
    seen = Seen(tally, end, running, effort.cpu_seconds, effort.session_transitions,
                effort.peak_rss_mb)
    return survey(engine, config, status, seen, wall)
