"""`lifecycle carriers quote|validate`: choosing a carrier by weight, volume, destination and
timeliness, and checking a typed waybill."""

from __future__ import annotations

import json
from decimal import Decimal

from click.testing import CliRunner

from lifecycle.cli import cli


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--db", "sqlite:///unused.db", *args])
    return result.exit_code, result.stdout, result.stderr


def quotes(*args: str) -> list[dict[str, str]]:
    code, out, err = run("carriers", "quote", *args, "--json")
    assert code == 0, err
    found: list[dict[str, str]] = json.loads(out)
    return found


def test_quotes_come_cheapest_first_and_fastest_first_on_request() -> None:
    cheapest = quotes("--weight", "2", "--dims", "40x30x20", "--to", "DE")
    fastest = quotes("--weight", "2", "--dims", "40x30x20", "--to", "DE", "--by", "days")

    prices = [Decimal(q["price"]) for q in cheapest]
    assert prices == sorted(prices)
    assert [q["transit_days"] for q in fastest] == sorted(q["transit_days"] for q in fastest)
    assert {q["carrier"] for q in cheapest} >= {"dhl", "ups", "fedex", "tnt", "postal"}


def test_a_light_bulky_parcel_is_charged_by_its_volume() -> None:
    (dhl,) = quotes("--weight", "1", "--dims", "60x50x40", "--to", "US", "--carrier", "dhl")
    assert Decimal(dhl["chargeable_weight_kg"]) == Decimal("24")  # 60×50×40 / 5000


def test_sea_freight_is_cheapest_for_a_heavy_shipment() -> None:
    found = quotes("--weight", "500", "--dims", "120x100x100", "--to", "US")
    assert found[0]["carrier"] == "sea_freight"


def test_a_valid_waybill_passes_and_a_transposed_one_is_refused() -> None:
    assert run("carriers", "validate", "dhl", "1234567891")[0] == 0
    code, _, err = run("carriers", "validate", "dhl", "1234567819")
    assert code == 1
    assert err.startswith("error: dhl waybill")
    assert "check digit" in err
    assert err.count("\n") == 1


def test_bad_input_is_one_line_with_exit_code_2() -> None:
    for args in (["validate", "pigeon", "123"],
                 ["quote", "--weight", "x", "--dims", "1x1x1", "--to", "DE"],
                 ["quote", "--weight", "1", "--dims", "1x1", "--to", "DE"],
                 ["quote", "--weight", "1", "--dims", "1x1x1", "--to", "ZZ"]):
        code, _, err = run("carriers", *args)
        assert code == 2, (args, err)
        assert err.startswith("error:")
        assert err.count("\n") == 1
