"""The recorder's statements: compiled once per dialect, every value a parameter."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import literal, select

from lifecycle.events import random_uuid
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


@pytest.mark.parametrize("moment", [
    datetime(2026, 12, 3, 10, 51, 40, 123456, tzinfo=UTC),
    datetime(2026, 12, 3, 10, 51, 40, tzinfo=UTC),  # no microseconds: still written
    datetime(2026, 12, 3, 12, 51, 40, 5, tzinfo=timezone(timedelta(hours=2))),
])
def test_sqlite_moments_are_written_as_sqlalchemy_writes_them(moment: datetime) -> None:
    written = SQLiteRecorder.moment(moment)
    assert written == moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    assert SQLiteRecorder.moment_of(written) == moment


def test_event_ids_are_random_version_4_uuids() -> None:
    ids = [random_uuid() for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
