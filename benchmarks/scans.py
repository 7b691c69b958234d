"""Per-scan cost as one order's tracking grows: ``python -m benchmarks.scans [--scans 4000]``.

One shipped order on a fresh SQLite file takes ``--scans`` signed carrier pushes through
`Engine.ingest_tracking`, each a new `in_transit` scan with its own event id (the order is in
transit, so each is recorded, not a move). Prints the median cost of the first and the last
hundred scans, their ratio (1.0 = flat, the goal; growing with the scan count = quadratic), and
what the order's data and the idempotency table weigh at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

import lifecycle
from lifecycle.adapter_calls import SANDBOX_SECRET
from lifecycle.adapters import signed_headers
from lifecycle.logs import configure
from lifecycle.store.tables import idempotency
from tests.builders import SHIPMENT, SYSTEM, order_in

WINDOW = 100


def push(waybill: str, n: int, at: datetime) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"carrier": "dhl", "events": [{
        "event_id": f"scan-{n}", "waybill": waybill, "status": "in_transit", "at": at.isoformat(),
        "location": "Leipzig hub", "detail": "processed at facility",
    }]}).encode()
    # Signed at the scan's time, which is the engine's clock when it is ingested.
    return body, signed_headers(SANDBOX_SECRET, f"msg_scan-{n}", at, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scans", type=int, default=4000)
    args = parser.parse_args()
    configure("warning")
    with tempfile.TemporaryDirectory() as directory:
        clock = lifecycle.SimulatedClock(datetime(2026, 1, 1, tzinfo=UTC))
        engine = lifecycle.open(f"sqlite:///{Path(directory) / 'scans.db'}", clock=clock)
        order = order_in(engine, clock, "shipped")
        engine.fire("order", order.id, "tracking_in_transit", SYSTEM, {"event_id": "first"})
        seconds = []
        for n in range(args.scans):
            body, headers = push(SHIPMENT["waybill"], n, clock.now())
            started = time.perf_counter()
            engine.ingest_tracking("dhl", body, headers)
            seconds.append(time.perf_counter() - started)
        # Medians: a WAL checkpoint's fsync lands on a few scans and says nothing of growth.
        first = statistics.median(seconds[:WINDOW])
        last = statistics.median(seconds[-WINDOW:])
        data = len(json.dumps(engine.get("order", order.id).data, default=str))
        with engine.database.connect() as conn:
            stored = conn.execute(
                select(func.count(), func.sum(func.length(idempotency.c.result)))
            ).one()
        engine.close()
    print(f"scans: {args.scans} on one order")
    print(f"median cost, scans 1-{WINDOW}: {first * 1e3:.2f} ms; "
          f"scans {args.scans - WINDOW + 1}-{args.scans}: {last * 1e3:.2f} ms; "
          f"ratio last/first {last / first:.2f}")
    print(f"order data: {data:,} bytes; idempotency rows: {stored[0]:,}, "
          f"their results {stored[1] or 0:,} bytes")


if __name__ == "__main__":
    main()
