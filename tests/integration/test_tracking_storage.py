"""Issue #13: storage that does not grow with every scan, partial pushes, and history that runs
forward per aggregate whichever process's clock stamped it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

import lifecycle
from lifecycle.store.tables import idempotency
from tests.builders import SHIPMENT, SYSTEM, buyer, order_in, rows, signed


def push(clock: lifecycle.Clock, *events: dict[str, object]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"carrier": "dhl", "events": list(events)}).encode()
    return body, signed(body, clock)


def scan(n: int, at: datetime, status: str = "in_transit") -> dict[str, object]:
    return {"event_id": f"scan-{n}", "waybill": SHIPMENT["waybill"], "status": status,
            "at": at.isoformat(), "location": "Leipzig hub", "detail": "processed"}


def test_scans_are_rows_of_their_own_and_the_order_does_not_grow(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "in_transit")
    engine.ingest_tracking("dhl", *push(clock, scan(0, clock.now())))
    size_after_one = len(json.dumps(engine.get("order", order.id).data))

    for n in range(1, 200):
        engine.ingest_tracking("dhl", *push(clock, scan(n, clock.now())))

    assert len(json.dumps(engine.get("order", order.id).data)) == size_after_one
    first, *recorded = engine.tracking(order.id)
    assert (first.event_id, first.status, first.moved) == (None, "in_transit", True)
    assert [r.event_id for r in recorded] == [f"scan-{n}" for n in range(200)]
    assert {(r.status, r.moved, r.carrier, r.location) for r in recorded} == {
        ("in_transit", False, "dhl", "Leipzig hub")}


def test_an_idempotency_record_keeps_a_reference_not_a_copy_of_the_aggregate(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "in_transit")
    engine.ingest_tracking("dhl", *push(clock, scan(1, clock.now(), status="delivered")))

    with engine.database.connect() as conn:
        results = [row.result for row in conn.execute(select(idempotency.c.result))]
    assert results == [{"state": "delivered", "version": order.version + 1}]


def test_a_redelivered_scan_is_recorded_once(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "in_transit")
    body, headers = push(clock, scan(1, clock.now()))
    engine.ingest_tracking("dhl", body, headers)
    before = rows(engine)

    engine.ingest_tracking("dhl", body, headers)

    assert rows(engine) == before
    assert [r.event_id for r in engine.tracking(order.id)] == [None, "scan-1"]


def test_an_event_with_an_unknown_status_does_not_hold_back_the_rest_of_its_push(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "shipped")
    body, headers = push(clock, scan(1, clock.now()), scan(2, clock.now(), status="teleported"),
                         scan(3, clock.now(), status="delivered"))

    with pytest.raises(lifecycle.EventsRejected) as refused:
        engine.ingest_tracking("dhl", body, headers)

    assert [(n, event_id) for n, event_id, _ in refused.value.rejected] == [(1, "scan-2")]
    assert "teleported" in str(refused.value)
    assert "1 of 3 events rejected" in str(refused.value)
    assert [o.state for o in refused.value.applied] == ["in_transit", "delivered"]
    assert engine.get("order", order.id).state == "delivered"
    # The carrier retries the same push: the good events are not applied twice.
    before = rows(engine)
    with pytest.raises(lifecycle.EventsRejected):
        engine.ingest_tracking("dhl", body, headers)
    assert rows(engine) == before


def test_history_runs_forward_per_aggregate_when_another_process_clock_is_behind(
    db_url: str, clock: lifecycle.SimulatedClock
) -> None:
    ahead = lifecycle.open(db_url, clock=clock)
    behind_clock = lifecycle.SimulatedClock(clock.now() - timedelta(minutes=5))
    behind = lifecycle.open(db_url, clock=behind_clock)
    order = order_in(ahead, clock, "awaiting_payment")
    clock.advance(timedelta(minutes=1))
    ahead.fire("order", order.id, "pay", buyer())

    behind.fire("order", order.id, "request_cancel", buyer(), {"reason": "changed my mind"})

    moments = [entry.at for entry in ahead.history("order", order.id)]
    assert moments == sorted(moments)
    assert moments[-1] == moments[-2]  # stamped no earlier than the transition before it
    ahead.close()
    behind.close()


def test_scans_recorded_through_the_sandbox_keep_exception_kinds_on_the_order(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "shipped")
    engine.fire("order", order.id, "tracking_exception", SYSTEM,
                {"kind": "customs_hold", "event_id": "x-1"})
    engine.fire("order", order.id, "tracking_exception", SYSTEM,
                {"kind": "customs_hold", "event_id": "x-2"})

    assert engine.get("order", order.id).data["exception_kinds"] == ["customs_hold"]
    assert [(r.status, r.exception_kind) for r in engine.tracking(order.id)] == [
        ("exception", "customs_hold"), ("exception", "customs_hold")]
