"""RabbitMQ as a `Broker`, through aio-pika with publisher confirms.

``amqp://user:pass@host:port/vhost[?exchange=NAME&queue=NAME]`` (or ``amqps://``). A durable topic
exchange (default ``lifecycle``) is declared; each message goes to it persistent, with routing key
= its subject, ``message_id`` = the event's id, content type application/json and header
``Lifecycle-Aggregate``. With ``queue=``, a durable queue of that name is declared and bound with
``#``: without one, an exchange nobody has bound a queue to drops what it is sent (the broker
still confirms it), so name a queue until the consumers declare their own. RabbitMQ has no dedupe:
consumers should drop a ``message_id`` they have already handled.

Pipelining: every publish of a batch is started at once as a task, in order; aio-pika's channel
takes them through one FIFO lock, so their frames (and delivery tags) go out in that order, and
their confirms are awaited together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from urllib.parse import parse_qs

import aio_pika
import aiormq
import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

from lifecycle.brokers import BrokerUnavailable, InvalidBrokerUrl, Message, redacted, split
from lifecycle.brokers.private_loop import OnPrivateLoop

log = structlog.get_logger(__name__)

DEFAULT_EXCHANGE = "lifecycle"
BATCH_TIMEOUT = 10.0
CONNECT_TIMEOUT = 3.0
#: what a lost connection or channel raises inside aio-pika / aiormq
LOST = (aiormq.exceptions.AMQPError, ConnectionError, OSError, TimeoutError)


class RabbitMQBroker(OnPrivateLoop):
    """Publishes to one topic exchange with publisher confirms; connects on first publish and
    again after a loss."""

    def __init__(self, url: str, *, prefix: str = "lifecycle", timeout: float = BATCH_TIMEOUT,
                 connect_timeout: float = CONNECT_TIMEOUT):
        parts = split(url)
        options = parse_qs(parts.query, keep_blank_values=True)
        unknown = sorted(set(options) - {"exchange", "queue"})
        if unknown:
            raise InvalidBrokerUrl(url, f"unknown option {', '.join(unknown)} "
                                        "(amqp:// takes exchange=, queue=)")
        self.url = url
        self.prefix = prefix
        self.exchange_name = options.get("exchange", [DEFAULT_EXCHANGE])[-1]
        if not self.exchange_name:
            raise InvalidBrokerUrl(url, "empty exchange name (the default exchange routes by queue name)")
        self.queue_name = options.get("queue", [""])[-1] or None
        self._server = parts._replace(query="", fragment="").geturl()
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None

    def __repr__(self) -> str:
        return f"RabbitMQBroker({redacted(self.url)!r}, exchange={self.exchange_name!r})"


    async def _publish(self, messages: Sequence[Message]) -> int:
        exchange = await self._connected()
        tasks = [asyncio.create_task(exchange.publish(_amqp(message), routing_key=message.subject,
                                                      mandatory=False))
                 for message in messages]
        done, pending = await asyncio.wait(tasks, timeout=self._timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        confirmed, reason = 0, ""
        for task in tasks:
            if task not in done:
                reason = f"no confirm within {self._timeout:g} s"
                break
            error = task.exception()
            if error is not None:
                reason = f"not confirmed: {error!r}"
                break
            confirmed += 1
        # Retrieve every task's error, so none is logged as never retrieved.
        for task in tasks[confirmed:]:
            if task.done() and not task.cancelled():
                task.exception()
        if confirmed == 0:
            await self._disconnect()
            raise BrokerUnavailable(self.url, reason)
        if confirmed < len(messages):
            log.warning("broker.partial", broker="rabbitmq", exchange=self.exchange_name,
                        confirmed=confirmed, sent=len(messages), reason=reason)
            await self._disconnect()  # a channel that failed a confirm may be closed: start afresh
        return confirmed

    async def _connected(self) -> AbstractExchange:
        if (self._connection is not None and self._channel is not None and self._exchange is not None
                and not self._connection.is_closed and not self._channel.is_closed):
            return self._exchange
        await self._disconnect()
        try:
            # Not connect_robust: its background reconnection would not replay lost publishes
            # anyway, and the relay's back-off decides when to try again.
            connection = await aio_pika.connect(self._server, timeout=self._connect_timeout)
        except (*LOST, aio_pika.exceptions.AMQPException) as exc:
            raise BrokerUnavailable(self.url, f"cannot connect: {exc!r}") from exc
        try:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.declare_exchange(
                self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True,
                timeout=self._connect_timeout)
            if self.queue_name is not None:
                queue = await channel.declare_queue(self.queue_name, durable=True,
                                                    timeout=self._connect_timeout)
                await queue.bind(exchange, routing_key="#", timeout=self._connect_timeout)
        except (*LOST, aio_pika.exceptions.AMQPException) as exc:
            await _close_quietly(connection)
            raise BrokerUnavailable(self.url,
                                    f"cannot declare exchange {self.exchange_name}: {exc!r}") from exc
        self._connection, self._channel, self._exchange = connection, channel, exchange
        log.info("broker.connected", broker="rabbitmq", url=redacted(self.url),
                 exchange=self.exchange_name, queue=self.queue_name)
        return exchange

    async def _disconnect(self) -> None:
        connection, self._connection, self._channel, self._exchange = self._connection, None, None, None
        if connection is not None:
            await _close_quietly(connection)


def _amqp(message: Message) -> aio_pika.Message:
    return aio_pika.Message(
        message.body,
        message_id=message.id,
        content_type="application/json",
        content_encoding="utf-8",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers={"Lifecycle-Aggregate": message.key},
    )


async def _close_quietly(connection: AbstractConnection) -> None:
    if connection.is_closed:
        return
    try:
        await asyncio.wait_for(connection.close(), timeout=CONNECT_TIMEOUT)
    # Closing a broken connection can fail in the client; it is gone either way.
    except Exception as exc:
        log.debug("broker.close_failed", broker="rabbitmq", error=repr(exc))
