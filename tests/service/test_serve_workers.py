"""``lifecycle serve --workers 2``: two processes, each with its own engine, on one database;
/metrics sums them (serve sets PROMETHEUS_MULTIPROC_DIR for the workers)."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

import lifecycle
from tests.builders import REGISTRATION
from tests.service.conftest import new_id, start, stop


def registrations(text: str) -> float:
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "lifecycle_transitions_total"
               and sample.labels.get("trigger") == "register")


def test_two_workers_serve_one_database_and_metrics_sum_them(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path}/lifecycle.db"
    with lifecycle.open(db_url) as engine:
        _, token = engine.create_key("seller", label="role scope")
        process, url = start(db_url, tmp_path, "--workers", "2")
        try:
            ids = [new_id("s") for _ in range(8)]
            for sid in ids:
                # a connection each, so that the kernel spreads them over the workers
                created = httpx.post(f"{url}/v1/sellers?id={sid}", json=REGISTRATION, timeout=30,
                                     headers={"Authorization": f"Bearer {token}",
                                              "Lifecycle-Actor": sid})
                assert created.status_code == 201, created.text
            metrics = httpx.get(f"{url}/metrics", timeout=30).text
        finally:
            stop(process)
        assert [engine.get("seller", sid).state for sid in ids] == ["registered"] * len(ids)
    assert registrations(metrics) == len(ids)
