"""What the CLI prints of the data: control characters shown as escapes, tables still aligned."""

from __future__ import annotations

from lifecycle.cli import output


def test_printable_shows_control_and_bidi_characters_as_escapes() -> None:
    assert output.printable("a\x1b[2Jb\x07\x9b\u202ec\nd\te") == (
        "a\\x1b[2Jb\\x07\\x9b\\u202ec\\x0ad\\x09e")
    assert output.printable("Ana Silva, Çé 漢字 🙂") == "Ana Silva, Çé 漢字 🙂"


def test_a_table_escapes_its_cells_before_aligning_them() -> None:
    text = output.table(["id", "name"], [["o-1", "A\x1b[2J"], ["o-22", "B"]])

    assert text.splitlines() == [
        "id    name",
        "----  --------",
        "o-1   A\\x1b[2J",
        "o-22  B",
    ]
