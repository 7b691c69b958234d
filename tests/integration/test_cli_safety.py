"""A CLI that cannot hurt a database (issue #19): a typo in ``--db`` creates nothing, another
application's database is refused untouched, a simulation never mixes with real data, and every
error names the field, the file or the URL in our words. Each refusal: one ``error:`` line, a
non-zero exit code, and the file (or database) exactly as it was."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import inspect, text

import lifecycle
from lifecycle.cli import cli
from lifecycle.store.database import _alembic_config, connect, current_revision
from tests.builders import REGISTRATION, order_in, rows

PG_URL = os.environ.get("LIFECYCLE_TEST_PG")


def run(url: str, *args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(cli, ["--db", url, *args], env=env)


def refused(result: Result, code: int) -> str:
    """Exit ``code``, nothing on stdout, one ``error:`` line without a traceback; the line."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]


def listing(folder: Path) -> dict[str, str]:
    """Every file in ``folder`` and the SHA-256 of its bytes: unchanged means untouched."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


READS = [("order", "list"), ("check",), ("seller", "show", "acme"), ("timers", "list"),
         ("policy", "show"), ("list", "order")]
WRITES = [("seller", "register", "acme", "--company-name", "Acme", "--entity-type", "company",
           "--country", "CN", "--registration-number", "91310000MA1FL4XX",
           "--email", "owner@acme.example")]


# --- 1. a typo in --db never creates or alters a database ----------------------------------


@pytest.mark.parametrize("args", READS + WRITES, ids=lambda a: " ".join(a[:2]))
def test_a_command_on_a_mistyped_path_creates_nothing_and_says_how_to_create_one(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    typo = tmp_path / "lifecylce.db"

    line = refused(run(f"sqlite:///{typo}", *args), 2)

    assert list(tmp_path.iterdir()) == []
    assert str(typo) in line
    assert "lifecycle db init" in line


def test_serve_on_a_mistyped_path_creates_nothing_and_the_service_factory_neither(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    typo = tmp_path / "lifecylce.db"
    line = refused(run(f"sqlite:///{typo}", "serve", "--port", "0"), 2)
    assert str(typo) in line
    monkeypatch.setenv("LIFECYCLE_DB", f"sqlite:///{typo}")
    from lifecycle.service import app_from_environment

    with pytest.raises(lifecycle.LifecycleError, match="lifecycle db init"):
        app_from_environment()
    assert list(tmp_path.iterdir()) == []


def test_check_on_a_mistyped_path_is_not_ok(tmp_path: Path) -> None:
    result = run(f"sqlite:///{tmp_path}/typo.db", "check")

    assert "no database file" in refused(result, 2)
    assert "ok" not in result.stdout


@pytest.fixture
def foreign(tmp_path: Path) -> Path:
    """Another application's SQLite file: one table, one row."""
    path = tmp_path / "crm.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers (name) VALUES ('Ana')")
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize("args", [*READS, *WRITES, ("db", "upgrade"), ("db", "init"),
                                  ("db", "init", "--sandbox"), ("clock", "show")],
                         ids=lambda a: " ".join(a[:3]))
def test_another_applications_database_is_refused_untouched_naming_the_file(
    foreign: Path, args: tuple[str, ...]
) -> None:
    before = listing(foreign.parent)

    line = refused(run(f"sqlite:///{foreign}", *args), 2)

    assert listing(foreign.parent) == before  # no table added, no -wal, no journal mode change
    assert f"{foreign} is not a lifecycle database" in line
    assert "customers" in line


def test_the_embedded_library_never_alters_another_applications_database(foreign: Path) -> None:
    before = listing(foreign.parent)

    for call in (lambda: lifecycle.open(f"sqlite:///{foreign}"),
                 lambda: lifecycle.open(f"sqlite:///{foreign}", upgrade=True),
                 lambda: lifecycle.upgrade_schema(f"sqlite:///{foreign}"),
                 lambda: lifecycle.init_database(f"sqlite:///{foreign}")):
        with pytest.raises(lifecycle.NotOurDatabase, match="customers"):
            call()

    assert listing(foreign.parent) == before


def test_a_file_that_is_no_database_at_all_is_refused_untouched(tmp_path: Path) -> None:
    notes = tmp_path / "notes.db"
    notes.write_text("shopping list: milk\n" * 200)
    before = listing(tmp_path)

    line = refused(run(f"sqlite:///{notes}", "order", "list"), 2)

    assert listing(tmp_path) == before
    assert f"{notes} is not a lifecycle database" in line
    assert "not a SQLite database" in line


def test_an_empty_file_or_an_older_schema_is_refused_without_migrating(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    assert "has no lifecycle schema yet" in refused(run(f"sqlite:///{empty}", "order", "list"), 2)
    assert empty.stat().st_size == 0

    old = f"sqlite:///{tmp_path}/old.db"
    database = connect(old)
    try:
        from alembic import command

        with database.begin() as conn:
            command.upgrade(_alembic_config(database, conn), "0008")
        line = refused(run(old, "order", "list"), 2)
        assert current_revision(database) == "0008"
        assert "has schema 0008" in line
        assert "lifecycle db upgrade" in line
    finally:
        database.dispose()


def test_db_init_creates_a_database_then_refuses_to_make_it_twice(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shop.db"

    made = run(url, "db", "init")
    assert made.exit_code == 0, made.output
    assert made.stdout.startswith(f"created {tmp_path}/shop.db at schema ")
    assert run(url, "order", "list").exit_code == 0
    before = listing(tmp_path)

    line = refused(run(url, "db", "init", "--sandbox"), 1)

    assert "already a lifecycle database" in line
    assert "db upgrade" in line
    assert listing(tmp_path) == before


def test_db_upgrade_prints_json(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shop.db"

    first = json.loads(run(url, "db", "upgrade", "--json").stdout)
    again = json.loads(run(url, "db", "upgrade", "--json").stdout)

    assert first == {"database": url, "before": None, "after": first["after"], "changed": True}
    assert again == {"database": url, "before": first["after"], "after": first["after"],
                     "changed": False}


def test_the_embedded_library_still_creates_a_new_sqlite_file_but_upgrade_false_never(
    tmp_path: Path,
) -> None:
    with pytest.raises(lifecycle.DatabaseMissing, match="no database file"):
        lifecycle.open(f"sqlite:///{tmp_path}/strict.db", upgrade=False)
    assert list(tmp_path.iterdir()) == []

    with lifecycle.open(f"sqlite:///{tmp_path}/app.db") as engine:  # embedded: convenient
        assert engine.create("seller", lifecycle.Actor("seller", "s-1"), REGISTRATION).state


@pytest.fixture
def pg_database() -> Iterator[str]:
    """An empty PostgreSQL database of this test's own."""
    if not PG_URL:
        pytest.skip("LIFECYCLE_TEST_PG is unset: PostgreSQL tests need a server URL")
    name = f"safety_{uuid.uuid4().hex[:10]}"
    server = connect(PG_URL).execution_options(isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield server.url.set(database=name).render_as_string(hide_password=False)
    with server.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    server.dispose()


def _tables(url: str) -> list[str]:
    database = connect(url)
    try:
        return sorted(inspect(database).get_table_names())
    finally:
        database.dispose()


@pytest.mark.pg
def test_on_postgresql_reads_refuse_an_empty_or_foreign_database_and_init_creates_one(
    pg_database: str,
) -> None:
    line = refused(run(pg_database, "order", "list"), 2)
    assert "has no lifecycle schema yet: create it with `lifecycle db init`" in line
    assert "nothing" not in line  # was: "database schema is at nothing"
    assert _tables(pg_database) == []

    missing = pg_database.rsplit("/", 1)[0] + "/safety_no_such_database"
    assert "no PostgreSQL database" in refused(run(missing, "order", "list"), 2)

    database = connect(pg_database)
    with database.begin() as conn:
        conn.execute(text("CREATE TABLE invoices (id int)"))
    database.dispose()
    assert "invoices" in refused(run(pg_database, "db", "upgrade"), 2)
    assert _tables(pg_database) == ["invoices"]
    database = connect(pg_database)
    with database.begin() as conn:
        conn.execute(text("DROP TABLE invoices"))
    database.dispose()

    assert run(pg_database, "db", "init").exit_code == 0
    assert "aggregates" in _tables(pg_database)
    assert run(pg_database, "order", "list", "--json").exit_code == 0


# --- 2. a simulation never writes into a database with anything but simulations ------------

SIM = ("simulate", "--sellers", "2", "--orders", "12", "--days", "5", "--json")


def test_simulate_refuses_a_database_holding_real_orders_unless_forced(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shop.db"
    with lifecycle.open(url) as engine:
        order_in(engine, lifecycle.SimulatedClock(), "paid")
        before = rows(engine)

        line = refused(run(url, *SIM), 2)

        assert rows(engine) == before
        assert "holds 2 seller(s), order(s)" in line or "holds " in line
        assert "--force" in line
        assert "simulation.db" in line

        forced = run(url, *SIM, "--force")
        assert forced.exit_code == 0, forced.output
        assert engine.state_counts(("order",), prefix="sim-")


def test_simulate_goes_to_a_file_of_its_own_when_no_db_is_named(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, list(SIM), env={"LIFECYCLE_DB": None})

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".db") == ["simulation.db"]
    assert not (tmp_path / "lifecycle.db").exists()


def test_a_second_run_of_the_same_name_suggests_resume_or_a_new_name(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/sim.db"
    assert run(url, *SIM).exit_code == 0
    with lifecycle.open(url, upgrade=False) as engine:
        before = rows(engine)

        line = refused(run(url, *SIM), 1)

        assert rows(engine) == before
    assert "--resume" in line
    assert "--name" in line
    assert run(url, *SIM, "--name", "second").exit_code == 0


# --- 6. errors in our words, naming the field, the file or the URL -------------------------


def _place(*changes: str) -> tuple[str, ...]:
    options = {"--currency": "USD", "--shipping-fee": "7.50", "--consignee-country": "PT"}
    for name, value in zip(changes[::2], changes[1::2], strict=True):
        options[name] = value
    return ("order", "place", "--id", "o-1", "--as", "ana", "--seller", "acme",
            "--line", "robot:2:19.99", "--consignee-name", "Ana", "--consignee-address", "Rua A",
            "--carrier", "dhl", "--service", "express", "--delivery-days", "20",
            *[item for pair in options.items() for item in pair])


@pytest.mark.parametrize(("args", "says", "not_said"), [
    ((*WRITES[0][:8], "cn", *WRITES[0][9:]),
     "invalid country: must be a two-letter country code in capitals (ISO 3166-1, e.g. CN, PT) "
     "(got 'cn')", "pattern"),
    (_place("--shipping-fee", "12345678901234567890"),
     "invalid logistics.shipping_fee: has too many digits: at most 18 in all", "Decimal input"),
    (_place("--currency", "usd"), "invalid currency: must be a three-letter currency code",
     "should match"),
], ids=["country", "digits", "currency"])
def test_payload_errors_name_the_field_in_our_words(tmp_path: Path, args: tuple[str, ...],
                                                    says: str, not_said: str) -> None:
    url = f"sqlite:///{tmp_path}/shop.db"
    assert run(url, "db", "init").exit_code == 0

    line = refused(run(url, *args), 2)

    assert says in line
    assert not_said not in line


def test_a_url_of_another_database_kind_is_named_not_a_missing_module() -> None:
    line = refused(run("mysql://shop:secret@db.example/shop", "order", "list"), 2)

    assert "mysql://shop:***@db.example/shop is a mysql database" in line
    assert "SQLite" in line
    assert "PostgreSQL" in line
    assert "MySQLdb" not in line
    assert "secret" not in line


def test_a_path_in_a_missing_folder_names_the_file_and_the_folder(tmp_path: Path) -> None:
    path = tmp_path / "no-such-folder" / "shop.db"

    created = refused(run(f"sqlite:///{path}", "db", "init"), 2)
    read = refused(run(f"sqlite:///{path}", "order", "list"), 2)

    assert created == (f"error: cannot create the database file {path}: the folder "
                       f"{path.parent} does not exist")
    assert str(path) in read
    assert "sqlite3" not in created + read
    assert "unable to open" not in created + read
    assert not path.parent.exists()


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


DOCS = (Path(__file__).parents[2] / "docs" / "cli.md").read_text()


def _documented(shape: str) -> Any:
    match = re.search(rf"<!-- json:{shape} -->\n```json\n(.*?)```", DOCS, re.DOTALL)
    assert match is not None, f"docs/cli.md documents no json:{shape}"
    return json.loads(match.group(1))


def test_db_and_clock_json_carry_the_documented_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/sandbox.db"
    printed = {
        "db-init": _json(run(url, "db", "init", "--sandbox", "--json")),
        "db-upgrade": _json(run(url, "db", "upgrade", "--json")),
        "clock-show": _json(run(url, "clock", "show", "--json")),
        "clock-advance": _json(run(url, "clock", "advance", "1h", "--json")),
    }
    for shape, value in printed.items():
        assert set(value) == set(_documented(shape)), shape


def test_a_database_a_newer_lifecycle_made_is_refused_untouched(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shop.db"
    assert run(url, "db", "init").exit_code == 0
    conn = sqlite3.connect(tmp_path / "shop.db")
    conn.execute("UPDATE alembic_version SET version_num = '0042'")
    conn.commit()
    conn.close()
    before = listing(tmp_path)

    for args in (("order", "list"), ("db", "upgrade"), ("db", "init")):
        line = refused(run(url, *args), 2)
        assert "0042" in line
    with pytest.raises(lifecycle.SchemaOutdated, match="newer than this lifecycle's"):
        lifecycle.open(url)

    assert listing(tmp_path) == before


def test_simulate_refuses_a_sandbox_and_an_older_schema_untouched(tmp_path: Path) -> None:
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    assert run(f"sqlite:///{sandbox}/s.db", "db", "init", "--sandbox").exit_code == 0
    old = tmp_path / "old"
    old.mkdir()
    database = connect(f"sqlite:///{old}/o.db")
    from alembic import command

    with database.begin() as conn:
        command.upgrade(_alembic_config(database, conn), "0008")
    database.dispose()

    for folder, says in ((sandbox, "is a sandbox"), (old, "does not migrate")):
        (path,) = folder.iterdir()
        before = listing(folder)
        line = refused(run(f"sqlite:///{path}", *SIM), 2)
        assert says in line
        assert listing(folder) == before
    assert "--force" not in refused(run(f"sqlite:///{sandbox}/s.db", *SIM), 2)
