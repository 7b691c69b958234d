"""Diagrams come from the running definitions, draw the SPEC's machines (read back from their
text: every state, terminal and arrow with its roles, once), are the same in every process, and
the ones in the docs and the README still match them: regenerate with
``python scripts/update_diagrams.py`` after changing a machine."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from lifecycle.cli import cli, diagrams
from lifecycle.machines import DEFINITIONS
from tests.machines_spec import SPEC, spec_arrows

ROOT = Path(__file__).resolve().parents[2]
REGENERATE = "docs or README out of date with the machine definitions: run python scripts/update_diagrams.py"


def mermaid_blocks(text: str) -> list[str]:
    return re.findall(r"```mermaid\n(.*?)```", text, flags=re.DOTALL)


@pytest.mark.parametrize("name", list(diagrams.MACHINES))
def test_diagram_page_in_docs_matches_its_definition(name: str) -> None:
    page = ROOT / "docs" / "diagrams" / f"{name}.md"

    assert page.exists(), REGENERATE
    assert page.read_text(encoding="utf-8") == diagrams.page(name), REGENERATE


def test_readme_shows_every_machine_as_generated() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"<!-- machines:start -->\n(.*?)<!-- machines:end -->", readme, re.DOTALL)

    assert section is not None, "README.md lost its machines markers"
    assert section.group(1) == diagrams.readme_section(), REGENERATE
    assert mermaid_blocks(section.group(1)) == [diagrams.readable_mermaid(name)
                                                for name in diagrams.MACHINES]


# --- what a diagram must show, read back from its text and compared with the SPEC -----------
#
# The expected arrows come from tests/machines_spec.py (the SPEC written out by hand), never
# from the code that draws them. Parallel arrows (same source and destination) share one edge
# whose label lists them joined by " | "; a route picked by a condition says which in [...].

#: the diagrams ``lifecycle graph`` draws, and the kind each one shows (SPEC §8)
NAMES = {"onboarding": "seller", "order": "order", "dispute": "dispute", "coupon": "coupon",
         "voucher": "voucher", "violation": "violation", "standing": "standing",
         "message": "message", "points": "points_account",
         "points_earning": "points_earning", "subaccount": "subaccount",
         "profile": "profile", "contact": "contact", "avatar": "avatar"}
START = "[*]"  # the start of the creating arrow, in both formats as read back here
ROLE_ORDER = ("buyer", "seller", "operator", "system")  # how a label lists its roles
LABEL = re.compile(r"^(?P<trigger>\w+) \((?P<who>[\w, -]+)\)(?: \[(?P<condition>\w+)\])?$")


@dataclass(frozen=True)
class Drawn:
    """What one diagram's text shows: its states, its arrows (source, destination, trigger,
    who, condition) one per part of a label, its terminal states and its edges."""

    states: list[str]
    arrows: list[tuple[str, str, str, str, str | None]]
    terminal: set[str]
    edges: list[tuple[str, str]]


def graph(name: str, fmt: str) -> str:
    """The full view: every arrow (the readable view leaves some out, see the tests below)."""
    result = CliRunner().invoke(cli, ["graph", name, "--format", fmt, "--full"])
    assert result.exit_code == 0, result.output
    return result.stdout


def read_back(text: str, fmt: str) -> Drawn:
    if fmt == "mermaid":
        states = re.findall(r'^  state "(\w+)" as \1$', text, re.MULTILINE)
        edges = re.findall(r"^  (\w+|\[\*\]) --> (\w+): (.+)$", text, re.MULTILINE)
        terminal = set(re.findall(r"^  (\w+) --> \[\*\]$", text, re.MULTILINE))
    else:
        states = re.findall(r'^\t(\w+) \[label="\1\\l"\]$', text, re.MULTILINE)
        edges = [(START if src == "__start__" else src, dst, label) for src, dst, label in
                 re.findall(r'^\t(\w+) -> (\w+) \[label="(.+)"\]$', text, re.MULTILINE)]
        terminal = set(re.findall(r"^\t(\w+) \[peripheries=2\]$", text, re.MULTILINE))
    arrows = []
    for src, dst, label in edges:
        for part in label.split(" | "):
            drawn = LABEL.match(part)
            assert drawn is not None, f"{src} -> {dst}: {part!r} is not 'trigger (who) [condition]'"
            arrows.append((src, dst, drawn["trigger"], drawn["who"], drawn["condition"]))
    return Drawn(states, arrows, terminal, [(src, dst) for src, dst, _ in edges])


def who(roles: tuple[str, ...], internal: bool) -> str:
    return "follow-up" if internal else ", ".join(r for r in ROLE_ORDER if r in roles)


def expected_arrows(kind: str) -> list[tuple[str, str, str, str]]:
    """(source, destination, trigger, who) of every arrow of the SPEC's machine, per source."""
    found = []
    for trigger, sources, dest, roles, internal in spec_arrows(SPEC[kind].arrows):
        for source in sources or (START,):
            found.append((source, dest or source, trigger, who(roles, internal)))
    return sorted(found)


def test_every_machine_of_the_spec_but_the_unexpected_capture_has_a_diagram() -> None:
    assert set(NAMES.values()) == set(SPEC) - {"unexpected_capture"}


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
@pytest.mark.parametrize("name", list(NAMES))
def test_a_diagram_draws_every_state_of_the_spec_once_and_marks_its_terminals(
    name: str, fmt: str
) -> None:
    spec = SPEC[NAMES[name]]

    drawn = read_back(graph(name, fmt), fmt)

    assert sorted(drawn.states) == sorted(spec.states)  # each once, none else
    assert drawn.terminal == spec.terminal
    assert [(src, dst) for src, dst in drawn.edges if src == START] == [(START, spec.initial)]


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
@pytest.mark.parametrize("name", list(NAMES))
def test_a_diagram_draws_every_arrow_of_the_spec_once_with_its_trigger_and_roles(
    name: str, fmt: str
) -> None:
    drawn = read_back(graph(name, fmt), fmt)

    assert sorted(arrow[:4] for arrow in drawn.arrows) == expected_arrows(NAMES[name])
    assert len(set(drawn.edges)) == len(drawn.edges)  # parallel arrows share one edge


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
@pytest.mark.parametrize("name", list(NAMES))
def test_routes_of_one_trigger_from_one_state_each_name_a_different_condition(
    name: str, fmt: str
) -> None:
    """Where a trigger leads from one state to several, each arrow says which condition picks
    it (at most one says ``otherwise``); a trigger with one route shows no condition."""
    routes: dict[tuple[str, str], list[str | None]] = {}
    for src, _, trigger, _, condition in read_back(graph(name, fmt), fmt).arrows:
        routes.setdefault((src, trigger), []).append(condition)

    for (src, trigger), conditions in routes.items():
        if len(conditions) == 1:
            assert conditions == [None], (src, trigger)
            continue
        assert None not in conditions, (src, trigger, conditions)
        assert len(set(conditions)) == len(conditions), (src, trigger, conditions)
        assert conditions.count("otherwise") <= 1, (src, trigger, conditions)


def test_an_edge_label_names_trigger_roles_and_the_condition_that_picks_the_route() -> None:
    dispute = DEFINITIONS["dispute"]
    arbitrate = [t for t in dispute.transitions if t.trigger == "arbitrate"]

    labels = [diagrams.label(dispute, t) for t in arbitrate]

    assert labels == [
        "arbitrate (operator) [decided_no_refund]",
        "arbitrate (operator) [decided_return_and_refund]",
        "arbitrate (operator) [otherwise]",
    ]
    escalate = next(t for t in dispute.transitions if t.trigger == "escalate")
    assert diagrams.label(dispute, escalate) == "escalate (buyer, seller)"
    opened = dispute.creation
    assert diagrams.label(dispute, opened) == "open (follow-up)"


def test_mermaid_marks_the_start_and_every_terminal_state() -> None:
    text = diagrams.mermaid("order")

    assert text.startswith("---\ntitle: order\n---\nstateDiagram-v2\n")
    assert "  [*] --> awaiting_payment: place (buyer)\n" in text
    for state in ("funds_released", "cancelled", "refunded"):
        assert f"  {state} --> [*]\n" in text
    assert "Class " not in text
    assert "classDef" not in text
    assert all(line == line.rstrip() for line in text.splitlines())


def test_dot_is_a_digraph_with_a_start_point_and_double_bordered_terminals() -> None:
    text = diagrams.dot("onboarding")

    assert text.startswith("digraph onboarding {")
    assert f'{diagrams.START} -> registered [label="register (seller)"]' in text
    assert "closed [peripheries=2]" in text
    assert "darksalmon" not in text  # the dummy model's state is not highlighted


RENDER_ALL = """
import json, sys
from click.testing import CliRunner
from lifecycle.cli import cli
names, formats = sys.argv[1].split(","), ("mermaid", "dot")
print(json.dumps({f"{n} {f}": CliRunner().invoke(cli, ["graph", n, "--format", f, "--full"]).stdout
                  for n in names for f in formats}))
"""


def test_diagrams_are_the_same_in_every_process() -> None:
    """Sets iterate in an order that changes with the interpreter's hash seed (roles are a
    frozenset): two processes with different seeds must print the same diagrams, the same as
    this one."""
    here = {f"{n} {f}": graph(n, f) for n in NAMES for f in ("mermaid", "dot")}
    printed = []
    for seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", RENDER_ALL, ",".join(NAMES)], cwd=ROOT, capture_output=True,
            text=True, timeout=120, env={**os.environ, "PYTHONHASHSEED": seed}, check=False)
        assert done.returncode == 0, done.stderr
        printed.append(json.loads(done.stdout))

    assert printed[0] == printed[1] == here


@pytest.mark.parametrize(("args", "start"), [
    (["graph", "order"], "---\ntitle: order (readable: "),
    (["graph", "seller", "--format", "mermaid"], "---\ntitle: onboarding\n"),
    (["graph", "dispute", "--format", "dot"], "digraph dispute {"),
])
def test_graph_command_prints_the_diagram_without_a_database(
    tmp_path: Path, args: list[str], start: str
) -> None:
    result = CliRunner().invoke(cli, ["--db", f"sqlite:///{tmp_path}/never.db", *args])

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(start)
    assert not (tmp_path / "never.db").exists()


# --- the readable order diagram (issue #19, item 10) ------------------------------------------


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_the_order_diagram_is_readable_by_default(fmt: str) -> None:
    text = CliRunner().invoke(cli, ["graph", "order", "--format", fmt]).stdout
    edges = (re.findall(r"^\s+(\w+|\[\*\]) --> (\w+|\[\*\]):", text, re.MULTILINE) if fmt == "mermaid"
             else re.findall(r"^\s+(\w+) -> (\w+) \[label", text, re.MULTILINE))

    assert "close_dispute" not in text  # follow-ups left out
    assert "tracking_exception" not in text  # no loops for events that keep the state
    assert all(src != dst for src, dst in edges)
    assert "--full" in text  # says where the full view is
    group = ('state "after shipping" as after_shipping {' if fmt == "mermaid"
             else "subgraph cluster_after_shipping {")
    assert group in text
    if fmt == "mermaid":
        # one arrow from the box for what leaves each state after shipping the same way
        assert "  after_shipping --> completed: confirm_receipt (buyer) | auto_confirm (system)" in text
        assert "  after_shipping --> in_dispute: open_dispute (buyer)" in text
        assert [e for e in edges if e[0] in ("shipped", "in_transit", "delivered")
                and e[1] in ("completed", "in_dispute")] == []
        assert "note right of in_dispute:" in text
    full = CliRunner().invoke(cli, ["graph", "order", "--format", fmt, "--full"]).stdout
    assert len(text.splitlines()) < len(full.splitlines())


def test_the_readable_view_of_a_machine_without_clutter_is_its_full_view() -> None:
    for name in ("onboarding", "dispute", "coupon", "voucher"):
        assert diagrams.readable_mermaid(name) == diagrams.mermaid(name)
