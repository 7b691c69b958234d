"""Diagrams of the machines, drawn from the same definitions the engine runs.

`transitions`' ``GraphMachine`` draws them: Mermaid text with ``graph_engine="mermaid"``, DOT
through the pure-Python ``graphviz`` package's ``source`` (no Graphviz program needed). Each is
drawn on a throwaway machine with one dummy model, never on the runtime machine: a
GraphMachine keeps a graph per model for as long as it lives.

An arrow reads ``trigger (who may fire it) [the condition that picks this route]``. A
``follow-up`` is fired only by another aggregate's transition, in the same database
transaction (a dispute resolving closes its order's dispute). A trigger that records an event
without leaving its state (a tracking exception) is drawn as a loop.

That full view is ``--full``; by default the order is drawn readable (`Simpler`): no
follow-ups, no loops, and the states after shipping in one box.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import lifecycle
from lifecycle import MachineDefinition, Transition

#: the machines drawn in docs/diagrams and the README, by the name a person uses for each
TITLES = {
    "onboarding": "Seller onboarding (SPEC §3), kind `seller`",
    "order": "Order (SPEC §4), kind `order`",
    "dispute": "Dispute (SPEC §5), kind `dispute`",
    "coupon": "Merchant coupon (SPEC §6), kind `coupon`",
    "voucher": "Buyer's voucher, one claimed copy of a coupon (SPEC §4), kind `voucher`",
    "violation": "Violation recorded against a store (SPEC §12), kind `violation`",
    "standing": "A store's standing: its penalty points' level (SPEC §12), kind `standing`",
    "message": "Order message between an order's buyer and seller (SPEC §12), kind `message`",
    "points": "A seller's points account (SPEC §12), kind `points_account`",
    "points_earning": "One action that earned points, held once (SPEC §12), kind `points_earning`",
    "subaccount": "Staff sub-account of a store (SPEC §12), kind `subaccount`",
    "profile": "A supplier's profile, privacy and subscriptions (SPEC §12), kind `profile`",
    "contact": "An email or phone number confirmed with a code (SPEC §12), kind `contact`",
    "avatar": "An uploaded avatar under review (SPEC §12), kind `avatar`",
}
#: each machine's name, and its kind (``lifecycle.definition`` knows the names that differ)
MACHINES = {name: lifecycle.definition(name).kind for name in TITLES}
#: what ``lifecycle graph`` accepts: each name, and each kind named otherwise (seller)
CHOICES = (*MACHINES, *(kind for kind in MACHINES.values() if kind not in MACHINES))
FORMATS = ("mermaid", "dot")
ROLE_ORDER = lifecycle.ROLES

START = "__start__"  # the DOT node the creating arrow comes from


class _Dummy:
    """The one model a throwaway GraphMachine needs to draw a graph."""


def kind_of(name: str) -> str:
    return MACHINES.get(name, name)


def name_of(choice: str) -> str:
    """The machine's name for one of `CHOICES`: ``seller`` is drawn as ``onboarding``."""
    if choice in MACHINES:
        return choice
    return next(n for n, k in MACHINES.items() if k == choice)


def label(definition: MachineDefinition, transition: Transition) -> str:
    """``ship_offline (seller)``, ``arbitrate (operator) [decided_no_refund]``."""
    who = "follow-up" if transition.internal else ", ".join(
        role for role in ROLE_ORDER if role in transition.roles)
    text = f"{transition.trigger} ({who})"
    condition = _condition(definition, transition)
    return f"{text} [{condition}]" if condition else text


def _condition(definition: MachineDefinition, transition: Transition) -> str | None:
    if transition.when is not None:
        name = getattr(transition.when, "__name__", "")
        return name.lstrip("_") if name and name != "<lambda>" else "when"
    chosen = any(
        other is not transition and other.trigger == transition.trigger and other.when is not None
        and set(other.source) & set(transition.source)
        for other in definition.transitions
    )
    return "otherwise" if chosen else None


def _graph(definition: MachineDefinition, title: str,
           graph_engine: Literal["mermaid", "graphviz"]) -> Any:
    from transitions.extensions import GraphMachine

    arrows = [
        {
            "trigger": t.trigger,
            "source": list(t.source),
            "dest": t.dest,
            "label": label(definition, t),
        }
        for t in definition.transitions
        if t.source and t.dest is not None
    ]
    # Recorded events keep the state: a loop, one per source.
    arrows += [
        {"trigger": t.trigger, "source": source, "dest": source, "label": label(definition, t)}
        for t in definition.transitions
        if t.source and t.dest is None
        for source in t.source
    ]
    model = _Dummy()
    machine = GraphMachine(
        model=model, states=list(definition.states), transitions=arrows,
        initial=definition.initial, auto_transitions=False, graph_engine=graph_engine,
        title=title,
    )
    # Top to bottom: a lifecycle reads downwards, and fits the width of a page.
    machine.machine_attributes = {**machine.machine_attributes, "rankdir": "TB"}
    graph = machine.model_graphs[id(model)]
    graph.reset_styling()  # the dummy model's "current state" is no state of ours
    return graph.get_graph(title=title)


def mermaid(name: str) -> str:
    """A Mermaid ``stateDiagram-v2`` of the machine ``name`` (onboarding, order, …)."""
    definition = lifecycle.definition(kind_of(name))
    source: str = _graph(definition, name, "mermaid").source
    lines: list[str] = []
    for n, line in enumerate(source.splitlines()):
        text = line.rstrip()
        if n == 1:
            text = f"title: {name}"  # Mermaid's front matter is YAML
        if text.strip().startswith(("classDef ", "Class ")):
            continue  # styles for a live model's current state: none here
        if text.strip() == f"[*] --> {definition.initial}":
            text += f": {label(definition, definition.creation)}"
        if text or (lines and lines[-1]):
            lines.append(text)
    while lines and not lines[-1]:
        lines.pop()
    lines += [f"  {state} --> [*]" for state in definition.states if state in definition.terminal]
    return "\n".join(lines) + "\n"


def dot(name: str) -> str:
    """The machine ``name`` as Graphviz DOT text (render it with any Graphviz)."""
    definition = lifecycle.definition(kind_of(name))
    graph = _graph(definition, name, "graphviz")
    if not hasattr(graph, "node"):
        raise RuntimeError("DOT output needs the graphviz package (pip install graphviz)")
    graph.node(START, label="", shape="point", width="0.15")
    graph.edge(START, definition.initial, label=label(definition, definition.creation))
    for state in definition.states:
        if state in definition.terminal:
            graph.node(state, peripheries="2")
    text: str = graph.source
    return text


# --- the readable view --------------------------------------------------------------------


@dataclass(frozen=True)
class Simpler:
    """How a machine's readable view leaves detail out: the follow-ups and the events that keep
    the state are not drawn, and the states of ``group`` are drawn inside one box, an arrow
    that leaves each of them the same way drawn once, from the box."""

    group: tuple[str, ...]
    group_id: str
    group_label: str
    note: tuple[str, str]  # (state, what the hidden follow-ups do from there)


#: the machines whose full diagram is too busy to read; the others draw the same either way
SIMPLER = {
    "order": Simpler(
        group=("shipped", "in_transit", "delivered"),
        group_id="after_shipping",
        group_label="after shipping",
        note=("in_dispute", "when the dispute ends (a follow-up), the order returns to the "
                            "state it paused in, or is refunded"),
    ),
}


def _arrows(definition: MachineDefinition) -> dict[tuple[str, str], list[str]]:
    """(source, dest) → the labels of the arrows a person fires between them, in definition
    order: no follow-ups, no events that keep the state."""
    arrows: dict[tuple[str, str], list[str]] = {}
    for t in definition.transitions:
        if t.internal or not t.source or t.dest is None:
            continue
        for source in t.source:
            labels = arrows.setdefault((source, t.dest), [])
            if label(definition, t) not in labels:
                labels.append(label(definition, t))
    return arrows


def _readable_edges(definition: MachineDefinition,
                    simpler: Simpler) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """The arrows outside the box and those inside it, as (source, dest, label); an arrow that
    leaves every state of the box to one place with one label comes from the box."""
    arrows = {key: " | ".join(labels) for key, labels in _arrows(definition).items()}
    inside = [(s, d, text) for (s, d), text in arrows.items()
              if s in simpler.group and d in simpler.group]
    outside: list[tuple[str, str, str]] = []
    merged: set[tuple[str, str]] = set()
    for (source, dest), text in arrows.items():
        if source in simpler.group and dest in simpler.group:
            continue
        if source in simpler.group and all(arrows.get((member, dest)) == text
                                           for member in simpler.group):
            if (dest, text) not in merged:
                merged.add((dest, text))
                outside.append((simpler.group_id, dest, text))
            continue
        outside.append((source, dest, text))
    return outside, inside


def readable_mermaid(name: str) -> str:
    """The machine ``name`` as Mermaid, readable: see `Simpler` (the full view otherwise)."""
    simpler = SIMPLER.get(name)
    if simpler is None:
        return mermaid(name)
    definition = lifecycle.definition(kind_of(name))
    outside, inside = _readable_edges(definition, simpler)
    lines = ["---", f"title: {name} (readable: lifecycle graph {name} --full draws every arrow)",
             "---", "stateDiagram-v2", "  direction TB", ""]
    lines += [f'  state "{state}" as {state}' for state in definition.states
              if state not in simpler.group]
    lines += [f'  state "{simpler.group_label}" as {simpler.group_id} {{',
              *(f'    state "{state}" as {state}' for state in simpler.group),
              *(f"    {s} --> {d}: {text}" for s, d, text in inside), "  }", ""]
    lines.append(f"  [*] --> {definition.initial}: {label(definition, definition.creation)}")
    lines += [f"  {s} --> {d}: {text}" for s, d, text in outside]
    lines += [f"  {state} --> [*]" for state in definition.states if state in definition.terminal]
    where, what = simpler.note
    lines.append(f"  note right of {where}: {what}")
    return "\n".join(lines) + "\n"


def readable_dot(name: str) -> str:
    """The machine ``name`` as DOT, readable: see `Simpler` (the full view otherwise)."""
    simpler = SIMPLER.get(name)
    if simpler is None:
        return dot(name)
    definition = lifecycle.definition(kind_of(name))
    outside, inside = _readable_edges(definition, simpler)
    anchor = simpler.group[-1]  # a box's arrows leave from one of its states, clipped at the box

    def node(state: str) -> str:
        ring = ", peripheries=2" if state in definition.terminal else ""
        return f'\t{state} [label="{state}", shape=box, style=rounded{ring}]'

    lines = [f"digraph {name} {{", "\tcompound=true", "\trankdir=TB",
             f'\tlabel="{name} (readable: lifecycle graph {name} --full draws every arrow)"',
             "\tlabelloc=t",
             f'\t{START} [label="", shape=point, width=0.15]',
             *(node(state) for state in definition.states if state not in simpler.group),
             f"\tsubgraph cluster_{simpler.group_id} {{",
             f'\t\tlabel="{simpler.group_label}"', "\t\tstyle=rounded",
             *("\t" + node(state) for state in simpler.group),
             *(f'\t\t{s} -> {d} [label="{text}"]' for s, d, text in inside), "\t}",
             f'\t{START} -> {definition.initial} [label="{label(definition, definition.creation)}"]']
    for s, d, text in outside:
        if s == simpler.group_id:
            lines.append(f'\t{anchor} -> {d} [label="{text}", ltail=cluster_{simpler.group_id}]')
        else:
            lines.append(f'\t{s} -> {d} [label="{text}"]')
    where, what = simpler.note
    lines += [f'\tnote [label="{what}", shape=note]', f"\t{where} -> note [style=dotted, arrowhead=none]",
              "}"]
    return "\n".join(lines) + "\n"


def render(name: str, fmt: str, *, full: bool = False) -> str:
    """The diagram of ``name`` in ``fmt``: the readable view, or with ``full`` every arrow."""
    if full:
        return mermaid(name) if fmt == "mermaid" else dot(name)
    return readable_mermaid(name) if fmt == "mermaid" else readable_dot(name)


def machine_json(name: str) -> dict[str, Any]:
    """``lifecycle graph NAME --json``: the machine as data, every arrow with who may fire it
    and the command that does (None for a follow-up or what only the system does)."""
    from lifecycle.cli.actions import COMMANDS  # the command tree is built by then

    definition = lifecycle.definition(kind_of(name))
    return {
        "machine": name,
        "kind": definition.kind,
        "initial": definition.initial,
        "states": list(definition.states),
        "terminal": [state for state in definition.states if state in definition.terminal],
        "transitions": [
            {"trigger": t.trigger, "source": list(t.source), "dest": t.dest,
             "roles": [role for role in ROLE_ORDER if role in t.roles],
             "follow_up": t.internal, "condition": _condition(definition, t),
             "command": (f"lifecycle {COMMANDS[(definition.kind, t.trigger)]}"
                         if (definition.kind, t.trigger) in COMMANDS else None)}
            for t in definition.transitions
        ],
    }


# --- the generated documentation ---------------------------------------------------------

REGENERATE = "python scripts/update_diagrams.py"
LEGEND = (
    "Each arrow reads `trigger (who may fire it) [the condition that picks the route]`; "
    "`follow-up` triggers are fired only by another aggregate's transition in the same "
    "database transaction; `[*]` marks where an aggregate starts and which states end it."
)


READABLE = (
    "The readable view leaves out the follow-ups and the events that keep the state (a "
    "tracking exception), and draws the states after shipping in one box; an arrow that "
    "leaves each of them the same way is drawn once, from the box."
)


def page(name: str) -> str:
    """The text of ``docs/diagrams/NAME.md``."""
    head = (
        f"# {TITLES[name]}\n\n"
        f"Generated from the running definition by `lifecycle graph {name} --format mermaid` "
        f"(DOT: `--format dot`). A test fails when this page no longer matches the definition: "
        f"regenerate with `{REGENERATE}`.\n\n"
        f"{LEGEND}\n\n"
    )
    if name not in SIMPLER:
        return head + f"```mermaid\n{mermaid(name)}```\n"
    return (
        head + f"{READABLE}\n\n```mermaid\n{readable_mermaid(name)}```\n\n"
        f"## Every arrow\n\n`lifecycle graph {name} --full`: every transition, follow-ups and "
        f"events that keep the state included.\n\n```mermaid\n{mermaid(name)}```\n"
    )


def readme_section() -> str:
    """What the README holds between its ``machines`` markers."""
    parts = [
        "Generated from the running definitions (`lifecycle graph NAME --format mermaid|dot`); "
        f"a test fails when they drift. {LEGEND} One page per machine in `docs/diagrams/`.\n"
    ]
    for name in MACHINES:
        shown = readable_mermaid(name)
        note = (f"The readable view (`lifecycle graph {name}`; every arrow: `--full`, and "
                f"[docs/diagrams/{name}.md](docs/diagrams/{name}.md)). {READABLE}\n\n"
                if name in SIMPLER else "")
        parts.append(f"### {TITLES[name]}\n\n{note}```mermaid\n{shown}```\n")
    return "\n".join(parts)
