"""The recorder's statements: compiled once per dialect, every value a parameter."""

from __future__ import annotations

import pytest
from sqlalchemy import literal, select

from lifecycle.store.recorder import PostgresRecorder, Recorder, SQLiteRecorder
from lifecycle.store.statements import Statement


@pytest.mark.parametrize("recorder", [SQLiteRecorder, PostgresRecorder])
def test_every_statement_compiles_to_its_dialects_text(recorder: type[Recorder]) -> None:
    recorder.compile_statements()

    names = [name for name in dir(Recorder) if isinstance(getattr(Recorder, name), Statement)]
    assert len(names) > 30
    for name in names:
        text = getattr(recorder, name)
        assert not isinstance(text, Statement), name
        assert text.split()[0] in {"SELECT", "INSERT", "UPDATE", "DELETE"}, name
    marker = ":kind" if recorder is SQLiteRecorder else "%(kind)s"
    assert marker in recorder.LOAD


def test_a_statement_holding_a_value_is_refused_when_compiled() -> None:
    with pytest.raises(TypeError, match="holds values, not parameters"):
        SQLiteRecorder.text_of(select(literal("escrow")))


def test_a_recorder_without_a_dialect_is_refused() -> None:
    with pytest.raises(TypeError, match="no dialect"):
        Recorder.compile_statements()
