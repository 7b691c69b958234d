"""A run's progress, kept in the database it runs on: one row of ``simulation_runs`` per run.

A run of several shards (issue #15) has a row for the run (its config and status) and one
per shard, named for the shard's label (``sim-3``: its ids' prefix), each with the shard's own
config and progress; a run of one shard has one row, as before shards. The row holds the
config the run (or shard) was started with, how far the simulated clock got, how many
orders have arrived, and the tallies only the driver can see (conflicts retried, faults met,
daily samples of order states). Everything else a resumed run needs — which orders are open,
who must act next — it reads back from the aggregates themselves. The table belongs to the
simulation, not to the engine's schema, so it is created here rather than by a migration.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Update,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy import Engine as Database

metadata = MetaData()

runs = Table(
    "simulation_runs",
    metadata,
    Column("name", String(40), primary_key=True),  # a run's name or a shard's label
    Column("config", Text, nullable=False),
    Column("status", String(16), nullable=False),  # new | running | stopped | finished
    Column("session", Integer, nullable=False),  # 0, then one more on each resume
    Column("sim_now", String(40), nullable=False),
    Column("next_order", Integer, nullable=False),
    Column("tally", Text, nullable=False),
    Column("updated_at", String(40), nullable=False),
)


@dataclass
class Progress:
    """Where a run stands. ``tally`` is JSON-able."""

    name: str
    config: dict[str, Any]
    status: str
    session: int
    sim_now: datetime
    next_order: int
    tally: dict[str, Any] = field(default_factory=dict)


class Tally:
    """What the driver saw: counters, transitions by trigger, states reached, daily samples,
    and what the sandbox gateway moved (kept while the run is in its first session: a
    resumed run's new gateway has not seen what the first one did)."""

    def __init__(self, saved: Mapping[str, Any] | None = None):
        saved = saved or {}
        self.counters: Counter[str] = Counter(saved.get("counters", {}))
        self.triggers: Counter[str] = Counter(saved.get("triggers", {}))
        self.reached: Counter[str] = Counter(saved.get("reached", {}))
        self.samples: list[dict[str, Any]] = list(saved.get("samples", []))
        self.gateway: dict[str, str] = dict(saved.get("gateway", {}))

    def to_dict(self) -> dict[str, Any]:
        return {"counters": dict(self.counters), "triggers": dict(self.triggers),
                "reached": dict(self.reached), "samples": self.samples,
                "gateway": self.gateway}


def saved_at() -> datetime:
    """A row's saved-at stamp: when, in the world outside, the run last saved (what an operator
    reads to see a run is alive); the run's own time is ``sim_now``."""
    return datetime.now(UTC)


def ensure_table(database: Database) -> None:
    metadata.create_all(database, checkfirst=True)


# The kinds people make; an unexpected capture is the gateway's, named for its event.
PEOPLES_KINDS = ("seller", "order", "dispute", "coupon", "voucher")


def others(database: Database) -> int:
    """How many sellers, orders, disputes, coupons and vouchers in the database no simulation
    run of it made (a run's ids all start with its name or its shards' labels and ``-``):
    what a new run refuses to mix its own with. Reads only; creates no table."""
    kinds = ", ".join(f"'{kind}'" for kind in PEOPLES_KINDS)
    with database.connect() as conn:
        if "simulation_runs" not in inspect(conn).get_table_names():
            return int(conn.execute(text(f"SELECT count(*) FROM aggregates WHERE kind IN ({kinds})"))
                       .scalar_one())
        return int(conn.execute(text(
            f"SELECT count(*) FROM aggregates a WHERE a.kind IN ({kinds}) AND NOT EXISTS "
            "(SELECT 1 FROM simulation_runs r "
            " WHERE substr(a.id, 1, length(r.name) + 1) = r.name || '-')")).scalar_one())


def load(database: Database, name: str) -> Progress | None:
    ensure_table(database)
    with database.connect() as conn:
        row = conn.execute(select(runs).where(runs.c.name == name)).first()
    if row is None:
        return None
    return Progress(
        name=row.name,
        config=json.loads(row.config),
        status=row.status,
        session=row.session,
        sim_now=datetime.fromisoformat(row.sim_now),
        next_order=row.next_order,
        tally=json.loads(row.tally),
    )


def _values(progress: Progress, now: datetime) -> dict[str, Any]:
    return {"config": json.dumps(progress.config, sort_keys=True), **_progress(progress, now)}


def _progress(progress: Progress, now: datetime) -> dict[str, Any]:
    """What changes as a run goes on (its config does not): written once a batch, so the
    tally, daily samples and all, is serialised with orjson (a tenth of json's cost)."""
    return {
        "status": progress.status,
        "session": progress.session,
        "sim_now": progress.sim_now.isoformat(),
        "next_order": progress.next_order,
        "tally": orjson.dumps(progress.tally, option=orjson.OPT_SORT_KEYS).decode(),
        "updated_at": now.isoformat(),
    }


def save(database: Database, progress: Progress, now: datetime, *, new: bool = False) -> None:
    """Write the run's row (insert it when ``new``); its own small transaction."""
    if new:
        create(database, [progress], now)
    else:
        update_row(database, progress, now)


def create(database: Database, rows: list[Progress], now: datetime) -> None:
    """Insert a run's rows (the run's and its shards'), all or none."""
    with database.begin() as conn:
        for progress in rows:
            conn.execute(insert(runs).values(name=progress.name, **_values(progress, now)))


def update_row(database: Database, progress: Progress, now: datetime) -> None:
    with database.begin() as conn:
        conn.execute(saving(progress, now))


def saving(progress: Progress, now: datetime) -> Update:
    """The statement that writes the run's row, for `Engine.execute`: in a batch, the row
    commits with the triggers it covers."""
    return update(runs).where(runs.c.name == progress.name).values(**_progress(progress, now))
