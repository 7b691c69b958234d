"""Payload errors in our words (issue #19): what pydantic says becomes what the field must be."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

import lifecycle
from lifecycle.machines.payload_words import PATTERNS, in_words


def _patterns(schema: Any) -> set[str]:
    """Every ``pattern`` in a JSON schema, at any depth."""
    if isinstance(schema, dict):
        found = {schema["pattern"]} if isinstance(schema.get("pattern"), str) else set()
        return found.union(*(_patterns(value) for value in schema.values()))
    if isinstance(schema, list):
        return set().union(*(_patterns(item) for item in schema))
    return set()


def test_every_pattern_a_payload_model_uses_has_words() -> None:
    models = {t.payload for d in lifecycle.definitions().values() for t in d.transitions
              if t.payload is not None}
    used = set().union(*(_patterns(model.model_json_schema()) for model in models))

    assert used  # country, currency, codes, waybills, email, domain
    assert used - set(PATTERNS) == set()


class Shipment(BaseModel):
    model_config = {"extra": "forbid"}
    country: str
    amount: Decimal = Decimal(0)
    weight: float = 0


def _first(model: type[BaseModel], payload: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(ValidationError) as refused:
        model.model_validate(payload)
    return dict(refused.value.errors()[0])


@pytest.mark.parametrize(("payload", "said"), [
    ({}, "is required"),
    ({"country": "PT", "colour": "red"}, "is not a field this payload takes"),
    ({"country": 7}, "must be text (got 7)"),
    ({"country": "PT", "amount": "lots"}, "must be a decimal number like 19.99 (got 'lots')"),
    ({"country": "PT", "weight": "heavy"}, "must be a number like 1.5"),
])
def test_common_pydantic_errors_read_as_what_the_field_must_be(payload: dict[str, Any],
                                                                said: str) -> None:
    words = in_words(_first(Shipment, payload))

    assert words.startswith(said) or said in words
    assert "should" not in words
    assert "Input" not in words


def test_our_own_validators_keep_their_words_without_pydantics_prefix() -> None:
    error = {"type": "value_error", "msg": "Value error, the lines are empty", "loc": ("lines",)}

    assert in_words(error) == "the lines are empty"
