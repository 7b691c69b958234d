"""Fixtures: ``engine`` on a fresh SQLite file, ``pg_engine`` on PostgreSQL when configured."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import structlog
from sqlalchemy import text

import lifecycle
from lifecycle.store.database import connect
from lifecycle.store.tables import metadata

PG_URL = os.environ.get("LIFECYCLE_TEST_PG")


@pytest.fixture(autouse=True)
def _quiet_logs() -> Iterator[None]:
    # Tests read logs with structlog.testing.capture_logs; nothing should print.
    structlog.configure(
        processors=[structlog.processors.KeyValueRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(30),
        cache_logger_on_first_use=False,
    )
    yield
    structlog.reset_defaults()


@pytest.fixture
def clock() -> lifecycle.SimulatedClock:
    return lifecycle.SimulatedClock()


@pytest.fixture
def db_url(tmp_path: os.PathLike[str]) -> str:
    return f"sqlite:///{tmp_path}/lifecycle.db"


@pytest.fixture
def engine(db_url: str, clock: lifecycle.SimulatedClock) -> Iterator[lifecycle.Engine]:
    with lifecycle.open(db_url, clock=clock) as opened:
        yield opened


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A database of its own for this test session, created and dropped around it."""
    if not PG_URL:
        pytest.skip("LIFECYCLE_TEST_PG is unset: PostgreSQL tests need a server URL")
    name = f"lifecycle_test_{uuid.uuid4().hex[:10]}"
    server = connect(PG_URL)
    admin = server.execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.url.set(database=name).render_as_string(hide_password=False)
    lifecycle.open(url, upgrade=True).close()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    server.dispose()


@pytest.fixture
def pg_engine(pg_url: str, clock: lifecycle.SimulatedClock) -> Iterator[lifecycle.Engine]:
    with lifecycle.open(pg_url, clock=clock) as opened:
        with opened.database.begin() as conn:
            tables = ", ".join(table.name for table in metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {tables}"))
        yield opened
