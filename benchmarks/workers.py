"""PostgreSQL: four worker processes firing on distinct orders, against one.

    .venv/bin/python -m benchmarks.workers --pg postgresql://postgres@127.0.0.1:5432/test [--n 200]

Places ``4 × --n`` orders (not timed) in a scratch database, then times the order happy path
(pay, ship_offline, tracking_in_transit, tracking_delivered, confirm_receipt, release_funds)
through ``engine.fire``: first one process on ``--n`` orders, then four processes at once, each
on ``--n`` orders of its own. Target (issue #15): four workers ≥ 2.5 × one worker's
transitions per second (the engine holds no lock of its own; PostgreSQL's row locks and group
commit do the rest).
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import lifecycle
from benchmarks.fire import scratch_database
from lifecycle import Actor
from lifecycle.adapters.waybills import dhl_express_number
from lifecycle.logs import configure

START = datetime(2026, 1, 1, tzinfo=UTC)
BUYER, SELLER = Actor("buyer", "b-1"), Actor("seller", "s-1")
SYSTEM, OPERATOR = Actor("system", "bench"), Actor("operator", "op")
CHECKLIST = {"quantity": True, "model": True, "specification": True, "colour": True}
ORDER = {
    "seller": "s-1", "currency": "USD",
    "lines": [{"sku": "robot", "quantity": 2, "unit_price": "19.99"}],
    "consignee": {"name": "Ana", "address": "Rua A 1, Lisboa", "country": "PT"},
    "logistics": {"carrier": "dhl", "service": "express", "shipping_fee": "7.50",
                  "delivery_days": 20},
}


def arrange(url: str, orders: int) -> None:
    with lifecycle.open(url, clock=lifecycle.SimulatedClock(START)) as engine:
        engine.create("seller", SELLER, {"company_name": "Acme", "entity_type": "company",
                                         "country": "CN", "registration_number": "1",
                                         "email": "a@acme.example"})
        engine.fire("seller", "s-1", "submit_documents", SELLER, {
            "business_licence": "BL", "payment_account_authentication": "alipay",
            "product_list": ["robot"], "payment_method": "alipay"})
        engine.fire("seller", "s-1", "approve", OPERATOR)
        engine.fire("seller", "s-1", "pay_fee", SELLER, {"sales_plan": "basic", "category": "toys"})
        engine.fire("seller", "s-1", "complete_profile", SELLER,
                    {"store_name": "Acme", "domain": "acme"})
        for n in range(orders):
            engine.create("order", BUYER, ORDER, id=f"o-{n:06d}")


def work(url: str, ids: Sequence[int], ready: Any = None, go: Any = None,
         results: Any = None) -> tuple[int, float]:
    """Fire the happy path on ``ids``; (transitions, seconds). With ``go``, start only when the
    parent says so, after the process has started and opened its engine (so start-up is not
    timed)."""
    configure("warning")
    with lifecycle.open(url, clock=lifecycle.SimulatedClock(START)) as engine:
        engine.get("seller", "s-1")  # connect before the start line
        if go is not None:
            ready.release()
            go.wait()
        started, fired = time.perf_counter(), 0
        for n in ids:
            order = f"o-{n:06d}"
            ship = {"checklist": CHECKLIST, "carrier": "dhl", "waybill": dhl_express_number(n)}
            for trigger, actor, payload in (
                ("pay", BUYER, {}), ("ship_offline", SELLER, ship),
                ("tracking_in_transit", SYSTEM, {}), ("tracking_delivered", SYSTEM, {}),
                ("confirm_receipt", BUYER, {}), ("release_funds", SYSTEM, {}),
            ):
                engine.fire("order", order, trigger, actor, payload)
                fired += 1
        outcome = fired, time.perf_counter() - started
    if results is not None:
        results.put(outcome)
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", required=True, metavar="URL")
    parser.add_argument("--n", type=int, default=200, help="orders per worker")
    args = parser.parse_args()
    configure("warning")
    with scratch_database(args.pg) as (url, _conninfo):
        arrange(url, 5 * args.n)
        one_fired, one_seconds = work(url, range(args.n))
        context = multiprocessing.get_context("spawn")
        ready, go, queue = context.Semaphore(0), context.Event(), context.Queue()
        workers = [
            context.Process(target=work,
                            args=(url, range(args.n * (w + 1), args.n * (w + 2)), ready, go, queue))
            for w in range(4)
        ]
        for process in workers:
            process.start()
        for _ in workers:
            ready.acquire()
        started = time.perf_counter()
        go.set()
        results = [queue.get() for _ in workers]
        four_seconds = time.perf_counter() - started
        for process in workers:
            process.join()
    one_rate = one_fired / one_seconds
    four_rate = sum(fired for fired, _ in results) / four_seconds
    print(f"{'workers':>8}  {'transitions':>11}  {'seconds':>8}  {'per s':>7}")
    print(f"{1:>8}  {one_fired:>11}  {one_seconds:>8.2f}  {one_rate:>7.0f}")
    print(f"{4:>8}  {sum(f for f, _ in results):>11}  {four_seconds:>8.2f}  {four_rate:>7.0f}")
    print(f"four workers / one worker: {four_rate / one_rate:.2f}× (target ≥ 2.5×)")


if __name__ == "__main__":
    main()
