"""The runs a database holds, and their reports, read without writing (the operator's console).

`record` keeps one row per run (and per shard) in ``simulation_runs``; a run's report is read
back from the aggregates and the ledger, as at the end of a run (`readback.survey`). Nothing
here creates the table or saves a row: a database no simulation ran on has no runs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import inspect, select

import lifecycle
from lifecycle.simulation import record
from lifecycle.simulation.config import Config
from lifecycle.simulation.readback import Seen, survey
from lifecycle.simulation.report import Report
from lifecycle.simulation.shards import merge, shard_configs


@dataclass(frozen=True)
class StoredRun:
    """A run as its row says: its name, status, config and how far its clock got."""

    name: str
    status: str
    config: dict[str, Any]
    sim_now: datetime
    orders_arrived: int
    saved_at: str


def _rows(engine: lifecycle.Engine) -> dict[str, Any]:
    if not inspect(engine.database).has_table(record.runs.name):
        return {}
    with engine.database.connect() as conn:
        return {row.name: row for row in conn.execute(select(record.runs).order_by(record.runs.c.name))}


def runs(engine: lifecycle.Engine) -> list[StoredRun]:
    """Every run the database holds (a run of several shards once, not once a shard), by name."""
    rows = _rows(engine)
    found = []
    for name, row in rows.items():
        config = json.loads(row.config)
        if config.get("shard") is not None and config.get("name") != name:
            continue  # a shard's row: part of its run
        found.append(StoredRun(name, row.status, config, datetime.fromisoformat(row.sim_now),
                               row.next_order, row.updated_at))
    return found


def stored_report(engine: lifecycle.Engine, name: str) -> Report:
    """The report of the run ``name``, as `lifecycle simulate` printed it at its end (the wall
    clock figures are those of this read); `NotFound` when the database holds no such run."""
    rows = _rows(engine)
    row = rows.get(name)
    if row is None or json.loads(row.config).get("name") != name:
        raise lifecycle.NotFound("simulation", name)
    started = time.perf_counter()
    config = Config.from_dict(json.loads(row.config))
    shards = [rows.get(c.label) for c in shard_configs(config)]
    found = [shard for shard in shards if shard is not None]
    if len(found) < len(shards):
        raise lifecycle.NotFound("simulation", name)
    status = "finished" if all(shard.status == "finished" for shard in found) else found[0].status
    if len(found) > 1 and status != "finished":
        status = "stopped"
    end = max(datetime.fromisoformat(shard.sim_now) for shard in found)
    finals = [{c.state: c.aggregates for c in engine.state_counts(("order",), prefix=f"{s.label}-")}
              for s in shard_configs(config)] if len(found) > 1 else [{}]
    tally = merge([record.Tally(json.loads(shard.tally)) for shard in found], finals)
    return survey(engine, config, status, Seen(tally, end, 0.0, 0.0, 0, 0.0), started)
