"""A real ``lifecycle serve`` on loopback, once per module and database, and keys for it."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

import lifecycle

#: the sandbox gateway's webhook secrets on the test server, newest first (a rotation under way)
GATEWAY_SECRET = "whsec_" + base64.b64encode(b"the-test-gateway-key-012345678").decode()
OLD_GATEWAY_SECRET = "whsec_" + base64.b64encode(b"the-old-gateway-key-9876543210").decode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    """The server's address, an engine of the test's own on the same database (to make keys
    and look behind the API), and an HTTP client with keep-alive."""

    url: str
    engine: lifecycle.Engine
    http: httpx.Client
    tokens: dict[tuple[str, str | None], str] = field(default_factory=dict)

    def token(self, role: str, actor_id: str | None) -> str:
        if (role, actor_id) not in self.tokens:
            _, self.tokens[role, actor_id] = self.engine.create_key(role, actor_id=actor_id)
        return self.tokens[role, actor_id]

    def as_(self, role: str, actor_id: str | None, **headers: str) -> dict[str, str]:
        """Headers for a request by the key of ``role``/``actor_id``."""
        return {"Authorization": f"Bearer {self.token(role, actor_id)}", **headers}

    def request(self, method: str, path: str, who: tuple[str, str | None] | None = None,
                json: Any = None, **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if who is not None:
            headers = {**self.as_(*who), **headers}
        return self.http.request(method, path, json=json, headers=headers, **kwargs)


def start(db_url: str, workdir: Path, *options: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "LIFECYCLE_LOG_LEVEL": "error",
           "LIFECYCLE_WEBHOOK_SECRETS": json.dumps({"sandbox": [GATEWAY_SECRET, OLD_GATEWAY_SECRET]})}
    command = [sys.executable, "-c", "from lifecycle.cli import main; main()", "--db", db_url,
               "serve", "--port", str(port), *options]
    with open(workdir / "server.log", "wb") as log:
        process = subprocess.Popen(command, env=env, cwd=workdir, stdout=subprocess.DEVNULL,
                                   stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {(workdir / 'server.log').read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the server did not answer /healthz in 30 s")


@pytest.fixture(scope="module", params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("serve")
    if request.param == "pg":
        db_url = request.getfixturevalue("pg_url")
    else:
        db_url = f"sqlite:///{workdir}/lifecycle.db"
    engine = lifecycle.open(db_url)  # creates the SQLite file before the server reads it
    process, url = start(db_url, workdir)
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            yield Server(url, engine, http)
    finally:
        stop(process)
        engine.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
