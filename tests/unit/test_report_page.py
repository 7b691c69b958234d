"""The HTML report of a simulation (issue #19, item 9): it fits any window, ticks fall on
round numbers, one chart per phase with colours told apart, tooltips, the run's parameters,
faults, throughput and "% of placed", the charts' data to download, and the funnel explained;
no scripts and nothing fetched."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any
from urllib.parse import unquote

import pytest

from lifecycle.simulation import charts
from lifecycle.simulation.report import Report

STATES = ("awaiting_payment", "paid", "cancel_requested", "awaiting_pickup", "shipped",
          "in_transit", "delivered", "completed", "in_dispute", "funds_released", "cancelled",
          "refunded")


def report(**changes: Any) -> Report:
    timeline = [{"day": day, "orders": {state: (day * (n + 3)) % 191 for n, state in enumerate(STATES)}}
                for day in range(1, 41)]
    fields: dict[str, Any] = {
        "name": "sim", "status": "finished",
        "config": {"seed": 7, "sellers": 5, "orders": 200, "days": 20, "shards": 1,
                   "faults": {"decline": 0.05, "timeout": 0.0, "duplicate": 0.02}},
        "simulated": {"start": "2026-01-01T00:00:00+00:00", "end": "2026-02-10T00:00:00+00:00",
                      "days": 40},
        "states": {"order": {"funds_released": 172}}, "reached": {},
        "funnel": {"completed": 174, "delivered": 166, "funds_released": 172, "paid": 188,
                   "placed": 200, "shipped": 180},
        "endings": {"cancelled unpaid": 12}, "disputes": {}, "dispute_paths": {},
        "durations": {}, "release_histogram": [(18, 1), (19, 4), (40, 64)],
        "money": {"USD": {"captured": "100.00", "unexpected_captured": "0"}}, "gateway": {},
        "check": {"passed": True},
        "transitions": 1760, "triggers": {},
        "activity": {"adapter.declined": 19, "retries.same_key": 6, "orders.placed": 200},
        "parked": {"release_funds": 2}, "timeline": timeline,
        "wall": {"seconds": 8.0, "transitions_per_second": 220.0, "peak_rss_mb": 90.0},
    }
    return Report(**{**fields, **changes})


@pytest.fixture(scope="module")
def page() -> str:
    return charts.page(report())


@pytest.mark.parametrize(("top", "ticks"), [
    (191, [0, 50, 100, 150, 200]), (64, [0, 20, 40, 60, 80]), (4, [0, 1, 2, 3, 4]),
    (1000, [0, 250, 500, 750, 1000]), (7, [0, 2, 4, 6, 8]), (0, [0, 1]),
])
def test_ticks_fall_on_round_numbers(top: float, ticks: list[float]) -> None:
    assert charts.nice_ticks(top) == ticks


def test_the_page_fits_any_window_and_its_charts_scale(page: str) -> None:
    assert "64em" not in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "svg{width:100%;height:auto" in page
    assert re.findall(r"<svg [^>]*\bwidth=", page) == []  # a viewBox each, no fixed width
    assert page.count("viewBox=") == page.count("<svg")


def test_the_axis_labels_are_round_numbers(page: str) -> None:
    labels = re.findall(r'text-anchor="end">([\d,.]+)</text>', page)

    assert labels
    assert {"64", "128", "191"}.isdisjoint(labels)
    assert all(int(label.replace(",", "")) % 5 == 0 for label in labels)


def test_orders_by_state_are_one_chart_per_phase_with_distinct_colours(page: str) -> None:
    charts_drawn = [c.split("</svg>")[0] for c in page.split("<svg")[1:1 + len(charts.PHASES)]]

    assert len(charts_drawn) == len(charts.PHASES)
    for chart in charts_drawn:
        lines = re.findall(r'<polyline fill="none" stroke="(#\w+)"[^>]*?(?:stroke-dasharray="([^"]+)")?'
                           r' points', chart)
        assert 0 < len(lines) <= 5
        assert len({colour for colour, _ in lines}) == len(lines)
        assert len({dash for _, dash in lines}) == len(lines)  # told apart without colour too
    on_the_way = next(c for c in charts_drawn if "shipped" in c)
    colours = dict(re.findall(r'<polyline fill="none" stroke="(#\w+)".*?<title>(\w+):', on_the_way))
    by_state = {state: colour for colour, state in colours.items()}
    assert by_state["shipped"] != by_state["in_transit"]
    assert set(by_state.values()) <= set(charts.PALETTE)


def test_every_day_and_every_line_has_a_tooltip(page: str) -> None:
    assert "<title>day 12: shipped " in page
    assert re.search(r"<title>shipped: at most [\d,]+ on day \d+</title>", page)
    assert "<title>day 40: 64 orders</title>" in page  # the histogram's bars


def test_the_page_gives_run_parameters_faults_throughput_and_share_of_placed(page: str) -> None:
    assert "<h2>Run parameters</h2>" in page
    assert "<td>seed</td><td class=\"n\">7</td>" in page
    assert "decline=0.05, duplicate=0.02" in page  # the faults injected, not the zero ones
    assert "<td>adapter.declined</td><td class=\"n\">19</td>" in page
    assert "<td>release_funds</td><td class=\"n\">2</td>" in page  # parked deadlines
    assert "<td>transitions per wall-clock second</td><td class=\"n\">220.0</td>" in page
    assert "<td>orders placed per simulated day</td><td class=\"n\">5.0</td>" in page
    assert "<td>shipped</td><td class=\"n\">180</td><td>90.0%</td>" in page
    funnel = page.split("<h2>Order funnel</h2>")[1].split("</table>")[0]
    assert re.findall(r"<tr><td>(\w+)</td>", funnel) == list(charts.FUNNEL)


def test_the_funnel_says_why_fewer_were_delivered_than_completed(page: str) -> None:
    note = page.split("<h2>Order funnel</h2>")[1].split("<h2>")[0]

    assert "confirm_receipt" in note
    assert "auto_confirm" in note
    assert "from shipped or in_transit" in note


def _download(page: str, name: str) -> str:
    found = re.search(rf'<a download="{re.escape(name)}" href="data:[\w/]+;charset=utf-8,([^"]+)"',
                      page)
    assert found is not None, name
    return unquote(found.group(1))


def test_each_charts_data_can_be_downloaded_as_csv_and_json(page: str) -> None:
    rows = list(csv.reader(io.StringIO(_download(page, "timeline.csv"))))
    records = json.loads(_download(page, "timeline.json"))

    assert rows[0] == ["day", *sorted(STATES)]
    assert len(rows) == 41
    assert records[11]["day"] == 12
    assert records[11]["shipped"] == (12 * 7) % 191
    assert json.loads(_download(page, "release_histogram.json"))[-1] == {"days": 40, "orders": 64}
    assert list(csv.reader(io.StringIO(_download(page, "funnel.csv"))))[1] == ["placed", "200"]
    assert json.loads(_download(page, "report.json"))["name"] == "sim"


def test_the_page_runs_no_script_and_fetches_nothing(page: str) -> None:
    assert "<script" not in page
    assert "http" not in page.replace("http://www.w3.org/2000/svg", "")


def test_a_page_without_samples_or_releases_says_so() -> None:
    empty = charts.page(report(timeline=[], release_histogram=[]))

    assert "(no days sampled)" in empty
    assert "(no order has released its funds)" in empty


def test_money_has_its_currencys_minor_units(page: str) -> None:
    assert "<td>USD</td><td>unexpected_captured</td><td>0.00</td>" in page
    assert "<td>USD</td><td>captured</td><td>100.00</td>" in page


def test_the_seller_accounts_section_shows_each_area_and_count() -> None:
    accounts = {"sub-accounts": {"created": 4, "actions taken by sub-accounts": 31},
                "penalties": {"orders refused by penalties": 7}}

    page = charts.page(report(accounts=accounts))

    assert "<h2>Seller accounts</h2>" in page
    assert '<tr><td>sub-accounts</td><td>actions taken by sub-accounts</td><td class="n">31</td></tr>' in page
    assert '<tr><td>penalties</td><td>orders refused by penalties</td><td class="n">7</td></tr>' in page
    assert "Seller accounts" in report(accounts=accounts).render()
