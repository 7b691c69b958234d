"""Idempotency keys (SPEC §2): a retry returns the first result and writes nothing; the same key
for a different request is refused and writes nothing; a refusal does not use the key up."""

from __future__ import annotations

from typing import Any

import pytest

import lifecycle
from tests.builders import (
    CHECKLIST,
    ORDER_TOTAL,
    REGISTRATION,
    SYSTEM,
    buyer,
    order_in,
    order_payload,
    rows,
    seller,
    seller_in,
)

GATEWAY = lifecycle.Actor("system", "gateway")
SHIP = {"checklist": CHECKLIST, "carrier": "dhl", "waybill": "1234567891"}


def pay(engine: lifecycle.Engine, order_id: str, key: str, **changes: Any) -> lifecycle.Aggregate:
    """The payment gateway's callback: the same call a retrying gateway makes."""
    payload = {"amount": ORDER_TOTAL, "payment_ref": "psp-991", **changes.pop("payload", {})}
    actor = changes.pop("actor", GATEWAY)
    return engine.fire("order", order_id, "pay", actor, payload, idempotency_key=key, **changes)


def history_with_key(engine: lifecycle.Engine, order_id: str, key: str) -> list[lifecycle.HistoryEntry]:
    return [e for e in engine.history("order", order_id) if e.idempotency_key == key]


# --- a retry returns the first result ------------------------------------------------------


def test_retried_fire_returns_first_result_and_writes_nothing(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    first = pay(engine, order.id, "cb-1")
    after_first = rows(engine)

    second = pay(engine, order.id, "cb-1")

    assert (second.state, second.version) == ("paid", 2)
    assert second == first
    assert dict(second.data) == dict(first.data)
    assert rows(engine) == after_first
    assert len(history_with_key(engine, order.id, "cb-1")) == 1
    assert engine.get("order", order.id) == first


def test_retried_fire_records_the_key_on_its_single_history_row(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    pay(engine, order.id, "cb-1")
    pay(engine, order.id, "cb-1")
    pay(engine, order.id, "cb-1")

    history = engine.history("order", order.id)
    assert [(e.seq, e.trigger, e.idempotency_key) for e in history] == [
        (1, "place", None), (2, "pay", "cb-1"),
    ]
    assert rows(engine)["outbox"] == rows(engine)["history"] == 2 + 5  # order + the seller's 5


def test_retried_create_returns_the_same_order(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    seller_in(engine, "active")
    first = engine.create("order", buyer(), order_payload(), idempotency_key="place-1")
    after_first = rows(engine)

    second = engine.create("order", buyer(), order_payload(), idempotency_key="place-1")

    assert second.id == first.id
    assert second == first
    assert rows(engine) == after_first
    assert [a.id for a in engine.find("order")] == [first.id]


def test_retried_create_with_chosen_id_returns_it_instead_of_already_exists(
    engine: lifecycle.Engine,
) -> None:
    created = engine.create("seller", seller("s-9"), REGISTRATION, id="s-9", idempotency_key="reg-9")
    before = rows(engine)

    again = engine.create("seller", seller("s-9"), REGISTRATION, id="s-9", idempotency_key="reg-9")

    assert again == created
    assert rows(engine) == before
    with pytest.raises(lifecycle.AlreadyExists):
        engine.create("seller", seller("s-9"), REGISTRATION, id="s-9")


def test_same_payload_with_keys_in_another_order_is_the_same_request(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    first = engine.fire("order", order.id, "pay", GATEWAY,
                        {"amount": ORDER_TOTAL, "payment_ref": "psp-1"}, idempotency_key="cb-1")
    before = rows(engine)

    second = engine.fire("order", order.id, "pay", GATEWAY,
                         {"payment_ref": "psp-1", "amount": ORDER_TOTAL}, idempotency_key="cb-1")

    assert second == first
    assert rows(engine) == before


def test_retry_after_the_order_moved_on_still_returns_the_first_result(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    paid = pay(engine, order.id, "cb-1")
    shipped = engine.fire("order", order.id, "ship_offline", seller(), SHIP)
    before = rows(engine)

    late = pay(engine, order.id, "cb-1")

    assert (late.kind, late.id, late.state, late.version) == (paid.kind, paid.id, "paid", 2)
    assert late.data == shipped.data  # a reference to the first result, not a copy of it
    assert engine.get("order", order.id) == shipped
    assert rows(engine) == before


def test_key_is_remembered_across_engines_on_the_same_database(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, db_url: str
) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    first = pay(engine, order.id, "cb-1")
    before = rows(engine)

    with lifecycle.open(db_url, clock=clock) as other:
        second = pay(other, order.id, "cb-1")

    assert second == first
    assert rows(engine) == before


# --- the same key for a different request ---------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"payload": {"payment_ref": "psp-other"}}, id="other-payload"),
        pytest.param({"actor": lifecycle.Actor("system", "other-gateway")}, id="other-actor-id"),
        pytest.param({"actor": buyer()}, id="other-actor-role"),
    ],
)
def test_same_key_with_a_different_fire_request_is_refused_and_writes_nothing(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, change: dict[str, Any]
) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    pay(engine, order.id, "cb-1")
    before = rows(engine)

    with pytest.raises(lifecycle.IdempotencyMismatch) as refused:
        pay(engine, order.id, "cb-1", **change)

    assert refused.value.key == "cb-1"
    assert "cb-1" in str(refused.value)
    assert rows(engine) == before
    assert engine.get("order", order.id).version == 2


def test_same_key_with_another_trigger_is_refused_and_writes_nothing(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    pay(engine, order.id, "cb-1")
    before = rows(engine)

    # ship_offline would be valid from paid: only the key makes this a refusal.
    with pytest.raises(lifecycle.IdempotencyMismatch):
        engine.fire("order", order.id, "ship_offline", seller(), SHIP, idempotency_key="cb-1")

    assert rows(engine) == before
    assert engine.get("order", order.id).state == "paid"


def test_same_key_on_another_order_is_refused_and_writes_nothing(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    first = order_in(engine, clock, "awaiting_payment")
    other = order_in(engine, clock, "awaiting_payment")
    pay(engine, first.id, "cb-1")
    before = rows(engine)

    with pytest.raises(lifecycle.IdempotencyMismatch):
        pay(engine, other.id, "cb-1")

    assert rows(engine) == before
    assert engine.get("order", other.id).state == "awaiting_payment"


def test_retry_with_its_now_stale_expected_version_returns_first_result_not_conflict(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    # expected_version is a precondition of the first delivery, not part of the request.
    order = order_in(engine, clock, "awaiting_payment")
    first = pay(engine, order.id, "cb-1", expected_version=1)
    before = rows(engine)

    assert pay(engine, order.id, "cb-1", expected_version=1) == first
    assert rows(engine) == before


def test_same_key_used_by_create_then_by_fire_is_refused(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    seller_in(engine, "active")
    order = engine.create("order", buyer(), order_payload(), idempotency_key="k-1")
    before = rows(engine)

    with pytest.raises(lifecycle.IdempotencyMismatch):
        engine.fire("order", order.id, "pay", buyer(), {}, idempotency_key="k-1")

    assert rows(engine) == before


def test_retried_create_with_another_payload_is_refused_and_writes_nothing(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    seller_in(engine, "active")
    engine.create("order", buyer(), order_payload(), idempotency_key="place-1")
    before = rows(engine)

    with pytest.raises(lifecycle.IdempotencyMismatch):
        engine.create("order", buyer(), order_payload(currency="EUR"), idempotency_key="place-1")
    with pytest.raises(lifecycle.IdempotencyMismatch):
        engine.create("order", buyer("b-2"), order_payload(), idempotency_key="place-1")

    assert rows(engine) == before
    assert len(engine.find("order")) == 1


# --- a refusal leaves the key unused --------------------------------------------------------


def test_guard_refusal_with_a_key_does_not_use_the_key_up(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    before = rows(engine)

    with pytest.raises(lifecycle.GuardFailed) as refused:
        pay(engine, order.id, "cb-1", payload={"amount": "1.00"})
    assert refused.value.rule == "payment.amount"
    assert rows(engine) == before

    paid = pay(engine, order.id, "cb-1")

    assert (paid.state, paid.version) == ("paid", 2)
    assert [e.idempotency_key for e in engine.history("order", order.id)] == [None, "cb-1"]


def test_wrong_state_refusal_with_a_key_does_not_use_the_key_up(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    before = rows(engine)

    with pytest.raises(lifecycle.InvalidTransition):
        engine.fire("order", order.id, "ship_offline", seller(), SHIP, idempotency_key="k-1")
    assert rows(engine) == before

    # The same key now serves a different request: it was never recorded.
    paid = pay(engine, order.id, "k-1")
    after_pay = rows(engine)
    assert paid.state == "paid"
    with pytest.raises(lifecycle.IdempotencyMismatch):
        engine.fire("order", order.id, "ship_offline", seller(), SHIP, idempotency_key="k-1")
    assert rows(engine) == after_pay


def test_role_refusal_with_a_key_does_not_use_the_key_up(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "paid")
    before = rows(engine)

    with pytest.raises(lifecycle.Forbidden) as refused:
        engine.fire("order", order.id, "ship_offline", buyer(), SHIP, idempotency_key="ship-1")
    assert (refused.value.role, refused.value.trigger) == ("buyer", "ship_offline")
    assert rows(engine) == before

    moved = engine.fire("order", order.id, "ship_offline", seller(), SHIP, idempotency_key="ship-1")
    assert moved.state == "shipped"


def test_conflict_with_a_key_does_not_use_the_key_up(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    before = rows(engine)

    with pytest.raises(lifecycle.Conflict):
        pay(engine, order.id, "cb-1", expected_version=7)
    assert rows(engine) == before

    assert pay(engine, order.id, "cb-1", expected_version=1).state == "paid"


def test_redelivered_carrier_events_return_their_first_results_out_of_order(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "shipped")
    in_transit = engine.fire("order", order.id, "tracking_in_transit", SYSTEM, {"event_id": "e-1"},
                             idempotency_key="dhl-e-1")
    delivered = engine.fire("order", order.id, "tracking_delivered", SYSTEM, {"event_id": "e-2"},
                            idempotency_key="dhl-e-2")
    before = rows(engine)

    # The carrier pushes both events again, out of order.
    again = engine.fire("order", order.id, "tracking_delivered", SYSTEM, {"event_id": "e-2"},
                        idempotency_key="dhl-e-2")
    assert (again.state, again.version) == (delivered.state, delivered.version)
    again = engine.fire("order", order.id, "tracking_in_transit", SYSTEM, {"event_id": "e-1"},
                        idempotency_key="dhl-e-1")
    assert (again.state, again.version) == (in_transit.state, in_transit.version)
    assert rows(engine) == before
    assert engine.get("order", order.id).state == "delivered"
    assert engine.replay("order", order.id) == "delivered"
