"""`lifecycle.loads_json`: the JSON lifecycle reads from outside refuses what could mean two things."""

from __future__ import annotations

from decimal import Decimal

import pytest

import lifecycle


def test_a_duplicate_key_is_refused_naming_it() -> None:
    with pytest.raises(lifecycle.DuplicateKey, match="'amount'") as caught:
        lifecycle.loads_json(b'{"amount": "1.00", "amount": "999.00"}')
    assert caught.value.key == "amount"
    assert isinstance(caught.value, ValueError)


def test_a_duplicate_key_deep_inside_is_refused() -> None:
    body = '{"events": [{"event_id": "e1", "detail": {"x": 1, "y": 2, "x": 3}}]}'
    with pytest.raises(lifecycle.DuplicateKey, match="'x'"):
        lifecycle.loads_json(body)


def test_equal_keys_in_different_objects_are_fine() -> None:
    assert lifecycle.loads_json('[{"a": 1}, {"a": 2}]') == [{"a": 1}, {"a": 2}]


def test_fractions_are_decimal_never_float() -> None:
    value = lifecycle.loads_json(b'{"amount": 12.30, "count": 3}')
    assert value == {"amount": Decimal("12.30"), "count": 3}
    assert isinstance(value["amount"], Decimal)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_numbers_are_refused(constant: str) -> None:
    with pytest.raises(lifecycle.JSONRefused, match=constant):
        lifecycle.loads_json(f'{{"amount": {constant}}}')


def test_deep_nesting_is_refused_as_bad_json_not_a_recursion_error() -> None:
    with pytest.raises(lifecycle.JSONRefused, match="nested too deep"):
        lifecycle.loads_json("[" * 100_000 + "]" * 100_000)


@pytest.mark.parametrize(("body", "reason"), [
    (b'{"a": 1', "not valid JSON"),
    (b'\xff{"a": 1}', "not UTF-8"),
    (b"", "not valid JSON"),
])
def test_malformed_bodies_are_refused_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(lifecycle.JSONRefused, match=reason):
        lifecycle.loads_json(body)
