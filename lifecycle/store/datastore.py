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
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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


class Store:
    """The per-database half of the unit of work: the connections, and the failure mapping.

    `transaction` is one trigger's transaction on the thread's writing connection; `reading`
    several reads that agree, on a pooled connection; `quick` one read outside a trigger. Each
    yields the connection's `Recorder`, whose methods are the statements. Safe to share
    between threads.
    """

    driver: ClassVar[tuple[str, str]]  # (dialect, DBAPI driver) as SQLAlchemy names them
    recorder: ClassVar[type[Recorder]]

    def __init__(self, database: Engine):
        self.database = database
        self.recorder.compile_statements()
        self._local = threading.local()
        self._held: dict[threading.Thread, Recorder] = {}
        self._held_lock = threading.Lock()
        dbapi: Any = database.dialect.dbapi
        # Statements run on the DBAPI cursor, so the driver's own errors arrive, unwrapped.
        self.duplicate: tuple[type[Exception], ...] = (IntegrityError, dbapi.IntegrityError)
        self.errors = database_errors(database)

    @contextmanager
    def transaction(self) -> Iterator[Recorder]:
        """One database transaction, run on the driver: SQLAlchemy's transaction bookkeeping
        (events, nesting state) cost several times the BEGIN and COMMIT themselves. Anything
        raised inside rolls it back; a database error becomes `Conflict` (contention) or
        `Unavailable`."""
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
    def reading(self) -> Iterator[Recorder]:
        """A pooled connection for reads outside a trigger, in one read transaction (ended
        when the connection goes back to the pool). A database error on it makes it `Conflict`
        (contention) or `Unavailable`, and the connection never goes back: it may be broken,
        and resetting a broken one logs a traceback."""
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
        records: Recorder | None = getattr(self._local, "records", None)
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
        self._forget(getattr(self._local, "records", None))
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

    @contextmanager
    def quick(self) -> Iterator[Recorder]:
        """The thread's writing connection: between triggers the driver is in autocommit, so
        the read sees the latest commit, and checking a connection out of the pool and
        resetting it cost more than the read itself (every `get`, every carrier scan's waybill
        lookup)."""
        records = self.writer()
        try:
            yield records
        except self.errors as error:
            raise self.failure(error) from error


class PostgresStore(Store):
    """PostgreSQL: a read opens a transaction on the driver; the pool ends it on return."""

    driver = ("postgresql", "psycopg")
    recorder = PostgresRecorder
