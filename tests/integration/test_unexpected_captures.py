"""Issue #13, money [SPEC §6, §7]: a capture that cannot pay its order never pays it, is kept,
and goes back to the buyer through the gateway; a redelivered callback is judged by its key."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from click.testing import CliRunner

import lifecycle
from lifecycle.cli import cli
from tests.builders import ORDER_TOTAL, buyer, order_in, rows, signed


def callback(clock: lifecycle.Clock, order_id: str, amount: str = ORDER_TOTAL, currency: str = "USD",
             event_id: str = "evt-1", payment_ref: str = "psp-1") -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"event_id": event_id, "kind": "captured", "order_id": order_id,
                       "payment_ref": payment_ref, "amount": amount, "currency": currency,
                       "reason": None}).encode()
    return body, signed(body, clock)


def captures(engine: lifecycle.Engine) -> list[lifecycle.Aggregate]:
    return engine.find("unexpected_capture")


def refunded_by_gateway(engine: lifecycle.Engine) -> Decimal:
    gateway: Any = engine.adapters.payments
    return Decimal(gateway.total("refund"))


def test_a_capture_in_another_currency_does_not_pay_the_order_and_is_refunded(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "awaiting_payment")

    with pytest.raises(lifecycle.CaptureRefused) as refused:
        engine.ingest_payment_callback("sandbox", *callback(engine.clock, order.id, currency="EUR"))

    assert "EUR" in str(refused.value)
    assert "USD" in str(refused.value)
    assert refused.value.refunded
    assert engine.get("order", order.id).state == "awaiting_payment"
    assert engine.balances("order", order.id) == {}
    [kept] = captures(engine)
    assert kept.id == refused.value.capture
    assert (kept.state, kept.data["amount"], kept.data["currency"]) == ("refunded", ORDER_TOTAL, "EUR")
    assert engine.balances("unexpected_capture", kept.id) == {
        "EUR": {"buyer": Decimal("0.00"), "escrow": Decimal("0.00")}}
    assert refunded_by_gateway(engine) == Decimal(ORDER_TOTAL)
    assert engine.check() == []


def test_a_capture_of_another_amount_does_not_pay_the_order(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "awaiting_payment")

    with pytest.raises(lifecycle.CaptureRefused, match=r"totals 52\.48 USD"):
        engine.ingest_payment_callback("sandbox", *callback(engine.clock, order.id, amount="1.00"))

    assert engine.get("order", order.id).state == "awaiting_payment"
    assert [c.state for c in captures(engine)] == ["refunded"]


def test_the_same_event_with_another_amount_is_an_idempotency_mismatch(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    paid = engine.ingest_payment_callback("sandbox", *callback(engine.clock, order.id))
    assert paid is not None
    assert paid.state == "paid"
    before = rows(engine)

    with pytest.raises(lifecycle.IdempotencyMismatch):
        engine.ingest_payment_callback("sandbox", *callback(engine.clock, order.id, amount="1.00"))

    assert rows(engine) == before
    again = engine.ingest_payment_callback("sandbox", *callback(engine.clock, order.id))
    assert again is not None
    assert (again.state, again.version) == ("paid", paid.version)
    assert rows(engine) == before


def test_a_capture_for_a_cancelled_order_is_recorded_and_refunded_once(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "cancelled")
    body, headers = callback(engine.clock, order.id)

    with pytest.raises(lifecycle.CaptureRefused, match="is cancelled") as refused:
        engine.ingest_payment_callback("sandbox", body, headers)
    assert refused.value.state == "cancelled"
    before = rows(engine)

    with pytest.raises(lifecycle.CaptureRefused):  # the gateway delivers it again
        engine.ingest_payment_callback("sandbox", body, headers)

    assert rows(engine) == before
    assert [(c.state, c.data["order"]) for c in captures(engine)] == [("refunded", order.id)]
    assert refunded_by_gateway(engine) == Decimal(ORDER_TOTAL)


def test_a_second_capture_for_a_paid_order_is_refunded_and_the_first_stands(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    engine.ingest_payment_callback("sandbox", *callback(engine.clock, order.id))

    with pytest.raises(lifecycle.CaptureRefused, match="paid with psp-1"):
        engine.ingest_payment_callback(
            "sandbox", *callback(engine.clock, order.id, event_id="evt-2", payment_ref="psp-2"))

    paid = engine.get("order", order.id)
    assert (paid.state, paid.data["payment_ref"]) == ("paid", "psp-1")
    assert engine.balances("order", order.id)["USD"]["escrow"] == Decimal(ORDER_TOTAL)
    [kept] = captures(engine)
    assert (kept.state, kept.data["payment_ref"]) == ("refunded", "psp-2")


def test_a_capture_for_no_order_is_recorded_and_refunded(engine: lifecycle.Engine) -> None:
    with pytest.raises(lifecycle.CaptureRefused, match="there is no order o-nobody"):
        engine.ingest_payment_callback("sandbox", *callback(engine.clock, "o-nobody"))

    assert [c.state for c in captures(engine)] == ["refunded"]


def test_a_refund_the_gateway_fails_is_reported_by_check_and_retried_by_the_timer(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "cancelled")
    gateway: Any = engine.adapters.payments
    gateway.fail_next("refund", "error")

    with pytest.raises(lifecycle.CaptureRefused, match="refund is pending") as refused:
        engine.ingest_payment_callback("sandbox", *callback(engine.clock, order.id))

    assert not refused.value.refunded
    assert [v.rule for v in engine.check()] == ["payment.unexpected_capture_refunded"]
    assert engine.run_due_timers() == 1
    assert [c.state for c in captures(engine)] == ["refunded"]
    assert engine.check() == []


def test_paying_in_another_currency_is_refused_naming_the_field(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    before = rows(engine)

    with pytest.raises(lifecycle.InvalidPayload, match="currency: the order is in USD, not EUR"):
        engine.fire("order", order.id, "pay", buyer(), {"amount": ORDER_TOTAL, "currency": "EUR"})

    assert rows(engine) == before


def test_a_gateway_event_id_a_key_could_not_hold_still_pays_once(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    body, headers = callback(engine.clock, order.id, event_id="evt 1 from a gateway that uses spaces")

    paid = engine.ingest_payment_callback("sandbox", body, headers)
    before = rows(engine)
    again = engine.ingest_payment_callback("sandbox", body, headers)

    assert paid is not None
    assert again is not None
    assert (paid.state, again.version) == ("paid", paid.version)
    assert rows(engine) == before


def test_lifecycle_check_shows_the_unexpected_captures(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, db_url: str
) -> None:
    order = order_in(engine, clock, "cancelled")
    with pytest.raises(lifecycle.CaptureRefused):
        engine.ingest_payment_callback("sandbox", *callback(engine.clock, order.id))

    shown = CliRunner().invoke(cli, ["--db", db_url, "check"])
    as_json = CliRunner().invoke(cli, ["--db", db_url, "check", "--json"])

    assert shown.exit_code == 0, shown.output
    assert "unexpected captures (kept and refunded, never paid an order): 1 refunded, 0 refund " \
        "pending" in shown.output
    assert json.loads(as_json.output)["unexpected_captures"] == {"refunded": 1, "refund_pending": 0}
