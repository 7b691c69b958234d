"""API keys (issue #16): made with a token shown once, stored as the digest of its secret,
listed without either, revoked for good; a token authenticates or is refused with one message
whatever was wrong; a key acts only as far as its scope. On SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from sqlalchemy import Engine as Database
from sqlalchemy import inspect, select

import lifecycle
from lifecycle.store.database import _alembic_config, connect, current_revision, head_revision
from lifecycle.store.tables import api_keys, metadata
from tests.builders import order_in

REFUSAL = "invalid or revoked API key"


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def keyed(request: pytest.FixtureRequest) -> lifecycle.Engine:
    """An engine on SQLite, or on PostgreSQL (emptied) when LIFECYCLE_TEST_PG is set."""
    engine: lifecycle.Engine = request.getfixturevalue(
        "engine" if request.param == "sqlite" else "pg_engine")
    return engine


def key_rows(engine: lifecycle.Engine) -> list[tuple[object, ...]]:
    with engine.database.connect() as conn:
        return [tuple(row) for row in conn.execute(select(api_keys).order_by(api_keys.c.id))]


def everything_stored(engine: lifecycle.Engine) -> str:
    """Every row of every table, as text."""
    with engine.database.connect() as conn:
        return "\n".join(repr(tuple(row)) for table in metadata.sorted_tables
                         for row in conn.execute(select(table)))


def test_a_token_authenticates_as_the_key_it_was_made_with(keyed: lifecycle.Engine,
                                                           clock: lifecycle.SimulatedClock) -> None:
    key, token = keyed.create_key("operator", actor_id="ana", label="Ana's laptop")

    found = keyed.authenticate(token)

    assert found == key
    assert (key.role, key.actor_id, key.label, key.revoked_at) == ("operator", "ana",
                                                                   "Ana's laptop", None)
    assert key.created_at == clock.now()
    assert re.fullmatch(r"k[0-9a-f]{12}", key.id)
    assert re.fullmatch(rf"lck_{key.id}_[A-Za-z0-9_-]{{43}}", token)
    assert found.acting_as() == lifecycle.Actor("operator", "ana")


def test_each_key_gets_its_own_id_and_secret(keyed: lifecycle.Engine) -> None:
    made = [keyed.create_key("buyer", actor_id="b-1") for _ in range(5)]

    assert len({key.id for key, _ in made}) == 5
    assert len({token for _, token in made}) == 5
    assert [keyed.authenticate(token).id for _, token in made] == [key.id for key, _ in made]


def test_only_the_digest_of_the_secret_is_stored(keyed: lifecycle.Engine) -> None:
    key, token = keyed.create_key("seller", actor_id="acme")
    secret = token.removeprefix(f"lck_{key.id}_")

    stored = everything_stored(keyed)

    assert token not in stored
    assert secret not in stored
    assert key_rows(keyed)[0][4] == hashlib.sha256(secret.encode()).hexdigest()


def tampered(token: str) -> str:
    last = token[-1]
    return token[:-1] + ("A" if last != "A" else "B")


def test_every_bad_token_is_refused_with_the_same_message(keyed: lifecycle.Engine) -> None:
    key, token = keyed.create_key("buyer", actor_id="b-1")
    revoked, revoked_token = keyed.create_key("buyer", actor_id="b-2")
    keyed.revoke_key(revoked.id)
    unknown = token.replace(key.id, "k000000000000" if key.id != "k000000000000" else "k111111111111")
    bad = {
        "wrong secret": tampered(token),
        "unknown id": unknown,
        "revoked": revoked_token,
        "empty": "",
        "no prefix": token.removeprefix("lck_"),
        "short secret": token[:-1],
        "long secret": token + "x",
        "upper-case id": token.replace(key.id, key.id.upper()),
        "whitespace": f" {token}",
        "bearer scheme left on": f"Bearer {token}",
        "NUL": token[:-1] + "\x00",
        "not text": None,
    }
    messages = {}
    for what, candidate in bad.items():
        with pytest.raises(lifecycle.Unauthenticated) as refused:
            keyed.authenticate(candidate)  # type: ignore[arg-type]
        messages[what] = str(refused.value)

    assert set(messages.values()) == {REFUSAL}, messages
    assert isinstance(refused.value, lifecycle.LifecycleError)
    assert keyed.authenticate(token) == key  # the good one still works


def test_a_bound_key_acts_only_as_its_actor(keyed: lifecycle.Engine) -> None:
    key, token = keyed.create_key("buyer", actor_id="b-1")
    found = keyed.authenticate(token)

    assert found.acting_as("b-1") == lifecycle.Actor("buyer", "b-1")
    with pytest.raises(lifecycle.Forbidden, match=f"buyer b-1 may not act as buyer b-2: API key "
                                                  f"{key.id} acts only as buyer b-1"):
        found.acting_as("b-2")


def test_a_role_scope_must_name_the_actor_and_acts_as_it(keyed: lifecycle.Engine) -> None:
    key, token = keyed.create_key("system", label="carrier gateway")
    found = keyed.authenticate(token)

    assert key.actor_id is None
    assert found.acting_as("dhl") == lifecycle.Actor("system", "dhl")
    assert found.acting_as("timer") == lifecycle.Actor("system", "timer")
    with pytest.raises(lifecycle.Forbidden, match=r"role scope .*must name the system it acts as"):
        found.acting_as()
    with pytest.raises(lifecycle.InvalidPayload, match=r"actor\.id"):
        found.acting_as("two words")


def test_a_scoped_actor_fires_only_what_is_theirs(keyed: lifecycle.Engine,
                                                   clock: lifecycle.SimulatedClock) -> None:
    """The actor a key yields is the engine's ordinary actor: ownership is checked as ever."""
    order = order_in(keyed, clock, "awaiting_payment", buyer_id="b-1")
    _, token = keyed.create_key("buyer", actor_id="b-2")

    with pytest.raises(lifecycle.Forbidden):
        keyed.fire("order", order.id, "cancel", keyed.authenticate(token).acting_as())
    assert keyed.get("order", order.id).state == "awaiting_payment"


def test_listing_hides_revoked_keys_unless_asked(keyed: lifecycle.Engine,
                                                 clock: lifecycle.SimulatedClock) -> None:
    first, _ = keyed.create_key("operator", actor_id="ana")
    clock.advance(timedelta(minutes=1))
    second, _ = keyed.create_key("seller")
    clock.advance(timedelta(minutes=1))

    revoked = keyed.revoke_key(first.id)

    assert revoked.revoked_at == clock.now()
    assert keyed.keys() == [second]
    assert keyed.keys(include_revoked=True) == [revoked, second]


def test_revoking_twice_keeps_the_first_time(keyed: lifecycle.Engine,
                                             clock: lifecycle.SimulatedClock) -> None:
    key, _ = keyed.create_key("buyer", actor_id="b-1")
    first = keyed.revoke_key(key.id)
    clock.advance(timedelta(hours=1))

    again = keyed.revoke_key(key.id)

    assert again.revoked_at == first.revoked_at == clock.now() - timedelta(hours=1)


def test_revoking_an_unknown_key_is_not_found(keyed: lifecycle.Engine) -> None:
    with pytest.raises(lifecycle.NotFound, match="no api key with id 'k000000000000'"):
        keyed.revoke_key("k000000000000")
    with pytest.raises(lifecycle.InvalidPayload, match="key_id"):
        keyed.revoke_key("")
    assert key_rows(keyed) == []


@pytest.mark.parametrize(("role", "actor_id", "label", "field"), [
    ("admin", None, "", "role"),
    ("", "ana", "", "role"),
    ("operator", "two words", "", "actor_id"),
    ("buyer", "x" * 101, "", "actor_id"),
    ("buyer", "", "", "actor_id"),
    ("buyer", "b-1", "line\nbreak", "label"),
    ("buyer", "b-1", "x" * 201, "label"),
])
def test_bad_input_is_refused_naming_the_field_and_writes_nothing(
        keyed: lifecycle.Engine, role: str, actor_id: str | None, label: str, field: str) -> None:
    with pytest.raises(lifecycle.InvalidPayload) as refused:
        keyed.create_key(role, actor_id=actor_id, label=label)

    assert refused.value.field == field
    if field == "role":
        assert "buyer, seller, operator, system" in str(refused.value)
    assert key_rows(keyed) == []


def test_a_key_revoked_by_one_engine_is_refused_by_another(db_url: str,
                                                            engine: lifecycle.Engine) -> None:
    """Nothing about keys is held in a process: a second engine (another service worker) sees
    a revocation at once."""
    key, token = engine.create_key("seller", actor_id="acme")
    with lifecycle.open(db_url) as other:
        assert other.authenticate(token) == key
        engine.revoke_key(key.id)
        with pytest.raises(lifecycle.Unauthenticated):
            other.authenticate(token)


def migrate(database: Database, revision: str, *, down: bool = False) -> None:
    from alembic import command

    with database.begin() as conn:
        config = _alembic_config(database, conn)
        (command.downgrade if down else command.upgrade)(config, revision)


def test_a_database_at_the_previous_revision_upgrades_to_keys(db_url: str,
                                                              clock: lifecycle.SimulatedClock) -> None:
    database = connect(db_url)
    try:
        migrate(database, "0005")
        assert current_revision(database) == "0005"
        assert "api_keys" not in inspect(database).get_table_names()

        with lifecycle.open(db_url, clock=clock) as engine:  # SQLite: upgraded on open
            key, token = engine.create_key("operator", actor_id="ana")
            assert engine.authenticate(token) == key

        assert current_revision(database) == head_revision()
        migrate(database, "0005", down=True)
        assert "api_keys" not in inspect(database).get_table_names()
    finally:
        database.dispose()


@pytest.mark.pg
def test_on_postgresql_the_keys_migration_goes_down_and_up_again(pg_url: str) -> None:
    database = connect(pg_url)
    try:
        migrate(database, "0005", down=True)
        assert "api_keys" not in inspect(database).get_table_names()
        with pytest.raises(lifecycle.SchemaOutdated, match="0005"):
            lifecycle.open(pg_url)

        migrate(database, "head")

        assert current_revision(database) == head_revision()
        with lifecycle.open(pg_url) as engine:
            key, token = engine.create_key("seller", actor_id="acme")
            assert engine.authenticate(token) == key
            engine.revoke_key(key.id)
    finally:
        database.dispose()
