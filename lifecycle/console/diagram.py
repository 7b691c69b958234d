"""A machine's diagram as SVG, drawn on the server from the definition the engine runs.

No Graphviz: a layered layout of its own. A state's layer is its distance from the initial
state (terminal states go to the bottom); arrows between states of one layer or going back up
are drawn as curves. Self-loops (a recorded event, a counter-offer answered with another) are
left out, as `lifecycle graph` is asked to for a readable view (issue #19, item 10); every
arrow keeps its triggers and roles as a tooltip. The aggregate's state is highlighted, and the
arrows that leave it are drawn in the highlight's colour.
"""

from __future__ import annotations

from collections import defaultdict, deque
from html import escape

import lifecycle

BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 168, 34, 26, 74, 20


def _arrows(definition: lifecycle.MachineDefinition) -> dict[tuple[str, str], list[str]]:
    """(source, dest) → the labels of the triggers that take it, self-loops left out."""
    arrows: dict[tuple[str, str], list[str]] = defaultdict(list)
    for (source, trigger), step in definition.steps.items():
        who = "follow-up" if step.internal else ", ".join(
            role for role in lifecycle.ROLES if role in step.roles)
        for dest in step.dests:
            if dest != source:
                label = f"{trigger} ({who})"
                if label not in arrows[source, dest]:
                    arrows[source, dest].append(label)
    return arrows


def _layers(definition: lifecycle.MachineDefinition,
            arrows: dict[tuple[str, str], list[str]]) -> list[list[str]]:
    forward: dict[str, list[str]] = defaultdict(list)
    for source, dest in arrows:
        forward[source].append(dest)
    depth = {definition.initial: 0}
    queue = deque([definition.initial])
    while queue:
        state = queue.popleft()
        for nxt in forward[state]:
            if nxt not in depth:
                depth[nxt] = depth[state] + 1
                queue.append(nxt)
    deepest = max(depth.values(), default=0)
    for state in definition.states:
        depth.setdefault(state, deepest + 1)
    bottom = max(depth.values()) + 1
    for state in definition.terminal:
        depth[state] = bottom
    layers: dict[int, list[str]] = defaultdict(list)
    for state in definition.states:  # the definition's order within a layer, to start with
        layers[depth[state]].append(state)
    return _fewer_crossings([layers[n] for n in sorted(layers)], arrows)


def _fewer_crossings(layers: list[list[str]],
                     arrows: dict[tuple[str, str], list[str]]) -> list[list[str]]:
    """Order each layer by where its neighbours stand in the layer above, then below (the
    barycentre heuristic, a few sweeps): fewer arrows cross."""
    neighbours: dict[str, set[str]] = defaultdict(set)
    for source, dest in arrows:
        neighbours[source].add(dest)
        neighbours[dest].add(source)
    for _sweep in range(4):
        for row in range(1, len(layers)):
            layers[row] = _by_centre(layers[row], layers[row - 1], neighbours)
        for row in range(len(layers) - 2, -1, -1):
            layers[row] = _by_centre(layers[row], layers[row + 1], neighbours)
    return layers


def svg(definition: lifecycle.MachineDefinition, current: str | None = None) -> str:
    """The machine as an ``<svg>`` element, ``current`` highlighted (class ``current``)."""
    arrows = _arrows(definition)
    layers = _layers(definition, arrows)
    widest = max(len(layer) for layer in layers)
    width = MARGIN * 2 + widest * BOX_W + (widest - 1) * GAP_X
    height = MARGIN * 2 + len(layers) * BOX_H + (len(layers) - 1) * GAP_Y
    where: dict[str, tuple[float, float]] = {}
    for row, layer in enumerate(layers):
        span = len(layer) * BOX_W + (len(layer) - 1) * GAP_X
        left = (width - span) / 2
        for col, state in enumerate(layer):
            where[state] = (left + col * (BOX_W + GAP_X), MARGIN + row * (BOX_H + GAP_Y))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="machine" role="img" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
        f'aria-label="{escape(definition.kind)} machine, state {escape(current or "-")}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" '
        'fill="context-stroke"/></marker></defs>',
    ]
    for (source, dest), labels in arrows.items():
        parts.append(_edge(where[source], where[dest], labels, source == current))
    for state in definition.states:
        x, y = where[state]
        classes = ["state"]
        if state == current:
            classes.append("current")
        if state in definition.terminal:
            classes.append("terminal")
        if state == definition.initial:
            classes.append("initial")
        parts.append(
            f'<g class="{" ".join(classes)}" data-state="{escape(state)}">'
            f'<title>{escape(state)}</title>'
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{BOX_W}" height="{BOX_H}" rx="8"/>'
            f'<text x="{x + BOX_W / 2:.0f}" y="{y + BOX_H / 2 + 4:.0f}" '
            f'text-anchor="middle">{escape(state)}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def _edge(start: tuple[float, float], end: tuple[float, float], labels: list[str],
          leaving_current: bool) -> str:
    (sx, sy), (ex, ey) = start, end
    title = escape("; ".join(labels))
    css = "edge next" if leaving_current else "edge"
    if ey > sy:  # downwards: bottom of one box to the top of the other
        x1, y1, x2, y2 = sx + BOX_W / 2, sy + BOX_H, ex + BOX_W / 2, ey
        bend = GAP_Y / 2
        path = (f"M{x1:.0f},{y1:.0f} C{x1:.0f},{y1 + bend:.0f} {x2:.0f},{y2 - bend:.0f} "
                f"{x2:.0f},{y2:.0f}")
    else:  # up or sideways: from the side, bowed out
        right = ex >= sx
        x1 = sx + (BOX_W if right else 0) if ey == sy else sx + BOX_W * 0.8
        y1 = sy + BOX_H / 2 if ey == sy else sy
        x2 = ex + (0 if right else BOX_W) if ey == sy else ex + BOX_W * 0.8
        y2 = ey + BOX_H / 2 if ey == sy else ey + BOX_H
        bow = -GAP_Y * 0.6 if ey == sy else 0
        cx1, cy1 = x1 + (BOX_W * 0.6 if ey != sy else 0), y1 + bow
        cx2, cy2 = x2 + (BOX_W * 0.6 if ey != sy else 0), y2 + bow
        path = f"M{x1:.0f},{y1:.0f} C{cx1:.0f},{cy1:.0f} {cx2:.0f},{cy2:.0f} {x2:.0f},{y2:.0f}"
    return (f'<path class="{css}" d="{path}" marker-end="url(#arrow)">'
            f'<title>{title}</title></path>')


def _by_centre(layer: list[str], other: list[str], neighbours: dict[str, set[str]]) -> list[str]:
    """``layer`` sorted by the mean place of each state's neighbours in ``other`` (a state with
    none keeps its place)."""
    where = {state: n for n, state in enumerate(other)}

    def centre(state: str) -> float:
        placed = [where[n] for n in neighbours[state] if n in where]
        return sum(placed) / len(placed) if placed else float(layer.index(state))

    return sorted(layer, key=centre)
