"""CI sees that the CLI and the simulation talk only to the public API (STYLE.md): the
import-linter contracts "cli uses only the public API" and "simulation uses only the public API"
in pyproject.toml forbid every other module of the package, by name. These tests keep the lists
whole (a module added to ``lifecycle/`` is forbidden to both until someone decides, in the
contracts, that it is public) and close what import-linter cannot see: a name reached through the
root package that it does not export."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path
from typing import Any

import pytest

import lifecycle
import lifecycle.adapters

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "lifecycle"
#: each front end: its contract, and the packages whose root (their __init__) it may import
#: but none of their modules
FRONT_ENDS = {
    "cli": ("cli uses only the public API", {"adapters", "simulation", "service"}),
    "simulation": ("simulation uses only the public API", {"adapters"}),
    "service": ("service uses only the public API", {"adapters", "console"}),
    "console": ("console uses only the public API", {"adapters", "simulation"}),
}


def contract(name: str) -> dict[str, Any]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    found: list[dict[str, Any]] = [c for c in config["tool"]["importlinter"]["contracts"]
                                   if c["name"] == name]
    assert len(found) == 1, f"one contract named {name!r} in pyproject.toml"
    return found[0]


def top_level_modules() -> set[str]:
    """Every module and package directly under lifecycle/."""
    modules = {path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    return modules | {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}


@pytest.mark.parametrize("front_end", sorted(FRONT_ENDS))
def test_the_contract_forbids_every_module_but_the_public_roots(front_end: str) -> None:
    name, public_roots = FRONT_ENDS[front_end]
    found = contract(name)
    forbidden = found["forbidden_modules"]

    expected = {f"lifecycle.{name}" for name in top_level_modules() - {front_end, *public_roots}}
    expected |= {f"lifecycle.{name}.*" for name in public_roots}
    assert (found["type"], found["source_modules"]) == ("forbidden", [f"lifecycle.{front_end}"])
    assert set(forbidden) == expected, "list the new module in the contract (or make it public)"
    assert len(forbidden) == len(set(forbidden))


@pytest.mark.parametrize("front_end", sorted(FRONT_ENDS))
def test_a_front_end_uses_only_the_names_the_public_packages_export(front_end: str) -> None:
    """import-linter sees modules, not names: ``lifecycle.engine.Engine`` after ``import
    lifecycle``, or ``from lifecycle import Adapters`` (imported there, not exported), would pass
    the contract. Every name the CLI takes from ``lifecycle`` or ``lifecycle.adapters`` is in
    that package's ``__all__``."""
    exported = {"lifecycle": set(lifecycle.__all__),
                "lifecycle.adapters": set(lifecycle.adapters.__all__)}
    unexported = []
    for path in sorted((PACKAGE / front_end).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module in exported:
                names = {alias.name for alias in node.names}
                unexported += [(path.name, node.module, n) for n in names - exported[node.module]]
            elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                  and node.value.id == "lifecycle" and node.attr not in exported["lifecycle"]):
                unexported.append((path.name, "lifecycle", node.attr))

    assert unexported == []
