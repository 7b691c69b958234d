"""What the CLI's options offer, read from the payload models of the running definitions, so
that a choice, a checklist or a field name is not written a second time here.

A `Transition`'s ``payload`` is the pydantic model its trigger takes; a field annotated with a
``Literal`` is a closed vocabulary (``decision: Literal["refund", "no_refund", …]``), a field
annotated with a model is a group of fields (``checklist: Checklist``).
"""

from __future__ import annotations

import typing
from typing import Any

import lifecycle


def fields(kind: str, trigger: str, path: str = "") -> dict[str, Any]:
    """The payload fields ``trigger`` on a ``kind`` takes, by name (pydantic ``FieldInfo``);
    with ``path``, those of the model that field holds (``"checklist"``). Empty when the
    trigger takes nothing."""
    models = {t.payload for t in lifecycle.definition(kind).transitions if t.trigger == trigger}
    if len(models) != 1:
        raise LookupError(f"{kind} {trigger}: {len(models)} payload models, not one")
    model: Any = models.pop()
    for name in path.split(".") if path else ():
        model = model.model_fields[name].annotation
    return dict(model.model_fields) if model is not None else {}


def choices(kind: str, trigger: str, path: str) -> list[str]:
    """The values the ``Literal`` payload field at ``path`` allows, in the model's order
    (an optional field's None left out)."""
    *parents, name = path.split(".")
    annotation = fields(kind, trigger, ".".join(parents))[name].annotation
    values = _literal_values(annotation)
    if not values:
        raise LookupError(f"{kind} {trigger}: {path} is not a closed vocabulary")
    return values


def _literal_values(annotation: Any) -> list[str]:
    if typing.get_origin(annotation) is typing.Literal:
        return [str(value) for value in typing.get_args(annotation)]
    return [value for member in typing.get_args(annotation) for value in _literal_values(member)]


def takes(kind: str, trigger: str, name: str, *, required: bool = False) -> bool:
    """Whether ``trigger`` takes the payload field ``name`` (and, with ``required``, needs it)."""
    found = fields(kind, trigger).get(name)
    return found is not None and (not required or found.is_required())
