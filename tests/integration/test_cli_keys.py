"""``lifecycle keys create|list|revoke``: the token printed once and never again, lists without
secrets, revocation that the engine honours, bad input one error line that writes nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

import lifecycle
from lifecycle.cli import cli
from lifecycle.store.tables import api_keys

DOCS = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
KEY_FIELDS = {"id", "role", "actor_id", "label", "created_at", "revoked_at"}


def run(db_url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", db_url, *args])


def ok_json(db_url: str, *args: str) -> Any:
    result = run(db_url, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def one_line_error(result: Result, exit_code: int) -> str:
    assert result.exit_code == exit_code, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def stored_keys(engine: lifecycle.Engine) -> int:
    with engine.database.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(api_keys)).scalar_one())


def test_create_prints_the_token_once_and_it_authenticates(db_url: str,
                                                           engine: lifecycle.Engine) -> None:
    result = run(db_url, "keys", "create", "--role", "operator", "--id", "ana",
                 "--label", "Ana's laptop")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    key_id = re.fullmatch(r"API key (k[0-9a-f]{12}): operator ana", lines[0])
    assert key_id is not None, lines
    key = engine.authenticate(lines[1])
    assert (key.id, key.role, key.actor_id, key.label) == (key_id[1], "operator", "ana",
                                                           "Ana's laptop")
    assert "cannot be shown again" in lines[2]
    listed = run(db_url, "keys", "list", "--all")
    assert key.id in listed.stdout
    assert lines[1] not in listed.stdout


def test_create_json_carries_the_key_and_its_token(db_url: str, engine: lifecycle.Engine) -> None:
    made = ok_json(db_url, "keys", "create", "--role", "system", "--label", "gateway")

    assert set(made) == KEY_FIELDS | {"token"}
    assert (made["role"], made["actor_id"], made["label"], made["revoked_at"]) == (
        "system", None, "gateway", None)
    key = engine.authenticate(made["token"])
    assert key.id == made["id"]
    assert key.acting_as("dhl") == lifecycle.Actor("system", "dhl")


def test_list_json_hides_revoked_keys_unless_all_and_never_shows_a_secret(
        db_url: str, engine: lifecycle.Engine) -> None:
    first = ok_json(db_url, "keys", "create", "--role", "buyer", "--id", "b-1")
    second = ok_json(db_url, "keys", "create", "--role", "seller", "--id", "acme")

    revoked = ok_json(db_url, "keys", "revoke", first["id"])

    assert revoked["id"] == first["id"]
    assert revoked["revoked_at"] is not None
    in_use = ok_json(db_url, "keys", "list")
    every = ok_json(db_url, "keys", "list", "--all")
    assert [k["id"] for k in in_use] == [second["id"]]
    assert [k["id"] for k in every] == [first["id"], second["id"]]
    assert all(set(k) == KEY_FIELDS for k in every)
    text = json.dumps(every) + run(db_url, "keys", "list", "--all").stdout
    for made in (first, second):
        assert made["token"] not in text
        assert made["token"].rsplit("_", 1)[-1] not in text
    with pytest.raises(lifecycle.Unauthenticated):
        engine.authenticate(first["token"])


def test_revoking_again_keeps_the_first_time(db_url: str, engine: lifecycle.Engine,
                                             clock: lifecycle.SimulatedClock) -> None:
    made = ok_json(db_url, "keys", "create", "--role", "operator", "--id", "ana")
    first = ok_json(db_url, "keys", "revoke", made["id"])

    again = run(db_url, "keys", "revoke", made["id"])

    assert again.exit_code == 0, again.output
    assert again.stdout.startswith(f"API key {made['id']} (operator ana) revoked at ")
    assert ok_json(db_url, "keys", "list", "--all")[0]["revoked_at"] == first["revoked_at"]


@pytest.mark.parametrize(("args", "exit_code", "says"), [
    (["create", "--role", "admin"], 2, "'admin' is not one of 'buyer', 'seller', 'operator'"),
    (["create"], 2, "--role"),
    (["create", "--role", "buyer", "--id", "a b"], 2, "invalid actor_id"),
    (["create", "--role", "buyer", "--label", "tab\there"], 2, "invalid label"),
    (["revoke", "k000000000000"], 1, "no api key with id 'k000000000000'"),
    (["revoke"], 2, "KEY_ID"),
])
def test_bad_input_is_one_error_line_and_writes_nothing(
        db_url: str, engine: lifecycle.Engine, args: list[str], exit_code: int, says: str) -> None:
    line = one_line_error(run(db_url, "keys", *args), exit_code)

    assert says in line
    assert stored_keys(engine) == 0


def test_an_empty_list_says_so(db_url: str, engine: lifecycle.Engine) -> None:
    assert ok_json(db_url, "keys", "list") == []
    assert "no API keys" in run(db_url, "keys", "list").stdout


def test_docs_show_the_key_json_shape() -> None:
    match = re.search(r"<!-- json:keys -->\n```json\n(.*?)```", DOCS, re.DOTALL)
    assert match is not None, "docs/cli.md documents no json:keys"
    documented = json.loads(match[1])
    assert [set(key) for key in documented] == [KEY_FIELDS] * len(documented)
    assert documented
