"""Cost per fired deadline with few and with very many deadlines not yet due.

    .venv/bin/python -m benchmarks.deadlines [--due 10000] [--pending 10000 1000000] [--pg URL]

Builds one database with ``--due`` orders awaiting payment (their payment_timeout due), copies
it once per ``--pending`` size, adds that many far-future deadlines to each copy, then times
``engine.run_due_timers()`` firing the due ones. Finding a due deadline goes through the
(status, due_at) index, so the cost per fired deadline should not grow with the pending count
(target: within 1.5× between 10,000 and 1,000,000).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert

import lifecycle
from lifecycle.logs import configure
from lifecycle.store.tables import deadlines

BUYER = lifecycle.Actor("buyer", "b-1")
SELLER = lifecycle.Actor("seller", "s-1")
OPERATOR = lifecycle.Actor("operator", "op")


def build(url: str, clock: lifecycle.SimulatedClock, due: int) -> None:
    with lifecycle.open(url, clock=clock) as engine:
        engine.create("seller", SELLER, {
            "company_name": "Acme", "entity_type": "company", "country": "CN",
            "registration_number": "1", "email": "a@acme.example"})
        engine.fire("seller", "s-1", "submit_documents", SELLER, {
            "business_licence": "BL", "payment_account_authentication": "alipay",
            "product_list": ["robot"], "payment_method": "alipay"})
        engine.fire("seller", "s-1", "approve", OPERATOR)
        engine.fire("seller", "s-1", "pay_fee", SELLER, {"sales_plan": "basic", "category": "toys"})
        engine.fire("seller", "s-1", "complete_profile", SELLER,
                    {"store_name": "Acme", "domain": "acme"})
        order = {
            "seller": "s-1", "currency": "USD",
            "lines": [{"sku": "robot", "quantity": 1, "unit_price": "10.00"}],
            "consignee": {"name": "A", "address": "Somewhere 1", "country": "PT"},
            "logistics": {"carrier": "dhl", "service": "express", "shipping_fee": "5.00",
                          "delivery_days": 20},
        }
        for n in range(due):
            engine.create("order", BUYER, order, id=f"o-{n:07d}")


def add_pending(url: str, clock: lifecycle.SimulatedClock, count: int) -> None:
    """Far-future deadlines of other aggregates: rows the due-query must not wade through."""
    far = clock.now() + timedelta(days=400)
    with lifecycle.open(url, clock=clock) as engine, engine.database.begin() as conn:
        for start in range(0, count, 50_000):
            conn.execute(insert(deadlines), [
                {"kind": "order", "aggregate_id": f"p-{n:08d}", "state": "awaiting_payment",
                 "trigger": "payment_timeout", "status": "pending",
                 "due_at": far + timedelta(seconds=n), "attempts": 0, "created_at": clock.now()}
                for n in range(start, min(start + 50_000, count))
            ])


def fire_due(url: str, clock: lifecycle.SimulatedClock, due: int) -> float:
    with lifecycle.open(url, clock=clock) as engine:
        started = time.perf_counter()
        fired = engine.run_due_timers()
        seconds = time.perf_counter() - started
    if fired != due:
        raise SystemExit(f"expected {due} deadlines to fire, {fired} did")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--pending", type=int, nargs="+", default=[10_000, 1_000_000])
    args = parser.parse_args()
    configure("warning")
    start = lifecycle.SimulatedClock()
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template.db"
        t0 = time.perf_counter()
        build(f"sqlite:///{template}", lifecycle.SimulatedClock(start.now()), args.due)
        print(f"built {args.due} orders awaiting payment in {time.perf_counter() - t0:.1f} s")
        results = []
        for pending in args.pending:
            copy = Path(tmp) / f"pending-{pending}.db"
            shutil.copy(template, copy)
            url = f"sqlite:///{copy}"
            add_pending(url, lifecycle.SimulatedClock(start.now()), pending)
            due_clock = lifecycle.SimulatedClock(start.now() + timedelta(hours=25))
            seconds = fire_due(url, due_clock, args.due)
            results.append((pending, seconds))
            copy.unlink()
        print(f"{'pending':>10}  {'fired':>7}  {'seconds':>8}  {'µs/deadline':>11}  {'per s':>7}")
        for pending, seconds in results:
            print(f"{pending:>10}  {args.due:>7}  {seconds:>8.2f}  "
                  f"{seconds / args.due * 1e6:>11.0f}  {args.due / seconds:>7.0f}")
        if len(results) > 1:
            ratio = results[-1][1] / results[0][1]
            print(f"cost ratio {results[-1][0]:,} vs {results[0][0]:,} pending: {ratio:.2f}× "
                  f"(target ≤ 1.5×)")


if __name__ == "__main__":
    main()
