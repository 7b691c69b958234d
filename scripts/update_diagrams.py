"""Regenerate docs/diagrams/*.md and the README's "The machines" section from the definitions.

    .venv/bin/python scripts/update_diagrams.py

tests/unit/test_diagrams.py fails until this is run after a definition changes.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lifecycle.cli import diagrams  # noqa: E402  (after the path is set)

START, END = "<!-- machines:start -->", "<!-- machines:end -->"


def main() -> None:
    folder = ROOT / "docs" / "diagrams"
    folder.mkdir(parents=True, exist_ok=True)
    for name in (*diagrams.MACHINES, *diagrams.ACCOUNT_TITLES):
        (folder / f"{name}.md").write_text(diagrams.page(name), encoding="utf-8")
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    section = f"{START}\n{diagrams.readme_section()}{END}"
    if START not in text:
        raise SystemExit(f"README.md has no {START} … {END} markers to write between")
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    readme.write_text(pattern.sub(lambda _match: section, text), encoding="utf-8")


if __name__ == "__main__":
    main()
