"""Events/s from the outbox to each broker through the relay, against the broker's own publish
rate with the same client, measured in the same run (issue #17).

    .venv/bin/python -m benchmarks.relay [--events 20000] [--batch 500] [--pg postgresql://postgres@127.0.0.1/test]
                                         [--nats nats://127.0.0.1:4222] [--amqp amqp://guest:guest@127.0.0.1:5672/]

relay     ``lifecycle.Relay.run_once`` until the backlog is empty: claim ``--batch`` unpublished
          events, publish them pipelined on one connection, wait for every confirm, mark them
          published (on PostgreSQL in the claim's transaction, ``FOR UPDATE SKIP LOCKED``; on
          SQLite in one short write after the publish). The outbox is filled beforehand (orders
          placed and paid through the engine, not timed) and marked unpublished again before
          each broker's run.
broker    `benchmarks.broker_rate.raw_publish_rate`: the same ``Broker`` (the same client, the
          same pipelining and batch size, every message confirmed) with messages of the outbox's
          median body size, no database: what the broker and client take on their own.

Each broker's raw rate is measured before and after its relay run and averaged, so load from
elsewhere hits both alike. ``relay / broker`` is the share of the broker's own rate the relay
keeps: the database's claim and mark, and building the messages, are the rest.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
from sqlalchemy import select, update

import lifecycle
from benchmarks.broker_rate import DEFAULT_AMQP, DEFAULT_NATS, _cleanup, _scratch, raw_publish_rate
from benchmarks.fire import scratch_database
from lifecycle.store.tables import outbox
from tests.builders import paid_orders


def fill(engine: lifecycle.Engine, events: int) -> int:
    """Orders placed and paid (two events each) until the outbox holds ``events``."""
    return paid_orders(engine, max(events // 2, 1))


def median_body(engine: lifecycle.Engine) -> int:
    with engine.database.connect() as conn:
        # Core hands back the JSON column parsed, on both databases: its size as the relay sends it
        sizes = [len(orjson.dumps(body)) for (body,) in conn.execute(select(outbox.c.body).limit(2000))]
    return int(statistics.median(sizes))


def unpublish(engine: lifecycle.Engine) -> None:
    with engine.database.begin() as conn:
        conn.execute(update(outbox).values(published_at=None))


def relay_rate(engine: lifecycle.Engine, url: str, batch: int) -> tuple[float, int]:
    """Events/s draining the whole outbox through the relay to a scratch stream / exchange."""
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    broker = lifecycle.broker_for(_scratch(url, prefix), prefix=prefix)
    relay = lifecycle.Relay(engine, broker, name=f"bench-{prefix}", target=url, prefix=prefix,
                            batch=batch)
    try:
        unpublish(engine)
        first = time.perf_counter()
        relay.run_once()  # connect and declare outside the timing
        warm, started = relay.published, time.perf_counter()
        while relay.run_once():
            pass
        elapsed = time.perf_counter() - started
    finally:
        broker.close()
        _cleanup(url, prefix)
    assert engine.relay_status().backlog == 0
    if relay.published == warm:  # the first claim took the whole outbox (tiny sizes): time it
        return warm / (started - first), relay.published
    return (relay.published - warm) / elapsed, relay.published


@contextmanager
def databases(pg: str | None) -> Iterator[Iterator[tuple[str, str]]]:
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as directory:
        if pg is None:
            yield iter([("SQLite", f"sqlite:///{directory}/bench.db")])
            return
        with scratch_database(pg) as (sa_url, _):
            yield iter([("SQLite", f"sqlite:///{directory}/bench.db"), ("PostgreSQL", sa_url)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="outbox events (default 20000)")
    parser.add_argument("--batch", type=int, default=500, help="events a claim (default 500)")
    parser.add_argument("--pg", metavar="URL", help="also on PostgreSQL, in a scratch database")
    parser.add_argument("--nats", default=DEFAULT_NATS)
    parser.add_argument("--amqp", default=DEFAULT_AMQP)
    args = parser.parse_args()
    lifecycle.configure_logs("warning")  # the brokers' connect lines would fill the output

    print(f"lifecycle {lifecycle.__version__}, relay benchmark: {args.events} events, "
          f"batches of {args.batch}")
    lines = [f"{'database':<11} {'broker':<9} {'relay ev/s':>11} {'broker ev/s':>12} "
             f"{'relay / broker':>15}"]
    with databases(args.pg) as found:
        for name, url in found:
            with lifecycle.open(url, clock=lifecycle.SimulatedClock(), upgrade=True) as engine:
                total = fill(engine, args.events)
                body = median_body(engine)
                for broker, broker_url in (("NATS", args.nats), ("RabbitMQ", args.amqp)):
                    before = raw_publish_rate(broker_url, total, body, batch=args.batch)
                    rate, published = relay_rate(engine, broker_url, args.batch)
                    after = raw_publish_rate(broker_url, total, body, batch=args.batch)
                    raw = (before + after) / 2
                    assert published == total, (published, total)
                    lines.append(f"{name:<11} {broker:<9} {rate:>11,.0f} {raw:>12,.0f} "
                                 f"{rate / raw:>15.2f}")
    print("\n".join(lines))
    print(f"(median event body {body} bytes; the broker's rate is the mean of one run before "
          f"and one after the relay's)")


if __name__ == "__main__":
    main()
