"""The benchmark scripts keep working: each runs with tiny sizes and prints its figures.
(The figures themselves are measured by running the scripts, never asserted here.)

Not part of the timed suite: marked ``benchmarks``, which pyproject.toml's addopts deselect
(``-m "not benchmarks"``); ``.ci/run`` runs them once after the suite with
``pytest -m benchmarks tests/integration/test_benchmarks_smoke.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.benchmarks


@pytest.mark.parametrize(
    ("script", "args", "prints"),
    [
        ("fire", ["--n", "5"], "engine / floor, SQLite"),
        ("deadlines", ["--due", "20", "--pending", "50", "200"], "cost ratio"),
        ("simulation", ["--orders", "20", "--sellers", "3", "--days", "5"], "transitions_per_second"),
        ("scans", ["--scans", "200"], "ratio last/first"),
        ("versions", ["--n", "5"], "pinned version / newest version"),
        ("cli_startup", ["--runs", "1"], "lifecycle --version"),
    ],
)
def test_benchmark_runs_with_tiny_sizes(script: str, args: list[str], prints: str) -> None:
    done = subprocess.run([sys.executable, "-m", f"benchmarks.{script}", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert prints in done.stdout


def test_workers_benchmark_runs_with_tiny_sizes() -> None:
    server = os.environ.get("LIFECYCLE_TEST_PG")
    if not server:
        pytest.skip("LIFECYCLE_TEST_PG is unset: the workers benchmark needs PostgreSQL")
    done = subprocess.run([sys.executable, "-m", "benchmarks.workers", "--pg", server, "--n", "3"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "four workers / one worker" in done.stdout


def test_simulation_workers_benchmark_runs_with_tiny_sizes() -> None:
    server = os.environ.get("LIFECYCLE_TEST_PG")
    if not server:
        pytest.skip("LIFECYCLE_TEST_PG is unset: the simulation workers benchmark needs PostgreSQL")
    done = subprocess.run([sys.executable, "-m", "benchmarks.sim_workers", "--pg", server,
                           "--orders", "16", "--sellers", "16", "--days", "2", "--rounds", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "reports identical across runs: True" in done.stdout
    assert "2 workers / 1 worker" in done.stdout


def test_peers_benchmark_runs_with_tiny_sizes() -> None:
    """Only where the optional extra is installed (``pip install -e '.[peers]'``)."""
    for module in ("eventsourcing", "django", "django_fsm", "django_fsm_log"):
        pytest.importorskip(module)
    done = subprocess.run([sys.executable, "-m", "benchmarks.peers", "--n", "3"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "lifecycle / eventsourcing" in done.stdout
    assert "lifecycle / django-fsm-2" in done.stdout


def test_http_benchmark_runs_with_tiny_sizes() -> None:
    """Two real servers (1 and 4 workers) on a scratch PostgreSQL database, a few orders each."""
    server = os.environ.get("LIFECYCLE_TEST_PG")
    if not server:
        pytest.skip("LIFECYCLE_TEST_PG is unset: the HTTP benchmark needs PostgreSQL")
    done = subprocess.run([sys.executable, "-m", "benchmarks.http", "--pg", server, "--n", "4",
                           "--clients", "2"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "http 1 worker / library" in done.stdout


def test_relay_benchmark_runs_with_tiny_sizes() -> None:
    """The outbox to both brokers through the relay, against each broker's own rate."""
    nats, amqp = os.environ.get("LIFECYCLE_TEST_NATS"), os.environ.get("LIFECYCLE_TEST_AMQP")
    if not (nats and amqp):
        pytest.skip("LIFECYCLE_TEST_NATS / LIFECYCLE_TEST_AMQP are unset: the relay benchmark "
                    "needs both brokers")
    done = subprocess.run([sys.executable, "-m", "benchmarks.relay", "--events", "200",
                           "--batch", "50", "--nats", nats, "--amqp", amqp], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("relay / broker") == 1
    assert "SQLite      NATS" in done.stdout
    assert "SQLite      RabbitMQ" in done.stdout
    ratios = [float(line.split()[-1]) for line in done.stdout.splitlines()
              if line.startswith("SQLite")]
    assert len(ratios) == 2
    assert all(ratio > 0 for ratio in ratios), done.stdout  # the rate counts what was timed
