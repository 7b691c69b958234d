"""JSON as lifecycle reads it from outside: callbacks, pushes, request bodies.

Python's ``json.loads`` keeps the last of two equal keys, so ``{"amount": "1", "amount": "999"}``
means one thing to us and maybe another to a proxy, a log reader or the signer that checked it
(RFC 8259 §4 leaves duplicates undefined; RFC 7493 I-JSON forbids them). We refuse them at any
depth. Numbers with a fraction or exponent become `Decimal` (money is never a float), NaN and
Infinity are refused, and a body nested too deep for the parser is refused like any other bad
body rather than escaping as a RecursionError.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, NoReturn


class JSONRefused(ValueError):
    """Text that is not JSON lifecycle accepts; ``reason`` says why in one line."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


class DuplicateKey(JSONRefused):
    """An object that names ``key`` twice."""

    def __init__(self, key: str):
        self.key = key
        super().__init__(f"duplicate key {key!r} in a JSON object")


def loads_json(body: bytes | str) -> Any:
    """Parse ``body`` (UTF-8 bytes or text) strictly: duplicate keys at any depth, NaN and
    Infinity, invalid UTF-8 and nesting deeper than the parser goes raise `JSONRefused` (a
    ValueError; `DuplicateKey` names the key). Fractional numbers come back as `Decimal`."""
    if isinstance(body, bytes | bytearray | memoryview):
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError as error:
            raise JSONRefused(f"not UTF-8 (byte {error.start})") from None
    elif isinstance(body, str):
        text = body
    else:
        raise JSONRefused(f"a JSON body is bytes or str, got {type(body).__name__}")
    try:
        return json.loads(text, object_pairs_hook=_object, parse_float=Decimal,
                          parse_constant=_refuse_constant)
    except JSONRefused:
        raise
    except json.JSONDecodeError as error:
        raise JSONRefused(f"not valid JSON ({error.msg} at char {error.pos})") from None
    except RecursionError:
        raise JSONRefused("nested too deep") from None
    except ValueError as error:  # an integer of more digits than int() converts
        raise JSONRefused(str(error)) from None


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Called for every object, innermost first, so a duplicate at any depth is seen.
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise DuplicateKey(key)
        found[key] = value
    return found


def _refuse_constant(name: str) -> NoReturn:
    raise JSONRefused(f"{name} is not a number lifecycle accepts")
