"""How values read on the console's pages: money in its currency's minor units, time left,
payloads as JSON."""

from __future__ import annotations

import json
from datetime import datetime
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


left = lifecycle.time_left_text  # as the CLI prints it


def when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def one_line(error: BaseException) -> str:
    """A refusal as the CLI prints it after ``error:``: the error's message on one line."""
    return " ".join(str(error).split())
