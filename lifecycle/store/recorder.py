"""The unit of work on one database connection: `Recorder`, and one class per dialect.

A recorder holds one DBAPI connection and the cursor its statements run on; it begins,
commits and rolls back that connection's transaction and takes savepoints inside it; and it has
a method for every read and write the engine makes, each beside its statement (the parts:
`store.repository`, `store.deadlines`, `store.ledger`, `store.policies`, `store.retention`,
`store.audit`, `store.keys`, `store.outbox`). `store.datastore.Store` decides which connection a caller gets.

Where the databases differ, the dialect's class says so: SQLite begins ``IMMEDIATE`` (a writer
takes the write lock before it reads), needs no version claim, and keeps timestamps as text;
PostgreSQL begins implicitly, claims a version with an UPDATE that holds the row, and takes
due deadlines ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, ClassVar

import orjson
from sqlalchemy import ClauseElement, Connection, Dialect
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine import Compiled

from lifecycle.store.audit import AuditQueries
from lifecycle.store.deadlines import DeadlineRecords
from lifecycle.store.keys import KeyRecords
from lifecycle.store.ledger import LedgerRecords
from lifecycle.store.outbox import OutboxRecords
from lifecycle.store.policies import PolicyRecords
from lifecycle.store.repository import AggregateRecords
from lifecycle.store.retention import RetentionRecords

# A long read comes in batches of this many rows.
STREAM_BATCH = 5000
# How many shapes of an application's Core statements (`Engine.execute`) a recorder class keeps
# compiled; past that the cache starts again.
COMPILED_CORE_SHAPES = 256


class Recorder(AggregateRecords, DeadlineRecords, LedgerRecords, PolicyRecords, RetentionRecords,
               AuditQueries, KeyRecords, OutboxRecords):
    """One connection's transaction, its savepoints, and every statement the engine runs.

    A trigger is one transaction: `Store.transaction` begins it on the thread's writing
    connection, the engine calls the methods (``load_for_write``, ``update_aggregate``,
    ``append_history``, ...), and the store commits, or rolls back on any error. A part of it
    can be undone alone with `savepoint` (a deadline whose trigger is refused).

    Group commit (issue #15) is built from the same pieces: ``with engine.batch():`` begins one
    transaction for the batch (`Store.batch`) and runs each trigger under its own `savepoint`
    on the same recorder, so a refused trigger rolls back alone and the others commit together;
    the batch publishes its triggers' events after that one commit. A trigger inside a batch
    gets a savepoint where it would have got a transaction (the store sees the thread's open
    batch); nothing in the recorder changes, since savepoints nest by name on both databases.
    """

    def __init__(self, driver: Any):
        self.compile_statements()  # once per class; `Store` has done it already
        self.driver = driver  # the DBAPI connection (sqlite3, psycopg)
        self.cur = driver.cursor()  # kept: a psycopg cursor costs ~10-20 us of Python to create
        # The pool's checkout it came with, through Core so that connecting is Core's (its
        # errors wrapped like every other Core error): `Store`.
        self.connection: Connection | None = None

    def begin(self) -> None:
        """Begin a write transaction."""
        raise NotImplementedError

    def begin_reading(self) -> None:
        """Begin a transaction for several reads that must agree (`check`)."""
        raise NotImplementedError

    def commit(self) -> None:
        self.driver.commit()

    def execute_core(self, statement: ClauseElement) -> None:
        """Run one Core statement an application built (`Engine.execute`), its values bound
        as the dialect's parameters: plain values (text, numbers) only, no type processing."""
        dialect = type(self).dialect
        if dialect is None:
            raise TypeError(f"{type(self).__name__} has no dialect to compile statements for")
        key = statement._generate_cache_key()
        if key is None:  # a statement SQLAlchemy cannot cache (a text() with no binds known)
            uncached = statement.compile(dialect=dialect)
            self.cur.execute(str(uncached), uncached.construct_params())
            return
        # Compiled once per shape, as Core's own cache does: an application builds the same
        # statement with new values each time (a simulation saves its progress once a batch),
        # and compiling costs ~0.6 ms, four times building it and taking its key.
        cache = _compiled_core(type(self))
        compiled = cache.get(key.key)
        if compiled is None:
            if len(cache) >= COMPILED_CORE_SHAPES:
                cache.clear()
            compiled = cache[key.key] = statement.compile(dialect=dialect, cache_key=key)
        self.cur.execute(compiled.string,
                         compiled.construct_params(extracted_parameters=key.bindparams))

    def rollback(self) -> None:
        self.driver.rollback()

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Undo part of a transaction: what ran inside, if it raises."""
        self.cur.execute("SAVEPOINT lifecycle_step")
        try:
            yield
        except BaseException:
            self.cur.execute("ROLLBACK TO SAVEPOINT lifecycle_step")
            self.cur.execute("RELEASE SAVEPOINT lifecycle_step")
            raise
        self.cur.execute("RELEASE SAVEPOINT lifecycle_step")

    # orjson: aggregate data is serialised on every trigger, several times faster than json
    def json(self, value: Any) -> str:
        return orjson.dumps(value, default=_jsonable).decode()

    def loads(self, value: Any) -> Any:
        # JSON text on SQLite; JSONB arrives parsed from psycopg.
        return orjson.loads(value) if isinstance(value, str | bytes) else value


class SQLiteRecorder(Recorder):
    """SQLite (WAL): a writer begins IMMEDIATE, so it holds the database's write lock from its
    first read (upgrading a read transaction fails at once in WAL mode when another writer got
    in between); the driver runs in autocommit between transactions (`store.database`)."""

    # SQLite takes :name parameters.
    dialect: ClassVar[Dialect | None] = sqlite.dialect(paramstyle="named")

    def begin(self) -> None:
        self.cur.execute("BEGIN IMMEDIATE")

    def begin_reading(self) -> None:
        self.cur.execute("BEGIN")

    def claim_version(self, kind: str, id: str, read_version: int) -> int | None:
        """Nothing to write: the transaction took the database's write lock with BEGIN
        IMMEDIATE before it read, so the version it read is still current."""
        return read_version

    def stream(self, sql: str) -> Iterator[tuple[Any, ...]]:
        cur = self.driver.cursor()  # its own: the rows come while other statements run
        try:
            cur.arraysize = STREAM_BATCH
            cur.execute(sql)
            while rows := cur.fetchmany():
                yield from rows
        finally:
            cur.close()

    # How SQLAlchemy's DateTime stores a UTC timestamp in SQLite, so Core reads it alike.
    @staticmethod
    @lru_cache(maxsize=256)  # one trigger stamps the same moment on several rows
    def moment(value: datetime) -> str:
        # "%Y-%m-%d %H:%M:%S.%f", written by isoformat: a quarter of strftime's cost
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

    @staticmethod
    def moment_of(value: Any) -> datetime:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)


class PostgresRecorder(Recorder):
    """PostgreSQL through psycopg 3: transactions begin implicitly with the first statement;
    the driver hands back aware datetimes and JSONB as Python values."""

    # psycopg's pyformat %(name)s, with the casts SQLAlchemy's psycopg dialect writes.
    dialect: ClassVar[Dialect | None] = PGDialect_psycopg()  # type: ignore[no-untyped-call]

    def begin(self) -> None:
        pass

    def begin_reading(self) -> None:
        pass

    def stream(self, sql: str) -> Iterator[tuple[Any, ...]]:
        cur = self.driver.cursor(name="lifecycle_stream")  # server-side, inside the transaction
        try:
            cur.itersize = STREAM_BATCH
            cur.execute(sql)
            yield from cur
        finally:
            cur.close()

    @staticmethod
    def moment(value: datetime) -> datetime:
        return value

    @staticmethod
    def moment_of(value: Any) -> datetime:
        return value  # type: ignore[no-any-return]


_COMPILED_CORE: dict[type[Recorder], dict[Any, Compiled]] = {}


def _compiled_core(recorder: type[Recorder]) -> dict[Any, Compiled]:
    """The compiled Core statements of ``recorder``'s dialect, by SQLAlchemy cache key."""
    return _COMPILED_CORE.setdefault(recorder, {})


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-able")
