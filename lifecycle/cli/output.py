r"""What commands print: the JSON shapes documented in docs/cli.md, and aligned tables.

Text from the data (a consignee's name, a reason, a note) may hold control characters that a
terminal obeys rather than shows: ``\x1b[2J`` clears the screen, others rewrite the window's
title or reorder the line. Every text line leaves through `echo`, which shows them escaped
(``\x1b``); tables and ``key  value`` lines escape their cells first (a newline too), so that
columns stay aligned and a value cannot forge a line. JSON output is escaped by json itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import click

import lifecycle
from lifecycle import Aggregate, HistoryEntry, ScheduledDeadline, TrackingRecord

# C0 and C1 controls and DEL, and the bidirectional marks, embeddings, overrides and isolates
# (U+061C, U+200E-200F, U+202A-202E, U+2066-2069) that make a terminal show text out of order.
_BIDI = r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(rf"[\x00-\x1f\x7f-\x9f{_BIDI}]")
_UNSAFE_BUT_NEWLINE = re.compile(rf"[\x00-\x09\x0b-\x1f\x7f-\x9f{_BIDI}]")


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    r"""``text`` with every control character shown as an escape, a newline too:
    ``"a\x1b[2J"`` → ``a\\x1b[2J`` (ESC shown as the four characters ``\x1b``)."""
    return _UNSAFE.sub(_escape, text)


def echo(text: str, *, err: bool = False) -> None:
    """Print lines of text: its newlines are the CLI's own, any other control character is
    shown escaped (see the module's docstring)."""
    click.echo(_UNSAFE_BUT_NEWLINE.sub(_escape, text), err=err)


# --- money ---------------------------------------------------------------------------------

#: the fields of aggregate data and payloads that hold an amount of money, in the currency the
#: data or payload names (`currency_of`); an order's lines' ``unit_price`` and its logistics'
#: ``shipping_fee`` too, and a dispute's ``offer.refund_amount``
MONEY_FIELDS = frozenset({
    "goods_total", "coupon_amount", "shipping_fee", "total", "amount_paid", "refunded",
    "commission", "payout", "amount", "unit_price", "refund_amount", "refundable", "settlement",
    "annual_fee", "denomination", "threshold",
})
#: the data fields that name the currency of the money fields beside them
CURRENCY_FIELDS = ("currency", "fee_currency")


def currency_of(data: Mapping[str, Any], default: str | None = None) -> str | None:
    """The currency ``data`` names (an order's ``currency``, a seller's ``fee_currency``)."""
    for name in CURRENCY_FIELDS:
        if isinstance(data.get(name), str):
            return str(data[name])
    return default


def amount(value: Any, currency: str | None) -> str:
    """An amount as text with its currency's minor units: ``15`` USD → ``15.00``, ``1E+1`` →
    ``10.00``, ``1500`` JPY → ``1500``, ``2.5`` KWD → ``2.500``. What is no amount, or whose
    currency is unknown, is shown as it is (as text)."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal | float):
        return str(value)
    try:
        number = Decimal(str(value))
        digits = lifecycle.currency_exponent(currency) if currency else None
    except (InvalidOperation, lifecycle.LifecycleError):
        return str(value)
    if digits is None or not number.is_finite():
        return str(value)
    shown = number.quantize(Decimal(1).scaleb(-digits))
    return f"{shown + 0:f}"  # + 0 turns -0.00 into 0.00


def amounts(value: Any, currency: str | None) -> Any:
    """``value`` (aggregate data, a payload) with every money field (`MONEY_FIELDS`) as
    `amount` text, at any depth; a mapping that names its own currency uses it."""
    if isinstance(value, Mapping):
        here = currency_of(value, currency)
        return {key: amount(item, here) if key in MONEY_FIELDS and item is not None
                else amounts(item, here) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [amounts(item, currency) for item in value]
    return value


def aggregate_json(aggregate: Aggregate, allowed: Sequence[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": aggregate.kind,
        "id": aggregate.id,
        "state": aggregate.state,
        "version": aggregate.version,
        "machine_version": aggregate.machine_version,
        "data": amounts(dict(aggregate.data), None),
    }
    if allowed is not None:
        out["allowed"] = list(allowed)
    return out


def history_json(entry: HistoryEntry, currency: str | None = None) -> dict[str, Any]:
    """One history row; its payload's amounts in ``currency`` (the aggregate's) unless the
    payload names its own."""
    return {
        "seq": entry.seq,
        "trigger": entry.trigger,
        "source": entry.source,
        "dest": entry.dest,
        "actor": str(entry.actor),
        "payload": amounts(dict(entry.payload), currency),
        "idempotency_key": entry.idempotency_key,
        "at": entry.at.isoformat(),
    }


def scan_json(scan: TrackingRecord) -> dict[str, Any]:
    return {
        "carrier": scan.carrier,
        "waybill": scan.waybill,
        "event_id": scan.event_id,
        "status": scan.status,
        "exception_kind": scan.exception_kind,
        "reported_at": scan.reported_at.isoformat() if scan.reported_at else None,
        "location": scan.location,
        "detail": scan.detail,
        "moved": scan.moved,
        "recorded_at": scan.recorded_at.isoformat(),
    }


def deadline_json(deadline: ScheduledDeadline) -> dict[str, Any]:
    return {
        "kind": deadline.kind,
        "id": deadline.aggregate_id,
        "state": deadline.state,
        "trigger": deadline.trigger,
        "status": deadline.status,
        "due_at": deadline.due_at.isoformat(),
        "remaining_seconds": deadline.remaining.total_seconds() if deadline.remaining else None,
        "attempts": deadline.attempts,
        "last_error": deadline.last_error,
    }


def balances_json(balances: Mapping[str, Mapping[str, Decimal]]) -> dict[str, dict[str, str]]:
    """``{currency: {account: "amount"}}``, as `Engine.balances` gives them, amounts as text."""
    return {currency: {account: amount(value, currency) for account, value in sorted(accounts.items())}
            for currency, accounts in sorted(balances.items())}


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def moved(aggregate: Aggregate) -> str:
    """The one line a write prints: ``order o-1 is paid (version 2)``."""
    return printable(f"{aggregate.kind} {aggregate.id} is {aggregate.state} (version {aggregate.version})")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Aligned columns, the way operators read them."""
    cells = [[printable(str(h)) for h in headers],
             *([("" if c is None else printable(str(c))) for c in r] for r in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def pairs(rows: Iterable[tuple[str, Any]], indent: str = "  ") -> list[str]:
    """``key  value`` lines with the keys aligned."""
    listed = [(printable(key), "-" if value is None or value == "" else printable(str(value)))
              for key, value in rows]
    width = max((len(key) for key, _ in listed), default=0)
    return [f"{indent}{key.ljust(width)}  {value}".rstrip() for key, value in listed]


def indented(text: str, indent: str = "  ") -> list[str]:
    return [indent + line for line in text.splitlines()]


def describe(aggregate: Aggregate, commands: Sequence[str], system: Sequence[str] = ()) -> str:
    """The generic ``show``: state, version, the commands the actor may run (and what only
    the system does from here) and every data field."""
    head = [
        f"{aggregate.kind} {aggregate.id}",
        f"  state    {aggregate.state}",
        f"  version  {aggregate.version}",
        f"  may run  {commands[0] if commands else '-'}",
        *(f"           {command}" for command in commands[1:]),
        *([f"  only the system: {', '.join(system)}"] if system else []),
    ]
    shown = amounts(aggregate.data, None)
    data = [f"  {printable(key):<18} {short(value)}" for key, value in sorted(shown.items())]
    return "\n".join([*(printable(line) for line in head), "  data", *data])


def readable(value: Any) -> str:
    """A value of aggregate data as a person reads it, not as JSON: a list as ``a, b, c``, a
    mapping as ``key value, key value`` (a list of mappings one per ``;``), a flag as
    ``yes``/``no``; control characters escaped."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return ", ".join(f"{printable(str(key))} {readable(item)}" for key, item in value.items())
    if isinstance(value, list | tuple):
        joiner = "; " if any(isinstance(item, Mapping) for item in value) else ", "
        return joiner.join(readable(item) for item in value) or "-"
    return "-" if value is None else printable(str(value))


def short(value: Any, width: int = 90) -> str:
    """`readable`, cut to ``width`` characters."""
    text = readable(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def stamp(value: Any) -> str:
    """An ISO timestamp from aggregate data as ``2026-01-01 00:00``; anything else as is."""
    if not value:
        return ""
    try:
        return datetime.fromisoformat(str(value)).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return str(value)


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


left = lifecycle.time_left_text  # ``6d 23h59m``, ``3h05m``, ``due``: as the console shows it


def history_table(entries: Sequence[HistoryEntry]) -> str:
    return table(
        ["seq", "at", "trigger", "from", "to", "actor", "key"],
        ([e.seq, when(e.at), e.trigger, e.source or "-", e.dest, str(e.actor),
          e.idempotency_key or ""] for e in entries),
    )
