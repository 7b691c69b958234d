"""What a run did, as plain data: the fields of a `report.Report`, which the renderings
(`tables`, `charts`) read and `report.Report` adds to; JSON-able as it is."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ReportData:
    """What a simulation run did, as data. ``to_json(deterministic=True)`` leaves out the
    wall clock, so two runs with one seed compare equal. `Report` adds the renderings."""

    name: str
    status: str  # finished | stopped
    config: Mapping[str, Any]
    simulated: Mapping[str, Any]  # start, end, days
    states: Mapping[str, Mapping[str, int]]  # final state of every aggregate, per kind
    reached: Mapping[str, Mapping[str, int]]  # transitions into each state, per kind
    funnel: Mapping[str, int]
    endings: Mapping[str, int]  # how orders that did not release funds ended
    disputes: Mapping[str, Mapping[str, int]]  # type → final state → count
    dispute_paths: Mapping[str, int]  # "counter_offer → reject_offer → escalate → arbitrate(refund)"
    durations: Mapping[str, Mapping[str, float]]  # metric → n, p50, p90, p99 (days)
    release_histogram: Sequence[tuple[int, int]]  # (day, orders released that many days after placing)
    money: Mapping[str, Mapping[str, str]]  # currency → item → amount
    gateway: Mapping[str, str]  # what the sandbox gateway itself moved (first session only)
    check: Mapping[str, Any]
    transitions: int  # history rows of the run's aggregates
    triggers: Mapping[str, int]  # "order.pay" → fired
    activity: Mapping[str, int]  # the driver's counters: conflicts, faults, callbacks, pushes
    parked: Mapping[str, int]  # deadlines parked after repeated failures, by trigger
    timeline: Sequence[Mapping[str, Any]]  # orders in each state at the end of each day
    wall: Mapping[str, float]
    # the seller's account (issue #20): area → what → count
    accounts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def to_dict(self, *, deterministic: bool = False) -> dict[str, Any]:
        data = asdict(self)
        data["release_histogram"] = [list(pair) for pair in self.release_histogram]
        if deterministic:
            del data["wall"]
        return data

    def to_json(self, *, deterministic: bool = False, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(deterministic=deterministic), indent=indent, sort_keys=True)
