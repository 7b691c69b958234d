"""NATS JetStream as a `Broker`, through nats-py.

``nats://[user:pass@]host:port[?stream=NAME]`` (default stream ``LIFECYCLE``). On first use the
stream is created if missing, with subjects ``"{prefix}.>"`` and file storage; an existing stream
is used as it is. Every message carries ``Nats-Msg-Id`` = the event's id, so the stream drops a
re-publish within its ``duplicate_window`` (2 minutes unless the stream says otherwise): the
relay's at-least-once becomes once on the stream, for repeats inside that window.

The relay is plain sync code, so this class owns a private asyncio loop and runs each call on it
to completion. A batch is pipelined: every message is sent on the one connection before any ack
is awaited. nats-py's ``publish_async`` appends each message to the connection's write buffer
before it returns (awaiting it only queues the bytes), so calling it in order writes the batch in
order, and one connection to one server keeps that order into the stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs

import nats
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck, StorageType

from lifecycle.brokers import BrokerUnavailable, InvalidBrokerUrl, Message, redacted, split
from lifecycle.brokers.private_loop import OnPrivateLoop

log = structlog.get_logger(__name__)

DEFAULT_STREAM = "LIFECYCLE"
#: how long a batch may wait for its acks before the broker counts as unavailable
BATCH_TIMEOUT = 10.0
CONNECT_TIMEOUT = 2.0


class JetStreamBroker(OnPrivateLoop):
    """Publishes to one JetStream stream; connects on first publish and again after a loss."""

    def __init__(self, url: str, *, prefix: str = "lifecycle", timeout: float = BATCH_TIMEOUT,
                 connect_timeout: float = CONNECT_TIMEOUT):
        parts = split(url)
        options = parse_qs(parts.query, keep_blank_values=True)
        unknown = sorted(set(options) - {"stream"})
        if unknown:
            raise InvalidBrokerUrl(url, f"unknown option {', '.join(unknown)} (nats:// takes stream=)")
        stream = options.get("stream", [DEFAULT_STREAM])[-1]
        # JetStream refuses these in a stream name; say so now rather than at the first publish.
        if not stream or any(c in stream for c in " .*>/\\\t"):
            raise InvalidBrokerUrl(url, f"bad stream name {stream!r}")
        self.url = url
        self.stream = stream
        self.subjects = [f"{prefix}.>"]
        self._server = parts._replace(query="", fragment="").geturl()
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        # Set by the client's callbacks when the connection goes: acks still awaited then will
        # never come, and waiting for the batch timeout would only delay the relay's back-off.
        self._lost: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"JetStreamBroker({redacted(self.url)!r}, stream={self.stream!r})"

    # -- on the private loop: `OnPrivateLoop` runs these for the port's publish and close --

    async def _publish(self, messages: Sequence[Message]) -> int:
        js, lost = await self._connected()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        acks: list[asyncio.Future[PubAck]] = []
        reason = ""
        try:
            for message in messages:
                headers = {"Nats-Msg-Id": message.id, "Lifecycle-Aggregate": message.key,
                           "Content-Type": "application/json"}
                try:
                    # wait_stall: past 4000 in flight, publish_async waits for acks; a lost
                    # connection would keep it waiting until the batch's deadline.
                    acks.append(await js.publish_async(
                        message.subject, message.body, headers=headers,
                        wait_stall=max(deadline - loop.time(), 0.001)))
                # Stop sending at the first one that cannot go (too big, connection closed, too
                # many in flight): sending later ones would put them on the stream ahead of it.
                except (nats.errors.Error, OSError) as exc:
                    reason = f"publish failed: {exc!r}"
                    break
            confirmed, why = await self._leading_acks(acks, lost, deadline)
            # Repeats the stream dropped (a batch published again after a crash between the
            # confirm and the mark): counted so the at-least-once cost is visible in the log.
            repeats = sum(1 for ack in acks[:confirmed] if ack.result().duplicate)
        finally:
            _settle(acks)
        if repeats:
            log.info("broker.duplicates", broker="nats", stream=self.stream, dropped=repeats)
        reason = why or reason
        if confirmed == 0:
            await self._disconnect()
            raise BrokerUnavailable(self.url, reason or "nothing confirmed")
        if confirmed < len(messages):
            log.warning("broker.partial", broker="nats", stream=self.stream, confirmed=confirmed,
                        sent=len(messages), reason=reason)
        return confirmed

    async def _leading_acks(self, acks: list[asyncio.Future[PubAck]], lost: asyncio.Future[None],
                            deadline: float) -> tuple[int, str]:
        """How many acks, from the first, arrive before the connection is lost or the deadline;
        and why the count stopped there ("" when every ack came)."""
        loop = asyncio.get_running_loop()
        for confirmed, ack in enumerate(acks):
            if not ack.done():
                waited: set[asyncio.Future[Any]] = {ack, lost}
                await asyncio.wait(waited, timeout=max(deadline - loop.time(), 0),
                                   return_when=asyncio.FIRST_COMPLETED)
            if not ack.done():
                if not lost.done():
                    # The connection looks alive but the stream does not answer: start afresh.
                    await self._disconnect()
                    return confirmed, f"no ack within {self._timeout:g} s"
                return confirmed, "connection lost"
            if ack.cancelled():
                return confirmed, "cancelled"
            error = ack.exception()
            if error is not None:
                return confirmed, f"rejected by the stream: {error!r}"
        return len(acks), ""

    async def _connected(self) -> tuple[JetStreamContext, asyncio.Future[None]]:
        if (self._nc is not None and self._js is not None and self._lost is not None
                and self._nc.is_connected and not self._lost.done()):
            return self._js, self._lost
        await self._disconnect()
        loop = asyncio.get_running_loop()
        lost: asyncio.Future[None] = loop.create_future()

        async def gone() -> None:
            if not lost.done():
                lost.set_result(None)

        async def error(exc: Exception) -> None:
            # nats-py logs every error with a traceback by default; a refused connection is
            # reported once, as BrokerUnavailable, by the caller.
            log.debug("broker.error", broker="nats", url=redacted(self.url), error=repr(exc))

        try:
            # We reconnect ourselves, on the next publish: the client's own reconnection would
            # resend whatever it had buffered while acks were being counted as lost.
            nc = await asyncio.wait_for(
                nats.connect(self._server, allow_reconnect=False, max_reconnect_attempts=1,
                             reconnect_time_wait=0, connect_timeout=self._connect_timeout,
                             disconnected_cb=gone, closed_cb=gone, error_cb=error),
                timeout=self._connect_timeout * 2)
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise BrokerUnavailable(self.url, f"cannot connect: {exc!r}") from exc
        try:
            js = nc.jetstream(timeout=self._timeout)
            await self._ensure_stream(js)
        except BaseException:
            await _close_quietly(nc)
            raise
        self._nc, self._js, self._lost = nc, js, lost
        log.info("broker.connected", broker="nats", url=redacted(self.url), stream=self.stream)
        return js, lost

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        try:
            await js.stream_info(self.stream)
            return
        except nats.js.errors.NotFoundError:
            pass
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise BrokerUnavailable(self.url, f"stream {self.stream}: {exc!r}") from exc
        try:
            # Another relay may create it at the same moment: JetStream answers an identical
            # add_stream with the existing stream.
            await js.add_stream(name=self.stream, subjects=self.subjects, storage=StorageType.FILE)
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise BrokerUnavailable(self.url, f"cannot create stream {self.stream}: {exc!r}") from exc
        log.info("broker.stream_created", broker="nats", stream=self.stream, subjects=self.subjects)

    async def _disconnect(self) -> None:
        nc, self._nc, self._js, self._lost = self._nc, None, None, None
        if nc is not None:
            await _close_quietly(nc)
        # A connection the server dropped leaves its subscriptions' reader tasks waiting for
        # ever; nothing else runs on this private loop between publishes, so end them all: else
        # every outage would leak some, and closing the loop would destroy them pending.
        current = asyncio.current_task()
        leftovers = [task for task in asyncio.all_tasks() if task is not current]
        for task in leftovers:
            task.cancel()
        if leftovers:
            await asyncio.wait(leftovers, timeout=CONNECT_TIMEOUT)


def _settle(acks: list[asyncio.Future[PubAck]]) -> None:
    """Cancel the acks still awaited (it frees their slots in the client's in-flight limit) and
    retrieve the errors of the failed ones, so none is logged as never retrieved."""
    for ack in acks:
        if not ack.done():
            ack.cancel()
        elif not ack.cancelled():
            ack.exception()


async def _close_quietly(nc: Client) -> None:
    if nc.is_closed:
        return
    try:
        await asyncio.wait_for(nc.close(), timeout=CONNECT_TIMEOUT)
    # Closing a connection that is already broken can fail in the client; it is gone either way.
    except Exception as exc:
        log.debug("broker.close_failed", broker="nats", error=repr(exc))
