"""How values read on the console's pages: money in its currency's minor units, time left,
payloads as JSON."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import lifecycle


def amount(value: Decimal, currency: str) -> str:
    """``47.48``, ``5.00``, ``1200`` (JPY): as many decimals as the currency's minor units."""
    try:
        digits = lifecycle.currency_exponent(currency)
    except lifecycle.InvalidPayload:
        return str(value)
    return format(value.quantize(Decimal(1).scaleb(-digits)), "f")


def time_left(deadline: lifecycle.ScheduledDeadline, now: datetime) -> timedelta:
    """A paused deadline keeps the time it had left; a running one counts down to ``due_at``."""
    return deadline.remaining if deadline.remaining is not None else deadline.due_at - now


def left(delta: timedelta) -> str:
    """``6d 23h59m``, ``3h05m``; ``due`` once it has passed (as the CLI prints it)."""
    if delta <= timedelta(0):
        return "due"
    days, seconds = delta.days, delta.seconds
    if days:
        return f"{days}d {seconds // 3600:02d}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def one_line(error: BaseException) -> str:
    """A refusal as the CLI prints it after ``error:``: the error's message on one line."""
    return " ".join(str(error).split())
