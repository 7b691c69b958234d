"""The `lifecycle` command (SPEC §8): reads with ``--json`` carry their documented keys; refusals
are one ``error:`` line on stderr with exit code 1 (domain) or 2 (usage, payload) and write
nothing. Most tests drive click's `CliRunner`; one runs the installed console script."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import lifecycle
from lifecycle.cli import cli
from tests.builders import (
    CHECKLIST,
    DOCUMENTS,
    FEE,
    ORDER_TOTAL,
    REGISTRATION,
    buyer,
    console_script,
    order_in,
    order_payload,
    profile,
    rows,
    seller_in,
)

AGGREGATE_KEYS = {"kind", "id", "state", "version", "machine_version", "data"}
HISTORY_KEYS = {"seq", "trigger", "source", "dest", "actor", "payload", "idempotency_key", "at"}
SHIP = {"checklist": CHECKLIST, "carrier": "dhl", "waybill": "1234567891"}


def run(db_url: str, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--db", db_url, *args], input=input)


def ok_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return json.loads(result.stdout)


def assert_one_line_error(result: Result, code: int) -> str:
    """Exit ``code``, nothing on stdout, one ``error:`` line on stderr; the line."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


# --- create, fire, show, history, list ------------------------------------------------------


def test_create_prints_the_new_seller_and_stores_it(db_url: str, engine: lifecycle.Engine) -> None:
    created = ok_json(run(db_url, "create", "seller", "--as", "seller:s-1",
                          "--payload", json.dumps(REGISTRATION), "--json"))

    assert set(created) == AGGREGATE_KEYS
    assert (created["kind"], created["id"], created["state"], created["version"]) == (
        "seller", "s-1", "registered", 1,
    )
    assert created["data"]["company_name"] == REGISTRATION["company_name"]
    assert engine.get("seller", "s-1").state == "registered"


def test_create_without_json_says_kind_id_state_and_version(db_url: str, engine: lifecycle.Engine) -> None:
    result = run(db_url, "create", "seller", "--as", "seller:s-1", "--payload", json.dumps(REGISTRATION))

    assert result.exit_code == 0, result.output
    assert result.stdout == "seller s-1 is registered (version 1)\n"


def test_create_order_with_chosen_id_and_payload_from_a_file(
    db_url: str, engine: lifecycle.Engine, tmp_path: Path
) -> None:
    seller_in(engine, "active")
    payload_file = tmp_path / "order.json"
    payload_file.write_text(json.dumps(order_payload()), encoding="utf-8")

    created = ok_json(run(db_url, "create", "order", "--id", "o-1001", "--as", "buyer:b-1",
                          "--payload", f"@{payload_file}", "--json"))

    assert (created["id"], created["state"]) == ("o-1001", "awaiting_payment")
    assert created["data"]["total"] == ORDER_TOTAL
    assert engine.get("order", "o-1001").data["buyer"] == "b-1"


def test_fire_moves_the_aggregate_and_prints_it(db_url: str, engine: lifecycle.Engine) -> None:
    seller_in(engine, "registered")

    moved = ok_json(run(db_url, "fire", "seller", "s-1", "submit_documents", "--as", "seller:s-1",
                        "--payload", json.dumps(DOCUMENTS), "--json"))

    assert set(moved) == AGGREGATE_KEYS
    assert (moved["state"], moved["version"]) == ("under_review", 2)
    assert engine.get("seller", "s-1").state == "under_review"
    text = run(db_url, "fire", "seller", "s-1", "approve", "--as", "operator:ana")
    assert text.stdout == "seller s-1 is authenticated (version 3)\n"


def test_fire_reads_the_payload_from_stdin(db_url: str, engine: lifecycle.Engine) -> None:
    seller_in(engine, "authenticated")

    result = run(db_url, "fire", "seller", "s-1", "pay_fee", "--as", "seller:s-1", "--payload", "-",
                 input=json.dumps(FEE))

    assert result.exit_code == 0, result.output
    assert engine.get("seller", "s-1").state == "fee_paid"


def test_fire_with_the_same_key_twice_writes_once(
    db_url: str, engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    args = ("fire", "order", order.id, "pay", "--as", "system:gateway", "--key", "cb-1",
            "--payload", json.dumps({"amount": ORDER_TOTAL}), "--json")
    first = ok_json(run(db_url, *args))
    after_first = rows(engine)

    second = ok_json(run(db_url, *args))

    assert second == first
    assert rows(engine) == after_first


def test_fire_with_a_stale_expected_version_is_a_conflict_that_writes_nothing(
    db_url: str, engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "paid")
    before = rows(engine)

    result = run(db_url, "fire", "order", order.id, "ship_offline", "--as", "seller:s-1",
                 "--payload", json.dumps(SHIP), "--expect-version", "1")

    line = assert_one_line_error(result, 1)
    assert "expected version 1" in line
    assert rows(engine) == before
    ok = run(db_url, "fire", "order", order.id, "ship_offline", "--as", "seller:s-1",
             "--payload", json.dumps(SHIP), "--expect-version", "2")
    assert ok.exit_code == 0, ok.output


def test_show_json_has_state_version_data_and_what_the_actor_may_fire(
    db_url: str, engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "paid")

    as_seller = ok_json(run(db_url, "show", "order", order.id, "--as", "seller:s-1", "--json"))
    as_buyer = ok_json(run(db_url, "show", "order", order.id, "--as", "buyer:b-1", "--json"))
    as_stranger = ok_json(run(db_url, "show", "order", order.id, "--as", "buyer:b-2", "--json"))

    assert set(as_seller) == AGGREGATE_KEYS | {"allowed", "commands"}
    assert (as_seller["kind"], as_seller["id"], as_seller["state"], as_seller["version"]) == (
        "order", order.id, "paid", 2,
    )
    # The data as kept, its amounts with the currency's minor units (issue #19): "0" is "0.00".
    kept = dict(engine.get("order", order.id).data)
    assert as_seller["data"] == {**kept, "coupon_amount": "0.00", "refunded": "0.00"}
    assert sorted(as_seller["allowed"]) == ["book_pickup", "ship_offline"]
    assert as_buyer["allowed"] == ["request_cancel"]
    assert as_stranger["allowed"] == []


def test_show_without_json_lists_state_version_and_allowed(
    db_url: str, engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "paid")

    result = run(db_url, "show", "order", order.id, "--as", "buyer:b-1")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:5] == [
        f"order {order.id}", "  state    paid", "  version  2",
        f"  may run  lifecycle order cancel {order.id} --reason TEXT",
        "  only the system: ship_deadline (timer)",
    ]


def test_history_json_lists_every_transition_with_its_documented_keys(
    db_url: str, engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    engine.fire("order", order.id, "pay", lifecycle.Actor("system", "gateway"),
                {"amount": ORDER_TOTAL}, idempotency_key="cb-1")

    entries = ok_json(run(db_url, "history", "order", order.id, "--json"))

    assert all(set(entry) == HISTORY_KEYS for entry in entries)
    assert [(e["seq"], e["trigger"], e["source"], e["dest"]) for e in entries] == [
        (1, "place", None, "awaiting_payment"), (2, "pay", "awaiting_payment", "paid"),
    ]
    assert [e["actor"] for e in entries] == ["buyer:b-1", "system:gateway"]
    assert [e["idempotency_key"] for e in entries] == [None, "cb-1"]
    assert entries[1]["payload"] == {"amount": ORDER_TOTAL}
    assert entries[0]["payload"]["seller"] == "s-1"
    assert {datetime.fromisoformat(e["at"]) for e in entries} == {clock.now()}


def test_history_without_json_is_a_table_of_transitions(
    db_url: str, engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "paid")

    result = run(db_url, "history", "order", order.id)

    assert result.exit_code == 0, result.output
    header, rule, *body = result.stdout.splitlines()
    assert header.split() == ["seq", "at", "trigger", "from", "to", "actor", "key"]
    assert set(rule) == {"-", " "}
    # "at" is a date and a time: two columns once split on spaces.
    cells = [line.split() for line in body]
    assert [[row[0], *row[3:]] for row in cells] == [
        ["1", "place", "-", "awaiting_payment", "buyer:b-1"],
        ["2", "pay", "awaiting_payment", "paid", "buyer:b-1"],
    ]
    assert {f"{row[1]} {row[2]}" for row in cells} == {"2026-01-01 00:00:00"}


def test_list_json_pages_through_aggregates_in_id_order_and_filters_by_state(
    db_url: str, engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    seller_in(engine, "active")
    for n in range(3):
        engine.create("order", buyer(), order_payload(), id=f"o-{n}")
    engine.fire("order", "o-1", "pay", buyer(), {})

    first_page = ok_json(run(db_url, "list", "order", "--limit", "2", "--json"))
    second_page = ok_json(run(db_url, "list", "order", "--limit", "2", "--after", "o-1", "--json"))
    paid = ok_json(run(db_url, "list", "order", "--state", "paid", "--json"))
    sellers = ok_json(run(db_url, "list", "seller", "--json"))

    assert all(set(item) == AGGREGATE_KEYS for item in first_page + second_page + paid)
    assert [item["id"] for item in first_page] == ["o-0", "o-1"]
    assert [item["id"] for item in second_page] == ["o-2"]
    assert [(item["id"], item["state"], item["version"]) for item in paid] == [("o-1", "paid", 2)]
    assert [(item["id"], item["state"]) for item in sellers] == [("s-1", "active")]


def test_list_of_a_kind_with_none_prints_an_empty_json_list(db_url: str, engine: lifecycle.Engine) -> None:
    assert ok_json(run(db_url, "list", "dispute", "--json")) == []


# --- refusals: one line, the right exit code, nothing written -------------------------------


@pytest.fixture
def paid_order(engine: lifecycle.Engine, clock: lifecycle.SimulatedClock) -> lifecycle.Aggregate:
    return order_in(engine, clock, "paid")


@pytest.mark.parametrize(
    ("args", "code", "named"),
    [
        pytest.param(("fire", "order", "o-missing", "pay", "--as", "buyer:b-1"), 1,
                     ["o-missing"], id="unknown-id"),
        pytest.param(("fire", "order", "{order}", "ship_offline", "--as", "buyer:b-1",
                      "--payload", json.dumps(SHIP)), 1, ["buyer", "ship_offline"], id="wrong-role"),
        pytest.param(("fire", "order", "{order}", "ship_offline", "--as", "seller:s-2",
                      "--payload", json.dumps(SHIP)), 1, ["seller", "s-2", "ship_offline"],
                     id="not-their-order"),
        pytest.param(("fire", "order", "{order}", "ship_offline", "--as", "seller:s-1",
                      "--payload", json.dumps({**SHIP, "checklist": {**CHECKLIST, "colour": False}})),
                     1, ["shipping.checklist"], id="guard"),
        pytest.param(("fire", "order", "{order}", "pay", "--as", "buyer:b-1", "--payload", '{"amount": '),
                     2, ["payload", "JSON"], id="malformed-json"),
        pytest.param(("fire", "order", "{order}", "pay", "--as", "buyer:b-1", "--payload", "[1, 2]"),
                     2, ["payload", "object"], id="json-not-an-object"),
        pytest.param(("fire", "order", "{order}", "ship_offline", "--as", "seller:s-1",
                      "--payload", json.dumps({**SHIP, "carrier": "dhl!"})), 2, ["carrier"],
                     id="invalid-field"),
        pytest.param(("fire", "order", "{order}", "pay", "--as", "boss"), 2, ["boss", "ROLE:ID"],
                     id="actor-without-role"),
        pytest.param(("fire", "order", "{order}", "pay", "--as", "king:b-1"), 2, ["king"],
                     id="unknown-role"),
        pytest.param(("create", "widget", "--as", "buyer:b-1"), 2, ["widget", "order"], id="unknown-kind"),
        pytest.param(("show", "widget", "w-1"), 2, ["widget"], id="unknown-kind-show"),
        pytest.param(("history", "order", "o-missing"), 1, ["o-missing"], id="history-unknown-id"),
        pytest.param(("fire", "order", "{order}", "pay"), 2, ["--as"], id="missing-as"),
        pytest.param(("fire", "order", "{order}", "pay", "--as", "buyer:b-1", "--bogus"), 2,
                     ["--bogus"], id="unknown-option"),
        pytest.param(("order", "pay"), 2, ["ID"], id="missing-argument"),
        pytest.param(("nonsense",), 2, ["nonsense"], id="unknown-command"),
    ],
)
def test_refusal_is_one_error_line_with_its_exit_code_and_writes_nothing(
    db_url: str, engine: lifecycle.Engine, paid_order: lifecycle.Aggregate,
    args: tuple[str, ...], code: int, named: list[str],
) -> None:
    before = rows(engine)

    result = run(db_url, *(arg.replace("{order}", paid_order.id) for arg in args))

    line = assert_one_line_error(result, code)
    for word in named:
        assert word in line
    assert rows(engine) == before
    assert engine.get("order", paid_order.id) == paid_order


def test_wrong_state_names_the_state_the_trigger_and_what_is_allowed(
    db_url: str, engine: lifecycle.Engine, paid_order: lifecycle.Aggregate
) -> None:
    before = rows(engine)

    result = run(db_url, "fire", "order", paid_order.id, "pay", "--as", "buyer:b-1")

    line = assert_one_line_error(result, 1)
    assert line == (
        f"error: order {paid_order.id} is paid: cannot pay; allowed from paid: "
        "book_pickup, request_cancel, ship_deadline, ship_offline"
    )
    assert rows(engine) == before


def test_missing_as_is_a_usage_error_that_writes_nothing(
    db_url: str, engine: lifecycle.Engine, paid_order: lifecycle.Aggregate
) -> None:
    before = rows(engine)

    result = run(db_url, "fire", "order", paid_order.id, "ship_offline", "--payload", json.dumps(SHIP))

    assert result.exit_code == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert "Missing option '--as'" in result.stderr
    assert rows(engine) == before


def test_terminal_state_refusal_says_nothing_is_allowed(
    db_url: str, engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "cancelled")

    result = run(db_url, "fire", "order", order.id, "pay", "--as", "buyer:b-1")

    line = assert_one_line_error(result, 1)
    assert "is cancelled: cannot pay" in line
    assert "none (terminal state)" in line


# --- db --------------------------------------------------------------------------------------


def test_db_upgrade_creates_the_schema_then_finds_it_at_the_newest(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fresh.db"

    first = run(url, "db", "upgrade")
    before, after = lifecycle.upgrade_schema(url)

    assert first.exit_code == 0, first.output
    assert before == after
    assert first.stdout == f"schema at {after} (was empty)\n"
    assert run(url, "db", "upgrade").stdout == f"schema at {after} (was {after})\n"


# --- the installed console script -----------------------------------------------------------


def test_installed_console_script_onboards_a_seller_and_takes_a_paid_order(tmp_path: Path) -> None:
    script = console_script()
    url = f"sqlite:///{tmp_path}/cli.db"
    env = {key: value for key, value in os.environ.items() if key != "LIFECYCLE_DB"}

    def lifecycle_cmd(*args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([script, "--db", url, *args], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=60, check=False)
        assert done.returncode == expect, (args, done.returncode, done.stdout, done.stderr)
        return done

    assert lifecycle_cmd("db", "upgrade").stdout.startswith("schema at ")
    steps = [
        ("create", "seller", "--as", "seller:acme", "--payload", json.dumps(REGISTRATION)),
        ("fire", "seller", "acme", "submit_documents", "--as", "seller:acme",
         "--payload", json.dumps(DOCUMENTS)),
        ("fire", "seller", "acme", "approve", "--as", "operator:ana"),
        ("fire", "seller", "acme", "pay_fee", "--as", "seller:acme", "--payload", json.dumps(FEE)),
        ("fire", "seller", "acme", "complete_profile", "--as", "seller:acme",
         "--payload", json.dumps(profile("acme"))),
    ]
    said = [lifecycle_cmd(*step).stdout for step in steps]
    assert said == [
        "seller acme is registered (version 1)\n",
        "seller acme is under_review (version 2)\n",
        "seller acme is authenticated (version 3)\n",
        "seller acme is fee_paid (version 4)\n",
        "seller acme is active (version 5)\n",
    ]

    placed = lifecycle_cmd("create", "order", "--id", "o-1001", "--as", "buyer:ana",
                           "--payload", json.dumps(order_payload("acme")))
    assert placed.stdout == "order o-1001 is awaiting_payment (version 1)\n"
    paid = json.loads(lifecycle_cmd("fire", "order", "o-1001", "pay", "--as", "system:gateway",
                                    "--key", "pay-cb-1", "--payload",
                                    json.dumps({"amount": ORDER_TOTAL}), "--json").stdout)
    assert (paid["id"], paid["state"], paid["version"]) == ("o-1001", "paid", 2)

    refused = lifecycle_cmd("fire", "order", "o-1001", "pay", "--as", "buyer:ana", expect=1)
    assert refused.stdout == ""
    assert refused.stderr.startswith("error: order o-1001 is paid: cannot pay")
    assert len(refused.stderr.splitlines()) == 1

    with lifecycle.open(url) as engine:
        assert engine.get("order", "o-1001").state == "paid"
        assert [e.trigger for e in engine.history("order", "o-1001")] == ["place", "pay"]
        assert engine.replay("seller", "acme") == "active"
