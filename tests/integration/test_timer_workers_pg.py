"""Several timer workers on PostgreSQL: each due deadline fires exactly once."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from sqlalchemy import text

import lifecycle
from tests.builders import buyer, order_payload, seller_in

ORDERS = 5_000
WORKERS = 4


def _work(url: str, now: datetime) -> int:
    with lifecycle.open(url, clock=lifecycle.SimulatedClock(now)) as engine:
        return engine.run_due_timers()


def test_four_workers_fire_each_of_5000_due_deadlines_exactly_once(
    pg_engine: lifecycle.Engine, pg_url: str, clock: lifecycle.SimulatedClock
) -> None:
    seller_in(pg_engine, "active")
    payload = order_payload()

    def place(n: int) -> None:
        pg_engine.create("order", buyer(f"b-{n % 50}"), payload, id=f"o-{n:05d}")

    with ThreadPoolExecutor(8) as placing:  # arranging 5,000 orders one commit at a time is slow
        list(placing.map(place, range(ORDERS)))
    due = clock.now() + timedelta(hours=24)

    with multiprocessing.get_context("spawn").Pool(WORKERS) as pool:
        fired = pool.starmap(_work, [(pg_url, due)] * WORKERS)

    assert sum(fired) == ORDERS
    assert sum(1 for n in fired if n > 0) > 1, f"one worker did everything: {fired}"
    with pg_engine.database.connect() as conn:
        per_order = conn.execute(text(
            "SELECT count(*) FROM history WHERE trigger = 'payment_timeout' "
            "GROUP BY aggregate_id HAVING count(*) <> 1"
        )).all()
        cancelled = conn.execute(text(
            "SELECT count(*) FROM aggregates WHERE kind = 'order' AND state = 'cancelled'"
        )).scalar_one()
        left = conn.execute(text("SELECT count(*) FROM deadlines WHERE kind = 'order'")).scalar_one()
    assert per_order == []
    assert cancelled == ORDERS
    assert left == 0
