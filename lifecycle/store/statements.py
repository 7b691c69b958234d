"""How a `Recorder` holds its statements: SQLAlchemy Core where the method that runs it is,
compiled to text once per dialect, and run on the connection's own DBAPI cursor.

`fire` is the product's hot path. Core builds every statement from the table definitions
(`store.tables`) that the migrations and the simulation's queries use too; executing them
through Core's per-call machinery (events, parameter processing, result objects) cost several
times what the database itself spends. So each part of a recorder writes its statements as
class attributes, ``LOAD = Statement(select(...))`` right above ``def load``, and a dialect's
recorder class (`SQLiteRecorder`, `PostgresRecorder`) replaces them with their compiled text
the first time a store uses it. The methods convert values as SQLAlchemy's types would store
them, through the four conversions the dialect's recorder defines (`moment`, `moment_of`,
`json`, `loads`), so a timestamp or a JSON value comes back one way, whatever read it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import ClauseElement, Dialect


class Statement(str):
    """A Core statement, written where the method that runs it is. Every value in it is a named
    `bindparam` (or a `literal_column`): its compiled text runs with the method's parameters
    and nothing else. A dialect's recorder class holds the compiled text instead."""

    statement: ClauseElement
    suffix: str

    def __new__(cls, statement: ClauseElement, *, suffix: str = "") -> Statement:
        # Until compiled, the text is no SQL: run by mistake, it fails rather than doing nothing.
        self = super().__new__(cls, f"NOT COMPILED {type(statement).__name__}")
        self.statement, self.suffix = statement, suffix
        return self


class Statements:
    """The base of every part of a recorder: the DBAPI cursor its methods run on, the
    conversions of values to and from the database, and the compiling of its statements."""

    dialect: ClassVar[Dialect | None] = None
    _variants: ClassVar[dict[Hashable, str]]

    cur: Any  # the DBAPI cursor; methods fetch what they need before the next statement

    @classmethod
    def compile_statements(cls) -> None:
        """Replace each `Statement` the class has (its own or its parts') with its text in
        the class's dialect; once per class."""
        if "_compiled_for" in cls.__dict__ and cls.__dict__["_compiled_for"] is cls.dialect:
            return
        for name in dir(cls):
            value = getattr(cls, name)
            if isinstance(value, Statement):
                setattr(cls, name, cls.text_of(value.statement) + value.suffix)
        cls._variants = {}
        cls._compiled_for = cls.dialect  # type: ignore[attr-defined]

    @classmethod
    def text_of(cls, statement: ClauseElement) -> str:
        """The statement's text in this class's dialect. A value written into a statement
        would be a parameter its method never passes: refused here, when it is compiled."""
        if cls.dialect is None:
            raise TypeError(f"{cls.__name__} has no dialect to compile its statements for")
        compiled = statement.compile(dialect=cls.dialect)
        loose = sorted(name for name, value in compiled.params.items() if value is not None)
        if loose:
            raise TypeError(f"a statement of {cls.__name__} holds values, not parameters: "
                            f"{', '.join(loose)}")
        return str(compiled)

    def variant(self, shape: Hashable, build: Callable[[], ClauseElement]) -> str:
        """The text of a statement whose shape follows the caller's filters (a listing by
        kind, by state, ...): built and compiled the first time each shape is asked for."""
        variants = type(self)._variants
        text = variants.get(shape)
        if text is None:
            text = variants[shape] = self.text_of(build())
        return text

    # --- the conversions, one per direction: each dialect's recorder defines them ----------

    def moment(self, value: datetime) -> Any:
        """A timestamp as the database stores it."""
        raise NotImplementedError

    def moment_of(self, value: Any) -> datetime:
        """A timestamp as the database hands it back, as an aware datetime."""
        raise NotImplementedError

    def json(self, value: Any) -> str:
        """A JSON column's value as the statement passes it."""
        raise NotImplementedError

    def loads(self, value: Any) -> Any:
        """A JSON column's value as the database hands it back, as Python values."""
        raise NotImplementedError
