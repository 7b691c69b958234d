"""Database outages for tests, scoped to the test session's own PostgreSQL database and to the
connections a test named (``application_name``): the server itself keeps running for everyone.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.engine import make_url

PASSWORD = "s3cret-h2"  # trust authentication never asks for it, so it must never be shown


def named_url(pg_url: str, application_name: str, *, password: str | None = None) -> str:
    """``pg_url`` whose connections carry ``application_name`` (and a password, to be hidden)."""
    url = make_url(pg_url).update_query_dict({"application_name": application_name})
    if password is not None:
        url = url.set(password=password)
    return url.render_as_string(hide_password=False)


def new_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def conninfo(pg_url: str) -> str:
    """The libpq form of a SQLAlchemy URL (no driver name)."""
    url = make_url(pg_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    """A connection to the server's own database (LIFECYCLE_TEST_PG), never to the test
    session's: that one may be refusing connections."""
    return psycopg.connect(conninfo(os.environ["LIFECYCLE_TEST_PG"]), autocommit=True)


def terminate(pg_url: str, application_name: str) -> int:
    """End the backends of this database whose connections carry ``application_name``."""
    database = make_url(pg_url).database
    with _admin() as admin:
        ended = admin.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000)) FROM pg_stat_activity"
            " WHERE datname = %s AND application_name = %s",
            (database, application_name),
        ).fetchone()
    return int(ended[0]) if ended else 0


def connected(pg_url: str, application_name: str) -> int:
    """How many backends of this database carry ``application_name``."""
    database = make_url(pg_url).database
    with _admin() as admin:
        found = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
            (database, application_name),
        ).fetchone()
    return int(found[0]) if found else 0


def refuse_connections(pg_url: str, refused: bool) -> None:
    """Make this test database refuse (or accept again) every new connection."""
    database = make_url(pg_url).database
    with _admin() as admin:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {"false" if refused else "true"}')


@contextmanager
def database_down(pg_url: str, application_name: str) -> Iterator[None]:
    """While the block runs, the database is out of reach for ``application_name``'s
    connections: the ones it has are terminated, new ones are refused. Connections made
    before, under other names (the test's own), keep working."""
    refuse_connections(pg_url, True)
    try:
        terminate(pg_url, application_name)
        yield
    finally:
        refuse_connections(pg_url, False)
