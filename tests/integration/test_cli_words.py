"""The command line in an operator's words (issue #19, items 4, 5, 8 and 10): money with its
currency's minor units, next steps as commands to type, uniform ``--note``, ``--json``
everywhere, help that is not cut short, and a readable order diagram."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from lifecycle.cli import cli, payloads
from lifecycle.cli.actions import COMMANDS
from lifecycle.cli.output import amount
from tests.integration.test_cli_domain import DOCUMENTS, REGISTER, place, ship


def invoke(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", url, *args], env={"USER": "li"})


def ok(url: str, *args: str) -> str:
    result = invoke(url, *args)
    assert result.exit_code == 0, (args, result.output)
    return result.stdout


def ok_json(url: str, *args: str) -> Any:
    return json.loads(ok(url, *args, "--json"))


def refused(url: str, *args: str, code: int = 1) -> str:
    result = invoke(url, *args)
    assert result.exit_code == code, (args, result.output)
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    return result.stderr.strip()


def place_as_typed(order_id: str, currency: str, *lines: str, fee: str) -> tuple[str, ...]:
    """An order placed with amounts as a hurried operator types them: 15, 1E+1, 7.5."""
    return ("order", "place", "--id", order_id, "--as", "ana", "--seller", "acme",
            *(arg for line in lines for arg in ("--line", line)), "--currency", currency,
            "--consignee-name", "Ana", "--consignee-address", "Rua A 1", "--consignee-country",
            "PT", "--carrier", "dhl", "--service", "express", "--shipping-fee", fee,
            "--delivery-days", "20")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An active seller acme; o-usd (USD, amounts typed as 1E+1, 15, 7.5) paid; o-jpy (JPY)
    awaiting payment; o-2 delivered, in dispute o-2-d1 with two pieces of evidence; coupon c-1
    of 5 off 30 on two products, active."""
    url = f"sqlite:///{tmp_path_factory.mktemp('words')}/words.db"
    now = datetime.now(UTC).replace(microsecond=0)
    for args in (
        ("db", "init"),  # only db init and db upgrade create a database (issue #19)
        ("seller", "register", "acme", *REGISTER),
        ("seller", "submit-documents", "acme", *DOCUMENTS),
        ("seller", "approve", "acme"),
        ("seller", "pay-fee", "acme", "--sales-plan", "standard", "--category", "toys"),
        ("seller", "complete-profile", "acme", "--store-name", "Acme Toys", "--domain", "acme"),
        place_as_typed("o-usd", "USD", "lamp:1:1E+1", "robot:2:15", fee="7.5"),
        ("order", "pay", "o-usd", "--as", "ana"),
        place_as_typed("o-jpy", "JPY", "lamp:1:1500", fee="700"),
        place("o-2", "acme", "bo"), ("order", "pay", "o-2", "--as", "bo"), ship("o-2", 2),
        ("order", "track", "o-2", "--status", "delivered"),
        ("dispute", "open", "o-2", "--as", "bo", "--type", "received", "--reason", "damage",
         "--refund-amount", "20", "--evidence", "photo 1", "--evidence", "photo 2"),
        ("coupon", "create", "--id", "c-1", "--as", "acme", "--title", "Five off",
         "--currency", "USD", "--denomination", "5", "--threshold", "30",
         "--starts-at", (now - timedelta(days=1)).isoformat(),
         "--ends-at", (now + timedelta(days=30)).isoformat(), "--copies", "100",
         "--product", "robot", "--product", "lamp"),
        ("coupon", "activate", "c-1", "--as", "acme"),
    ):
        ok(url, *args)
    return url


# --- 4. money with its currency's minor units ---------------------------------------------


@pytest.mark.parametrize(("value", "currency", "shown"), [
    ("15", "USD", "15.00"), ("1E+1", "USD", "10.00"), ("7.5", "EUR", "7.50"), ("-0", "USD", "0.00"),
    ("1500", "JPY", "1500"), ("2.5", "KWD", "2.500"), ("19.99", None, "19.99"),
    ("12", "XXX", "12"), ("n/a", "USD", "n/a"),
])
def test_an_amount_shows_its_currencys_minor_units(value: str, currency: str | None,
                                                   shown: str) -> None:
    assert amount(value, currency) == shown


def test_order_show_prints_every_amount_with_two_decimals_in_usd(world: str) -> None:
    text = ok(world, "order", "show", "o-usd")

    assert "  lines      1 x lamp @ 10.00, 2 x robot @ 15.00" in text.splitlines()
    assert "fee 7.50, 20 days" in text
    money = text.split("money (USD)\n")[1].split("\nhistory")[0]
    assert money.split("\n")[:6] == [
        "  goods_total    40.00", "  coupon_amount  0.00", "  shipping_fee   7.50",
        "  total          47.50", "  amount_paid    47.50", "  refunded       0.00"]
    assert "  balance        buyer -47.50  escrow 47.50" in text.splitlines()


def test_order_json_prints_amounts_as_text_with_minor_units_beside_their_currency(world: str) -> None:
    usd = ok_json(world, "order", "show", "o-usd")
    jpy = ok_json(world, "order", "show", "o-jpy")

    assert usd["data"]["currency"] == usd["money"]["currency"] == "USD"
    assert [line["unit_price"] for line in usd["data"]["lines"]] == ["10.00", "15.00"]
    assert (usd["data"]["total"], usd["data"]["logistics"]["shipping_fee"]) == ("47.50", "7.50")
    assert usd["money"]["figures"]["coupon_amount"] == "0.00"
    assert usd["money"]["balances"] == {"USD": {"buyer": "-47.50", "escrow": "47.50"}}
    assert jpy["data"]["total"] == jpy["money"]["figures"]["total"] == "2200"
    assert jpy["data"]["lines"][0]["unit_price"] == "1500"
    placed = ok_json(world, "order", "history", "o-usd")[0]["payload"]
    assert [line["unit_price"] for line in placed["lines"]] == ["10.00", "15.00"]


def test_order_list_shows_one_form_of_amount_in_its_total_column(world: str) -> None:
    rows = {line.split()[0]: line.split() for line in ok(world, "order", "list").splitlines()[2:]}
    listed = {item["id"]: item["data"]["total"] for item in ok_json(world, "order", "list")["items"]}

    assert (rows["o-usd"][4], rows["o-2"][4], rows["o-jpy"][4]) == ("47.50", "47.48", "2200")
    assert {id: listed[id] for id in ("o-usd", "o-2", "o-jpy")} == {
        "o-usd": "47.50", "o-2": "47.48", "o-jpy": "2200"}


def test_coupon_dispute_seller_and_voucher_amounts_have_minor_units(world: str) -> None:
    coupon = ok_json(world, "coupon", "show", "c-1")
    dispute = ok_json(world, "dispute", "show", "o-2-d1")

    assert coupon["money"]["figures"] == {"denomination": "5.00", "threshold": "30.00"}
    assert "  value           5.00 USD off on 30.00" in ok(world, "coupon", "show", "c-1").splitlines()
    assert dispute["money"]["figures"]["refund_amount"] == "20.00"
    assert ok_json(world, "seller", "show", "acme")["money"]["figures"] == {"annual_fee": "1000.00"}
    # The name column is as wide as the longest policy name.
    assert re.search(r"^coupon_min_denomination\.USD +5\.00 ", ok(world, "policy", "show"), re.M)


# --- 5. next steps as commands to type; what only the system does, apart -----------------


def test_show_says_the_commands_each_party_may_run_and_marks_what_only_the_system_does(
    world: str,
) -> None:
    text = ok(world, "dispute", "show", "o-2-d1")
    shown = ok_json(world, "dispute", "show", "o-2-d1")

    assert "counter_offer" not in text
    assert "accept_claim" not in text
    who = text.split("who may act\n")[1].split("\ndetails")[0].splitlines()[2:]
    assert [row.split(None, 2) if row[2] != " " else ["", "", row.strip()] for row in who] == [
        ["buyer", "bo", "lifecycle dispute withdraw o-2-d1"],
        ["seller", "acme", "lifecycle dispute accept o-2-d1"],
        ["", "", "lifecycle dispute counter o-2-d1"],
        ["operator", "li", "-"],
        ["system", "only", "the system: seller_response_timeout (timer)"],
    ]
    assert shown["parties"]["seller"]["commands"] == [
        "lifecycle dispute accept o-2-d1", "lifecycle dispute counter o-2-d1"]
    assert shown["parties"]["seller"]["allowed"] == ["accept_claim", "counter_offer"]
    assert shown["system"] == ["seller_response_timeout (timer)"]


def test_a_system_only_trigger_is_never_offered_as_a_command(world: str) -> None:
    shown = ok_json(world, "order", "show", "o-jpy", "--as", "system:timer")

    assert "payment_timeout" in shown["allowed"]
    assert shown["commands"] == ["lifecycle order pay o-jpy"]
    assert shown["system"] == ["payment_timeout (timer)"]


def test_a_refusal_names_the_commands_to_type_and_what_only_the_system_does(world: str) -> None:
    wrong_state = refused(world, "order", "confirm", "o-usd", "--as", "ana")
    wrong_role = refused(world, "dispute", "counter", "o-2-d1", "--as", "buyer:bo",
                         "--refund-amount", "1")

    assert wrong_state == (
        "error: order o-usd is paid: cannot confirm_receipt; allowed from paid: "
        "lifecycle order book-pickup o-usd (seller), lifecycle order cancel o-usd --reason TEXT "
        "(buyer), lifecycle order ship-offline o-usd (seller); only the system: ship_deadline "
        "(timer)")
    assert wrong_role.endswith("; allowed for buyer: lifecycle dispute withdraw o-2-d1")
    assert ok_json(world, "order", "show", "o-usd")["state"] == "paid"


# --- 8. --note, --json, help, readable lists ----------------------------------------------


def _top(name: str) -> click.Command | None:
    """A command of the root group, imported as the CLI imports it when it runs."""
    return cli.get_command(click.Context(cli), name)


def _commands() -> Iterator[tuple[str, click.Command]]:
    for noun in ("seller", "order", "dispute", "coupon"):
        group = _top(noun)
        assert isinstance(group, click.Group)
        for verb, command in group.commands.items():
            yield f"{noun} {verb}", command


def test_every_command_that_fires_a_trigger_taking_a_note_accepts_note() -> None:
    missing = []
    for (kind, trigger), command in COMMANDS.items():
        if payloads.takes(kind, trigger, "note"):
            words = [w for w in command.split() if w != "ID" and not w.startswith("--")]
            found: click.Command | None = cli
            for word in words:  # down the groups: ``profile contact resend SELLER``
                if not isinstance(found, click.Group):
                    break
                found = found.get_command(click.Context(found), word)
            assert found is not None, command
            options = {o for p in found.params for o in getattr(p, "opts", [])}
            if "--note" not in options:
                missing.append(command)
    assert missing == []


def test_order_cancel_keeps_a_note_in_the_history(world: str) -> None:
    ok(world, *place_as_typed("o-note", "USD", "lamp:1:10", fee="1"))
    ok(world, "order", "cancel", "o-note", "--as", "ana", "--note", "ordered twice")

    assert ok_json(world, "order", "history", "o-note")[-1]["payload"] == {"note": "ordered twice"}


def test_no_group_listing_cuts_a_description_short() -> None:
    nouns = [noun for noun in cli.list_commands(click.Context(cli))
             if isinstance(_top(noun), click.Group)]
    for args in ([], *([noun] for noun in nouns)):
        listing = CliRunner().invoke(cli, [*args, "--help"], terminal_width=80).stdout
        commands = listing.split("Commands:\n")[1].split("\n\n")[0]
        assert "..." not in commands, (args, commands)


def test_help_and_docs_have_no_known_typos() -> None:
    texts = [CliRunner().invoke(cli, [*path.split(), "--help"]).stdout for path, _ in _commands()]
    texts.append(CliRunner().invoke(cli, ["simulate", "--help"], terminal_width=80).stdout)
    for text in texts:
        assert "A order" not in text
        assert "du\n" not in text
        assert "dup licate" not in text


def test_show_prints_lists_as_a_person_reads_them(world: str) -> None:
    assert "  evidence  photo 1, photo 2" in ok(world, "dispute", "show", "o-2-d1").splitlines()
    assert "  products        robot, lamp" in ok(world, "coupon", "show", "c-1").splitlines()
    assert "[" not in ok(world, "show", "seller", "acme")


def test_carriers_validate_prints_json_for_a_valid_and_an_invalid_waybill(world: str) -> None:
    valid = invoke(world, "carriers", "validate", "dhl", "1234567891", "--json")
    invalid = invoke(world, "carriers", "validate", "dhl", "1234567890", "--json")

    assert (valid.exit_code, json.loads(valid.stdout)) == (0, {
        "carrier": "dhl", "waybill": "1234567891", "valid": True, "problem": None})
    assert invalid.exit_code == 1
    shown = json.loads(invalid.stdout)
    assert (shown["valid"], shown["waybill"]) == (False, "1234567890")
    assert shown["problem"]
    assert refused(world, "carriers", "validate", "pigeon", "1", "--json", code=2).startswith("error:")


def test_graph_prints_the_machine_as_json(world: str) -> None:
    shown = ok_json(world, "graph", "order")

    assert (shown["machine"], shown["kind"], shown["initial"]) == ("order", "order", "awaiting_payment")
    assert set(shown["terminal"]) == {"funds_released", "cancelled", "refunded"}
    pay = next(t for t in shown["transitions"] if t["trigger"] == "pay")
    assert pay == {"trigger": "pay", "source": ["awaiting_payment"], "dest": "paid",
                   "roles": ["buyer", "system"], "follow_up": False, "condition": None,
                   "command": "lifecycle order pay ID"}
    closing = [t for t in shown["transitions"] if t["trigger"] == "close_dispute"]
    assert closing
    assert all(t["follow_up"] and t["command"] is None for t in closing)


def test_graph_json_names_the_command_of_each_creating_trigger() -> None:
    for machine, command in (("order", "lifecycle order place"),
                             ("seller", "lifecycle seller register ID"),
                             ("coupon", "lifecycle coupon create")):
        shown = json.loads(CliRunner().invoke(cli, ["graph", machine, "--json"]).stdout)
        creating = next(t for t in shown["transitions"] if not t["source"])
        assert creating["command"] == command
