"""A database with a few orders and a dispute made through the engine, an operator's key, and
the console's app on it (TestClient) or a real server (the browser test)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # Starlette asks for httpx2 instead of httpx (a notice about its own dependency, given
    # once at import); the client works the same with httpx, which the service tests use.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

import lifecycle
from lifecycle.cli import cli
from lifecycle.service import create_app
from lifecycle.store.tables import deadlines
from tests.builders import dispute_in, order_in

OPERATOR_ID = "op-ana"
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


@dataclass
class Shop:
    """What the console tests look at: the database, its engine, the aggregates made in it and
    an operator's token."""

    url: str
    engine: lifecycle.Engine
    clock: lifecycle.SimulatedClock
    paid: lifecycle.Aggregate  # an order in paid
    released: lifecycle.Aggregate  # an order whose funds went to the seller
    dispute: lifecycle.Aggregate  # under_arbitration
    token: str


def make_shop(directory: Path) -> Shop:
    url = f"sqlite:///{directory}/shop.db"
    clock = lifecycle.SimulatedClock()
    engine = lifecycle.open(url, clock=clock)
    paid = order_in(engine, clock, "paid", buyer_id="b-1")
    released = order_in(engine, clock, "funds_released", buyer_id="b-2")
    dispute = dispute_in(engine, clock, "under_arbitration", buyer_id="b-3")
    _, token = engine.create_key("operator", actor_id=OPERATOR_ID, label="console test")
    return Shop(url, engine, clock, paid, released, dispute, token)


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    made = make_shop(tmp_path)
    yield made
    made.engine.close()


@pytest.fixture
def anonymous(shop: Shop) -> Iterator[TestClient]:
    """The service's app on the shop, no one signed in."""
    with TestClient(create_app(shop.engine), follow_redirects=False) as client:
        yield client


@pytest.fixture
def client(anonymous: TestClient, shop: Shop) -> TestClient:
    """Signed in as the operator op-ana."""
    signed = anonymous.post("/console/login", data={"token": shop.token})
    assert signed.status_code == 303, signed.text
    return anonymous


def csrf_of(page: str) -> str:
    found = CSRF.search(page)
    assert found, "the page has a CSRF token"
    return found.group(1)


def cli_refusal(url: str, *args: str) -> str:
    """What ``lifecycle`` prints on stderr for a refused command, without ``error: ``. The
    console fires triggers by name, as ``lifecycle fire KIND ID TRIGGER`` does, and words a
    refusal as it does; the noun commands (``lifecycle dispute arbitrate``) say the same, with
    the commands to type where it names triggers."""
    result = CliRunner().invoke(cli, ["--db", url, *args])
    assert result.exit_code != 0, result.output
    line = result.stderr.strip()
    assert line.startswith("error: "), line
    return line.removeprefix("error: ")


def park(shop: Shop, aggregate_id: str) -> int:
    """Park the aggregate's one deadline as if it had failed every retry; its id."""
    with shop.engine.database.begin() as conn:
        conn.execute(update(deadlines).where(deadlines.c.aggregate_id == aggregate_id)
                     .values(status="failed", attempts=5, last_error="AdapterError: gateway down"))
        return int(conn.execute(select(deadlines.c.id)
                                .where(deadlines.c.aggregate_id == aggregate_id)).scalar_one())
