"""The unit of work on one database connection: `Recorder`, and one class per dialect.

A recorder holds one DBAPI connection and the cursor its statements run on; it begins,
commits and rolls back that connection's transaction and takes savepoints inside it; and it has
a method for every read and write the engine makes, each beside its statement (the parts:
`store.repository`, `store.deadlines`, `store.ledger`, `store.policies`, `store.retention`,
`store.audit`, `store.keys`, `store.outbox`). `store.datastore.Store` decides which connection a caller gets.

Where the databases differ, the dialect's class says so: SQLite begins ``IMMEDIATE`` (a writer
takes the write lock before it reads), needs no version claim, and keeps timestamps as text;
PostgreSQL begins implicitly, claims a version with an UPDATE that holds the row, takes
due deadlines ``FOR UPDATE SKIP LOCKED``, and sends what a trigger writes after its version
check in pipeline mode (`QueuingCursor`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar, cast

import orjson
from sqlalchemy import ClauseElement, Connection, Dialect, Update, literal_column, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine import Compiled

from lifecycle.errors import Conflict
from lifecycle.machines.definition import Aggregate
from lifecycle.store.audit import AuditQueries
from lifecycle.store.deadlines import DeadlineRecords
from lifecycle.store.keys import KeyRecords
from lifecycle.store.ledger import LedgerRecords
from lifecycle.store.machine_versions import MachineVersionRecords
from lifecycle.store.messages import MessageRecords
from lifecycle.store.outbox import OutboxRecords

if TYPE_CHECKING:
    import psycopg
from lifecycle.store.policies import PolicyRecords
from lifecycle.store.repository import AggregateRecords
from lifecycle.store.retention import RetentionRecords
from lifecycle.store.statements import Statement

# A long read comes in batches of this many rows.
STREAM_BATCH = 5000
# How many shapes of an application's Core statements (`Engine.execute`) a recorder class keeps
# compiled; past that the cache starts again.
COMPILED_CORE_SHAPES = 256


class Recorder(AggregateRecords, DeadlineRecords, LedgerRecords, PolicyRecords, RetentionRecords,
               AuditQueries, KeyRecords, OutboxRecords, MachineVersionRecords, MessageRecords):
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
        self.cur = self.cursor_of(driver)  # kept: a psycopg cursor costs ~10-20 us to create
        # The pool's checkout it came with, through Core so that connecting is Core's (its
        # errors wrapped like every other Core error): `Store`.
        self.connection: Connection | None = None

    @staticmethod
    def cursor_of(driver: Any) -> Any:
        """The cursor every statement of the recorder runs on."""
        return driver.cursor()

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
    the driver hands back aware datetimes and JSONB as Python values.

    Pipeline mode (issue #15): once a trigger's version check has passed (`update_aggregate`
    moved the row, or `insert_aggregate` created it), the statements after it are queued
    (`QueuingCursor`): history, outbox, deadlines, ledger, lookups, the idempotency record go
    out without waiting for each answer, and come back together at the next sync. A sync
    happens before anything reads a result (a fetch, ``rowcount``: the version check of a
    follow-up, a deadline carried over), at the unit's end, with the COMMIT in the same
    round trip (`commit`), and at each savepoint's start and end, so a queued statement's error
    is raised in the unit that queued it, before its savepoint is released: the unit rolls back
    alone, and the error is the one the statement would have raised unqueued.

    After `claim_version` the row is this transaction's (its UPDATE holds it to the end, and
    nothing between the claim and the write touches it), so the write's version check cannot
    fail: that write is queued too (`UPDATE_HELD`), and the database still checks it, refusing
    it (a division by zero) if it changed no row, so that nothing queued behind it, the COMMIT
    included, runs; the refusal is raised as `Conflict`.
    """

    # psycopg's pyformat %(name)s, with the casts SQLAlchemy's psycopg dialect writes.
    dialect: ClassVar[Dialect | None] = PGDialect_psycopg()  # type: ignore[no-untyped-call]

    # `UPDATE_AGGREGATE` as one statement that fails unless it changed exactly one row.
    UPDATE_HELD = Statement(select(literal_column("1 / count(*)")).select_from(
        cast(Update, AggregateRecords.UPDATE_AGGREGATE.statement)
        .returning(literal_column("1")).cte("moved")))

    cur: QueuingCursor
    # (kind, id, version) of the row `claim_version` took in this transaction, if any.
    _held: tuple[str, str, int] | None = None

    @staticmethod
    def cursor_of(driver: Any) -> QueuingCursor:
        return QueuingCursor(driver)

    def begin(self) -> None:
        self.cur.queuing = False
        self._held = None

    def begin_reading(self) -> None:
        pass

    def commit(self) -> None:
        """Commit: what is queued goes with the COMMIT, in one round trip. A queued statement
        that fails raises its error here, the transaction rolled back."""
        cur = self.cur
        cur.queuing, self._held = False, None
        if not cur.pending:
            self.driver.commit()
            return
        try:
            cur.execute("COMMIT", prepare=False)  # behind the queued writes: skipped if one fails
            cur.sync()
        except BaseException:
            # The COMMIT never ran: the transaction is still open, failed. End it.
            cur.drain()  # raised by the COMMIT's `execute`, the error left the rest queued
            with contextlib.suppress(_psycopg().Error):
                self.driver.rollback()
            raise

    def rollback(self) -> None:
        """Roll back. A queued statement whose error no one has seen yet raises it after the
        rollback: unqueued, it would have been raised first."""
        self._held = None
        failed = self.cur.drain()
        self.driver.rollback()
        if failed is not None:
            raise failed

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """`Recorder.savepoint`, synced at both ends: what the enclosing unit queued answers
        before the savepoint begins, and what the step queued before it is released (or
        rolled back, after which its queued error, if any, is the one raised)."""
        cur = self.cur
        outer, cur.queuing, self._held = cur.queuing, False, None
        cur.sync()
        cur.execute("SAVEPOINT lifecycle_step")
        try:
            yield
            cur.queuing, self._held = False, None
            cur.sync()
        except BaseException:
            cur.queuing, self._held = False, None
            failed = cur.drain()
            cur.execute("ROLLBACK TO SAVEPOINT lifecycle_step")
            cur.execute("RELEASE SAVEPOINT lifecycle_step")
            cur.queuing = outer
            if failed is not None:
                raise failed from None
            raise
        cur.execute("RELEASE SAVEPOINT lifecycle_step")
        cur.queuing = outer

    def claim_version(self, kind: str, id: str, read_version: int) -> int | None:
        claimed = super().claim_version(kind, id, read_version)
        self._held = None if claimed is None else (kind, id, claimed)
        return claimed

    def update_aggregate(self, aggregate: Aggregate, read_version: int, now: datetime) -> bool:
        if self._held == (aggregate.kind, aggregate.id, read_version):
            self._held = None  # the row is ours at this version: queued, checked by the database
            self.cur.execute_held(self.UPDATE_HELD, self.update_values(aggregate, read_version, now),
                                  (aggregate.kind, aggregate.id))
            self.cur.queuing = True
            return True
        moved = super().update_aggregate(aggregate, read_version, now)
        if moved:
            self.cur.queuing = True  # the version check passed: what follows may queue
        return moved

    def insert_aggregate(self, aggregate: Aggregate, now: datetime) -> None:
        super().insert_aggregate(aggregate, now)
        self.cur.queuing = True  # created (a duplicate id raised): what follows may queue

    def stream(self, sql: str) -> Iterator[tuple[Any, ...]]:
        self.cur.sync()  # a server-side cursor runs outside pipeline mode
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


class QueuingCursor:
    """A recorder's psycopg cursor that queues its statements while `queuing` is set.

    The first statement run while queuing puts the connection in pipeline mode
    (``Connection.pipeline()``): each statement is sent without waiting for its result. Every
    way to read a result (`fetchone`, `fetchall`, `rowcount`) syncs first, leaving pipeline
    mode: so a method reads its own statement's answer, never one not yet arrived (a
    ``rowcount`` of -1, or an earlier queued statement's result on this shared cursor). The
    next statement run while still queuing enters pipeline mode again.

    In pipeline mode a statement's error may be raised by a later `execute`, or by the sync;
    the statements queued after it are skipped by the server (psycopg's ``PipelineAborted``),
    and the transaction is failed until rolled back (to a savepoint).
    """

    __slots__ = ("_expect", "_open", "driver", "queuing", "raw")

    def __init__(self, driver: psycopg.Connection[Any]):
        self.driver = driver
        self.raw = driver.cursor()
        self.queuing = False
        self._open: AbstractContextManager[Any] | None = None  # pipeline mode, while queued
        self._expect: tuple[str, str] | None = None  # whose row `execute_held` must change

    @property
    def pending(self) -> bool:
        """Whether statements were queued since the last sync."""
        return self._open is not None

    def execute(self, query: Any, params: Any = None, *, prepare: bool | None = None) -> None:
        if self.queuing and self._open is None:
            self._enter()
        try:
            self.raw.execute(query, params, prepare=prepare)
        except Exception as error:
            if isinstance(error, _psycopg().errors.DivisionByZero):  # `execute_held`, refused
                raise self._refused(error) from None
            raise

    def execute_held(self, query: Any, params: Any, aggregate: tuple[str, str]) -> None:
        """Queue a statement written to fail (a division by zero) unless it changed the row of
        ``aggregate`` (kind, id) that this transaction holds: its refusal is `Conflict`."""
        if self._open is None:
            self._enter()
        self._expect = aggregate
        self.execute(query, params)

    def executemany(self, query: Any, params_seq: Sequence[Any]) -> None:
        if self.queuing and self._open is None:
            self._enter()
        try:
            self.raw.executemany(query, params_seq)
        except Exception as error:
            if isinstance(error, _psycopg().errors.DivisionByZero):
                raise self._refused(error) from None
            raise

    def fetchone(self) -> Any:
        if self._open is not None:
            self.sync()
        return self.raw.fetchone()

    def fetchall(self) -> list[Any]:
        if self._open is not None:
            self.sync()
        return self.raw.fetchall()

    @property
    def rowcount(self) -> int:
        if self._open is not None:
            self.sync()
        return self.raw.rowcount

    def sync(self) -> None:
        """Send what is queued and wait for every answer, leaving pipeline mode; the first
        queued statement that failed raises its error here."""
        opened, self._open = self._open, None
        if opened is None:
            return
        psycopg = _psycopg()
        try:
            opened.__exit__(None, None, None)
        except psycopg.Error as error:
            raise self._refused(_first_failure(error)) from None
        finally:
            self._expect = None

    def drain(self) -> Exception | None:
        """Sync on the way to a rollback: the error of a queued statement that failed, unless
        it was raised already (only the statements it made the server skip remain then)."""
        psycopg = _psycopg()
        try:
            self.sync()
        except psycopg.errors.PipelineAborted:
            return None
        except (psycopg.Error, Conflict) as error:
            return error
        return None

    def _refused(self, error: psycopg.Error) -> Exception:
        """`Conflict` for the refusal of `execute_held`'s statement, else ``error``."""
        expect = self._expect
        if expect is None or not isinstance(error, _psycopg().errors.DivisionByZero):
            return error
        return Conflict(*expect)

    def _enter(self) -> None:
        opened = self.driver.pipeline()
        opened.__enter__()
        self._open = opened


def _first_failure(error: psycopg.Error) -> psycopg.Error:
    """The statement's own error behind psycopg's ``PipelineAborted`` for the statements the
    server skipped after it (psycopg raises the latter when it fetched the former earlier
    during the same sync), or ``error`` itself."""
    psycopg = _psycopg()
    seen: BaseException | None = error
    while isinstance(seen, psycopg.errors.PipelineAborted):
        seen = seen.__context__
    return seen if isinstance(seen, psycopg.Error) else error


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-able")


def _psycopg() -> Any:
    """psycopg, imported when a PostgreSQL recorder first needs it: a command on a SQLite
    file never pays for it (issue #19)."""
    import psycopg

    return psycopg
