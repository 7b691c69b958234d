"""Standard Webhooks (SPEC §7): our signing and verifying agree with the reference library and
with Node's crypto as docs/webhooks.md shows it; rotation, tolerance on the engine's clock,
headers, the body cap and secrets.

The `standardwebhooks` library reads the system clock when it verifies, so it only ever sees
timestamps of now; our `verify` is given ``now`` and is tested on simulated time."""

from __future__ import annotations

import array
import base64
import json
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import standardwebhooks

from lifecycle import SimulatedClock
from lifecycle.adapters import (
    MAX_BODY_BYTES,
    TOLERANCE,
    AdapterError,
    SandboxGateway,
    SignatureInvalid,
    sign,
    signed_headers,
    verify,
    webhook_key,
)
from lifecycle.adapters.ports import Money
from lifecycle.adapters.webhooks import delivery

KEY = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
OLD_KEY = b"an older key, still accepted for a while"
BODY = b'{"event_id": "evt_1", "kind": "captured"}'
AT = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
DOCS = Path(__file__).parents[2] / "docs" / "webhooks.md"


def check(headers: dict[str, str], *, keys: tuple[bytes, ...] = (KEY,), body: bytes = BODY,
          now: datetime = AT) -> None:
    verify(keys, body, headers, now=now, adapter="sandbox", operation="parse_callback")


# --- the reference library as an oracle ---------------------------------------------------


def test_our_signature_of_a_message_is_the_reference_librarys() -> None:
    ours = sign(KEY, "msg_1", int(AT.timestamp()), BODY)

    theirs = standardwebhooks.Webhook(SECRET).sign("msg_1", AT, BODY.decode())

    assert ours == theirs
    assert ours.startswith("v1,")


def test_the_reference_library_verifies_a_delivery_we_signed() -> None:
    now = datetime.now(UTC)  # the library checks the timestamp against the system clock
    headers = signed_headers(KEY, "msg_1", now, BODY)

    assert standardwebhooks.Webhook(SECRET).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(SECRET).verify(BODY + b" ", headers)


def test_we_verify_a_delivery_the_reference_library_signed() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    headers = {"webhook-id": "msg_2", "webhook-timestamp": str(int(now.timestamp())),
               "webhook-signature": standardwebhooks.Webhook(SECRET).sign("msg_2", now, BODY.decode())}

    check(headers, keys=(webhook_key(SECRET),), now=now)
    with pytest.raises(SignatureInvalid, match="no signature matches"):
        check(headers, keys=(OLD_KEY,), now=now)


# --- rotation -----------------------------------------------------------------------------


def test_during_a_rotation_either_secret_verifies_and_a_third_does_not() -> None:
    by_new = signed_headers(KEY, "msg_1", AT, BODY)
    by_old = signed_headers(OLD_KEY, "msg_1", AT, BODY)

    check(by_new, keys=(KEY, OLD_KEY))
    check(by_old, keys=(KEY, OLD_KEY))
    with pytest.raises(SignatureInvalid, match="any of the 2 configured"):
        check(signed_headers(b"someone else", "msg_1", AT, BODY), keys=(KEY, OLD_KEY))


def test_a_header_with_several_signatures_verifies_if_one_matches() -> None:
    headers = signed_headers(KEY, "msg_1", AT, BODY)
    forged = sign(b"someone else", "msg_1", int(AT.timestamp()), BODY)
    headers["webhook-signature"] = f"v1a,c29tZXRoaW5n {forged} {headers['webhook-signature']}"

    check(headers)


def test_a_sandbox_with_two_secrets_signs_with_the_first_and_accepts_both() -> None:
    clock = SimulatedClock(AT)
    gateway = SandboxGateway(clock=clock, secrets=[SECRET, OLD_KEY])
    gateway.capture("o-1", Money(Decimal("5.00"), "USD"), "k-1")
    [message] = gateway.take_callbacks()

    check(dict(message.headers), keys=(KEY,), body=message.body)
    with pytest.raises(SignatureInvalid):
        check(dict(message.headers), keys=(OLD_KEY,), body=message.body)
    old = signed_headers(OLD_KEY, "msg_x", clock.now(), message.body)
    assert gateway.parse_callback(message.body, old).kind == "captured"


# --- tolerance, on the clock we are given --------------------------------------------------


@pytest.mark.parametrize(("skew", "verdict"), [
    (-TOLERANCE, None), (TOLERANCE, None),
    (-TOLERANCE - timedelta(seconds=1), "too old: 301s before"),
    (TOLERANCE + timedelta(seconds=1), "too new: 301s after"),
    (timedelta(days=-3), "too old"),
])
def test_the_timestamp_must_be_within_the_tolerance_of_the_engines_clock(
    skew: timedelta, verdict: str | None
) -> None:
    headers = signed_headers(KEY, "msg_1", AT + skew, BODY)

    if verdict is None:
        check(headers, now=AT)
        return
    with pytest.raises(SignatureInvalid, match=verdict):
        check(headers, now=AT)


def test_a_sandbox_delivery_is_signed_when_taken_so_a_late_one_is_never_stale() -> None:
    clock = SimulatedClock(AT)
    gateway = SandboxGateway(clock=clock, secret=KEY)
    gateway.inject_callback(late=True)
    gateway.capture("o-1", Money(Decimal("5.00"), "USD"), "k-1")
    assert gateway.take_callbacks() == []

    clock.advance(timedelta(hours=6))  # far beyond the tolerance of when it was posted
    [late] = gateway.take_callbacks()

    assert late.headers["webhook-timestamp"] == str(int(clock.now().timestamp()))
    assert gateway.parse_callback(late.body, late.headers).kind == "captured"


def test_a_duplicate_delivery_keeps_its_message_id() -> None:
    gateway = SandboxGateway(clock=SimulatedClock(AT), secret=KEY)
    gateway.inject_callback(duplicate=True)
    gateway.capture("o-1", Money(Decimal("5.00"), "USD"), "k-1")

    first, second = gateway.take_callbacks()

    assert first.headers["webhook-id"] == second.headers["webhook-id"] == json.loads(first.body)["event_id"]


# --- headers and bodies -------------------------------------------------------------------


@pytest.mark.parametrize("dropped", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_each_missing_header_is_named(dropped: str) -> None:
    headers = signed_headers(KEY, "msg_1", AT, BODY)
    del headers[dropped]

    with pytest.raises(SignatureInvalid, match=f"unsigned: no {dropped} header"):
        check(headers)


@pytest.mark.parametrize(("name", "value", "says"), [
    ("webhook-timestamp", "2026-03-01T12:00:00Z", "malformed webhook-timestamp"),
    ("webhook-timestamp", "-5", "malformed webhook-timestamp"),
    ("webhook-timestamp", "1" * 40, "malformed webhook-timestamp"),
    ("webhook-signature", "sha256=abcdef", "malformed webhook-signature"),
    ("webhook-signature", "v1,not base64!", "malformed webhook-signature"),
    ("webhook-signature", "v2,AAAA", "malformed webhook-signature"),
])
def test_a_malformed_header_is_refused_saying_which(name: str, value: str, says: str) -> None:
    headers = {**signed_headers(KEY, "msg_1", AT, BODY), name: value}

    with pytest.raises(SignatureInvalid, match=says):
        check(headers)


def test_a_changed_id_or_timestamp_breaks_the_signature() -> None:
    headers = signed_headers(KEY, "msg_1", AT, BODY)

    with pytest.raises(SignatureInvalid, match="no signature matches"):
        check({**headers, "webhook-id": "msg_2"})
    with pytest.raises(SignatureInvalid, match="no signature matches"):
        check({**headers, "webhook-timestamp": str(int(AT.timestamp()) + 1)})


@pytest.mark.parametrize("as_text", [False, True])
def test_a_body_over_the_cap_is_refused_before_it_is_hashed(as_text: bool) -> None:
    body = b"[" + b" " * MAX_BODY_BYTES + b"]"
    headers = signed_headers(KEY, "msg_1", AT, body)

    with pytest.raises(AdapterError, match=f"over {MAX_BODY_BYTES} bytes") as refused:
        check(headers, body=body.decode() if as_text else body)  # type: ignore[arg-type]
    assert not isinstance(refused.value, SignatureInvalid)


def test_the_cap_counts_bytes_not_items_of_a_memoryview() -> None:
    body = memoryview(array.array("Q", [0] * (MAX_BODY_BYTES // 8 + 1)))  # 8 bytes an item

    with pytest.raises(AdapterError, match="over"):
        check(signed_headers(KEY, "msg_1", AT, body.tobytes()), body=body)  # type: ignore[arg-type]


def test_text_under_the_cap_in_characters_but_over_it_in_bytes_is_refused() -> None:
    body = "é" * (MAX_BODY_BYTES // 2 + 1)

    with pytest.raises(AdapterError, match="over"):
        check(signed_headers(KEY, "msg_1", AT, body.encode()), body=body)  # type: ignore[arg-type]


def test_a_body_at_the_cap_is_verified() -> None:
    body = b" " * MAX_BODY_BYTES
    check(signed_headers(KEY, "msg_1", AT, body), body=body)


# --- secrets -----------------------------------------------------------------------------


def test_a_whsec_secret_is_its_base64_part_and_bytes_are_the_key() -> None:
    assert webhook_key(SECRET) == KEY
    assert webhook_key(SECRET.rstrip("=")) == KEY  # unpadded, as some providers print it
    assert webhook_key(KEY) == KEY


@pytest.mark.parametrize(("secret", "says"), [
    ("lifecycle-sandbox-secret", "whsec_<base64>"),
    ("whsec_not*base64", "not valid base64"),
    ("whsec_", "must not be empty"),
    (b"", "must not be empty"),
    (42, "got int"),
])
def test_a_malformed_secret_is_refused_clearly(secret: object, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        webhook_key(secret)  # type: ignore[arg-type]


def test_a_malformed_secret_never_appears_in_the_error() -> None:
    with pytest.raises(ValueError, match="not valid base64") as refused:
        webhook_key("whsec_hunter2-secret!!")
    assert "hunter2" not in str(refused.value)


# --- Node.js, as docs/webhooks.md shows it -------------------------------------------------


def docs_snippet(language: str) -> str:
    found = re.findall(rf"```{language}\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    assert len(found) == 1, f"one {language} block in docs/webhooks.md"
    return found[0]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_we_verify_what_the_node_snippet_in_the_docs_signs() -> None:
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run([node, "-e", docs_snippet("js")], env={"WEBHOOK_SECRET": SECRET},
                          capture_output=True, text=True, timeout=60, check=True)
    sent = json.loads(done.stdout)
    body = sent["body"].encode()
    now = datetime.fromtimestamp(int(sent["headers"]["webhook-timestamp"]), UTC)

    check(sent["headers"], body=body, now=now + timedelta(seconds=30))
    check(sent["headers"], keys=(OLD_KEY, webhook_key(SECRET)), body=body, now=now)
    with pytest.raises(SignatureInvalid, match="no signature matches"):
        check(sent["headers"], body=body + b" ", now=now)


def test_headers_read_once_are_not_read_again_and_repeats_stay_joined_once() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    signed = signed_headers(KEY, "msg_1", at, BODY)
    pairs = [(name.upper().encode(), value.encode()) for name, value in signed.items()]
    pairs.append((b"X-Note", b"one"))
    pairs.append((b"x-note", b"two"))
    _, read = delivery(BODY, pairs, adapter="test", operation="parse")
    _, again = delivery(BODY, read, adapter="test", operation="parse")
    assert again is read
    assert read["x-note"] == "one, two"
    verify([KEY], BODY, read, now=at, adapter="test", operation="parse")
