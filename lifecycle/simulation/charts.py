"""The report as one static HTML page with inline SVG charts: no scripts, no network.

The page fits any window (the charts scale with it), and works offline: every chart's data is
embedded as CSV and JSON download links (``data:`` URLs), and each day's counts show as a
tooltip (an SVG ``<title>``) when the pointer rests on that day. The orders-by-state chart is
split by phase, at most five series each, in a colour-blind-safe palette (Okabe and Ito) with
a dash pattern per series as well, so no two lines of a chart are told apart by hue alone.
Axis ticks are round numbers (0, 50, 100, 150).
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import os
import secrets
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import quote

import lifecycle
from lifecycle.simulation.report_data import ReportData

#: Okabe & Ito's palette, safe for the common colour-vision deficiencies
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000", "#F0E442")
DASHES = ("", "6 3", "2 2", "8 3 2 3", "1 3")
WIDTH, HEIGHT, PAD, RIGHT, TOP = 760, 300, 56, 12, 12

#: the order's states by phase: one chart each
PHASES = (
    ("Before shipping", ("awaiting_payment", "paid", "cancel_requested", "awaiting_pickup")),
    ("On the way", ("shipped", "in_transit", "delivered")),
    ("After delivery", ("completed", "in_dispute", "funds_released")),
    ("Ended otherwise", ("cancelled", "refunded")),
)
#: the funnel's stages in the order an order passes them
FUNNEL = ("placed", "paid", "shipped", "delivered", "completed", "funds_released")
FUNNEL_NOTE = (
    "Delivered can be fewer than completed: an order is completed when the buyer confirms "
    "receipt (confirm_receipt) or the timer confirms it (auto_confirm), and both may happen "
    "from shipped or in_transit, before any carrier scan says delivered."
)

STYLE = (
    "body{font:15px/1.45 system-ui,sans-serif;margin:1.5em auto;padding:0 1em;max-width:72em;"
    "color:#222}"
    "h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em}h3{font-size:1em;margin:1em 0 .3em}"
    "table{border-collapse:collapse;margin:.5em 0 1.2em}td,th{padding:2px 10px;"
    "border-bottom:1px solid #ddd;text-align:left;overflow-wrap:anywhere}td.n{text-align:right;"
    "font-variant-numeric:tabular-nums}"
    ".charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,30em),1fr));"
    "gap:1em}"
    "figure{margin:0}figcaption{font-size:.9em;color:#555}"
    "svg{width:100%;height:auto;background:#fafafa;border:1px solid #eee}"
    "svg .day{fill:transparent}svg .day:hover{fill:rgba(0,0,0,.07)}"
    ".note{color:#555;max-width:50em}.export a{margin-right:1em}"
    "@media (max-width:40em){body{font-size:14px}td,th{padding:2px 5px}}"
)


def write_html(report: ReportData, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "index.html"
    _replace(path, page(report))
    return path


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to a new file beside ``path``, then rename it onto ``path``.

    Opening ``path`` itself would follow a symlink planted there and overwrite its target; a
    rename replaces the link instead. The new name is created exclusively (``O_EXCL`` refuses an
    existing name, link or not), and a reader never sees half a page.
    """
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def page(report: ReportData) -> str:
    e = html.escape
    config = report.config
    title = f"Simulation {report.name}: seed {config['seed']}, {config['orders']:,} orders"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f"<p>{e(report.status)}; simulated {e(report.simulated['start'])} → "
        f"{e(report.simulated['end'])} ({report.simulated['days']} days); "
        f"{report.transitions:,} transitions; ledger check "
        f"{'passed' if report.check.get('passed') else 'FAILED'}.</p>",
        "<h2>Run parameters</h2>",
        _table(("parameter", "value"), parameters(report)),
        "<h2>Throughput</h2>",
        _table(("measure", "value"), throughput(report)),
        "<h2>Faults injected and how the run met them</h2>",
        _faults(report),
        "<h2>Orders in each state, by simulated day</h2>",
        '<p class="note">One chart per phase; rest the pointer on a day for its counts.</p>',
        '<div class="charts">',
        *(states_chart(report.timeline, phase, states) for phase, states in PHASES),
        "</div>",
        _export("timeline", timeline_rows(report.timeline)),
        "<h2>Days from placing to funds released</h2>",
        histogram(report.release_histogram),
        _export("release_histogram", [("days", "orders"), *report.release_histogram]),
        "<h2>Order funnel</h2>",
        _table(("stage", "orders", "% of placed"), funnel_rows(report.funnel)),
        f'<p class="note">{e(FUNNEL_NOTE)}</p>',
        _export("funnel", [("stage", "orders"), *funnel_order(report.funnel)]),
        "<h2>How orders that did not release funds ended</h2>",
        _table(("ending", "orders", "% of placed"), _shares(report.endings, report.funnel)),
        "<h2>Times (simulated days)</h2>",
        _table(("span", "orders", "p50", "p90", "p99"),
               [(k, int(v["n"]), v["p50"], v["p90"], v["p99"]) for k, v in report.durations.items()]),
        "<h2>Disputes</h2>",
        _table(("type", "resolved_refund", "resolved_no_refund", "open"),
               [(t, c.get("resolved_refund", 0), c.get("resolved_no_refund", 0), c.get("open", 0))
                for t, c in report.disputes.items()]),
        _table(("path", "disputes"), list(report.dispute_paths.items())),
        "<h2>Money</h2>",
        _table(("currency", "item", "amount"),
               [(c, item, _amount(amount, c)) for c, items in report.money.items()
                for item, amount in items.items()]),
        "<h2>Seller accounts</h2>",
        _table(("area", "what", "count"), account_rows(report)),
        "<h2>Final states</h2>",
        _table(("kind", "state", "aggregates"),
               [(k, s, n) for k, counts in report.states.items() for s, n in counts.items()]),
        "<h2>Activity</h2>",
        _table(("what", "count"), list(report.activity.items())),
        "<h2>All of the report</h2>",
        '<p class="export">'
        f'<a download="report.json" href="{_data_url("application/json", report.to_json())}">'
        "report.json</a></p>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


# --- the tables ----------------------------------------------------------------------------


def parameters(report: ReportData) -> list[tuple[str, Any]]:
    """What the run was asked to do: the options a re-run needs to give the same report."""
    config = report.config
    shown = ("name", "seed", "sellers", "orders", "days", "drain_days", "shards", "start",
             "tick_minutes", "push_every_hours", "fee_period_days",
             "violation_points_period_days", "check")
    rows: list[tuple[str, Any]] = [(name, config[name]) for name in shown if name in config]
    faults = {name: rate for name, rate in (config.get("faults") or {}).items() if rate}
    rows.append(("faults", ", ".join(f"{name}={rate}" for name, rate in faults.items()) or "none"))
    return rows


def throughput(report: ReportData) -> list[tuple[str, Any]]:
    days = float(report.simulated.get("days") or 0)
    placed = report.funnel.get("placed", 0)
    rows: list[tuple[str, Any]] = [
        ("transitions", report.transitions),
        ("orders placed per simulated day", round(placed / days, 1) if days else "-"),
        ("transitions per simulated day", round(report.transitions / days, 1) if days else "-"),
    ]
    wall = report.wall or {}
    if wall.get("seconds"):
        rows += [("wall-clock seconds", wall["seconds"]),
                 ("transitions per wall-clock second", wall.get("transitions_per_second", "-")),
                 ("peak memory (MB)", wall.get("peak_rss_mb", "-"))]
    return rows


def _faults(report: ReportData) -> str:
    rates = report.config.get("faults") or {}
    injected = [(name, rate) for name, rate in rates.items() if rate]
    met = [(what, n) for what, n in report.activity.items()
           if what.startswith(("adapter.", "retries.", "refused.", "waybills.", "conflicts"))]
    parked = list(report.parked.items())
    parts = [_table(("fault", "rate"), injected) if injected
             else "<p>No faults were injected (<code>--faults</code>).</p>"]
    if met:
        parts.append(_table(("what happened", "count"), met))
    parts.append(_table(("deadline parked after repeated failures", "count"), parked) if parked
                 else "<p>No deadline was parked.</p>")
    return "\n".join(parts)


def funnel_order(funnel: Mapping[str, int]) -> list[tuple[str, int]]:
    """The funnel's stages in the order an order passes them; any other stage after them."""
    known = [(stage, funnel[stage]) for stage in FUNNEL if stage in funnel]
    return known + [(stage, n) for stage, n in funnel.items() if stage not in FUNNEL]


def funnel_rows(funnel: Mapping[str, int]) -> list[tuple[str, int, str]]:
    return _shares(dict(funnel_order(funnel)), funnel)


def _shares(counts: Mapping[str, int], funnel: Mapping[str, int]) -> list[tuple[str, int, str]]:
    placed = funnel.get("placed", 0)
    return [(name, n, f"{100 * n / placed:.1f}%" if placed else "-") for name, n in counts.items()]


def _amount(value: str, currency: str) -> str:
    """``0`` USD as ``0.00``: the currency's minor units, as the CLI prints money."""
    try:
        digits = lifecycle.currency_exponent(currency)
        return f"{Decimal(value).quantize(Decimal(1).scaleb(-digits)) + 0:f}"
    except (lifecycle.LifecycleError, InvalidOperation):
        return value


def account_rows(report: ReportData) -> list[tuple[str, str, int]]:
    """The "Seller accounts" section (issue #20) as rows: area, what, count."""
    return [(area, what, n) for area, counts in report.accounts.items()
            for what, n in counts.items()]


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="n">{v:,}</td>' if isinstance(v, int | float) and not isinstance(v, bool)
            else f"<td>{e(str(v))}</td>" for v in row) + "</tr>"
        for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


# --- export ----------------------------------------------------------------------------------


def timeline_rows(timeline: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """The orders-by-state chart's data: a header, then one row per sampled day."""
    names = sorted({state for sample in timeline for state in sample["orders"]})
    return [("day", *names),
            *((sample["day"], *(sample["orders"].get(n, 0) for n in names)) for sample in timeline)]


def _data_url(media_type: str, text: str) -> str:
    return f"data:{media_type};charset=utf-8,{quote(text, safe='')}"


def _export(name: str, rows: Sequence[Sequence[Any]]) -> str:
    """Download links for one chart's data: CSV (a header row) and JSON (a list of objects)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    header, *body = rows
    records = [dict(zip(header, row, strict=True)) for row in body]
    return (f'<p class="export">Data: '
            f'<a download="{name}.csv" href="{_data_url("text/csv", buffer.getvalue())}">'
            f"{name}.csv</a>"
            f'<a download="{name}.json" href="{_data_url("application/json", json.dumps(records))}">'
            f"{name}.json</a></p>")


# --- the charts ------------------------------------------------------------------------------


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``top``: 1, 2, 2.5 or 5 times a power of ten
    apart, about ``count`` of them (191 → 0, 50, 100, 150, 200)."""
    if top <= 0:
        return [0.0, 1.0]
    rough = top / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(rough))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= rough)
    steps = math.ceil(top / step - 1e-9)
    return [round(i * step, 10) for i in range(steps + 1)]


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


class _Plot:
    """Maps data to the SVG's coordinates, with round ticks on both axes."""

    def __init__(self, x_max: float, y_max: float, height: int = HEIGHT):
        self.x_ticks, self.y_ticks = nice_ticks(x_max, 6), nice_ticks(y_max)
        self.x_top, self.y_top = self.x_ticks[-1] or 1, self.y_ticks[-1] or 1
        self.height = height

    def x(self, value: float) -> float:
        return PAD + (WIDTH - PAD - RIGHT) * value / self.x_top

    def y(self, value: float) -> float:
        return HEIGHT - PAD - (HEIGHT - PAD - TOP) * value / self.y_top

    def frame(self, x_label: str, y_label: str) -> list[str]:
        e = html.escape
        parts = []
        for tick in self.y_ticks:
            y = self.y(tick)
            parts.append(f'<line x1="{PAD}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
                         'stroke="#e4e4e4"/>'
                         f'<text x="{PAD - 6}" y="{y + 4:.1f}" font-size="14" text-anchor="end">'
                         f"{_number(tick)}</text>")
        for tick in self.x_ticks:
            x = self.x(tick)
            parts.append(f'<text x="{x:.1f}" y="{HEIGHT - PAD + 18}" font-size="14" '
                         f'text-anchor="middle">{_number(tick)}</text>')
        parts += [f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - PAD}" '
                  'stroke="#333"/>',
                  f'<line x1="{PAD}" y1="{TOP}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#333"/>',
                  f'<text x="{(WIDTH + PAD) / 2}" y="{HEIGHT - PAD + 38}" font-size="15" '
                  f'text-anchor="middle">{e(x_label)}</text>',
                  f'<text x="16" y="{(HEIGHT - PAD) / 2}" font-size="15" text-anchor="middle" '
                  f'transform="rotate(-90 16 {(HEIGHT - PAD) / 2})">{e(y_label)}</text>']
        return parts


def states_chart(timeline: Sequence[Mapping[str, Any]], phase: str = "Orders",
                 states: Sequence[str] | None = None) -> str:
    """Orders in each of ``states`` (default: every state seen) at the end of each day."""
    e = html.escape
    if not timeline:
        return "<p>(no days sampled)</p>"
    seen = {state for sample in timeline for state in sample["orders"]}
    names = [s for s in states if s in seen] if states is not None else sorted(seen)
    if not names:
        return f"<figure><figcaption>{e(phase)}: no order was in these states.</figcaption></figure>"
    x_max = max(sample["day"] for sample in timeline) or 1
    y_max = max((sample["orders"].get(n, 0) for sample in timeline for n in names), default=1) or 1
    plot = _Plot(x_max, y_max)
    legend_rows = (len(names) + 2) // 3
    height = HEIGHT + 24 * legend_rows
    parts = [f"<figure><figcaption>{e(phase)}: {e(', '.join(names))}</figcaption>",
             f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
             f'role="img" aria-label="{e(phase)}: orders in each state by simulated day">',
             *plot.frame("simulated day", "orders")]
    # One band per day, under the lines: its tooltip gives that day's counts.
    days = [sample["day"] for sample in timeline]
    band = (plot.x(days[-1]) - plot.x(days[0])) / max(len(days) - 1, 1) or 4.0
    for sample in timeline:
        counts = ", ".join(f"{n} {sample['orders'].get(n, 0):,}" for n in names)
        parts.append(f'<rect class="day" x="{plot.x(sample["day"]) - band / 2:.1f}" y="{TOP}" '
                     f'width="{band:.1f}" height="{HEIGHT - PAD - TOP}">'
                     f"<title>day {sample['day']}: {e(counts)}</title></rect>")
    for i, name in enumerate(names):
        colour, dash = PALETTE[i % len(PALETTE)], DASHES[i % len(DASHES)]
        points = " ".join(f"{plot.x(s['day']):.1f},{plot.y(s['orders'].get(name, 0)):.1f}"
                          for s in timeline)
        peak = max(timeline, key=lambda s: s["orders"].get(name, 0))
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dashed} '
                     f'points="{points}" pointer-events="none"><title>{e(name)}: at most '
                     f"{peak['orders'].get(name, 0):,} on day {peak['day']}</title></polyline>")
        lx, ly = PAD + 230 * (i % 3), HEIGHT + 6 + 24 * (i // 3)
        parts.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 26}" y2="{ly}" stroke="{colour}" '
                     f'stroke-width="3"{dashed}/>'
                     f'<text x="{lx + 32}" y="{ly + 5}" font-size="15">{e(name)}</text>')
    parts.append("</svg></figure>")
    return "\n".join(parts)


def histogram(bins: Sequence[tuple[int, int]]) -> str:
    if not bins:
        return "<p>(no order has released its funds)</p>"
    counts = dict(bins)
    plot = _Plot(max(counts) + 1, max(counts.values()))
    width = plot.x(1) - plot.x(0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             'aria-label="orders by days from placing to funds released">',
             *plot.frame("days from placing to funds released", "orders")]
    for day, n in sorted(counts.items()):
        top = plot.y(n)
        parts.append(f'<rect x="{plot.x(day) + 0.5:.1f}" y="{top:.1f}" '
                     f'width="{max(width - 1, 0.5):.1f}" height="{HEIGHT - PAD - top:.1f}" '
                     f'fill="{PALETTE[0]}"><title>day {day}: {n:,} orders</title></rect>')
    parts.append("</svg>")
    return "\n".join(parts)
