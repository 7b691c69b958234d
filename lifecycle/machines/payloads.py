"""Building blocks for trigger payloads: strict, closed pydantic models.

Unknown fields are refused (a typo must not pass silently); text is bounded and stripped.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Code = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
Amount = Annotated[Decimal, Field(allow_inf_nan=False, max_digits=18)]
# The forms of the codes; whether a currency is one we settle in is `money.exponent`'s to say.
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]


class Payload(BaseModel):
    """Base of every payload model."""

    # defer_build: a model builds its validator when it first validates, so a command that
    # only reads (`lifecycle order show`) never pays for the 30-odd payload models (issue #19).
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True,
                              defer_build=True)


class Empty(Payload):
    """A trigger that takes nothing but an optional note."""

    note: LongText | None = None


class Reason(Payload):
    """A trigger that must say why."""

    reason: LongText


def iso(moment: datetime) -> str:
    """How timestamps are kept in aggregate data."""
    return moment.isoformat()


def dump(payload: BaseModel | None) -> dict[str, Any]:
    """A payload as JSON-able data (Decimals become strings)."""
    if payload is None or payload is _EMPTY.get(type(payload)):
        return {}
    return payload.model_dump(mode="json", exclude_none=True)


# Most triggers are fired with an empty payload (pay, the scans, confirm_receipt): validating
# `{}` and dumping the result cost ~6 us each time for the same answer. The one instance per
# model is shared, so only for frozen models whose empty form holds nothing (dumps as `{}`).
_EMPTY: dict[type[BaseModel], BaseModel] = {}


def nothing_given(model: type[BaseModel]) -> BaseModel:
    """``model`` validated from an empty payload (a refusal is raised each time)."""
    found = _EMPTY.get(model)
    if found is not None:
        return found
    validated = model.model_validate({})
    if model.model_config.get("frozen") and not validated.model_dump(exclude_none=True):
        _EMPTY[model] = validated
    return validated


def _normalise_waybill(value: Any) -> Any:
    """Spaces and hyphens are how people type waybills, not part of them."""
    return value.replace(" ", "").replace("-", "").upper() if isinstance(value, str) else value


Waybill = Annotated[
    str,
    BeforeValidator(_normalise_waybill),
    StringConstraints(pattern=r"^[A-Z0-9]{6,40}$"),
]
