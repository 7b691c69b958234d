"""Webhooks through the engine (SPEC §7): per-adapter secrets from `lifecycle.open` and from
``LIFECYCLE_WEBHOOK_SECRETS``, the engine's clock for the tolerance, and bodies the strict JSON
reader refuses, all with nothing written."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

import lifecycle
from lifecycle.adapter_calls import SANDBOX_SECRET
from lifecycle.adapters import MAX_BODY_BYTES, PaymentEvent, SandboxGateway
from lifecycle.cli import cli
from lifecycle.cli.session import Session
from tests.builders import ORDER_TOTAL, SHIPMENT, order_in, rows, signed

NEW = b"the new gateway key, 32 bytes..."
OLD = b"the old gateway key, retiring..."
DHL = b"dhl's own key for its pushes...."


def whsec(key: bytes) -> str:
    return "whsec_" + base64.b64encode(key).decode()


def capture(order_id: str, *, amount: str = ORDER_TOTAL) -> bytes:
    return json.dumps({"event_id": "evt-1", "kind": "captured", "order_id": order_id,
                       "payment_ref": "psp-1", "amount": amount, "currency": "USD",
                       "reason": None}).encode()


@pytest.fixture
def configured(db_url: str, clock: lifecycle.SimulatedClock) -> Iterator[lifecycle.Engine]:
    secrets = {"sandbox": [whsec(NEW), OLD], "dhl": [whsec(DHL)]}
    with lifecycle.open(db_url, clock=clock, webhook_secrets=secrets) as engine:
        yield engine


@pytest.mark.parametrize("key", [NEW, OLD])
def test_a_callback_signed_with_any_configured_gateway_secret_pays(
    configured: lifecycle.Engine, clock: lifecycle.SimulatedClock, key: bytes
) -> None:
    order = order_in(configured, clock, "awaiting_payment")
    body = capture(order.id)

    configured.ingest_payment_callback("sandbox", body, signed(body, clock, key))

    assert configured.get("order", order.id).state == "paid"


def test_the_published_sandbox_secret_no_longer_verifies_once_secrets_are_configured(
    configured: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(configured, clock, "awaiting_payment")
    body = capture(order.id)
    before = rows(configured)

    with pytest.raises(lifecycle.SignatureInvalid, match="no signature matches"):
        configured.ingest_payment_callback("sandbox", body, signed(body, clock, SANDBOX_SECRET))

    assert rows(configured) == before
    assert configured.get("order", order.id).state == "awaiting_payment"


def test_secrets_are_per_adapter(configured: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> None:
    order = order_in(configured, clock, "shipped")
    scan = {"event_id": "scan-1", "waybill": SHIPMENT["waybill"], "status": "in_transit",
            "at": clock.now().isoformat()}
    body = json.dumps({"carrier": "dhl", "events": [scan]}).encode()

    with pytest.raises(lifecycle.SignatureInvalid):
        configured.ingest_tracking("dhl", body, signed(body, clock, NEW))  # the gateway's key
    moved = configured.ingest_tracking("dhl", body, signed(body, clock, DHL))
    # ups has none configured: it keeps the published sandbox secret
    ups = configured.adapters.carrier("ups")
    assert ups.parse_push(b'{"events": []}', signed(b'{"events": []}', clock)) == []

    assert [o.id for o in moved] == [order.id]
    assert configured.get("order", order.id).state == "in_transit"


def test_a_callback_signed_long_ago_on_the_engines_clock_is_refused(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    body = capture(order.id)
    headers = signed(body, clock)
    clock.advance(timedelta(minutes=5, seconds=1))
    before = rows(engine)

    with pytest.raises(lifecycle.SignatureInvalid, match="too old"):
        engine.ingest_payment_callback("sandbox", body, headers)

    assert rows(engine) == before
    assert engine.get("order", order.id).state == "awaiting_payment"


def test_a_signed_callback_with_a_duplicate_key_is_refused_and_writes_nothing(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    # A parser that keeps the first "amount" would read the order's total; Python's would keep
    # the last. Neither is right: the body is refused.
    body = capture(order.id).replace(b'"currency"', b'"amount": "0.01", "currency"')
    before = rows(engine)

    with pytest.raises(lifecycle.AdapterError, match="duplicate key 'amount'") as refused:
        engine.ingest_payment_callback("sandbox", body, signed(body, clock))

    assert not isinstance(refused.value, lifecycle.SignatureInvalid)
    assert rows(engine) == before
    assert engine.get("order", order.id).state == "awaiting_payment"


def test_a_signed_push_with_a_duplicate_key_deep_inside_is_refused(
    engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "shipped")
    body = (b'{"carrier": "dhl", "events": [{"event_id": "scan-1", "waybill": "'
            + SHIPMENT["waybill"].encode() + b'", "status": "in_transit", "status": "delivered", '
            b'"at": "' + clock.now().isoformat().encode() + b'"}]}')
    before = rows(engine)

    with pytest.raises(lifecycle.AdapterError, match="duplicate key 'status'"):
        engine.ingest_tracking("dhl", body, signed(body, clock))

    assert rows(engine) == before
    assert engine.get("order", order.id).state == "shipped"


class TrustingGateway(SandboxGateway):
    """An outside gateway that never checks a signature, nor a body's size."""

    def __init__(self, clock: lifecycle.Clock):
        super().__init__(clock=clock, secret=SANDBOX_SECRET)
        self.parsed = 0

    def parse_callback(self, body: bytes, headers: Mapping[str, str]) -> PaymentEvent:
        self.parsed += 1
        raise AssertionError("never reached with a body over the cap")


@pytest.mark.parametrize("as_text", [False, True])
def test_the_engine_caps_the_body_for_any_gateway_before_it_parses(
    db_url: str, clock: lifecycle.SimulatedClock, as_text: bool
) -> None:
    gateway = TrustingGateway(clock)
    body = b'{"pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
    with lifecycle.open(db_url, clock=clock, payments=gateway) as engine:
        before = rows(engine)

        with pytest.raises(lifecycle.AdapterError, match=f"over {MAX_BODY_BYTES} bytes"):
            engine.ingest_payment_callback("sandbox", body.decode() if as_text else body,
                                           signed(body, clock))

        assert rows(engine) == before
    assert gateway.parsed == 0


@pytest.mark.parametrize(("secrets", "says"), [
    ({"sandbox": ["not-a-whsec"]}, "'sandbox': a webhook secret given as text is whsec_<base64>"),
    ({"sandbox": "whsec_AAAA"}, "'sandbox' must list its secrets"),
    ({"dhl": []}, "'dhl': at least one webhook secret is needed"),
])
def test_open_refuses_malformed_secrets_before_touching_the_database(
    tmp_path: Path, secrets: object, says: str
) -> None:
    path = tmp_path / "never.db"

    with pytest.raises(lifecycle.InvalidPayload, match=says):
        lifecycle.open(f"sqlite:///{path}", webhook_secrets=secrets)  # type: ignore[arg-type]

    assert not path.exists()


# --- LIFECYCLE_WEBHOOK_SECRETS -------------------------------------------------------------


@pytest.mark.parametrize(("value", "says"), [
    ("{not json", "LIFECYCLE_WEBHOOK_SECRETS is not JSON lifecycle accepts"),
    ('["whsec_AAAA"]', "LIFECYCLE_WEBHOOK_SECRETS must be a JSON object"),
    ('{"sandbox": "whsec_AAAA"}', "'sandbox' must be a non-empty list"),
    ('{"sandbox": ["whsec_AAAA"], "sandbox": []}', "duplicate key 'sandbox'"),
    ('{"dhl": ["whsec_hunter2!!"]}', "'dhl' secret #1: webhook secret whsec_… is not valid base64"),
])
def test_a_malformed_secrets_variable_is_a_one_line_usage_error(
    db_url: str, monkeypatch: pytest.MonkeyPatch, value: str, says: str
) -> None:
    monkeypatch.setenv("LIFECYCLE_WEBHOOK_SECRETS", value)

    result = CliRunner().invoke(cli, ["--db", db_url, "list", "order"])

    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1
    assert says in result.stderr
    assert "hunter2" not in result.stderr


def test_the_cli_engine_verifies_with_the_secrets_from_the_variable(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIFECYCLE_WEBHOOK_SECRETS", json.dumps({"sandbox": [whsec(NEW)]}))
    lifecycle.open(db_url).close()  # only db init and db upgrade create one from the CLI
    session = Session(db_url)
    try:
        gateway = session.engine.adapters.payments
        body = b'{"kind": "captured"}'
        clock = session.engine.clock
        with pytest.raises(lifecycle.SignatureInvalid):
            gateway.parse_callback(body, signed(body, clock, SANDBOX_SECRET))
        with pytest.raises(lifecycle.AdapterError, match="malformed callback"):  # verified, then read
            gateway.parse_callback(body, signed(body, clock, NEW))
    finally:
        session.close()
