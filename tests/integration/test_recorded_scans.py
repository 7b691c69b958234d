"""A carrier scan that moves no state (issue #15, decision 2; SPEC §4): a tracking row and an
``order.scan_recorded`` outbox event in one transaction, never a transition — no history row, no
new version, the order's row untouched — on SQLite and on PostgreSQL, inside a batch or not, once
however many deliveries race. Databases written before keep their ``record_tracking`` rows."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
import structlog
from click.testing import CliRunner
from prometheus_client import REGISTRY
from sqlalchemy import select
from structlog.testing import capture_logs

import lifecycle
from lifecycle.cli import cli
from lifecycle.ingestion import Ingestion
from lifecycle.store.tables import aggregates, outbox
from tests.builders import (
    SHIPMENT,
    SYSTEM,
    buyer,
    legacy_scans,
    order_in,
    order_in_dispute,
    rows,
    signed,
)


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def shop(request: pytest.FixtureRequest) -> lifecycle.Engine:
    engine: lifecycle.Engine = request.getfixturevalue("engine" if request.param == "sqlite"
                                                       else "pg_engine")
    return engine


def push(clock: lifecycle.Clock, *events: dict[str, object]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"carrier": "dhl", "events": list(events)}).encode()
    return body, signed(body, clock)


def scan(event_id: str, at: datetime, status: str = "in_transit",
         **more: object) -> dict[str, object]:
    return {"event_id": event_id, "waybill": SHIPMENT["waybill"], "status": status,
            "at": at.isoformat(), "location": "Leipzig hub", "detail": "processed", **more}


def order_row(engine: lifecycle.Engine, id: str) -> tuple[Any, ...]:
    """The order's row as stored, its update stamp included."""
    with engine.database.connect() as conn:
        found = conn.execute(select(aggregates).where(aggregates.c.id == id)).one()
    return tuple(found)


def outbox_of(engine: lifecycle.Engine, id: str) -> list[dict[str, Any]]:
    with engine.database.connect() as conn:
        return [row.body for row in conn.execute(
            select(outbox.c.body).where(outbox.c.aggregate_id == id).order_by(outbox.c.id))]


def added(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {table: after[table] - before[table] for table in after if after[table] != before[table]}


def test_a_scan_that_moves_nothing_writes_one_tracking_row_and_one_event_and_no_transition(
        shop: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order = order_in(shop, clock, "delivered")
    stored, before = order_row(shop, order.id), rows(shop)
    heard: list[dict[str, Any]] = []
    shop.subscribe("order.*", heard.append)

    applied = shop.ingest_tracking("dhl", *push(clock, scan("late-1", clock.now())))

    assert applied == [shop.get("order", order.id)] == [order]
    assert added(before, rows(shop)) == {"tracking_events": 1, "outbox": 1}
    assert order_row(shop, order.id) == stored  # state, version, data and update stamp
    assert len(shop.history("order", order.id)) == order.version
    last = shop.tracking(order.id)[-1]
    assert (last.event_id, last.status, last.moved, last.location) == (
        "late-1", "in_transit", False, "Leipzig hub")
    (event,) = outbox_of(shop, order.id)[-1:]
    assert heard == [event]
    assert {k: event[k] for k in ("version", "name", "kind", "aggregate_id", "seq", "actor",
                                  "trigger", "source", "dest")} == {
        "version": 1, "name": "order.scan_recorded", "kind": "order", "aggregate_id": order.id,
        "seq": order.version, "actor": {"role": "system", "id": "dhl"}, "trigger": None,
        "source": "delivered", "dest": "delivered"}
    assert event["payload"] == {
        "carrier": "dhl", "waybill": SHIPMENT["waybill"], "event_id": "late-1",
        "status": "in_transit", "reported_at": event["payload"]["reported_at"],
        "location": "Leipzig hub", "detail": "processed"}
    assert datetime.fromisoformat(event["payload"]["reported_at"]) == clock.now()
    assert shop.check() == []


def test_a_recorded_scan_keeps_every_key_of_its_payload_null_when_the_carrier_said_nothing(
        shop: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order = order_in(shop, clock, "completed")

    shop.ingest_tracking("dhl", *push(clock, scan("bare-1", clock.now(), location=None,
                                                   detail="")))

    payload = outbox_of(shop, order.id)[-1]["payload"]
    assert (payload["location"], payload["detail"]) == (None, None)
    assert set(payload) == {"carrier", "waybill", "event_id", "status", "reported_at",
                            "location", "detail"}


def test_a_duplicate_of_a_recorded_scan_writes_nothing(
        shop: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order = order_in(shop, clock, "in_transit")
    body, headers = push(clock, scan("dup-1", clock.now()))
    shop.ingest_tracking("dhl", body, headers)
    before = rows(shop)

    assert shop.ingest_tracking("dhl", body, headers) == []

    assert rows(shop) == before
    assert [r.event_id for r in shop.tracking(order.id)].count("dup-1") == 1


def test_a_scan_that_moves_the_order_is_still_a_transition(
        shop: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order = order_in(shop, clock, "shipped")
    before = rows(shop)

    (moved,) = shop.ingest_tracking("dhl", *push(clock, scan("move-1", clock.now())))

    assert (moved.state, moved.version) == ("in_transit", order.version + 1)
    assert shop.history("order", order.id)[-1].trigger == "tracking_in_transit"
    assert added(before, rows(shop)) == {"tracking_events": 1, "outbox": 1, "history": 1,
                                         "idempotency": 1}
    assert outbox_of(shop, order.id)[-1]["name"] == "order.in_transit"


def test_a_malformed_scan_is_refused_and_writes_nothing(
        shop: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order_in(shop, clock, "delivered")
    before = rows(shop)

    with pytest.raises(lifecycle.InvalidPayload) as refused:
        shop.ingest_tracking("dhl", *push(clock, scan("long-1", clock.now(), location="x" * 201)))

    assert refused.value.field == "location"
    assert rows(shop) == before


def test_a_recorded_scan_is_counted_and_logged_as_a_scan_not_as_a_transition(
        engine: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order = order_in(engine, clock, "delivered")
    recorded = REGISTRY.get_sample_value("lifecycle_scans_recorded_total", {"carrier": "dhl"}) or 0
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))

    with capture_logs() as logs:
        engine.ingest_tracking("dhl", *push(clock, scan("logged-1", clock.now())))

    assert REGISTRY.get_sample_value("lifecycle_scans_recorded_total",
                                     {"carrier": "dhl"}) == recorded + 1
    (line,) = [e for e in logs if e["event"] in ("transition", "tracking.recorded")]
    assert {k: line[k] for k in ("event", "id", "state", "carrier", "status", "event_id")} == {
        "event": "tracking.recorded", "id": order.id, "state": "delivered", "carrier": "dhl",
        "status": "in_transit", "event_id": "logged-1"}


# --- inside a batch -------------------------------------------------------------------------


def test_a_recorded_scan_in_a_batch_commits_with_it_and_is_heard_after(
        shop: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order = order_in(shop, clock, "delivered")
    heard: list[str] = []
    shop.subscribe("order.scan_recorded", lambda e: heard.append(e["payload"]["event_id"]))
    before = rows(shop)

    with shop.batch():
        shop.ingest_tracking("dhl", *push(clock, scan("in-batch-1", clock.now())))
        assert [e["name"] for e in shop.batch_events()] == ["order.scan_recorded"]
        assert heard == []
        assert outbox_of(shop, order.id)[-1]["name"] != "order.scan_recorded"  # not committed

    assert heard == ["in-batch-1"]
    assert added(before, rows(shop)) == {"tracking_events": 1, "outbox": 1}


def test_a_recorded_scan_is_lost_with_its_batch(
        shop: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order = order_in(shop, clock, "delivered")
    heard: list[object] = []
    shop.subscribe("*", heard.append)
    before = rows(shop)

    def give_up() -> None:
        with shop.batch():
            shop.ingest_tracking("dhl", *push(clock, scan("lost-1", clock.now())))
            shop.fire("order", order.id, "confirm_receipt", buyer())
            raise RuntimeError("the caller gives up")

    with pytest.raises(RuntimeError):
        give_up()

    assert rows(shop) == before
    assert heard == []


def test_a_duplicate_in_a_batch_leaves_the_batch_standing(
        shop: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order = order_in(shop, clock, "delivered")
    body, headers = push(clock, scan("twice-1", clock.now()))
    before = rows(shop)

    with shop.batch():
        shop.ingest_tracking("dhl", body, headers)
        assert shop.ingest_tracking("dhl", body, headers) == []
        shop.fire("order", order.id, "confirm_receipt", buyer())

    assert added(before, rows(shop)) == {"tracking_events": 1, "outbox": 2, "history": 1}
    assert shop.get("order", order.id).state == "completed"
    assert [r.event_id for r in shop.tracking(order.id)].count("twice-1") == 1


# --- deciding again in the transaction -------------------------------------------------------


def meanwhile(monkeypatch: pytest.MonkeyPatch, act: Callable[[], object]) -> None:
    """Run ``act`` (another process moving the order) after the ingestion read the order and
    before it records the scan."""
    record = Ingestion._record

    def late(self: Ingestion, *args: Any) -> Any:
        act()
        return record(self, *args)

    monkeypatch.setattr(Ingestion, "_record", late)


def test_a_scan_fires_its_trigger_when_the_order_moved_meanwhile_to_where_it_does(
        shop: lifecycle.Engine, clock: lifecycle.SimulatedClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    order, dispute = order_in_dispute(shop, clock, "shipped")
    meanwhile(monkeypatch, lambda: shop.fire("dispute", dispute.id, "withdraw", buyer()))

    (moved,) = shop.ingest_tracking("dhl", *push(clock, scan("back-1", clock.now())))

    assert moved.state == "in_transit"
    assert [h.trigger for h in shop.history("order", order.id)][-2:] == [
        "close_dispute", "tracking_in_transit"]
    assert "order.scan_recorded" not in [e["name"] for e in outbox_of(shop, order.id)]
    assert shop.check() == []


def test_a_scan_is_ignored_when_the_order_ended_meanwhile(
        shop: lifecycle.Engine, clock: lifecycle.SimulatedClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    order = order_in(shop, clock, "completed")
    before: dict[str, int] = {}

    def release() -> None:
        shop.fire("order", order.id, "release_funds", SYSTEM)
        before.update(rows(shop))

    meanwhile(monkeypatch, release)

    assert shop.ingest_tracking("dhl", *push(clock, scan("ended-1", clock.now()))) == []

    assert rows(shop) == before
    assert shop.get("order", order.id).state == "funds_released"


# --- racing deliveries -------------------------------------------------------------------------


def test_two_deliveries_racing_the_same_scan_record_it_once(
        shop: lifecycle.Engine, clock: lifecycle.SimulatedClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Both read the order and saw no such scan before either wrote: one writes, the other's
    insert finds the row and writes nothing (on PostgreSQL after waiting for the order's lock)."""
    order = order_in(shop, clock, "delivered")
    body, headers = push(clock, scan("race-1", clock.now()))
    both_read = threading.Barrier(2, timeout=10)
    meanwhile(monkeypatch, both_read.wait)
    before = rows(shop)
    results: list[object] = []

    def deliver() -> None:
        try:
            results.append(shop.ingest_tracking("dhl", body, headers))
        except Exception as error:  # reported below, not lost in the thread
            results.append(error)

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(len(r) for r in results if isinstance(r, list)) == [0, 1], results
    assert added(before, rows(shop)) == {"tracking_events": 1, "outbox": 1}
    assert shop.get("order", order.id).version == order.version


# --- databases written before: record_tracking history rows ------------------------------------


def test_legacy_record_tracking_rows_replay_and_check_passes(
        shop: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order = legacy_scans(shop, order_in(shop, clock, "delivered"), 2)

    assert shop.check() == []
    assert shop.replay("order", order.id) == "delivered"
    shop.ingest_tracking("dhl", *push(clock, scan("new-1", clock.now())))
    assert outbox_of(shop, order.id)[-1]["seq"] == order.version
    completed = shop.fire("order", order.id, "confirm_receipt", buyer())
    assert completed.version == order.version + 1
    assert shop.check() == []


def test_a_record_tracking_row_where_it_never_was_defined_is_reported(
        shop: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order = legacy_scans(shop, order_in(shop, clock, "paid"), 1)

    (violation,) = shop.check()

    assert (violation.id, violation.rule) == (order.id, "history.replays_to_state")
    assert "record_tracking" in violation.detail


def test_show_and_history_list_legacy_rows(
        db_url: str, engine: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order = legacy_scans(engine, order_in(engine, clock, "delivered"), 1)

    shown = CliRunner().invoke(cli, ["--db", db_url, "order", "show", order.id, "--json"])
    listed = CliRunner().invoke(cli, ["--db", db_url, "order", "history", order.id, "--json"])

    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["history"][-1]["trigger"] == "record_tracking"
    assert listed.exit_code == 0, listed.output
    assert [e["trigger"] for e in json.loads(listed.stdout)][-1] == "record_tracking"
