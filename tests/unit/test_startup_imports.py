"""A command imports only what it needs (issue #19, item 7: a command starts quickly).

The start-up times themselves are measured by ``python -m benchmarks.cli_startup``; these
tests hold the rules that make them: `lifecycle` imports its public names when first used,
the CLI imports a command's module when that command runs, and a read on a SQLite file
imports neither Alembic, psycopg nor the HTTP service.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import click

import lifecycle
from lifecycle.cli import COMMANDS, cli

ROOT = Path(__file__).resolve().parents[2]


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, cwd=ROOT)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def _run_cli(*args: str) -> str:
    return ("import sys\nfrom lifecycle.cli import main\n"
            f"sys.argv = ['lifecycle', *{list(args)!r}]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass")


def test_importing_lifecycle_imports_no_database_library() -> None:
    loaded = _modules_after("import lifecycle")

    assert not {"sqlalchemy", "pydantic", "structlog", "lifecycle.engine"} & loaded


def test_version_imports_neither_the_engine_nor_any_command() -> None:
    loaded = _modules_after(_run_cli("--version"))

    assert "sqlalchemy" not in loaded
    assert not {m for m in loaded if m.startswith("lifecycle.cli.") and m not in {
        "lifecycle.cli.root", "lifecycle.cli.session"}}


def test_a_read_on_sqlite_imports_no_migrations_driver_or_service(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'read.db'}"
    lifecycle.open(url).close()

    loaded = _modules_after(_run_cli("--db", url, "order", "list"))

    assert "lifecycle.cli.order" in loaded  # it did run
    assert not {"alembic", "psycopg", "fastapi", "lifecycle.service", "lifecycle.simulation",
                "lifecycle.cli.serve"} & loaded


def test_every_public_name_resolves_and_the_type_checkers_block_names_the_same() -> None:
    tree = ast.parse((ROOT / "lifecycle" / "__init__.py").read_text())
    guarded = next(node for node in tree.body if isinstance(node, ast.If)
                   and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
    for_checkers = {alias.asname or alias.name for node in guarded.body
                    if isinstance(node, ast.ImportFrom) for alias in node.names}

    assert for_checkers == set(lifecycle._WHERE)
    for name in lifecycle.__all__:
        assert getattr(lifecycle, name) is not None, name


def test_the_lazy_command_table_names_each_command_by_its_own_name() -> None:
    context = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(context, name)
        assert command is not None, name
        assert command.name == name
    assert cli.list_commands(context)[:4] == ["seller", "order", "dispute", "coupon"]


def test_the_revisions_read_from_file_names_are_alembics() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from lifecycle.store.database import MIGRATIONS, _revisions, head_revision

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    scripts = ScriptDirectory.from_config(config)

    assert _revisions() == {script.revision for script in scripts.walk_revisions()}
    assert head_revision() == scripts.get_current_head()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        assert re.fullmatch(r"\d{4}_\w+\.py", path.name), path.name
