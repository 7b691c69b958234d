"""The operator's command line in the domain's words (issue 6, SPEC §8).

A scripted session runs the installed console script in subprocesses, from a fresh SQLite
file; the rest drives click's `CliRunner`. Every ``--json`` output is checked against the shapes
documented in docs/cli.md; every bad input is one ``error:`` line with its documented exit code,
and writes nothing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

import lifecycle
from lifecycle.cli import cli
from lifecycle.cli import coupon as coupon_cli
from lifecycle.cli import dispute as dispute_cli
from lifecycle.cli import order as order_cli
from lifecycle.cli import seller as seller_cli
from lifecycle.cli.actions import Field
from lifecycle.cli.options import resolve_actor
from tests.builders import REGISTRATION, console_script, order_in, order_payload, rows, seller_in

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")


def dhl(serial: int) -> str:
    """A DHL Express waybill the carrier accepts: nine digits and their mod-7 check digit."""
    body = f"{serial:09d}"
    return body + str(int(body) % 7)


REGISTER = ("--company-name", "Acme Trading Co., Ltd.", "--entity-type", "company", "--country", "CN",
            "--registration-number", "91310000MA1FL4XX", "--email", "owner@acme.example")
DOCUMENTS = ("--business-licence", "BL-1", "--payment-account-authentication", "alipay-corp-1",
             "--product", "robot", "--product", "car", "--payment-method", "alipay-corp-1")


def place(order_id: str, seller: str = "acme", buyer: str = "ana", *extra: str) -> tuple[str, ...]:
    return ("order", "place", "--id", order_id, "--as", buyer, "--seller", seller,
            "--line", "robot:2:19.99", "--currency", "USD", "--consignee-name", "Ana Silva",
            "--consignee-address", "Rua A 1, Lisboa", "--consignee-country", "PT",
            "--carrier", "dhl", "--service", "express", "--shipping-fee", "7.50",
            "--delivery-days", "20", *extra)


TOTAL = "47.48"  # 2 x 19.99 + 7.50


def ship(order_id: str, serial: int, seller: str = "acme") -> tuple[str, ...]:
    return ("order", "ship-offline", order_id, "--as", seller, "--carrier", "dhl",
            "--waybill", dhl(serial), "--confirm", "all")


# --- the scripted operator session, through the installed console script ------------------


class Terminal:
    """An operator's shell: runs ``lifecycle`` on one database and checks what it says."""

    def __init__(self, tmp_path: Path):
        self.script = console_script()
        self.url = f"sqlite:///{tmp_path}/session.db"
        self.cwd = tmp_path
        self.env = {key: value for key, value in os.environ.items() if key != "LIFECYCLE_DB"}
        self.env["USER"] = "li"

    def __call__(self, *args: str, expect: int = 0, says: str | None = None) -> str:
        done = subprocess.run([self.script, "--db", self.url, *args], capture_output=True,
                              text=True, cwd=self.cwd, env=self.env, timeout=60, check=False)
        assert done.returncode == expect, (args, done.returncode, done.stdout, done.stderr)
        if expect:
            assert done.stdout == ""
            assert len(done.stderr.splitlines()) == 1, done.stderr
            assert done.stderr.startswith("error: "), done.stderr
            if says is not None:
                assert says in done.stderr, done.stderr
            return done.stderr.strip()
        if says is not None:
            assert done.stdout == says + "\n", (args, done.stdout)
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json"))


def test_operator_session_onboards_sells_ships_and_settles_every_kind_of_dispute(tmp_path: Path) -> None:
    lc = Terminal(tmp_path)
    assert lc("db", "upgrade").startswith("schema at ")

    # A seller onboards: registers, is reviewed, pays the fee, opens the store.
    lc("seller", "register", "acme", *REGISTER, says="seller acme is registered (version 1)")
    lc("seller", "submit-documents", "acme", *DOCUMENTS, says="seller acme is under_review (version 2)")
    lc("seller", "approve", "acme", says="seller acme is authenticated (version 3)")  # as operator:li
    lc("seller", "pay-fee", "acme", "--sales-plan", "standard", "--category", "toys",
       says="seller acme is fee_paid (version 4)")
    lc("seller", "complete-profile", "acme", "--store-name", "Acme Toys", "--domain", "acme",
       says="seller acme is active (version 5)")

    # The main job: place, pay, ship offline (not as the buyer), deliver.
    lc(*place("o-1"), says="order o-1 is awaiting_payment (version 1)")
    lc("order", "pay", "o-1", "--as", "system:gateway", "--key", "pay-cb-1", "--amount", TOTAL,
       says="order o-1 is paid (version 2)")
    lc("order", "ship-offline", "o-1", "--as", "buyer:ana", "--carrier", "dhl", "--waybill", dhl(1),
       "--confirm", "all", expect=1,
       says="order o-1 is paid: buyer ana may not ship_offline: only seller may ship_offline; "
            "allowed for buyer: lifecycle order cancel o-1 --reason TEXT")
    lc(*ship("o-1", 1), says="order o-1 is shipped (version 3)")
    lc("order", "track", "o-1", "--status", "delivered", "--as", "system:dhl", "--location", "Lisboa",
       says="order o-1 is delivered (version 4)")

    # Dispute d1: a counter-offer with the goods returned, accepted; the refund is paid when the
    # return arrives, and the order resumes where it was.
    lc("dispute", "open", "o-1", "--as", "ana", "--type", "received", "--reason", "quality",
       "--refund-amount", "20.00", "--evidence", "photo of a scratched robot",
       says="dispute o-1-d1 is awaiting_seller (version 1); order o-1 is in_dispute (version 5)")
    lc("dispute", "counter", "o-1-d1", "--as", "acme", "--refund-amount", "10.00", "--return-goods",
       says="dispute o-1-d1 is negotiating (version 2)")
    lc("dispute", "accept-offer", "o-1-d1", "--as", "ana",
       says="dispute o-1-d1 is awaiting_return (version 3)")
    lc("dispute", "ship-return", "o-1-d1", "--as", "ana", "--carrier", "dhl", "--waybill", dhl(11),
       says="dispute o-1-d1 is return_in_transit (version 4)")
    lc("dispute", "confirm-return", "o-1-d1", "--as", "acme",
       says="dispute o-1-d1 is resolved_refund (version 5)")

    # Dispute d2: the buyer rejects an offer; the seller escalates; an operator decides.
    lc("dispute", "open", "o-1", "--as", "ana", "--type", "received", "--reason", "damage",
       "--refund-amount", "5.00", says="dispute o-1-d2 is awaiting_seller (version 1); "
                                      "order o-1 is in_dispute (version 7)")
    lc("dispute", "counter", "o-1-d2", "--as", "acme", "--refund-amount", "1.00")
    lc("dispute", "reject-offer", "o-1-d2", "--as", "ana", says="dispute o-1-d2 is negotiating (version 3)")
    lc("dispute", "escalate", "o-1-d2", "--as", "ana", expect=2, says="say buyer:ana or seller:ana")
    lc("dispute", "escalate", "o-1-d2", "--as", "seller:acme",
       says="dispute o-1-d2 is under_arbitration (version 4)")
    lc("dispute", "arbitrate", "o-1-d2", "--decision", "no_refund", "--note", "photos show no damage",
       says="dispute o-1-d2 is resolved_no_refund (version 5)")

    # Dispute d3: withdrawn. Then the buyer confirms and the rest of the escrow is released.
    lc("dispute", "open", "o-1", "--as", "ana", "--type", "received", "--reason", "quality",
       "--refund-amount", "5.00")
    lc("dispute", "withdraw", "o-1-d3", "--as", "ana",
       says="dispute o-1-d3 is resolved_no_refund (version 2)")
    lc("order", "confirm", "o-1", "--as", "ana", says="order o-1 is completed (version 11)")
    lc("order", "release", "o-1", says="order o-1 is funds_released (version 12)")
    released = lc.json("order", "show", "o-1")
    assert released["money"]["figures"]["refunded"] == "10.00"
    assert released["money"]["figures"]["commission"] == "1.50"  # 5% of the 29.98 goods kept
    assert released["money"]["balances"]["USD"] == {
        "buyer": "-37.48", "escrow": "0.00", "platform_fee": "1.50", "seller": "35.98",
    }
    assert [(e["trigger"], e["actor"]) for e in released["history"][-2:]] == [
        ("confirm_receipt", "buyer:ana"), ("release_funds", "operator:li")]

    # Dispute on o-2: the seller accepts the claim for everything: the order is refunded.
    for args in (place("o-2"), ("order", "pay", "o-2", "--as", "ana"), ship("o-2", 2),
                 ("order", "track", "o-2", "--status", "delivered")):
        lc(*args)
    lc("dispute", "open", "o-2", "--as", "ana", "--type", "received", "--reason", "damage",
       "--refund-amount", TOTAL)
    lc("dispute", "accept", "o-2-d1", "--as", "acme", says="dispute o-2-d1 is resolved_refund (version 2)")
    disputes = lc.json("dispute", "list", "--buyer", "ana")
    assert [(d["id"], d["state"]) for d in disputes["items"]] == [
        ("o-1-d1", "resolved_refund"), ("o-1-d2", "resolved_no_refund"), ("o-1-d3", "resolved_no_refund"),
        ("o-2-d1", "resolved_refund"),
    ]

    assert lc("check") == "ok: every history replays to its state; every ledger invariant holds\n"
    with lifecycle.open(lc.url) as engine:
        assert [engine.get("order", id).state for id in ("o-1", "o-2")] == ["funds_released", "refunded"]
        assert engine.balances("order", "o-2")["USD"]["escrow"] == 0
        assert engine.replay("seller", "acme") == "active"
        assert engine.history("seller", "acme")[2].actor == lifecycle.Actor("operator", "li")


# --- a small world, built through the CLI, for reading commands --------------------------


def invoke(db_url: str, *args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--db", db_url, *args], env=env, input=input)


def ok(db_url: str, *args: str, env: dict[str, str] | None = None) -> str:
    result = invoke(db_url, *args, env=env)
    assert result.exit_code == 0, (args, result.output)
    assert result.stderr == ""
    return result.stdout


def ok_json(db_url: str, *args: str) -> Any:
    return json.loads(ok(db_url, *args, "--json"))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An active seller; o-1 paid; o-2 delivered with dispute o-2-d1 open; coupon c-1 active
    and claimed by ana."""
    url = f"sqlite:///{tmp_path_factory.mktemp('world')}/world.db"
    now = datetime.now(UTC).replace(microsecond=0)
    steps = [
        ("seller", "register", "acme", *REGISTER),
        ("seller", "submit-documents", "acme", *DOCUMENTS),
        ("seller", "approve", "acme", "--as", "operator:li"),
        ("seller", "pay-fee", "acme", "--sales-plan", "standard", "--category", "toys"),
        ("seller", "complete-profile", "acme", "--store-name", "Acme Toys", "--domain", "acme"),
        place("o-1"), ("order", "pay", "o-1", "--as", "ana"),
        place("o-2", "acme", "bo"), ("order", "pay", "o-2", "--as", "bo"), ship("o-2", 2),
        ("order", "track", "o-2", "--status", "delivered", "--as", "system:dhl"),
        ("dispute", "open", "o-2", "--as", "bo", "--type", "received", "--reason", "damage",
         "--refund-amount", "20.00"),
        ("coupon", "create", "--id", "c-1", "--as", "acme", "--title", "Five off", "--currency", "USD",
         "--denomination", "5.00", "--threshold", "30.00",
         "--starts-at", (now - timedelta(days=1)).isoformat(),
         "--ends-at", (now + timedelta(days=30)).isoformat(), "--copies", "100"),
        ("coupon", "activate", "c-1", "--as", "acme"),
        ("coupon", "claim", "c-1", "--as", "ana"),
    ]
    ok(url, "db", "init")  # only db init and db upgrade create a database (issue #19)
    for args in steps:
        ok(url, *args)
    return url


def documented(shape: str) -> Any:
    """The example docs/cli.md gives under ``<!-- json:SHAPE -->``."""
    match = re.search(rf"<!-- json:{shape} -->\n```json\n(.*?)```", DOCS, re.DOTALL)
    assert match is not None, f"docs/cli.md documents no json:{shape}"
    return json.loads(match.group(1))


# Maps whose keys are data, not shape: compared by their values' shape only.
OPEN_MAPS = {"data", "payload", "figures", "balances"}


def same_shape(actual: Any, doc: Any, where: str = "$") -> None:
    """``actual`` has exactly the documented keys, recursively (lists: each item against the
    documented first item)."""
    if isinstance(doc, dict):
        assert isinstance(actual, dict), where
        assert set(actual) == set(doc), (where, sorted(set(actual) ^ set(doc)))
        for key, value in doc.items():
            if key in OPEN_MAPS:
                assert isinstance(actual[key], dict), f"{where}.{key}"
            elif key == "parties":
                example = next(iter(value.values()))
                for role, party in actual[key].items():
                    assert role in ("buyer", "seller")
                    same_shape(party, example, f"{where}.parties.{role}")
            else:
                same_shape(actual[key], value, f"{where}.{key}")
    elif isinstance(doc, list):
        assert isinstance(actual, list), where
        if doc:
            for n, item in enumerate(actual):
                same_shape(item, doc[0], f"{where}[{n}]")
    elif doc is not None and actual is not None:
        assert isinstance(actual, type(doc)) or (
            isinstance(doc, int | float) and isinstance(actual, int | float)), (where, actual, doc)


READS = [
    pytest.param(("seller", "show", "acme"), "show", id="seller-show"),
    pytest.param(("order", "show", "o-1", "--as", "buyer:ana"), "show", id="order-show"),
    pytest.param(("order", "show", "o-2", "--history", "0"), "show", id="order-show-in-dispute"),
    pytest.param(("dispute", "show", "o-2-d1"), "show", id="dispute-show"),
    pytest.param(("coupon", "show", "c-1"), "show", id="coupon-show"),
    pytest.param(("seller", "list"), "list", id="seller-list"),
    pytest.param(("order", "list", "--buyer", "ana"), "list", id="order-list"),
    pytest.param(("dispute", "list", "--seller", "acme"), "list", id="dispute-list"),
    pytest.param(("coupon", "list", "--state", "active"), "list", id="coupon-list"),
    pytest.param(("seller", "history", "acme"), "history", id="seller-history"),
    pytest.param(("order", "history", "o-2"), "history", id="order-history"),
    pytest.param(("dispute", "history", "o-2-d1"), "history", id="dispute-history"),
    pytest.param(("coupon", "history", "c-1"), "history", id="coupon-history"),
    pytest.param(("show", "voucher", "c-1:ana"), "generic-show", id="generic-show"),
    pytest.param(("list", "order"), "generic-list", id="generic-list"),
    pytest.param(("history", "voucher", "c-1:ana"), "history", id="generic-history"),
    pytest.param(("check",), "check", id="check"),
    pytest.param(("timers", "list"), "timers", id="timers-list"),
]


@pytest.mark.parametrize(("args", "shape"), READS)
def test_every_reading_command_prints_json_with_its_documented_keys(
    world: str, args: tuple[str, ...], shape: str
) -> None:
    printed = ok_json(world, *args)

    same_shape(printed, documented(shape))
    assert printed or shape == "check"


def test_every_writing_command_prints_the_documented_aggregate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/writes.db"
    shape = documented("aggregate")
    writes = [
        ("seller", "register", "s-9", *REGISTER),
        ("seller", "submit-documents", "s-9", *DOCUMENTS),
        ("seller", "reject", "s-9", "--reason", "licence unreadable"),
        ("seller", "resubmit", "s-9", *DOCUMENTS),
        ("seller", "approve", "s-9"),
        ("seller", "pay-fee", "s-9", "--sales-plan", "basic", "--category", "toys"),
        ("seller", "complete-profile", "s-9", "--store-name", "Nine", "--domain", "nine"),
        ("seller", "suspend", "s-9", "--reason", "counterfeit listing"),
        ("seller", "reinstate", "s-9"),
        place("o-1", "s-9", "ana"), ("order", "cancel", "o-1", "--as", "ana"),
        place("o-2", "s-9", "ana"), ("order", "pay", "o-2", "--as", "ana"),
        ("order", "cancel", "o-2", "--as", "ana", "--reason", "changed my mind"),
        ("order", "cancel", "o-2", "--reject", "--as", "s-9"),
        ("order", "book-pickup", "o-2", "--as", "s-9", "--confirm", "all", "--weight-kg", "1.2",
         "--length-cm", "30", "--width-cm", "20", "--height-cm", "10"),
        ("order", "confirm-pickup", "o-2", "--as", "s-9"),
        ("order", "track", "o-2", "--status", "exception", "--kind", "delay"),
        place("o-3", "s-9", "ana"), ("order", "pay", "o-3", "--as", "ana"),
        ("order", "cancel", "o-3", "--as", "ana", "--reason", "found it cheaper"),
        ("order", "cancel", "o-3", "--accept", "--as", "s-9"),
        ("seller", "close", "s-9"),
    ]
    ok(url, "db", "init")
    for args in writes:
        printed = ok_json(url, *args)
        same_shape(printed, shape)
    assert ok_json(url, "order", "show", "o-3")["state"] == "cancelled"
    assert ok_json(url, "order", "show", "o-2")["state"] == "shipped"
    assert ok_json(url, "seller", "show", "s-9")["state"] == "closed"


def test_dispute_open_prints_the_dispute_and_coupon_claim_the_voucher(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/w.db"
    for args in (("db", "init"), ("seller", "register", "acme", *REGISTER),
                 ("seller", "submit-documents", "acme", *DOCUMENTS), ("seller", "approve", "acme"),
                 ("seller", "pay-fee", "acme", "--sales-plan", "basic", "--category", "toys"),
                 ("seller", "complete-profile", "acme", "--store-name", "Acme", "--domain", "acme"),
                 place("o-1"), ("order", "pay", "o-1", "--as", "ana"), ship("o-1", 1),
                 ("order", "track", "o-1", "--status", "delivered")):
        ok(url, *args)

    opened = ok_json(url, "dispute", "open", "o-1", "--as", "ana", "--type", "received",
                     "--reason", "damage", "--refund-amount", "10.00")

    assert (opened["kind"], opened["id"], opened["state"]) == ("dispute", "o-1-d1", "awaiting_seller")
    assert opened["data"]["order"] == "o-1"
    now = datetime.now(UTC)
    ok(url, "coupon", "create", "--id", "c-1", "--as", "acme", "--title", "Five off", "--currency", "USD",
       "--denomination", "5.00", "--starts-at", (now - timedelta(hours=1)).isoformat(),
       "--ends-at", (now + timedelta(days=10)).isoformat(), "--copies", "2", "--product", "robot")
    ok(url, "coupon", "activate", "c-1", "--as", "acme")
    assert ok(url, "coupon", "claim", "c-1", "--as", "bo") == (
        "voucher c-1:bo is available (version 1); coupon c-1 has 1 of 2 claimed\n")
    ok(url, "coupon", "raise", "c-1", "--as", "acme", "--copies", "3")
    ok(url, "coupon", "deactivate", "c-1")  # an operator may
    ok(url, "coupon", "lower", "c-1", "--as", "acme", "--copies", "1")
    coupon = ok_json(url, "coupon", "show", "c-1")
    assert (coupon["state"], coupon["data"]["copies"], coupon["data"]["claimed"]) == ("deactivated", 1, 1)
    assert coupon["money"]["figures"] == {"denomination": "5.00"}


# --- show and list read well ----------------------------------------------------------------


def test_show_prints_state_who_may_act_deadlines_money_and_history(world: str) -> None:
    text = ok(world, "order", "show", "o-1", "--history", "2", env={"USER": "li"})

    lines = text.splitlines()
    assert lines[:4] == ["order o-1", "  state    paid", "  version  2", "  as       operator:li"]
    assert lines[4] == "who may act"
    assert [line.split(None, 2) if line[2] != " " else ["", "", line.strip()] for line in lines[7:12]] == [
        ["buyer", "ana", "lifecycle order cancel o-1 --reason TEXT"],
        ["seller", "acme", "lifecycle order book-pickup o-1"],
        ["", "", "lifecycle order ship-offline o-1"],
        ["operator", "li", "-"],
        ["system", "only", "the system: ship_deadline (timer)"]]
    assert "deadlines" in lines
    deadline = next(line for line in lines if line.startswith("  ship_deadline")).split()
    assert deadline[:2] == ["ship_deadline", "pending"]
    assert re.fullmatch(r"6d \d\dh\d\dm", " ".join(deadline[-2:]))
    assert "money (USD)" in lines
    assert "  total          47.48" in lines
    assert "  balance        buyer -47.48  escrow 47.48" in lines
    assert "history (last 2 of 2)" in lines
    assert lines[-1].split()[3:] == ["pay", "awaiting_payment", "paid", "buyer:ana"]


def test_show_of_a_disputed_order_shows_its_paused_deadline(world: str) -> None:
    shown = ok_json(world, "order", "show", "o-2")

    assert shown["state"] == "in_dispute"
    assert [(d["trigger"], d["status"]) for d in shown["deadlines"]] == [("auto_confirm", "paused")]
    assert shown["deadlines"][0]["left_seconds"] > 0
    assert shown["parties"]["buyer"] == {"id": "bo", "allowed": [], "commands": []}


def test_list_filters_by_buyer_seller_state_and_time_and_pages(
    db_url: str, engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    for n, buyer_id in enumerate(("b-1", "b-2", "b-1", "b-2", "b-1")):
        order_in(engine, clock, "paid" if n % 2 else "awaiting_payment", buyer_id=buyer_id)
        clock.advance(timedelta(days=1))
    seller_in(engine, "active", "s-2")
    order_in(engine, clock, "awaiting_payment", buyer_id="b-1", seller_id="s-2")
    every = ok_json(db_url, "order", "list", "--limit", "100")["items"]
    by_time = {order["id"]: order["data"]["placed_at"] for order in every}

    b1 = ok_json(db_url, "order", "list", "--buyer", "b-1")
    s2 = ok_json(db_url, "order", "list", "--seller", "s-2")
    paid = ok_json(db_url, "order", "list", "--state", "paid")
    since = ok_json(db_url, "order", "list", "--since", "2026-01-03")
    until = ok_json(db_url, "order", "list", "--until", "2026-01-02T00:00:00Z")
    first = ok_json(db_url, "order", "list", "--buyer", "b-1", "--limit", "2")
    rest = ok_json(db_url, "order", "list", "--buyer", "b-1", "--limit", "2", "--after", first["next_after"])

    assert len(every) == 6
    assert {o["data"]["buyer"] for o in b1["items"]} == {"b-1"}
    assert len(b1["items"]) == 4
    assert b1["next_after"] is None
    assert [o["data"]["seller"] for o in s2["items"]] == ["s-2"]
    assert {o["state"] for o in paid["items"]} == {"paid"}
    assert len(paid["items"]) == 2
    assert {o["id"] for o in since["items"]} == {i for i, t in by_time.items() if t >= "2026-01-03"}
    assert {o["id"] for o in until["items"]} == {i for i, t in by_time.items() if t < "2026-01-02"}
    assert len(first["items"]) == 2
    assert first["next_after"] == first["items"][-1]["id"]
    assert [o["id"] for o in first["items"] + rest["items"]] == [o["id"] for o in b1["items"]]
    table = ok(db_url, "order", "list", "--buyer", "b-1", "--limit", "2").splitlines()
    assert table[0].split() == ["id", "state", "buyer", "seller", "total", "currency", "placed"]
    assert table[-1] == f"(more: --after {first['next_after']})"


# --- who acts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "kind", "trigger", "expected"), [
    ("buyer:b-1", "order", "pay", ("buyer", "b-1")),
    ("b-1", "order", "pay", ("buyer", "b-1")),  # pay: buyer or system; the bare id is the buyer
    ("system:gateway", "order", "pay", ("system", "gateway")),
    ("s-1", "order", "ship_offline", ("seller", "s-1")),
    ("li", "order", "release_funds", ("operator", "li")),  # neither buyer nor seller: operator
    ("s-1", "coupon", "deactivate", ("seller", "s-1")),
    (None, "coupon", "deactivate", ("operator", "li")),  # an operator may: operator:$USER
    (None, "seller", "approve", ("operator", "li")),
])
def test_as_takes_role_colon_id_or_a_bare_id_for_the_implied_role(
    monkeypatch: pytest.MonkeyPatch, text: str | None, kind: str, trigger: str,
    expected: tuple[str, str],
) -> None:
    monkeypatch.setenv("USER", "li")

    actor = resolve_actor(text, lifecycle.definition(kind).roles_of(trigger), what=trigger)

    assert (actor.role, actor.id) == expected


def test_a_sellers_own_command_acts_as_that_seller_by_default(db_url: str, engine: lifecycle.Engine) -> None:
    seller_in(engine, "registered", "acme")

    ok(db_url, "seller", "submit-documents", "acme", *DOCUMENTS)

    assert engine.history("seller", "acme")[-1].actor == lifecycle.Actor("seller", "acme")


# --- bad input: one line, the documented exit code, nothing written ------------------------


def assert_one_line_error(result: Result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


PLACING = {"id": "o-new", "as": "b-1", "seller": "s-1", "line": "robot:2:19.99", "currency": "USD",
           "consignee-name": "Ana Silva", "consignee-address": "Rua A 1, Lisboa",
           "consignee-country": "PT", "carrier": "dhl", "service": "express",
           "shipping-fee": "7.50", "delivery-days": "20"}


def placing(**changes: str | None) -> tuple[str, ...]:
    """``order place`` with good options, some changed (None leaves one out)."""
    options = {**PLACING, **{name.replace("_", "-"): value for name, value in changes.items()}}
    return ("order", "place", *(part for name, value in options.items() if value is not None
                                for part in (f"--{name}", value)))

BAD = [
    # unknown ids
    pytest.param(("order", "pay", "o-missing", "--as", "b-1"), 1, ["no order", "o-missing"],
                 id="unknown-order"),
    pytest.param(("dispute", "accept", "d-missing", "--as", "s-1"), 1, ["no dispute", "d-missing"],
                 id="unknown-dispute"),
    pytest.param(("seller", "suspend", "nobody", "--reason", "x"), 1, ["no seller", "nobody"],
                 id="unknown-seller"),
    pytest.param(("order", "show", "o-missing"), 1, ["o-missing"], id="unknown-order-show"),
    pytest.param(placing(seller="nobody"), 2,
                 ["seller", "nobody"], id="unknown-seller-on-place"),
    # malformed JSON
    pytest.param(("order", "pay", "{order}", "--as", "b-1", "--payload", '{"amount": '), 2,
                 ["payload", "JSON"], id="malformed-json"),
    pytest.param(("order", "pay", "{order}", "--as", "b-1", "--payload", "[1]"), 2,
                 ["payload", "object"], id="json-not-an-object"),
    # wrong role, not their own
    pytest.param(("order", "ship-offline", "{order}", "--as", "buyer:b-1", "--carrier", "dhl",
                  "--waybill", dhl(9), "--confirm", "all"), 1,
                 ["is paid: buyer b-1 may not ship_offline: only seller may ship_offline",
                  "; allowed for buyer: lifecycle order cancel {order} --reason TEXT"], id="wrong-role"),
    pytest.param(("order", "cancel", "{order}", "--as", "seller:s-1", "--reason", "x"), 1,
                 ["is paid: seller s-1 may not request_cancel: only buyer may request_cancel",
                  "; allowed for seller: lifecycle order book-pickup {order}, "
                  "lifecycle order ship-offline {order}"], id="wrong-role-cancel"),
    pytest.param(("order", "ship-offline", "{order}", "--as", "s-2", "--carrier", "dhl",
                  "--waybill", dhl(9), "--confirm", "all"), 1, ["s-2", "not theirs"], id="not-their-order"),
    # wrong state
    pytest.param(("order", "pay", "{order}", "--as", "b-1"), 1,
                 ["is paid: cannot pay", "allowed from paid: lifecycle order book-pickup {order} (seller)",
                  "only the system: ship_deadline (timer)"], id="wrong-state"),
    pytest.param(("order", "confirm", "{order}", "--as", "b-1"), 1, ["cannot confirm_receipt"],
                 id="wrong-state-confirm"),
    pytest.param(("order", "cancel", "{order}", "--accept", "--as", "s-1"), 1, ["cannot accept_cancel"],
                 id="wrong-state-accept-cancel"),
    # a rule of the domain
    pytest.param(("order", "ship-offline", "{order}", "--as", "s-1", "--carrier", "dhl",
                  "--waybill", dhl(9), "--confirm", "quantity"), 1,
                 ["is paid: ship_offline refused by rule shipping.checklist",
                  "; allowed for seller: lifecycle order book-pickup {order}, "
                  "lifecycle order ship-offline {order}"], id="guard"),
    # unknown carrier, bad waybill
    pytest.param(placing(carrier="pigeon"), 2,
                 ["carrier", "pigeon"], id="unknown-carrier-on-place"),
    pytest.param(("order", "ship-offline", "{order}", "--as", "s-1", "--carrier", "pigeon",
                  "--waybill", dhl(9), "--confirm", "all"), 1,
                 ["shipping.buyers_carrier", "the buyer chose dhl", "pigeon"],
                 id="unknown-carrier-on-ship"),
    pytest.param(("order", "ship-offline", "{order}", "--as", "s-1", "--carrier", "ups",
                  "--waybill", "1Z999AA10123456784", "--confirm", "all"), 1,
                 ["is paid: ship_offline refused by rule shipping.buyers_carrier",
                  "the buyer chose dhl: hand the parcel to dhl, not ups"],
                 id="another-carrier-than-the-buyers"),
    pytest.param(("order", "ship-offline", "{order}", "--as", "s-1", "--carrier", "dhl",
                  "--waybill", "1234567890", "--confirm", "all"), 1, ["waybill", "check digit"],
                 id="bad-waybill"),
    # invalid fields
    pytest.param(placing(consignee_country="portugal"), 2,
                 ["consignee.country"], id="invalid-field"),
    pytest.param(placing(line="robot:two:19.99"), 2,
                 ["--line", "SKU:QTY:PRICE"], id="bad-line"),
    pytest.param((*placing(), "--sku", "car"), 2, ["--sku", "--quantity"],
                 id="sku-without-quantity"),
    # missing options
    pytest.param(("order", "pay", "{order}"), 2, ["--as", "buyer or system"], id="missing-as"),
    pytest.param(("order", "ship-offline", "{order}", "--as", "s-1", "--carrier", "dhl"), 2,
                 ["--waybill", "--confirm", "waybill, checklist in --payload"], id="missing-options"),
    pytest.param(("seller", "register", "s-9", "--company-name", "Nine"), 2,
                 ["--entity-type", "--email"], id="missing-registration"),
    pytest.param(("order", "place", "--as", "b-1", "--seller", "s-1"), 2, ["--currency"],
                 id="missing-place-options"),
    pytest.param(placing(line=None), 2, ["--line"], id="missing-lines"),
    pytest.param(("order", "track", "{order}"), 1, ["is paid: track refused by rule tracking.waybill",
                                                    "no waybill yet"],
                 id="poll-before-shipping"),
    pytest.param(("order", "track", "{order}", "--status", "exception"), 2, ["--kind"], id="missing-kind"),
    pytest.param(("order", "cancel", "{order}", "--as", "b-1"), 2, ["--reason"], id="missing-reason"),
    pytest.param(("dispute", "counter", "d-1", "--as", "s-1"), 2, ["--refund-amount"],
                 id="missing-refund-amount"),
    pytest.param(("order", "pay"), 2, ["Missing argument 'ID'", "order pay --help"],
                 id="missing-argument"),
    # bad usage
    pytest.param(("dispute", "escalate", "d-1", "--as", "ana"), 2, ["ambiguous", "buyer:ana or seller:ana"],
                 id="ambiguous-as"),
    pytest.param(("order", "pay", "{order}", "--as", "king:b-1"), 2, ["king"], id="unknown-role"),
    pytest.param(("order", "list", "--state", "lost"), 2, ["--state", "awaiting_payment"],
                 id="unknown-state"),
    pytest.param(("order", "list", "--since", "yesterday"), 2, ["--since", "7d"], id="bad-time"),
    pytest.param(("order", "track", "{order}", "--status", "teleported"), 2, ["--status", "in_transit"],
                 id="bad-choice"),
    pytest.param(("order", "cancel", "{order}", "--accept", "--reject"), 2, ["exclude"],
                 id="accept-and-reject"),
    pytest.param(("order", "pay", "{order}", "--as", "b-1", "--bogus"), 2, ["--bogus"], id="unknown-option"),
    pytest.param(("order", "teleport"), 2, ["teleport"], id="unknown-verb"),
    pytest.param(("graph", "warehouse"), 2, ["warehouse", "onboarding"], id="unknown-machine"),
]


@pytest.mark.parametrize(("args", "code", "named"), BAD)
def test_bad_input_is_one_error_line_with_its_exit_code_and_writes_nothing(
    db_url: str, engine: lifecycle.Engine, clock: lifecycle.SimulatedClock,
    args: tuple[str, ...], code: int, named: list[str],
) -> None:
    order = order_in(engine, clock, "paid")
    seller_in(engine, "active", "s-2")
    before = rows(engine)

    result = invoke(db_url, *(arg.replace("{order}", order.id) for arg in args))

    line = assert_one_line_error(result, code)
    for word in named:
        assert word.replace("{order}", order.id) in line, line
    assert rows(engine) == before
    assert engine.get("order", order.id) == order


def test_database_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--db", "nonsense://", "order", "list"])

    line = assert_one_line_error(result, 2)
    assert "db" in line
    assert "nonsense" in line


# --- help, version, completion, docs ----------------------------------------------------------


def test_help_documents_exit_codes_acting_and_completion() -> None:
    result = CliRunner().invoke(cli, ["--help"])

    assert result.exit_code == 0
    text = result.stdout
    for needle in ("0  done", "1  refused by the domain", "2  bad usage or payload",
                   "3  database unavailable",
                   "--as ROLE:ID", "operator:$USER", "_LIFECYCLE_COMPLETE=bash_source lifecycle"):
        assert needle in text, needle
    commands = re.findall(r"^  ([a-z]+) ", text[text.index("Commands:"):], re.MULTILINE)
    assert commands[:5] == ["seller", "order", "dispute", "coupon", "graph"]  # the domain first


def test_version_and_bash_completion() -> None:
    version = CliRunner().invoke(cli, ["--version"])
    completion = CliRunner().invoke(cli, [], prog_name="lifecycle",
                                    env={"_LIFECYCLE_COMPLETE": "bash_source"})

    assert version.stdout == f"lifecycle, version {lifecycle.__version__}\n"
    assert completion.exit_code == 0
    assert "_lifecycle_completion" in completion.stdout
    assert "complete -o nosort -F _lifecycle_completion lifecycle" in completion.stdout


def test_completion_offers_the_verbs_of_a_noun() -> None:
    result = CliRunner().invoke(cli, [], prog_name="lifecycle", env={
        "_LIFECYCLE_COMPLETE": "bash_complete", "COMP_WORDS": "lifecycle order sh", "COMP_CWORD": "2"})

    assert result.stdout.split() == ["plain,ship-offline", "plain,show"]


def test_a_nouns_help_lists_its_verbs_in_lifecycle_order() -> None:
    result = CliRunner().invoke(cli, ["order", "--help"])

    verbs = re.findall(r"^  ([a-z-]+)", result.stdout.split("Commands:")[1], re.MULTILINE)
    assert verbs == ["place", "pay", "book-pickup", "confirm-pickup", "ship-offline", "track",
                     "confirm", "release", "cancel", "show", "list", "history"]


def command_paths(group: click.Group, prefix: str = "") -> list[str]:
    paths = []
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            paths += command_paths(command, f"{path} ")
        else:
            paths.append(path)
    return paths


def test_docs_cli_md_lists_every_command() -> None:
    table = DOCS[DOCS.index("## The command tree"):DOCS.index("## `--json` shapes")]
    nouns = ("seller", "order", "dispute", "coupon")

    missing = [path for path in command_paths(cli)
               if f"`{path}" not in table
               and not (path.split()[0] in nouns and path.split()[1] in ("show", "list", "history"))]

    assert missing == []


NOUN_MODULES = (seller_cli, order_cli, dispute_cli, coupon_cli)


def test_every_option_sets_a_field_of_its_triggers_payload() -> None:
    """Options are named as the spec names the fields: each maps onto the payload model."""
    checked = 0
    for module in NOUN_MODULES:
        for action in module.ACTIONS:
            model = next(t.payload for t in lifecycle.definition(action.kind).transitions
                         if t.trigger == action.trigger)
            for spec in action.fields:
                assert model is not None
                assert spec.path.split(".")[0] in model.model_fields, (action.verb, spec.option)
                assert spec.option.lstrip("-").replace("-", "_") in spec.path.replace(".", "_") or (
                    spec.option in ("--product", "--reason", "--confirm")), spec.option
                checked += 1
    extra: list[tuple[str, str, tuple[Field, ...]]] = [
        ("seller", "register", seller_cli.REGISTER_FIELDS), ("order", "place", order_cli.PLACE_FIELDS),
        ("order", "tracking_exception", order_cli.TRACK_FIELDS),
        ("order", "open_dispute", dispute_cli.OPEN_FIELDS), ("coupon", "create", coupon_cli.CREATE_FIELDS),
    ]
    for kind, trigger, fields in extra:
        model = next(t.payload for t in lifecycle.definition(kind).transitions if t.trigger == trigger)
        assert model is not None
        for spec in fields:
            assert spec.path.split(".")[0] in model.model_fields, (trigger, spec.option)
            checked += 1
    assert checked > 50


# --- tracking: poll the carrier, or record by hand --------------------------------------------


def test_track_without_status_polls_the_carrier_and_applies_its_events_once(
    db_url: str, engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "shipped")

    first = invoke(db_url, "order", "track", order.id)
    again = invoke(db_url, "order", "track", order.id)

    assert first.exit_code == 0, first.output
    polled = engine.get("order", order.id)
    applied = len(engine.tracking(order.id))  # a row per scan, those that moved nothing too
    assert applied >= 1  # the sandbox carrier has at least scanned the parcel in
    assert first.stdout == (f"order {order.id} is {polled.state} (version {polled.version}); "
                            f"{applied} new tracking event{'' if applied == 1 else 's'} applied\n")
    assert {r.carrier for r in engine.tracking(order.id)} == {"dhl"}
    assert {e.actor for e in engine.history("order", order.id)[order.version:]} <= {
        lifecycle.Actor("system", "dhl")}  # the scans that moved it, if any
    assert again.stdout == f"order {order.id} is {polled.state} (version {polled.version}); " \
                           "0 new tracking events applied\n"
    assert engine.get("order", order.id) == polled


def test_track_with_status_records_an_exception_and_keeps_the_state(
    db_url: str, engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "shipped")

    out = ok(db_url, "order", "track", order.id, "--status", "exception", "--kind", "customs_hold",
             "--detail", "held at Lisbon customs", env={"USER": "li"})

    assert out == f"order {order.id} is shipped (version {order.version + 1})\n"
    entry = engine.history("order", order.id)[-1]
    assert (entry.trigger, entry.actor) == ("tracking_exception", lifecycle.Actor("operator", "li"))
    assert entry.payload == {"kind": "customs_hold", "detail": "held at Lisbon customs"}


def test_track_options_without_status_are_a_usage_error(
    db_url: str, engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "shipped")
    before = rows(engine)

    line = assert_one_line_error(invoke(db_url, "order", "track", order.id, "--kind", "lost"), 2)

    assert "--kind goes with --status" in line
    assert rows(engine) == before


def test_a_status_recorded_by_hand_fires_what_the_carriers_scan_fires_for_an_operator() -> None:
    """One table of which scan moves an order (the order machine's): by hand, the CLI fires the
    trigger a carrier's scan of the same status fires, wherever an operator may fire it."""
    order = lifecycle.definition("order")

    assert order_cli.TRACKING == {"in_transit": "tracking_in_transit",
                                  "delivered": "tracking_delivered",
                                  "exception": "tracking_exception"}
    for state in order.states:
        for status, trigger in order_cli.TRACKING.items():
            scanned = lifecycle.trigger_for_scan(state, status)
            if scanned is not None and "operator" in order.roles_of(scanned):
                assert scanned == trigger, (state, status)


def test_cancel_fires_the_buyers_cancelling_trigger_the_state_allows() -> None:
    chosen = {state: order_cli.cancelling(state) for state in lifecycle.definition("order").states}

    assert chosen.pop("awaiting_payment") == "cancel"
    assert set(chosen.values()) == {"request_cancel"}  # allowed from paid; refused elsewhere


@pytest.mark.parametrize(("state", "args", "named"), [
    pytest.param("awaiting_pickup", ("track", "{order}", "--status", "in_transit", "--as", "system:dhl"),
                 "is awaiting_pickup: cannot tracking_in_transit", id="scan-before-pickup-is-no-pickup"),
    pytest.param("delivered", ("track", "{order}", "--status", "in_transit"),
                 "is delivered: cannot tracking_in_transit", id="in-transit-after-delivery"),
    pytest.param("shipped", ("cancel", "{order}", "--as", "b-1", "--reason", "late"),
                 "is shipped: cannot request_cancel", id="cancel-after-shipping"),
    pytest.param("cancel_requested", ("cancel", "{order}", "--as", "b-1"),
                 "is cancel_requested: cannot request_cancel", id="cancel-twice"),
])
def test_track_and_cancel_in_a_state_without_their_trigger_are_refused_naming_it(
    db_url: str, engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, state: str,
    args: tuple[str, ...], named: str,
) -> None:
    order = order_in(engine, clock, state)
    before = rows(engine)

    line = assert_one_line_error(
        invoke(db_url, "order", *(arg.replace("{order}", order.id) for arg in args)), 1)

    assert named in line
    assert rows(engine) == before


# --- text from the data is shown, never obeyed by the terminal ---------------------------

HOSTILE_NAME = "Ana\x1b[2J\x1b]0;pwned\x07\u202eSilva\x9b31m\nforged line"


def on_a_terminal(db_url: str, *args: str) -> Result:
    """Invoke as on a terminal: click strips some escape sequences only when output is not one."""
    return CliRunner().invoke(cli, ["--db", db_url, *args], color=True)


def test_order_show_escapes_control_characters_from_the_data(
    db_url: str, engine: lifecycle.Engine
) -> None:
    seller_in(engine, "active")
    consignee = {"name": HOSTILE_NAME, "address": "Rua A 1\rLisboa", "country": "PT"}
    order = engine.create("order", lifecycle.Actor("buyer", "b-1"), order_payload(consignee=consignee))

    result = on_a_terminal(db_url, "order", "show", order.id)
    assert result.exit_code == 0, result.output
    shown = result.stdout

    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]", shown), shown
    details = next(line for line in shown.splitlines() if line.strip().startswith("consignee"))
    assert details.split(None, 1)[1] == (
        "Ana\\x1b[2J\\x1b]0;pwned\\x07\\u202eSilva\\x9b31m\\x0aforged line, Rua A 1\\x0dLisboa (PT)")
    assert "forged line" not in shown.replace(details, "")  # the data's newline made no line


@pytest.mark.parametrize("args", [
    ("seller", "list"),
    ("seller", "show", "s-9"),
    ("show", "seller", "s-9"),
    ("show", "order", "{order}"),
])
def test_tables_and_generic_views_escape_control_characters_from_the_data(
    db_url: str, engine: lifecycle.Engine, clock: lifecycle.SimulatedClock, args: tuple[str, ...]
) -> None:
    order = order_in(engine, clock, "paid")
    engine.fire("order", order.id, "request_cancel", lifecycle.Actor("buyer", "b-1"),
                {"reason": "changed\x1b[2J my mind\x1b]0;pwned\x07"})
    engine.create("seller", lifecycle.Actor("seller", "s-9"),
                  {**REGISTRATION, "company_name": "Acme\x1b]0;pwned\x07\u202e Co\x1b[1A"})

    result = on_a_terminal(db_url, *(arg.replace("{order}", order.id) for arg in args))

    assert result.exit_code == 0, result.output
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]", result.stdout), result.stdout
    assert "\\x1b]0;pwned\\x07" in result.stdout


def test_an_error_line_escapes_control_characters_from_the_input(
    db_url: str, engine: lifecycle.Engine, clock: lifecycle.SimulatedClock
) -> None:
    order = order_in(engine, clock, "awaiting_payment")
    before = rows(engine)

    result = on_a_terminal(db_url, "fire", "order", order.id, "pay", "--as", "buyer:b-1",
                           "--payload", json.dumps({"\x1b[2Jnote": "x"}))

    line = assert_one_line_error(result, 2)
    assert "\x1b" not in result.stderr
    assert "\\x1b[2Jnote" in line
    assert rows(engine) == before
