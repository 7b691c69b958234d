"""Diagrams of the machines, drawn from the same definitions the engine runs.

`transitions`' ``GraphMachine`` draws them: Mermaid text with ``graph_engine="mermaid"``, DOT
through the pure-Python ``graphviz`` package's ``source`` (no Graphviz program needed). Each is
drawn on a throwaway machine with one dummy model, never on the runtime machine: a
GraphMachine keeps a graph per model for as long as it lives.

An arrow reads ``trigger (who may fire it) [the condition that picks this route]``. A
``follow-up`` is fired only by another aggregate's transition, in the same database
transaction (a dispute resolving closes its order's dispute). A trigger that records an event
without leaving its state (a tracking exception) is drawn as a loop.
"""

from __future__ import annotations

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
    return choice if choice in MACHINES else next(n for n, k in MACHINES.items() if k == choice)


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


def render(name: str, fmt: str) -> str:
    return mermaid(name) if fmt == "mermaid" else dot(name)


# --- the generated documentation ---------------------------------------------------------

REGENERATE = "python scripts/update_diagrams.py"
LEGEND = (
    "Each arrow reads `trigger (who may fire it) [the condition that picks the route]`; "
    "`follow-up` triggers are fired only by another aggregate's transition in the same "
    "database transaction; `[*]` marks where an aggregate starts and which states end it."
)


def page(name: str) -> str:
    """The text of ``docs/diagrams/NAME.md``."""
    return (
        f"# {TITLES[name]}\n\n"
        f"Generated from the running definition by `lifecycle graph {name} --format mermaid` "
        f"(DOT: `--format dot`). A test fails when this page no longer matches the definition: "
        f"regenerate with `{REGENERATE}`.\n\n"
        f"{LEGEND}\n\n"
        f"```mermaid\n{mermaid(name)}```\n"
    )


def readme_section() -> str:
    """What the README holds between its ``machines`` markers."""
    parts = [
        "Generated from the running definitions (`lifecycle graph NAME --format mermaid|dot`); "
        f"a test fails when they drift. {LEGEND} One page per machine in `docs/diagrams/`.\n"
    ]
    for name in MACHINES:
        parts.append(f"### {TITLES[name]}\n\n```mermaid\n{mermaid(name)}```\n")
    return "\n".join(parts)
