"""What a machine definition is, as plain data to compare (SPEC §13): its shape, the
fingerprint a database remembers each (kind, version) by, and the differences between two
shapes in words.

The shape holds what decides where an aggregate can go and when: states, arrows with their
roles, payload models, guards' rules, effects' and conditions' names, deadlines, follow-ups
sent. A deadline's duration is known by its qualified name, the names it reads and the plain
values it closes over, so a duration that reads another policy value is caught. A change inside
an effect's or a guard's body that keeps its name is not caught: that is a fix, not a new
version; a rule that means something else gets a new name.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from lifecycle.machines.definition import MachineDefinition


def shape(definition: MachineDefinition) -> dict[str, Any]:
    """The definition as plain JSON data: what its fingerprint hashes and `differences`
    compares."""
    return {
        "kind": definition.kind,
        "version": definition.version,
        "states": list(definition.states),
        "initial": definition.initial,
        "terminal": sorted(definition.terminal),
        "pausing": sorted(definition.pausing),
        "public": sorted(definition.public),
        "transitions": [_arrow(t) for t in definition.transitions],
        "deadlines": [{"state": d.state, "trigger": d.trigger, "duration": duration_name(d.duration),
                       "anchor": d.anchor, "continues_from": list(d.continues_from)}
                      for d in definition.deadlines],
        "sends": {trigger: [list(pair) for pair in pairs]
                  for trigger, pairs in sorted(definition.sends.items())},
        "retired": {trigger: list(states) for trigger, states in sorted(definition.retired.items())},
        # Only when there are some: a definition without reactions keeps the fingerprint it
        # had before they existed, which databases have stored.
        **({"reactions": [[*r.on, _qualified(r.effect),
                           [list(pair) for pair in getattr(r.effect, "sends", ())]]
                          for r in definition.reactions]} if definition.reactions else {}),
    }


def fingerprint(definition: MachineDefinition) -> str:
    """SHA-256 of the definition's `shape`, hex."""
    return fingerprint_of(shape(definition))


def fingerprint_of(described: Mapping[str, Any]) -> str:
    canonical = json.dumps(described, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _arrow(t: Any) -> dict[str, Any]:
    return {
        "trigger": t.trigger,
        "source": list(t.source),
        "dest": t.dest,
        "roles": sorted(t.roles),
        "payload": None if t.payload is None else f"{t.payload.__module__}.{t.payload.__qualname__}",
        "guards": [g.rule for g in t.guards],
        "effect": _qualified(t.effect),
        "when": _qualified(t.when),
        "internal": t.internal,
    }


def _qualified(fn: Callable[..., Any] | None) -> str | None:
    """An effect or a route's condition by its qualified name: a fix inside its body is no
    new version of the machine."""
    if fn is None:
        return None
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def duration_name(fn: Callable[..., Any] | None) -> str | None:
    """A deadline's duration as the shape knows it: its qualified name, the names its code
    reads and the plain values it closes over (``_days("handling_time_days")``), so a duration
    that reads another policy value is another deadline; stable across Python releases, unlike
    its bytecode."""
    name = _qualified(fn)
    code = getattr(fn, "__code__", None)
    if name is None or code is None:
        return name
    closed = [v for v in map(_contents, getattr(fn, "__closure__", None) or ())
              if isinstance(v, str | int | float | bool)]
    constants = [c for c in code.co_consts if isinstance(c, str | int | float) and
                 not isinstance(c, bool) and c is not None and c != getattr(fn, "__doc__", None)]
    parts = [name, ",".join(code.co_names)]
    if closed or constants:
        parts.append(",".join(repr(v) for v in (*closed, *constants)))
    return "|".join(parts)


def _contents(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell
        return None


def differences(stored: Mapping[str, Any], running: Mapping[str, Any]) -> list[str]:
    """What changed from the ``stored`` shape to the ``running`` one, in words, one item each:
    states, terminal and pausing states, arrows (by trigger and source), deadlines (by state
    and trigger), follow-ups, retired triggers."""
    changes: list[str] = []
    changes += _listed("state", stored.get("states", []), running.get("states", []))
    for name in ("initial", "terminal", "pausing", "public"):
        if stored.get(name) != running.get(name):
            changes.append(f"{name} {_show(stored.get(name))} → {_show(running.get(name))}")
    changes += _keyed("transition", _arrows_by_route(stored), _arrows_by_route(running))
    changes += _keyed("deadline", _deadlines_by_key(stored), _deadlines_by_key(running))
    for name in ("sends", "retired"):
        if stored.get(name, {}) != running.get(name, {}):
            changes.append(f"{name} {_show(stored.get(name))} → {_show(running.get(name))}")
    return changes


def _listed(what: str, before: list[str], after: list[str]) -> list[str]:
    return ([f"{what} {s} added" for s in after if s not in before]
            + [f"{what} {s} removed" for s in before if s not in after])


def _keyed(what: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    changes = [f"{what} {key} added" for key in after if key not in before]
    changes += [f"{what} {key} removed" for key in before if key not in after]
    for key in before:
        if key in after and before[key] != after[key]:
            fields = [f for f in sorted({*before[key], *after[key]})
                      if before[key].get(f) != after[key].get(f)]
            changes.append(f"{what} {key}: {', '.join(fields)} changed")
    return changes


def _arrows_by_route(described: Mapping[str, Any]) -> dict[str, Any]:
    """Each arrow once per state it leaves: a trigger that now also leaves a new state is one
    route added, not an arrow removed and another added."""
    routes: dict[str, Any] = {}
    for arrow in described.get("transitions", []):
        rest = {name: value for name, value in arrow.items() if name != "source"}
        for source in arrow["source"] or ["(creation)"]:
            key = f"{arrow['trigger']} from {source}"
            if arrow.get("when"):
                key += f" when {arrow['when'].rsplit('.', 1)[-1]}"
            routes[key] = rest
    return routes


def _deadlines_by_key(described: Mapping[str, Any]) -> dict[str, Any]:
    return {f"{d['trigger']} on {d['state']}": d for d in described.get("deadlines", [])}


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
