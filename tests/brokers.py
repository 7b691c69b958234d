"""Brokers for tests: a private nats-server a test may stop, kill and restart (the shared ones on
the CI machine keep running for everyone), and read-backs of what reached a stream or a queue."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import pytest

NATS_SERVER = "/usr/sbin/nats-server"

# The shared servers the broker tests publish to (.ci/run sets both, starting the servers).
NATS_URL = os.environ.get("LIFECYCLE_TEST_NATS")
AMQP_URL = os.environ.get("LIFECYCLE_TEST_AMQP")
needs_nats = pytest.mark.skipif(not NATS_URL, reason="LIFECYCLE_TEST_NATS is unset (.ci/run sets it)")
needs_amqp = pytest.mark.skipif(not AMQP_URL, reason="LIFECYCLE_TEST_AMQP is unset (.ci/run sets it)")
needs_nats_server = pytest.mark.skipif(not os.access(NATS_SERVER, os.X_OK),
                                       reason=f"{NATS_SERVER} is not installed (Debian's nats-server)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class PrivateNats:
    """Its own ``nats-server -js`` on a free loopback port with a store dir of its own: `start`
    again after `stop` or `kill` comes back on the same port and store, so streams survive."""

    def __init__(self, store_dir: Path | None = None):
        self._tmp = None if store_dir is not None else tempfile.TemporaryDirectory(prefix="nats-")
        self.store_dir = store_dir or Path(self._tmp.name)  # type: ignore[union-attr]
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> PrivateNats:
        if self._process is not None and self._process.poll() is None:
            return self
        self._process = subprocess.Popen(
            [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store_dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not listening(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server on port {self.port} did not start")
            time.sleep(0.02)
        return self

    def _end(self, sig: int) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        os.kill(self._process.pid, sig)
        self._process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM and wait: the server shuts down cleanly."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL and wait: what a crash looks like."""
        self._end(signal.SIGKILL)

    def close(self) -> None:
        self.kill()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> PrivateNats:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


@dataclass(frozen=True)
class Received:
    """One message as read back from a broker: its id (Nats-Msg-Id / message_id), subject or
    routing key, body, and aggregate header."""

    id: str
    subject: str
    body: bytes
    key: str | None


def stream_messages(url: str, stream: str) -> list[Received]:
    """Everything in JetStream ``stream``, in stream order."""
    import nats

    async def read() -> list[Received]:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            state = (await js.stream_info(stream)).state
            found: list[Received] = []
            for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
                msg = await js.get_msg(stream, seq)
                headers = msg.headers or {}
                found.append(Received(headers.get("Nats-Msg-Id", ""), msg.subject or "",
                                      msg.data or b"", headers.get("Lifecycle-Aggregate")))
            return found
        finally:
            await nc.close()

    return asyncio.run(read())


def delete_stream(url: str, stream: str) -> None:
    import nats
    import nats.js.errors

    async def delete() -> None:
        nc = await nats.connect(url)
        try:
            await nc.jetstream().delete_stream(stream)
        except nats.js.errors.NotFoundError:
            pass
        finally:
            await nc.close()

    asyncio.run(delete())


def queue_messages(url: str, queue: str) -> list[Received]:
    """Everything waiting in RabbitMQ ``queue``, taken off it in order."""
    import aio_pika

    async def read() -> list[Received]:
        connection = await aio_pika.connect(url)
        try:
            channel = await connection.channel()
            declared = await channel.get_queue(queue)
            found: list[Received] = []
            while (message := await declared.get(no_ack=True, fail=False)) is not None:
                key = message.headers.get("Lifecycle-Aggregate")
                found.append(Received(message.message_id or "", message.routing_key or "",
                                      message.body, str(key) if key is not None else None))
            return found
        finally:
            await connection.close()

    return asyncio.run(read())


def delete_exchange_and_queue(url: str, exchange: str, queue: str | None) -> None:
    import aio_pika

    async def delete() -> None:
        connection = await aio_pika.connect(url)
        try:
            channel = await connection.channel()
            if queue is not None:
                await channel.queue_delete(queue)
            await channel.exchange_delete(exchange)
        finally:
            await connection.close()

    asyncio.run(delete())
