"""A form per trigger payload, built from its pydantic model, and the payload read back.

Each field of the model is one input, named as the spec names it: a choice (``Literal``) is a
select, a ``bool`` a checkbox, a nested model a fieldset of its own fields (``parcel.weight_kg``),
a list of plain values a comma-separated text, anything else JSON text. Empty inputs are left
out of the payload, so an optional field stays unset and a required one is refused by the
engine with its name (`InvalidPayload`), as the CLI's options are. A JSON payload typed in
whole overrides the fields.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

import lifecycle


@dataclass(frozen=True)
class Input:
    """One input of a trigger's form."""

    name: str  # dotted for a nested model's field: parcel.weight_kg
    label: str
    widget: str  # text | select | checkbox | list | json
    required: bool
    choices: tuple[str, ...] = ()
    hint: str = ""


def _unwrapped(annotation: Any) -> tuple[Any, bool]:
    """The annotation without ``| None``, and whether None was allowed."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _base(annotation: Any) -> Any:
    """``Annotated[str, ...]`` → ``str``."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def inputs(model: type[BaseModel] | None, prefix: str = "") -> list[Input]:
    """The inputs of ``model``'s form (none for a trigger without a payload)."""
    if model is None:
        return []
    found: list[Input] = []
    for name, info in model.model_fields.items():
        annotation, optional = _unwrapped(info.annotation)
        annotation = _base(annotation)
        dotted = f"{prefix}{name}"
        required = info.is_required()
        hint = info.description or ""
        origin = typing.get_origin(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += inputs(annotation, f"{dotted}.")
        elif origin is typing.Literal:
            choices = tuple(str(c) for c in typing.get_args(annotation))
            found.append(Input(dotted, name, "select", required, choices, hint))
        elif annotation is bool:
            found.append(Input(dotted, name, "checkbox", required, (), hint))
        elif origin in (list, tuple, set, frozenset) and all(
                _base(a) in (str, int) for a in typing.get_args(annotation) if a is not Ellipsis):
            found.append(Input(dotted, name, "list", required, (), hint or "comma-separated"))
        elif origin is not None or annotation in (dict, Any):
            found.append(Input(dotted, name, "json", required, (), hint or "JSON"))
        else:
            found.append(Input(dotted, name, "text", required and not optional, (), hint))
    return found


def payload(model: type[BaseModel] | None, form: Mapping[str, str]) -> dict[str, Any] | None:
    """The payload the form's fields say (``payload_json`` typed in whole wins). Text is passed
    as typed; the engine validates it against the model and names the field it refuses."""
    whole = form.get("payload_json", "").strip()
    if whole:
        try:
            typed = lifecycle.loads_json(whole)
        except ValueError as error:
            raise lifecycle.InvalidPayload("payload", f"is not JSON: {error}") from None
        if not isinstance(typed, dict):
            raise lifecycle.InvalidPayload("payload", "must be a JSON object")
        return typed
    if model is None:
        return None
    out: dict[str, Any] = {}
    for field in inputs(model):
        raw = form.get(f"f.{field.name}")
        value: Any
        if field.widget == "checkbox":
            if raw is None and not field.required:
                continue
            value = raw is not None
        else:
            text = (raw or "").strip()
            if not text:
                continue
            if field.widget == "list":
                value = [part.strip() for part in text.split(",") if part.strip()]
            elif field.widget == "json":
                try:
                    value = lifecycle.loads_json(text)
                except ValueError as error:
                    raise lifecycle.InvalidPayload(field.name, f"is not JSON: {error}") from None
            else:
                value = text
        here = out
        *parents, last = field.name.split(".")
        for parent in parents:
            here = here.setdefault(parent, {})
        here[last] = value
    return out
