"""The report as one static HTML page with inline SVG charts: no scripts, no network."""

from __future__ import annotations

import html
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lifecycle.simulation.report_data import ReportData

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac", "#1f77b4", "#8c564b")
WIDTH, HEIGHT, PAD = 760, 300, 48


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
        f"<title>{e(title)}</title>",
        "<style>body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:64em}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{padding:2px 10px;"
        "border-bottom:1px solid #ddd;text-align:left}td.n{text-align:right}"
        "svg{background:#fafafa;border:1px solid #eee}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f"<p>{e(report.status)}; simulated {e(report.simulated['start'])} → "
        f"{e(report.simulated['end'])} ({report.simulated['days']} days); "
        f"{report.transitions:,} transitions; ledger check "
        f"{'passed' if report.check.get('passed') else 'FAILED'}.</p>",
        "<h2>Orders in each state, by simulated day</h2>",
        states_chart(report.timeline),
        "<h2>Days from placing to funds released</h2>",
        histogram(report.release_histogram),
        "<h2>Order funnel</h2>",
        _table(("stage", "orders"), list(report.funnel.items())),
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
               [(c, item, amount) for c, items in report.money.items() for item, amount in items.items()]),
        "<h2>Final states</h2>",
        _table(("kind", "state", "aggregates"),
               [(k, s, n) for k, counts in report.states.items() for s, n in counts.items()]),
        "<h2>Activity</h2>",
        _table(("what", "count"), list(report.activity.items())),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="n">{v:,}</td>' if isinstance(v, int) and not isinstance(v, bool)
            else f"<td>{e(str(v))}</td>" for v in row) + "</tr>"
        for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _frame(x_max: float, y_max: float, x_label: str, y_label: str) -> list[str]:
    """Axes with a few ticks; returns SVG elements."""
    parts = [f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - 10}" y2="{HEIGHT - PAD}" stroke="#333"/>',
             f'<line x1="{PAD}" y1="10" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#333"/>']
    for i in range(5):
        y_value = y_max * i / 4
        y = HEIGHT - PAD - (HEIGHT - PAD - 10) * i / 4
        parts.append(f'<text x="{PAD - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">'
                     f'{y_value:,.0f}</text>')
        x_value = x_max * i / 4
        x = PAD + (WIDTH - PAD - 10) * i / 4
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - PAD + 14}" font-size="10" '
                     f'text-anchor="middle">{x_value:,.0f}</text>')
    parts.append(f'<text x="{(WIDTH + PAD) / 2}" y="{HEIGHT - 12}" font-size="11" '
                 f'text-anchor="middle">{html.escape(x_label)}</text>')
    parts.append(f'<text x="12" y="{HEIGHT / 2}" font-size="11" text-anchor="middle" '
                 f'transform="rotate(-90 12 {HEIGHT / 2})">{html.escape(y_label)}</text>')
    return parts


def states_chart(timeline: Sequence[Mapping[str, Any]]) -> str:
    if not timeline:
        return "<p>(no days sampled)</p>"
    names = sorted({state for sample in timeline for state in sample["orders"]})
    x_max = max(sample["day"] for sample in timeline) or 1
    y_max = max((n for sample in timeline for n in sample["orders"].values()), default=1) or 1

    def point(day: float, n: float) -> str:
        x = PAD + (WIDTH - PAD - 10) * day / x_max
        y = HEIGHT - PAD - (HEIGHT - PAD - 10) * n / y_max
        return f"{x:.1f},{y:.1f}"

    height = HEIGHT + 16 * ((len(names) + 3) // 4)  # room for the legend
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
             'role="img" aria-label="orders in each state by simulated day">',
             *_frame(x_max, y_max, "simulated day", "orders")]
    for i, name in enumerate(names):
        colour = PALETTE[i % len(PALETTE)]
        points = " ".join(point(s["day"], s["orders"].get(name, 0)) for s in timeline)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="{points}"/>')
        lx, ly = PAD + 180 * (i % 4), HEIGHT + 4 + 16 * (i // 4)
        parts.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{lx + 14}" y="{ly}" font-size="11">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def histogram(bins: Sequence[tuple[int, int]]) -> str:
    if not bins:
        return "<p>(no order has released its funds)</p>"
    counts = dict(bins)
    x_max = max(counts) + 1
    y_max = max(counts.values())
    width = (WIDTH - PAD - 10) / x_max
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img" '
             'aria-label="orders by days from placing to funds released">',
             *_frame(x_max, y_max, "days from placing to funds released", "orders")]
    for day, n in sorted(counts.items()):
        h = (HEIGHT - PAD - 10) * n / y_max
        parts.append(f'<rect x="{PAD + day * width + 0.5:.1f}" y="{HEIGHT - PAD - h:.1f}" '
                     f'width="{max(width - 1, 0.5):.1f}" height="{h:.1f}" fill="#4e79a7">'
                     f"<title>day {day}: {n} orders</title></rect>")
    parts.append("</svg>")
    return "\n".join(parts)
