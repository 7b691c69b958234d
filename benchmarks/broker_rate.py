"""The brokers' own publish rate, without any database: the ceiling the outbox relay is measured
against (issue #17; the relay's benchmark prints its events/s as a ratio of this).

    .venv/bin/python -m benchmarks.broker_rate [--n 20000] [--body 400] [--batch 500]
        [--nats nats://127.0.0.1:4222] [--amqp amqp://guest:guest@127.0.0.1:5672/]

Each broker gets a stream / exchange and queue of its own for the run, deleted afterwards. The
messages go through the very `Broker` the relay uses (`lifecycle.brokers.broker_for`): same client,
same pipelining (a batch sent whole before its confirms are awaited), same batch size; only the
outbox reads and marks are missing.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from lifecycle.brokers import Message, broker_for

DEFAULT_NATS = "nats://127.0.0.1:4222"
DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_BATCH = 500


def _messages(prefix: str, n: int, body_size: int) -> list[Message]:
    body = b'{"pad": "' + b"x" * max(body_size - 11, 0) + b'"}'
    return [Message(id=f"{prefix}-{i}", subject=f"{prefix}.order.shipped", body=body,
                    key=f"order/o-{i % 100}") for i in range(n)]


def raw_publish_rate(url: str, n: int, body_size: int, *, batch: int = DEFAULT_BATCH) -> float:
    """Events/s publishing ``n`` messages of ``body_size`` bytes to ``url`` in batches of
    ``batch``, every one confirmed; the scratch stream / exchange is removed afterwards."""
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    scratch = _scratch(url, prefix)
    messages = _messages(prefix, n, body_size)
    broker = broker_for(scratch, prefix=prefix)
    try:
        broker.publish(messages[:1])  # connect and declare outside the timing
        started = time.perf_counter()
        for start in range(1, n, batch):
            chunk = messages[start:start + batch]
            sent = 0
            while sent < len(chunk):
                sent += broker.publish(chunk[sent:])
        elapsed = time.perf_counter() - started
    finally:
        broker.close()
        _cleanup(url, prefix)
    return (n - 1) / elapsed if elapsed > 0 else float("inf")


def _scratch(url: str, prefix: str) -> str:
    separator = "&" if "?" in url else "?"
    if url.startswith("nats"):
        return f"{url}{separator}stream=BENCH_{prefix}"
    # A queue, so the messages are stored as the relay's would be once a consumer has bound one.
    return f"{url}{separator}exchange=x-{prefix}&queue=q-{prefix}"


def _cleanup(url: str, prefix: str) -> None:
    base = url.split("?", 1)[0]
    if url.startswith("nats"):
        import nats

        async def delete_stream() -> None:
            nc = await nats.connect(base)
            try:
                await nc.jetstream().delete_stream(f"BENCH_{prefix}")
            finally:
                await nc.close()

        asyncio.run(delete_stream())
        return
    import aio_pika

    async def delete_exchange() -> None:
        connection = await aio_pika.connect(base)
        try:
            channel = await connection.channel()
            await channel.queue_delete(f"q-{prefix}")
            await channel.exchange_delete(f"x-{prefix}")
        finally:
            await connection.close()

    asyncio.run(delete_exchange())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--body", type=int, default=400, help="body size in bytes (an event is ~400)")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH)
    parser.add_argument("--nats", default=DEFAULT_NATS)
    parser.add_argument("--amqp", default=DEFAULT_AMQP)
    args = parser.parse_args()
    for name, url in (("NATS JetStream", args.nats), ("RabbitMQ", args.amqp)):
        rate = raw_publish_rate(url, args.n, args.body, batch=args.batch)
        print(f"{name:15} {rate:10,.0f} events/s  ({args.n} x {args.body} B, batches of {args.batch})")


if __name__ == "__main__":
    main()
