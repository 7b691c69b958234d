"""The report as aligned text tables, for a terminal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lifecycle.simulation.report_data import ReportData


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A titled table; numbers right-aligned, text left-aligned."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    numeric = [all(_is_number(row[i]) for row in rows) if rows else False for i in range(len(headers))]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if numeric[i] else v.ljust(w)
                         for i, (v, w) in enumerate(zip(row, widths, strict=True))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    body = [line(row) for row in cells[1:]] or ["(none)"]
    return "\n".join([title, line(cells[0]), rule, *body])


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def render(report: ReportData) -> str:
    config = report.config
    simulated = report.simulated
    faults = ",".join(f"{k}={v:g}" for k, v in config["faults"].items() if v) or "none"
    head = (f"simulation {report.name}: {report.status} — seed {config['seed']}, "
            f"{config['sellers']:,} sellers, {config['orders']:,} orders over {config['days']} days, "
            f"faults {faults}\nsimulated {simulated['start']} → {simulated['end']} "
            f"({simulated['days']:,} days)")
    placed = report.funnel.get("placed", 0) or 1
    sections = [
        head,
        table("Final states", ("kind", "state", "aggregates", "entered"),
              [(kind, state, n, report.reached.get(kind, {}).get(state, 0))
               for kind, counts in report.states.items() for state, n in counts.items()]),
        table("Order funnel", ("stage", "orders", "% of placed"),
              [(stage, n, f"{100 * n / placed:.1f}") for stage, n in report.funnel.items()]),
        table("Other endings", ("ending", "orders"), list(report.endings.items())),
        table("Disputes by type and outcome", ("type", "resolved_refund", "resolved_no_refund", "open"),
              [(t, c.get("resolved_refund", 0), c.get("resolved_no_refund", 0), c.get("open", 0))
               for t, c in report.disputes.items()]),
        table("Dispute paths", ("path", "disputes"), list(report.dispute_paths.items())),
        table("Times (simulated days)", ("span", "orders", "p50", "p90", "p99"),
              [(name, int(s["n"]), s["p50"], s["p90"], s["p99"]) for name, s in report.durations.items()]),
        table("Money", ("currency", "item", "amount"),
              [(currency, item, amount) for currency, items in report.money.items()
               for item, amount in items.items()]
              + [("gateway", item, amount) for item, amount in report.gateway.items()]),
        _check(report),
        table("Seller accounts", ("area", "what", "count"),
              [(area, what, n) for area, counts in report.accounts.items()
               for what, n in counts.items()]),
        table("Activity", ("what", "count"),
              [("transitions (history rows)", report.transitions), *report.activity.items(),
               *((f"parked deadline: {t}", n) for t, n in report.parked.items())]),
        table("Triggers fired", ("trigger", "count"), list(report.triggers.items())),
        table("Wall clock (differs between runs)", ("measure", "value"), list(report.wall.items())),
    ]
    return "\n\n".join(sections) + "\n"


def _check(report: ReportData) -> str:
    check = report.check
    if not check.get("ran"):
        return "Ledger and history check: not run"
    if check["passed"]:
        return "Ledger and history check: passed"
    lines = [f"Ledger and history check: FAILED, {check['violations']} violation(s)"]
    lines += [f"  {v}" for v in check["first"]]
    return "\n".join(lines)
