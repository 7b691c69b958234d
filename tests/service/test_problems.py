"""The errors a test cannot provoke over HTTP on demand (contention, an outage, a gateway down,
a bug) answered as their problems, through the app in process."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

import lifecycle
import lifecycle.service

ERRORS: list[tuple[Exception, int, str, dict[str, str]]] = [
    (lifecycle.Conflict("order", "o-1"), 409, "conflict", {"retry-after": "1"}),
    (lifecycle.Unavailable("postgresql://db", "connection refused"), 503, "unavailable",
     {"retry-after": "5"}),
    (lifecycle.AdapterError("dhl", "book_pickup", "timed out", timeout=True), 502, "adapter-error", {}),
    (lifecycle.PaymentDeclined("sandbox", "capture", "card declined"), 402, "payment-declined", {}),
    (lifecycle.Unauthenticated(), 401, "unauthenticated", {"www-authenticate": "Bearer"}),
]


@pytest.fixture
def app(engine: lifecycle.Engine) -> FastAPI:
    app = lifecycle.service.create_app(engine)

    @app.get("/raise/{n}")
    def raising(n: int) -> None:
        if n < len(ERRORS):
            raise ERRORS[n][0]
        raise RuntimeError("secret internals: password=hunter2")

    return app


async def get(app: FastAPI, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                 base_url="http://test") as client:
        return await client.get(path)


@pytest.mark.parametrize("n", range(len(ERRORS)))
def test_an_error_is_its_problem_with_status_and_headers(app: FastAPI, n: int) -> None:
    import asyncio

    error, status, type_end, headers = ERRORS[n]

    response = asyncio.run(get(app, f"/raise/{n}"))

    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith(f"problem/{type_end}")
    assert body["detail"] == str(error)
    for name, value in headers.items():
        assert response.headers[name] == value
    assert "database" not in body  # a database URL is no one's business


def test_an_unexpected_exception_is_a_500_with_no_internals(app: FastAPI) -> None:
    import asyncio

    response = asyncio.run(get(app, f"/raise/{len(ERRORS)}"))

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
