"""CI sees that the CLI talks only to the public API (STYLE.md): the import-linter contract
"cli uses only the public API" in pyproject.toml forbids every other module of the package, by
name. This keeps the list whole: a module added to ``lifecycle/`` is forbidden to the CLI until
someone decides, in the contract, that it is public."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "lifecycle"
CONTRACT = "cli uses only the public API"
#: packages whose root (its __init__) the CLI may import, but none of their modules
PUBLIC_ROOTS = {"adapters", "simulation"}


def contract(name: str) -> dict[str, Any]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    found = [c for c in config["tool"]["importlinter"]["contracts"] if c["name"] == name]
    assert len(found) == 1, f"one contract named {name!r} in pyproject.toml"
    return found[0]


def top_level_modules() -> set[str]:
    """Every module and package directly under lifecycle/."""
    modules = {path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    return modules | {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}


def test_the_cli_contract_forbids_every_module_but_the_public_roots() -> None:
    cli = contract(CONTRACT)
    forbidden = cli["forbidden_modules"]

    expected = {f"lifecycle.{name}" for name in top_level_modules() - {"cli", *PUBLIC_ROOTS}}
    expected |= {f"lifecycle.{name}.*" for name in PUBLIC_ROOTS}
    assert (cli["type"], cli["source_modules"]) == ("forbidden", ["lifecycle.cli"])
    assert set(forbidden) == expected, "list the new module in the contract (or make it public)"
    assert len(forbidden) == len(set(forbidden))

