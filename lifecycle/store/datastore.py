"""The database as the engine holds it: `Store`, one class per dialect, handing out `Recorder`s.

A store decides which connection a caller's statements run on, and what a database error
becomes for the caller. Each thread keeps its writing connection between triggers: checking one
out of the pool and resetting it on return cost about as much as a trigger's own statements. A
finished thread's connection goes back when the next new thread takes one. Reads outside a
trigger take a pooled connection; on SQLite a single read runs on the thread's writing
connection instead (`SQLiteStore.quick`).

A database error is either contention (another writer in the way: `Conflict`, retry at once)
or the database out of reach (`Unavailable`); after the latter the thread's writing connection,
as likely broken as the one that failed, is replaced on next use (`store.failures`).

A batch (`Store.batch`, issue #15) is one transaction on the thread's writing connection that
several triggers share: while it is open, `transaction` is a savepoint in it, and `reading` and
`quick` run on its connection, so they see what the batch wrote so far.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from lifecycle.errors import Conflict, InvalidPayload, LifecycleError
from lifecycle.store.failures import database_errors, is_contention, unavailable
from lifecycle.store.recorder import PostgresRecorder, Recorder, SQLiteRecorder


def open_store(database: Engine) -> Store:
    """The store for ``database``: SQLite through sqlite3, or PostgreSQL through psycopg 3."""
    dialect = database.dialect
    for store in (SQLiteStore, PostgresStore):
        if (dialect.name, dialect.driver) == store.driver:
            return store(database)
    raise InvalidPayload("db", f"lifecycle runs on sqlite (sqlite3) and postgresql (psycopg), "
                               f"not {dialect.name}+{dialect.driver}")


class _Local(threading.local):
    """What a thread holds: its writing connection's recorder and its open batch. Class
    attributes are the defaults, so reading either costs no exception on a new thread."""

    records: Recorder | None = None
    batch: _Batch | None = None


@dataclass(slots=True)
class _Batch:
    """A thread's open batch: its recorder, whether its transaction has begun (at its first
    trigger), and the error that lost it (then every later trigger in it raises that again)."""

    records: Recorder
    begun: bool = False
    lost: LifecycleError | None = None


class Store:
    """The per-database half of the unit of work: the connections, and the failure mapping.

    `transaction` is one trigger's transaction on the thread's writing connection; `reading`
    several reads that agree, on a pooled connection; `quick` one read outside a trigger. Each
    yields the connection's `Recorder`, whose methods are the statements. Safe to share
    between threads.
    """

    driver: ClassVar[tuple[str, str]]  # (dialect, DBAPI driver) as SQLAlchemy names them
    recorder: ClassVar[type[Recorder]]
    # Whether a relay's claim of outbox rows holds them locked in its transaction while it
    # publishes (`lifecycle.outbox`).
    claims_lock_rows: ClassVar[bool]

    def __init__(self, database: Engine):
        self.database = database
        self.recorder.compile_statements()
        self._local = _Local()
        self._held: dict[threading.Thread, Recorder] = {}
        self._held_lock = threading.Lock()
        dbapi: Any = database.dialect.dbapi
        # Statements run on the DBAPI cursor, so the driver's own errors arrive, unwrapped.
        self.duplicate: tuple[type[Exception], ...] = (IntegrityError, dbapi.IntegrityError)
        self.errors = database_errors(database)

    def transaction(self) -> AbstractContextManager[Recorder]:
        """One database transaction, run on the driver: SQLAlchemy's transaction bookkeeping
        (events, nesting state) cost several times the BEGIN and COMMIT themselves. Anything
        raised inside rolls it back; a database error becomes `Conflict` (contention) or
        `Unavailable`. Inside the thread's open batch, a savepoint in the batch's transaction
        instead (`batch`)."""
        batch = self._local.batch
        if batch is not None:
            return self._step(batch)
        return self._transaction()

    @contextmanager
    def _transaction(self) -> Iterator[Recorder]:
        records = self.writer()
        try:
            records.begin()
            try:
                yield records
            except BaseException:
                records.rollback()
                raise
            records.commit()
        except self.errors as error:
            if is_contention(error):
                with contextlib.suppress(Exception):
                    records.rollback()
                raise Conflict("database", "busy") from error
            self._forget(records)
            raise unavailable(self.database, error) from error

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group commit: the thread's transactions inside the block share one database
        transaction, each as a savepoint in it (`transaction`), committed when the block ends.

        The transaction begins with the batch's first transaction (BEGIN IMMEDIATE on SQLite:
        the batch holds the write lock from there to its end). What raises inside a savepoint
        undoes that savepoint alone; an exception out of the block rolls the whole batch back.
        A database error anywhere in it loses the whole batch at once: it is rolled back, the
        error raised as `Conflict` or `Unavailable`, and raised again by every later
        transaction of the batch and by the block's end, so a body that caught it never takes
        the batch for committed. A failed commit is `Conflict` or `Unavailable` likewise,
        nothing written. Inside a batch, ``batch()`` is a savepoint of the outer one: an
        exception out of it undoes the inner block's work alone; the rest commits with the
        outer batch. Reads on this thread (`reading`, `quick`) run on the batch's connection."""
        outer = self._local.batch
        if outer is not None:
            with self._step(outer):
                yield
            return
        batch = self._local.batch = _Batch(self.writer())
        try:
            yield
        except BaseException:
            self._local.batch = None
            if batch.lost is None and batch.begun:
                try:
                    batch.records.rollback()
                except self.errors as error:
                    self.failure(error)  # a broken connection is replaced; the body's error wins
            raise
        self._local.batch = None
        if batch.lost is not None:
            raise batch.lost
        self._end(batch.records, commit=batch.begun)

    def _end(self, records: Recorder, *, commit: bool) -> None:
        """Commit a batch; a database error as in `transaction`, the batch rolled back. A batch
        that wrote nothing is rolled back: on PostgreSQL its reads began a transaction, whose
        table locks would otherwise stay until the thread's next trigger."""
        try:
            if commit:
                records.commit()
            else:
                records.rollback()
        except self.errors as error:
            with contextlib.suppress(Exception):
                records.rollback()
            raise self.failure(error) from error

    @contextmanager
    def _step(self, batch: _Batch) -> Iterator[Recorder]:
        """One savepoint of ``batch``'s transaction (begun here the first time)."""
        if batch.lost is not None:
            raise batch.lost
        records = batch.records
        try:
            if not batch.begun:
                records.begin()
                batch.begun = True
            with records.savepoint():
                yield records
        except self.errors as error:
            raise self._lose(batch, error) from error

    @contextmanager
    def _read_in(self, batch: _Batch) -> Iterator[Recorder]:
        """A read on ``batch``'s connection: it sees what the batch wrote so far."""
        if batch.lost is not None:
            raise batch.lost
        try:
            yield batch.records
        except self.errors as error:
            raise self._lose(batch, error) from error

    def _lose(self, batch: _Batch, error: Exception) -> LifecycleError:
        """A database error in a batch: roll all of it back; `Conflict` or `Unavailable`."""
        with contextlib.suppress(Exception):
            batch.records.rollback()
        batch.lost = self.failure(error)
        return batch.lost

    @contextmanager
    def reading(self) -> Iterator[Recorder]:
        """A pooled connection for reads outside a trigger, in one read transaction (ended
        when the connection goes back to the pool). A database error on it makes it `Conflict`
        (contention) or `Unavailable`, and the connection never goes back: it may be broken,
        and resetting a broken one logs a traceback. Inside the thread's batch, the batch's
        connection."""
        batch = self._local.batch
        if batch is not None:
            with self._read_in(batch) as records:
                yield records
            return
        try:
            conn = self.database.connect()
        except self.errors as error:
            raise self.failure(error) from error
        try:
            records = self._recorder(conn)
            records.begin_reading()
            yield records
        except self.errors as error:
            conn.invalidate()
            raise self.failure(error) from error
        finally:
            conn.close()

    @contextmanager
    def through_core(self) -> Iterator[Connection]:
        """A pooled SQLAlchemy connection for reads that Core builds per call (the report
        queries of `store.reports`), with the same error mapping as `reading`."""
        try:
            with self.database.connect() as conn:
                try:
                    yield conn
                except self.errors:
                    conn.invalidate()
                    raise
        except self.errors as error:
            raise self.failure(error) from error

    @contextmanager
    def quick(self) -> Iterator[Recorder]:
        """A connection for one read outside a trigger."""
        with self.reading() as records:
            yield records

    def writer(self) -> Recorder:
        """The recorder of this thread's writing connection, connected on first use."""
        records = self._local.records
        if records is not None:
            held = records.connection
            if held is not None and not held.closed and not held.invalidated:
                return records
        try:
            with self._held_lock:
                for thread in [t for t in self._held if not t.is_alive()]:
                    _close(self._held.pop(thread))
                conn = self.database.connect()
                # Its own recorder, never the one a read on the same connection kept.
                records = self.recorder(conn.connection.driver_connection)
                records.connection = conn
                self._held[threading.current_thread()] = records
        except self.errors as error:
            raise self.failure(error) from error
        self._local.records = records
        return records

    def failure(self, error: Exception) -> LifecycleError:
        """What a database error outside `transaction` becomes for the caller: `Conflict` for
        contention; otherwise `Unavailable`, and the thread's writing connection, as likely
        broken as the one that failed, is replaced on next use."""
        if is_contention(error):
            return Conflict("database", "busy")
        self._forget(self._local.records)
        return unavailable(self.database, error)

    def close(self) -> None:
        with self._held_lock:
            for records in self._held.values():
                _close(records)
            self._held.clear()
        self.database.dispose()

    def _recorder(self, conn: Connection) -> Recorder:
        """The recorder of a pooled connection: one per DBAPI connection, kept with it in the
        pool entry's ``info`` (cleared when the pool replaces the connection)."""
        driver = conn.connection.driver_connection
        records: Recorder | None = conn.info.get("lifecycle.recorder")
        if records is None or records.driver is not driver:
            records = conn.info["lifecycle.recorder"] = self.recorder(driver)
        records.connection = conn
        return records

    def _forget(self, records: Recorder | None) -> None:
        """A database error that is not contention may have broken the connection (a server
        restart): the next trigger of this thread connects afresh, and so does every read.

        The pool's idle connections are closed too: they are likely as broken as the one that
        failed (SQLAlchemy does the same for errors it sees itself; these come straight from
        the driver). Other threads' writing connections are theirs; a broken one fails once and
        is replaced like this one."""
        if records is not None and records.connection is not None:
            with contextlib.suppress(Exception):
                records.connection.invalidate()
        with self._held_lock:
            self._held.pop(threading.current_thread(), None)
        self._local.records = None
        with contextlib.suppress(Exception):
            self.database.dispose()


def _close(records: Recorder) -> None:
    if records.connection is not None:
        records.connection.close()


class SQLiteStore(Store):
    """SQLite: one read outside a trigger runs on the thread's writing connection."""

    driver = ("sqlite", "pysqlite")
    recorder = SQLiteRecorder
    claims_lock_rows = False  # one writer: a relay's claim is a read, its marks a short write

    @contextmanager
    def quick(self) -> Iterator[Recorder]:
        """The thread's writing connection: between triggers the driver is in autocommit, so
        the read sees the latest commit, and checking a connection out of the pool and
        resetting it cost more than the read itself (every `get`, every carrier scan's waybill
        lookup). Inside the thread's batch, the batch's connection too, in its transaction."""
        batch = self._local.batch
        if batch is not None:
            with self._read_in(batch) as records:
                yield records
            return
        records = self.writer()
        try:
            yield records
        except self.errors as error:
            raise self.failure(error) from error


class PostgresStore(Store):
    """PostgreSQL: a read opens a transaction on the driver; the pool ends it on return."""

    driver = ("postgresql", "psycopg")
    recorder = PostgresRecorder
    claims_lock_rows = True  # a relay's claim holds its rows (SKIP LOCKED) until it ends
