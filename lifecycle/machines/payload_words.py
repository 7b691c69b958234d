"""A payload's first problem in our words (issue #19): pydantic's error types, said plainly.

pydantic says ``String should match pattern '^[A-Z]{2}$'`` and ``Decimal input should have no
more than 18 digits in total``; a person typing a country code or an amount needs "a two-letter
country code in capitals (ISO 3166-1, e.g. CN, PT)" and "at most 18 digits". `in_words` turns
one error of ``ValidationError.errors()`` into that phrase; the caller names the field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lifecycle.machines.onboarding import DOMAIN_LABEL

# The patterns the payload models use, each in the words of what it asks for.
PATTERNS: Mapping[str, str] = {
    r"^[A-Z]{2}$": "a two-letter country code in capitals (ISO 3166-1, e.g. CN, PT)",
    r"^[A-Z]{3}$": "a three-letter currency code in capitals (ISO 4217, e.g. USD, EUR)",
    r"^[A-Za-z0-9._:-]{1,64}$": "1 to 64 letters, digits or . _ : - (no spaces)",
    r"^[A-Z0-9]{6,40}$": "a waybill of 6 to 40 letters and digits (spaces and hyphens are "
                         "left out)",
    r"^[^@\s]+@[^@\s]+\.[^@\s]+$": "an email address like owner@example.com",
    r"^[0-9]{6}$": "the six digits of the code that was sent",
    r"^[0-9a-f]{64}$": "a SHA-256 digest: 64 lower-case hexadecimal digits",
    DOMAIN_LABEL: "a domain label of 1 to 63 lower-case letters, digits and inner hyphens "
                  "(e.g. acme-toys)",
}

DATETIME = "a date and time in ISO 8601 with its zone, like 2026-01-01T09:30:00+00:00"


def _items(n: Any) -> str:
    return f"{n} item{'' if n == 1 else 's'}"


def _characters(n: Any) -> str:
    return f"{n} character{'' if n == 1 else 's'}"


def _too_short(ctx: Mapping[str, Any]) -> str:
    n = ctx.get("min_length")
    return "must not be empty" if n == 1 else f"must be at least {_characters(n)}"


_WORDS: Mapping[str, Callable[[Mapping[str, Any]], str]] = {
    "missing": lambda _: "is required",
    "extra_forbidden": lambda _: "is not a field this payload takes",
    "string_pattern_mismatch": lambda ctx: "must be " + PATTERNS.get(
        str(ctx.get("pattern")), "in the form the field asks for"),
    "decimal_max_digits": lambda ctx: f"has too many digits: at most {ctx.get('max_digits')} "
                                      "in all",
    "decimal_max_places": lambda ctx: f"has too many decimal places: at most "
                                      f"{ctx.get('decimal_places')}",
    "decimal_whole_digits": lambda ctx: f"has too many digits before the decimal point: at "
                                        f"most {ctx.get('whole_digits')}",
    "decimal_parsing": lambda _: "must be a decimal number like 19.99",
    "decimal_type": lambda _: "must be a decimal number like 19.99 (as text or a number)",
    "finite_number": lambda _: "must be a finite number",
    "float_type": lambda _: "must be a number like 1.5",
    "float_parsing": lambda _: "must be a number like 1.5",
    "date_type": lambda _: "must be a date like 2026-03-01",
    "date_parsing": lambda _: "must be a date like 2026-03-01",
    "date_from_datetime_parsing": lambda _: "must be a date like 2026-03-01",
    "string_too_short": _too_short,
    "string_too_long": lambda ctx: f"must be at most {_characters(ctx.get('max_length'))}",
    "too_short": lambda ctx: f"needs at least {_items(ctx.get('min_length'))}",
    "too_long": lambda ctx: f"takes at most {_items(ctx.get('max_length'))}",
    "greater_than": lambda ctx: f"must be more than {ctx.get('gt')}",
    "greater_than_equal": lambda ctx: f"must be at least {ctx.get('ge')}",
    "less_than": lambda ctx: f"must be less than {ctx.get('lt')}",
    "less_than_equal": lambda ctx: f"must be at most {ctx.get('le')}",
    "int_type": lambda _: "must be a whole number",
    "int_parsing": lambda _: "must be a whole number",
    "int_from_float": lambda _: "must be a whole number",
    "bool_type": lambda _: "must be true or false",
    "bool_parsing": lambda _: "must be true or false",
    "string_type": lambda _: "must be text",
    "literal_error": lambda ctx: f"must be {ctx.get('expected')}",
    "enum": lambda ctx: f"must be {ctx.get('expected')}",
    "list_type": lambda _: "must be a list",
    "dict_type": lambda _: "must be an object of fields",
    "model_type": lambda _: "must be an object of fields",
    "model_attributes_type": lambda _: "must be an object of fields",
    "datetime_type": lambda _: f"must be {DATETIME}",
    "datetime_parsing": lambda _: f"must be {DATETIME}",
    "datetime_from_date_parsing": lambda _: f"must be {DATETIME}",
    "timezone_aware": lambda _: f"must say its time zone: {DATETIME}",
}

# What our own validators say comes after pydantic's prefix: keep ours, drop theirs.
_PREFIXES = ("Value error, ", "Assertion failed, ")


def in_words(error: Mapping[str, Any]) -> str:
    """One pydantic error (an item of ``ValidationError.errors()``) as we say it: what the
    field must be, and what was given when it is short enough to show."""
    kind = str(error.get("type", ""))
    words = _WORDS.get(kind)
    if words is None:
        message = str(error.get("msg", "is not valid"))
        for prefix in _PREFIXES:
            message = message.removeprefix(prefix)
        return message
    said = words(error.get("ctx") or {})
    given = error.get("input")
    if kind not in ("missing", "extra_forbidden") and isinstance(given, str | int | float) \
            and not isinstance(given, bool) and len(repr(given)) <= 40:
        said += f" (got {given!r})"
    return said
