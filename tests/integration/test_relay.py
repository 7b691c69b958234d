"""The relay loop (issue #17) against a broker held in memory: what it publishes, in what order,
what it marks, and how it rides out a broker that fails. The real brokers, a killed relay and
two relays at once are tests/integration/test_relay_kill.py and test_relay_pg.py."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from structlog.testing import capture_logs

import lifecycle
from lifecycle.cli import cli
from tests.builders import active_seller, buyer, order_payload


class MemoryBroker:
    """A `lifecycle.Broker` that keeps what it confirmed; ``confirm`` caps how many of the next
    batch it confirms, ``down`` makes the next publishes fail."""

    def __init__(self) -> None:
        self.stored: list[lifecycle.Message] = []
        self.confirm: int | None = None
        self.down = 0
        self.batches = 0

    def publish(self, messages: Sequence[lifecycle.Message]) -> int:
        self.batches += 1
        if self.down:
            self.down -= 1
            raise lifecycle.BrokerUnavailable("memory://", "down")
        n = len(messages) if self.confirm is None else min(self.confirm, len(messages))
        self.confirm = None
        self.stored.extend(messages[:n])
        return n

    def close(self) -> None:
        pass


class Stop(threading.Event):
    """Set after ``rounds`` waits: the relay stops after that many rounds with nothing to do."""

    def __init__(self, rounds: int) -> None:
        super().__init__()
        self.rounds = rounds

    def wait(self, timeout: float | None = None) -> bool:
        self.rounds -= 1
        if self.rounds <= 0:
            self.set()
        return self.is_set()


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def shop(request: pytest.FixtureRequest) -> lifecycle.Engine:
    engine: lifecycle.Engine = request.getfixturevalue("engine" if request.param == "sqlite"
                                                       else "pg_engine")
    active_seller(engine)
    for _ in range(5):
        order = engine.create("order", buyer(), order_payload())
        engine.fire("order", order.id, "pay", buyer())
    return engine


def relay_of(engine: lifecycle.Engine, broker: MemoryBroker, **options: object) -> lifecycle.Relay:
    return lifecycle.Relay(engine, broker, name="r-1", target="memory://", **options)  # type: ignore[arg-type]


def test_the_relay_publishes_every_event_once_in_order_and_marks_it(shop: lifecycle.Engine) -> None:
    broker = MemoryBroker()
    events = shop.events(limit=1000)

    published = relay_of(shop, broker, batch=4).run(Stop(rounds=1))

    assert published == len(events) == len(broker.stored)
    assert broker.batches == -(-len(events) // 4)  # batches of 4 until one came back short
    assert [m.id for m in broker.stored] == [e.id for e in events]
    first = broker.stored[0]
    assert orjson.loads(first.body) == events[0].body
    assert first.subject == f"lifecycle.{events[0].name}"
    assert first.key == f"{events[0].kind}/{events[0].aggregate_id}"
    status = shop.relay_status()
    assert status.backlog == 0
    assert [(r.name, r.published) for r in status.relays] == [("r-1", len(events))]


def test_a_partly_confirmed_batch_marks_only_the_confirmed_part(shop: lifecycle.Engine) -> None:
    broker = MemoryBroker()
    broker.confirm = 3
    relay = relay_of(shop, broker, batch=10)
    backlog = shop.relay_status().backlog

    with pytest.raises(lifecycle.BrokerUnavailable, match="confirmed 3 of 10"):
        relay.run_once()
    assert shop.relay_status().backlog == backlog - 3

    relay.run(Stop(rounds=1))
    assert [m.id for m in broker.stored] == [e.id for e in shop.events(limit=1000)]


def test_a_broker_outage_is_waited_out_and_logged_once(shop: lifecycle.Engine) -> None:
    broker = MemoryBroker()
    broker.down = 3
    with capture_logs() as logs:
        published = relay_of(shop, broker, backoff=lifecycle.Backoff(0.0, 0.0)).run(Stop(rounds=4))

    assert published == shop.relay_status().last_position
    assert [e["event"] for e in logs if e["event"].startswith("relay.")] == \
        ["relay.unavailable", "relay.back"]
    assert shop.relay_status().backlog == 0


def test_an_empty_prefix_publishes_under_the_event_name(shop: lifecycle.Engine) -> None:
    broker = MemoryBroker()
    relay_of(shop, broker, prefix="").run_once()
    assert broker.stored[0].subject == shop.events(limit=1)[0].name


def test_the_cli_refuses_a_bad_broker_url_before_touching_the_database(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/none.db"
    for url, message in [("kafka://h:1", "no broker for scheme 'kafka'"),
                         ("nats://:4222", "no host")]:
        result = CliRunner().invoke(cli, ["--db", db, "relay", "--to", url])
        assert result.exit_code == 2, result.output
        assert message in result.output
    result = CliRunner().invoke(cli, ["--db", db, "relay"])
    assert result.exit_code == 2
    assert "--to URL is required" in result.output
    assert not (tmp_path / "none.db").exists()


def _sample(text: str, name: str, target: str) -> float:
    line = next((line for line in text.splitlines()
                 if line.startswith(f'{name}{{target="{target}"}}')), None)
    return 0.0 if line is None else float(line.rsplit(" ", 1)[1])


def test_the_relay_counts_what_it_published_and_its_failures_in_the_metrics(
        shop: lifecycle.Engine) -> None:
    target = f"memory://{id(shop)}"
    broker = MemoryBroker()
    broker.down = 1
    relay = lifecycle.Relay(shop, broker, name="r-m", target=target,  # type: ignore[arg-type]
                            backoff=lifecycle.Backoff(0.0, 0.0))

    relay.run(Stop(rounds=2))

    text = lifecycle.metrics_exposition(shop)[0].decode()
    assert _sample(text, "lifecycle_relay_published_total", target) == len(broker.stored) > 0
    assert _sample(text, "lifecycle_relay_failures_total", target) == 1
    assert _sample(text, "lifecycle_relay_batch_seconds_count", target) >= 1
    assert "lifecycle_outbox_backlog 0.0" in text
