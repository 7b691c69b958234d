"""Diagrams come from the running definitions, and the ones in the docs and the README still
match them: regenerate with ``python scripts/update_diagrams.py`` after changing a machine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from lifecycle.cli import cli, diagrams
from lifecycle.machines import DEFINITIONS

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
    assert mermaid_blocks(section.group(1)) == [diagrams.mermaid(name) for name in diagrams.MACHINES]


@pytest.mark.parametrize("name", list(diagrams.MACHINES))
@pytest.mark.parametrize("fmt", diagrams.FORMATS)
def test_every_state_and_every_arrow_is_drawn_with_its_trigger_and_roles(name: str, fmt: str) -> None:
    definition = DEFINITIONS[diagrams.kind_of(name)]

    text = diagrams.render(name, fmt)

    for state in definition.states:
        assert re.search(rf"\b{state}\b", text), state
    for transition in definition.transitions:
        assert diagrams.label(definition, transition) in text, transition.trigger


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


def test_diagrams_are_deterministic() -> None:
    for name in diagrams.MACHINES:
        for fmt in diagrams.FORMATS:
            assert diagrams.render(name, fmt) == diagrams.render(name, fmt)


@pytest.mark.parametrize(("args", "start"), [
    (["graph", "order"], "---\ntitle: order\n"),
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
