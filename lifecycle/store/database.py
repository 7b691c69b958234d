"""Opening a database: SQLite (WAL) or PostgreSQL through psycopg 3, and its Alembic schema."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from lifecycle.errors import (
    DatabaseMissing,
    InvalidPayload,
    NotOurDatabase,
    SchemaOutdated,
    Unavailable,
)
from lifecycle.store.failures import reachable

MIGRATIONS = Path(__file__).parent / "migrations"


def connect(url: str) -> Engine:
    """A SQLAlchemy engine for ``url`` with lifecycle's connection settings."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InvalidPayload("db", f"{url!r} is not a database URL; write sqlite:///FILE or "
                                   "postgresql+psycopg://USER@HOST/NAME") from None
    if parsed.get_backend_name() not in SUPPORTED:
        shown = parsed.render_as_string(hide_password=True)
        raise InvalidPayload("db", f"{shown} is a {parsed.get_backend_name()} database; lifecycle "
                                   "runs on SQLite (sqlite:///FILE) and PostgreSQL "
                                   "(postgresql+psycopg://USER@HOST/NAME)")
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 is the driver we ship
    try:
        if parsed.get_backend_name() == "sqlite":
            return _sqlite(str(parsed.render_as_string(hide_password=False)))
        # No pool_pre_ping: it costs a round trip per trigger. A dropped connection fails one
        # call with an OperationalError and SQLAlchemy replaces the pool's connections.
        return create_engine(parsed, pool_size=10, max_overflow=20)
    except (NoSuchModuleError, ModuleNotFoundError):
        shown = parsed.render_as_string(hide_password=True)
        raise InvalidPayload("db", f"{shown}: no database driver {parsed.drivername!r} is "
                                   "installed; PostgreSQL runs through psycopg 3 "
                                   "(postgresql+psycopg://…)") from None


SUPPORTED = ("sqlite", "postgresql")


WAL_AUTOCHECKPOINT_PAGES = 10_000


def _sqlite(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event own BEGIN, instead of pysqlite guessing (SQLAlchemy
        # docs, "Serializable isolation / Savepoints / Transactional DDL").
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Checkpoint every ~40 MB of WAL instead of SQLite's 4 MB: a trigger dirties ~12-16
        # pages, so the default checkpointed (and fsynced) every ~70 triggers, copying index
        # pages that later triggers dirtied again; measured ~15% off a trigger's wall time
        # (benchmarks/RESULTS.md). Readers pay a slightly larger WAL index.
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Any) -> None:
        # Transactions through Core (migrations, the simulation's report queries, tests). The
        # engine's own run on the driver and begin there (`store.recorder.SQLiteRecorder`).
        conn.connection.driver_connection.execute("BEGIN")

    return engine


def _alembic_config(engine: Engine, connection: Any = None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the schema to the newest revision, creating a SQLite file that does not exist
    yet. Returns (revision before, revision after). A database that is not lifecycle's is
    refused untouched (`NotOurDatabase`), one a newer lifecycle made with `SchemaOutdated`.
    Raises `Unavailable` when the database cannot be reached."""
    found = inspect_database(engine)
    refuse_unusable(engine, found)
    return _migrate(engine)


def refuse_unusable(engine: Engine, found: Found) -> None:
    """Refuse what no lifecycle call may touch: another application's database, a newer
    lifecycle's schema, a file that cannot be created."""
    name = where(engine)
    if found.what == "foreign":
        raise NotOurDatabase(name, found.reason)
    if found.what == "missing":
        check_creatable(engine)
    if found.revision is not None and found.revision not in _revisions():
        raise SchemaOutdated(f"database {name} has schema {found.revision}, newer than this "
                             f"lifecycle's {head_revision()}: upgrade lifecycle",
                             found.revision)


def _migrate(engine: Engine) -> tuple[str | None, str]:
    from alembic import command

    with reachable(engine):
        before = current_revision(engine)
        with engine.begin() as conn:
            command.upgrade(_alembic_config(engine, conn), "head")
    return before, head_revision()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    """The newest revision this lifecycle ships (the same for every database)."""
    return max(_revisions())


@dataclass(frozen=True)
class Found:
    """What a URL holds, seen without changing anything: ``missing`` (a SQLite file that is
    not there), ``empty`` (no tables), ``ours`` (lifecycle's schema at ``revision``) or
    ``foreign`` (another application's tables, or not a database; ``reason`` says which)."""

    what: str
    revision: str | None = None
    reason: str = ""


def where(engine: Engine) -> str:
    """The database as a person names it: a SQLite file's path, else the URL without password."""
    path = sqlite_path(engine)
    return str(path) if path is not None else engine.url.render_as_string(hide_password=True)


def sqlite_path(engine: Engine) -> Path | None:
    """The file of a SQLite database; None for PostgreSQL and in-memory SQLite."""
    name = engine.url.database
    if engine.dialect.name != "sqlite" or not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name)


def inspect_database(engine: Engine) -> Found:
    """What the database holds, read without writing: a SQLite file through a plain
    connection of its own that only reads (the engine's would switch it to WAL, a change), a
    PostgreSQL database through the engine. Raises `Unavailable` when it cannot be reached."""
    path = sqlite_path(engine)
    if path is not None:
        return _inspect_sqlite_file(path)
    try:
        with reachable(engine), engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            revision = _revision(conn) if "alembic_version" in tables else None
    except Unavailable as error:
        if "does not exist" in error.reason:  # PostgreSQL: FATAL: database "x" does not exist
            name = where(engine)
            raise DatabaseMissing(name, f"no PostgreSQL database {name}: create it with "
                                        "createdb, then `lifecycle db init`") from None
        raise
    return _found(tables, revision)


def _inspect_sqlite_file(path: Path) -> Found:
    if not path.exists():
        return Found("missing")
    if path.is_dir():
        return Found("foreign", reason="it is a folder, not a file")
    try:
        # mode=rw: never creates the file. Not mode=ro: a read-only connection to a WAL file
        # leaves -wal and -shm files behind that it may not delete; this one only reads.
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True)
    except sqlite3.Error as error:
        raise DatabaseMissing(str(path), f"cannot open the SQLite file {path}: {error}") from None
    try:
        tables = {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        revision = None
        if "alembic_version" in tables:
            found = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = found[0] if found else None
    except sqlite3.DatabaseError as error:
        return Found("foreign", reason=f"not a SQLite database: {error}")
    finally:
        conn.close()
    return _found(tables, revision)


def _revision(conn: Any) -> str | None:
    found = conn.exec_driver_sql("SELECT version_num FROM alembic_version").fetchone()
    return found[0] if found else None


def _found(tables: set[str], revision: str | None) -> Found:
    if not tables:
        return Found("empty")
    if "alembic_version" not in tables or (revision is None and tables - {"alembic_version"}):
        others = sorted(tables - {"alembic_version"})
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        return Found("foreign", reason=f"it holds tables lifecycle did not make: {shown}")
    if revision is None:
        return Found("empty")
    if revision not in _revisions():
        if re.fullmatch(r"\d{4}", revision):
            return Found("ours", revision)  # a newer lifecycle's: ensure_schema says so
        return Found("foreign", reason=f"its schema revision {revision!r} is another "
                                       "application's")
    return Found("ours", revision)


@cache  # the migrations shipped do not change while a process runs
def _revisions() -> frozenset[str]:
    """The revisions shipped, from the migrations' file names (``0009_sandbox_clock.py`` is
    revision ``0009``, one chain in number order), not from Alembic: every command checks the
    schema, and importing Alembic to do so would cost more than the rest of a read (issue #19).
    A unit test holds the names to what Alembic reads from the files."""
    return frozenset(match.group(1) for path in (MIGRATIONS / "versions").glob("*.py")
                     if (match := _MIGRATION_FILE.fullmatch(path.name)))


_MIGRATION_FILE = re.compile(r"(\d{4})_\w+\.py")


def ensure_schema(engine: Engine, *, upgrade_allowed: bool) -> None:
    """Bring the schema to this version's newest when allowed (creating a SQLite file that
    does not exist yet), else refuse a database that is missing, empty or at an older schema.
    A database that is not lifecycle's is refused in either case, untouched (`NotOurDatabase`).
    Raises `Unavailable` when the database cannot be reached."""
    name = where(engine)
    found = inspect_database(engine)
    if found.what == "missing" and not upgrade_allowed:
        raise DatabaseMissing(name, f"no database file {name}: check --db (or LIFECYCLE_DB) "
                                    "for a typo, or create it with `lifecycle db init`")
    refuse_unusable(engine, found)
    head = head_revision()
    if found.revision == head:
        return
    if upgrade_allowed:
        _migrate(engine)
        return
    if found.revision is None:
        raise SchemaOutdated(f"database {name} has no lifecycle schema yet: create it with "
                             "`lifecycle db init`")
    raise SchemaOutdated(
        f"database {name} has schema {found.revision}, this lifecycle needs {head}: "
        "run `lifecycle db upgrade`", found.revision
    )


def check_creatable(engine: Engine) -> None:
    """A new SQLite file can be made where its URL points: its folder exists."""
    path = sqlite_path(engine)
    if path is None or path.exists():
        return
    folder = path.parent
    if not folder.is_dir():
        raise DatabaseMissing(str(path), f"cannot create the database file {path}: the "
                                         f"folder {folder} does not exist")
