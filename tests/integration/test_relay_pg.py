"""Relays against the real brokers (issue #17): two relays at once on PostgreSQL, RabbitMQ end to
end, a relay stopped with SIGTERM, and one started before its broker is up."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

import lifecycle
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
from tests.builders import console_script, paid_orders


def in_seq_order(messages: Sequence[object], seq_of: dict[str, int]) -> bool:
    """Each aggregate's events, first arrivals only, in seq order."""
    seqs: dict[str, list[int]] = defaultdict(list)
    seen: set[str] = set()
    for message in messages:
        id, key = message.id, message.key  # type: ignore[attr-defined]
        if id not in seen:
            seen.add(id)
            seqs[key].append(seq_of[id])
    return all(s == sorted(s) for s in seqs.values())


class Recording:
    """A broker that remembers what it confirmed, so two relays' shares can be compared."""

    def __init__(self, broker: lifecycle.Broker) -> None:
        self.broker = broker
        self.confirmed: list[str] = []

    def publish(self, messages: Sequence[lifecycle.Message]) -> int:
        n = self.broker.publish(messages)
        self.confirmed.extend(m.id for m in messages[:n])
        return n

    def close(self) -> None:
        self.broker.close()


@pytest.fixture
def stream() -> Iterator[str]:
    name = f"T{uuid.uuid4().hex[:12].upper()}"
    yield name
    assert NATS_URL
    delete_stream(NATS_URL, name)


@needs_nats
@pytest.mark.pg
def test_two_relays_at_once_share_the_backlog_and_keep_each_aggregate_in_order(
        pg_url: str, pg_engine: lifecycle.Engine, stream: str) -> None:
    assert NATS_URL
    total = paid_orders(pg_engine, 1000)
    prefix = f"p{uuid.uuid4().hex[:8]}"
    stop = threading.Event()
    recordings: list[Recording] = []
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            recording = Recording(lifecycle.broker_for(f"{NATS_URL}?stream={stream}", prefix=prefix))
            recordings.append(recording)
            with lifecycle.open(pg_url) as engine:
                lifecycle.Relay(engine, recording, name=name, target="nats", prefix=prefix,
                                batch=50, interval=0.02).run(stop)
            recording.close()
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(f"relay-{n}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while pg_engine.relay_status().backlog and time.monotonic() < deadline and not errors:
        time.sleep(0.1)
    stop.set()
    for thread in threads:
        thread.join(30)

    assert errors == []
    status = pg_engine.relay_status()
    assert status.backlog == 0
    first, second = (set(r.confirmed) for r in recordings)
    assert first.isdisjoint(second)  # no event published by both
    assert len(first) + len(second) == total
    assert sorted(r.published for r in status.relays) == sorted([len(first), len(second)])
    assert min(len(first), len(second)) > 0  # both did part of the work
    events = pg_engine.events(limit=10_000)
    stored = stream_messages(NATS_URL, stream)
    assert stored
    assert {m.id for m in stored} == {e.id for e in events}
    assert in_seq_order(stored, {e.id: e.seq for e in events})


def relay_process(db: str, to: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([console_script(), "--db", db, "--log-level", "info", "relay",
                                 "--to", to, "--interval", "0.05", *extra],
                                stdout=out, stderr=out)


def wait_for(condition: object, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.1)


@needs_amqp
def test_rabbitmq_gets_each_event_once_with_its_id_routing_key_and_order(
        engine: lifecycle.Engine, tmp_path: Path) -> None:
    assert AMQP_URL
    total = paid_orders(engine, 40)
    exchange, queue = f"x-{uuid.uuid4().hex[:8]}", f"q-{uuid.uuid4().hex[:8]}"
    db = engine.database.url.render_as_string(hide_password=False)
    to = f"{AMQP_URL}?exchange={exchange}&queue={queue}"
    try:
        process = relay_process(db, to, tmp_path / "relay.log")
        wait_for(lambda: engine.relay_status().backlog == 0)
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        received = queue_messages(AMQP_URL, queue)
    finally:
        delete_exchange_and_queue(AMQP_URL, exchange, queue)

    events = {e.id: e for e in engine.events(limit=10_000)}
    assert len(received) == total == len(events)
    assert {m.id for m in received} == set(events)
    assert all(m.subject == f"lifecycle.{events[m.id].name}" for m in received)
    assert all(json.loads(m.body) == events[m.id].body for m in received)
    assert in_seq_order(received, {id: e.seq for id, e in events.items()})
    assert f"published {total} events" in (tmp_path / "relay.log").read_text()


@needs_nats_server
def test_a_relay_started_before_its_broker_waits_then_publishes_and_sigterm_marks_nothing_twice(
        engine: lifecycle.Engine, tmp_path: Path) -> None:
    total = paid_orders(engine, 20)
    port, metrics = free_port(), free_port()
    db = engine.database.url.render_as_string(hide_password=False)
    log = tmp_path / "relay.log"
    process = relay_process(db, f"nats://127.0.0.1:{port}?stream=LATE", log,
                            "--metrics-port", str(metrics))
    wait_for(lambda: "relay.unavailable" in log.read_text(), 15)
    assert process.poll() is None  # still running, backing off
    assert engine.relay_status().backlog == total

    nats = PrivateNats(tmp_path / "nats")
    nats.port, nats.url = port, f"nats://127.0.0.1:{port}"
    with nats:
        wait_for(lambda: engine.relay_status().backlog == 0, 40)
        scraped = urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5).read()
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        stored = stream_messages(nats.url, "LATE")
    assert "relay.back" in log.read_text()
    assert len(stored) == total == len({m.id for m in stored})
    assert [r.published for r in engine.relay_status().relays] == [total]
    target = f'target="nats://127.0.0.1:{port}?stream=LATE"'
    lines = scraped.decode().splitlines()
    assert f"lifecycle_relay_published_total{{{target}}} {float(total)}" in lines
    assert any(line.startswith(f"lifecycle_relay_failures_total{{{target}}}") and
               float(line.split()[-1]) >= 1 for line in lines)
