"""A run's market as independent shards (issue #15), so that several processes can run it.

Seller ``k`` and order ``n`` of a run of ``S`` shards belong to shard ``k % S`` and ``n % S``:
a shard is a market of its own, with its sellers, their orders, coupons and vouchers, its own
buyers, its own seed (drawn from the run's seed and the shard's number), clock, sandbox gateway
and carriers, and ids that carry its label (``sim-3-o0000042``, `Config.label`), so that the
engine's prefix reads and timers (``prefix=``) keep to it. Nothing in one shard waits on
another, so the report depends on the seed and ``S`` only, never on how many processes run
the shards, nor in which order. A run of one shard is the market as it was before shards: the
run's own seed, name and ids.

Here: what each shard is given, and how the shards' tallies and progress add up to the run's.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

from lifecycle.simulation.config import Config
from lifecycle.simulation.record import Tally
from lifecycle.simulation.vocabulary import Progress
from lifecycle.simulation.world import rng


def share(total: int, shards: int, shard: int) -> int:
    """How many of ``0 … total-1`` fall to ``shard``: those ``n`` with ``n % shards == shard``."""
    return max(0, (total - shard + shards - 1) // shards)


def shard_config(config: Config, shard: int) -> Config:
    """The config of one shard's market: its sellers, its orders, its own seed."""
    shards = config.shards
    if shards == 1:
        return config
    return replace(config, sellers=share(config.sellers, shards, shard),
                   orders=share(config.orders, shards, shard),
                   seed=rng(config.seed, "shard", shard).getrandbits(48), shards=shards,
                   shard=shard)


def shard_configs(config: Config) -> list[Config]:
    return [shard_config(config, s) for s in range(config.shards)]


def stop_after(orders: int | None, config: Config, shard: int) -> int | None:
    """A run's ``stop_after_orders`` for one shard: its share of the first ``orders``."""
    return None if orders is None else share(orders, config.shards, shard)


def merge(tallies: Sequence[Tally], finals: Sequence[Mapping[str, int]]) -> Tally:
    """The run's tally: the shards' counters summed, and their daily samples summed day by
    day. A shard that ended before the last day counts, on the days after its last sample,
    its orders as they ended (``finals``, by shard), as one market would have sampled them."""
    if len(tallies) == 1:
        return tallies[0]
    merged = Tally()
    for tally in tallies:
        merged.counters.update(tally.counters)
        merged.triggers.update(tally.triggers)
        merged.reached.update(tally.reached)
    merged.samples = _samples(tallies, finals)
    merged.gateway = _gateway(tallies)
    return merged


def _samples(tallies: Sequence[Tally], finals: Sequence[Mapping[str, int]]) -> list[dict[str, Any]]:
    last = max((sample["day"] for tally in tallies for sample in tally.samples), default=0)
    by_day: dict[int, Counter[str]] = {day: Counter() for day in range(1, last + 1)}
    for tally, final in zip(tallies, finals, strict=True):
        seen = {sample["day"]: sample["orders"] for sample in tally.samples}
        ended = max(seen, default=0)
        for day, counts in by_day.items():
            counts.update(seen.get(day, final if day > ended else {}))
    return [{"day": day, "orders": {s: n for s, n in sorted(counts.items()) if n}}
            for day, counts in by_day.items()]


def _gateway(tallies: Sequence[Tally]) -> dict[str, str]:
    """What the shards' gateways moved, summed; nothing once any shard was resumed (its
    gateway was new)."""
    if not all(tally.gateway for tally in tallies):
        return {}
    sums: dict[str, Decimal] = {}
    for tally in tallies:
        for label, amount in tally.gateway.items():
            sums[label] = sums.get(label, Decimal(0)) + Decimal(amount)
    return {label: str(amount) for label, amount in sums.items()}


class Combined:
    """The run's daily progress from its shards': a day is reported once every shard still
    running has reached it, with the orders arrived and the transitions per second of all.
    (Stepped in time order, the shards reach each day one after another; a resumed run
    reports from the day its slowest shard goes on from.)"""

    def __init__(self, progress: Progress | None, shards: Sequence[int]):
        self.progress = progress
        self.days: dict[int, float] = dict.fromkeys(shards, 0)
        self.orders: dict[int, int] = dict.fromkeys(shards, 0)
        self.rates: dict[int, float] = dict.fromkeys(shards, 0.0)
        self.reported = 0

    def day(self, shard: int, day: int, orders: int, rate: float) -> None:
        self.days[shard], self.orders[shard], self.rates[shard] = day, orders, rate
        self._report()

    def finished(self, shard: int) -> None:
        self.days[shard], self.rates[shard] = math.inf, 0.0
        self._report()

    def _report(self) -> None:
        reached = min(self.days.values(), default=math.inf)
        if self.progress is None or reached == math.inf or reached <= self.reported:
            return
        self.reported = int(reached)
        self.progress(self.reported, sum(self.orders.values()), sum(self.rates.values()))
