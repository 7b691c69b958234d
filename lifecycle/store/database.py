"""Opening a database: SQLite (WAL) or PostgreSQL through psycopg 3, and its Alembic schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from lifecycle.errors import InvalidPayload, SchemaOutdated
from lifecycle.store.failures import reachable

MIGRATIONS = Path(__file__).parent / "migrations"


def connect(url: str) -> Engine:
    """A SQLAlchemy engine for ``url`` with lifecycle's connection settings."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InvalidPayload("db", f"{url!r} is not a database URL") from None
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 is the driver we ship
    try:
        if parsed.get_backend_name() == "sqlite":
            return _sqlite(str(parsed.render_as_string(hide_password=False)))
        # No pool_pre_ping: it costs a round trip per trigger. A dropped connection fails one
        # call with an OperationalError and SQLAlchemy replaces the pool's connections.
        return create_engine(parsed, pool_size=10, max_overflow=20)
    except NoSuchModuleError:
        raise InvalidPayload("db", f"no database driver for {parsed.drivername!r}") from None


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
    """Bring the schema to the newest revision. Returns (revision before, revision after).
    Raises `Unavailable` when the database cannot be reached."""
    from alembic import command

    with reachable(engine):
        before = current_revision(engine)
        with engine.begin() as conn:
            command.upgrade(_alembic_config(engine, conn), "head")
    return before, head_revision(engine)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(engine: Engine) -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config(engine)).get_current_head()
    assert head is not None, "the package ships at least one migration"
    return head


def ensure_schema(engine: Engine, *, upgrade_allowed: bool) -> None:
    """Upgrade when allowed (SQLite by default); otherwise refuse to run on an old schema.
    Raises `Unavailable` when the database cannot be reached."""
    with reachable(engine):
        current = current_revision(engine)
    head = head_revision(engine)
    if current == head:
        return
    if upgrade_allowed:
        upgrade(engine)
        return
    raise SchemaOutdated(
        f"database schema is at {current or 'nothing'}, this lifecycle needs {head}: "
        "run `lifecycle db upgrade`"
    )
