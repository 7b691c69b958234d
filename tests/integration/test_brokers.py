"""The relay's brokers against the real servers (issue #17): NATS JetStream at LIFECYCLE_TEST_NATS
and RabbitMQ at LIFECYCLE_TEST_AMQP (.ci/run starts both). Every test uses its own stream,
subjects, exchange and queue, and deletes them, so the shared servers are left as found."""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Iterator
from importlib import metadata
from typing import Any

import pytest

from lifecycle import brokers
from lifecycle.brokers import (
    Broker,
    BrokerUnavailable,
    InvalidBrokerUrl,
    Message,
    UnknownBroker,
    broker_for,
)
from tests.brokers import (
    AMQP_URL,
    NATS_URL,
    PrivateNats,
    delete_exchange_and_queue,
    delete_stream,
    free_port,
    needs_amqp,
    needs_nats,
    needs_nats_server,
    queue_messages,
    stream_messages,
)


def batch(prefix: str, n: int, *, start: int = 0) -> list[Message]:
    """``n`` events of two aggregates, interleaved, with distinct ids."""
    return [Message(id=f"ev-{prefix}-{i}", subject=f"{prefix}.order.{'paid' if i % 2 else 'shipped'}",
                    body=f'{{"seq": {i}}}'.encode(), key=f"order/o-{i % 2}")
            for i in range(start, start + n)]


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def stream(prefix: str) -> Iterator[str]:
    assert NATS_URL
    name = f"S_{prefix}"
    yield name
    delete_stream(NATS_URL, name)


@needs_nats
def test_nats_messages_arrive_in_order_with_their_ids(prefix: str, stream: str) -> None:
    assert NATS_URL
    sent = batch(prefix, 500)
    broker = broker_for(f"{NATS_URL}?stream={stream}", prefix=prefix)
    try:
        confirmed = broker.publish(sent)
    finally:
        broker.close()

    received = stream_messages(NATS_URL, stream)
    assert confirmed == len(sent)
    assert [(r.id, r.subject, r.body, r.key) for r in received] == [
        (m.id, m.subject, m.body, m.key) for m in sent]


@needs_nats
def test_nats_drops_a_republish_of_the_same_ids(prefix: str, stream: str) -> None:
    assert NATS_URL
    first, more = batch(prefix, 100), batch(prefix, 20, start=100)
    broker = broker_for(f"{NATS_URL}?stream={stream}", prefix=prefix)
    try:
        assert broker.publish(first) == 100
        # A relay that crashed before marking them publishes the same ids again, then new ones.
        assert broker.publish(first[50:] + more) == 70
    finally:
        broker.close()

    ids = [r.id for r in stream_messages(NATS_URL, stream)]
    assert len(ids) == 120
    assert ids == [m.id for m in first + more]


@needs_amqp
def test_rabbitmq_messages_arrive_in_order_with_their_ids(prefix: str) -> None:
    assert AMQP_URL
    exchange, queue = f"x-{prefix}", f"q-{prefix}"
    sent = batch(prefix, 500)
    broker = broker_for(f"{AMQP_URL}?exchange={exchange}&queue={queue}", prefix=prefix)
    try:
        confirmed = broker.publish(sent)
        received = queue_messages(AMQP_URL, queue)
    finally:
        broker.close()
        delete_exchange_and_queue(AMQP_URL, exchange, queue)

    assert confirmed == len(sent)
    assert [(r.id, r.subject, r.body, r.key) for r in received] == [
        (m.id, m.subject, m.body, m.key) for m in sent]


def test_an_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(UnknownBroker) as unknown:
        broker_for("kafka://127.0.0.1:9092")

    assert unknown.value.scheme == "kafka"
    assert {"nats", "amqp", "amqps"} <= set(unknown.value.known)
    assert "known: amqp, amqps, nats" in str(unknown.value)


@pytest.mark.parametrize("url", ["nats://", "amqp:///vhost", "nats://127.0.0.1:notaport",
                                 "nats://127.0.0.1:4222?stream=a.b", "nats://h:1?strem=X",
                                 "127.0.0.1:4222"])
def test_a_bad_url_is_refused_before_connecting(url: str) -> None:
    with pytest.raises(InvalidBrokerUrl):
        broker_for(url)


def test_a_missing_client_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "lifecycle.brokers.nats", raising=False)
    monkeypatch.setitem(sys.modules, "nats", None)  # "import nats" now fails as if not installed

    with pytest.raises(UnknownBroker) as missing:
        broker_for("nats://127.0.0.1:4222")

    assert missing.value.missing == "nats"
    assert "pip install 'lifecycle[nats]'" in str(missing.value)


@pytest.mark.parametrize("url", ["nats://127.0.0.1:{port}", "amqp://guest:s3cret@127.0.0.1:{port}/"])
def test_a_broker_not_listening_is_unavailable_quickly(url: str) -> None:
    broker = broker_for(url.format(port=free_port()))
    started = time.monotonic()
    try:
        with pytest.raises(BrokerUnavailable) as unavailable:
            broker.publish(batch("t", 1))
    finally:
        broker.close()

    assert time.monotonic() - started < 5
    assert "s3cret" not in str(unavailable.value)


class Recorder:
    """A plug-in broker: keeps what it is given."""

    def __init__(self, url: str, *, prefix: str):
        self.url, self.prefix = url, prefix
        self.published: list[Message] = []

    def publish(self, messages: Any) -> int:
        self.published += messages
        return len(messages)

    def close(self) -> None:
        pass


def test_a_scheme_declared_under_lifecycle_relays_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    points = [metadata.EntryPoint(name="memory", value=f"{__name__}:Recorder", group=brokers.RELAYS_GROUP),
              metadata.EntryPoint(name="other", value="x:Y", group="lifecycle.carriers")]
    monkeypatch.setattr(metadata, "entry_points",
                        lambda *, group: [ep for ep in points if ep.group == group])

    broker = broker_for("memory://anywhere", prefix="acme")

    assert isinstance(broker, Recorder)
    assert (broker.url, broker.prefix) == ("memory://anywhere", "acme")
    assert broker.publish(batch("acme", 3)) == 3
    assert "memory" in brokers.broker_schemes()


@needs_nats_server
def test_the_nats_stream_survives_a_broker_restart_and_the_same_broker_publishes_again(
        prefix: str) -> None:
    with PrivateNats() as server:
        broker = broker_for(f"{server.url}?stream=RESTART", prefix=prefix)
        try:
            assert broker.publish(batch(prefix, 10)) == 10
            server.stop()
            with pytest.raises(BrokerUnavailable):
                broker.publish(batch(prefix, 10, start=10))
            server.start()
            assert publish_when_back(broker, batch(prefix, 10, start=10)) == 10
        finally:
            broker.close()

        ids = [r.id for r in stream_messages(server.url, "RESTART")]
    assert ids == [m.id for m in batch(prefix, 20)]


def publish_when_back(broker: Broker, messages: list[Message], seconds: float = 10) -> int:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return broker.publish(messages)
        except BrokerUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@needs_nats_server
def test_a_nats_server_killed_mid_batch_confirms_only_what_the_stream_has(prefix: str) -> None:
    sent = batch(prefix, 30_000)
    with PrivateNats() as server:
        broker = broker_for(f"{server.url}?stream=KILLED", prefix=prefix)
        try:
            assert broker.publish(sent[:1]) == 1  # connected, the stream created
            killer = threading.Timer(0.2, server.kill)
            killer.start()
            try:
                confirmed = 1 + broker.publish(sent[1:])
            except BrokerUnavailable:
                confirmed = 1
            killer.join()  # the publish can fail before the old server has exited: start after
            server.start()
            # The relay publishes again from the first unconfirmed one, backing off while the
            # restarted server is not yet taking connections (it listens a moment before);
            # what the stream has already (acked but the ack lost) it drops by Nats-Msg-Id.
            assert publish_when_back(broker, sent[confirmed:confirmed + 100]) == 100
        finally:
            broker.close()
        ids = [r.id for r in stream_messages(server.url, "KILLED")]

    assert confirmed < len(sent), "the kill came too late to test anything"
    assert ids[:confirmed] == [m.id for m in sent[:confirmed]]
    assert len(ids) == len(set(ids))
    assert set(ids) >= {m.id for m in sent[:confirmed + 100]}
