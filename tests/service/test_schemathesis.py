"""schemathesis against /openapi.json, in process through its ASGI support: generated requests
for every operation, with an operator's key, never get a 5xx nor a response that breaks the
document (status, content type, body schema, headers). Bounded: a few examples per operation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

# Left out: "a schema-valid request is accepted". The document gives each trigger's payload
# model, but the machines' guards (the seller is active, the refund within what was paid) and
# the engine's id rules are not in it, and they refuse schema-valid requests with 422.
from schemathesis.checks import positive_data_acceptance

import lifecycle
import lifecycle.service

EXAMPLES = 4


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    path: Path = tmp_path_factory.mktemp("schemathesis") / "lifecycle.db"
    with lifecycle.open(f"sqlite:///{path}") as engine:
        _, token = engine.create_key("operator", actor_id="fuzz")
        yield lifecycle.service.create_app(engine), token


def test_no_5xx_and_every_response_conforms_to_the_document(served: tuple[Any, str]) -> None:
    # schemathesis' pytest plugin (from_fixture) does not run on this pytest, so each
    # operation gets a Hypothesis test of its own here; every failure is collected.
    app, token = served
    api = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    statuses: dict[int, int] = {}
    operations = 0
    for found in api.get_all_operations():
        operation = found.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def conforms(case: Any) -> None:
            # The operator's key is bound to one actor: a generated Lifecycle-Actor naming
            # another is a 403 that would hide the route behind it.
            if case.headers:
                case.headers.pop("Lifecycle-Actor", None)
            response = case.call_and_validate(headers={"Authorization": f"Bearer {token}"},
                                   excluded_checks=[positive_data_acceptance])
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        try:
            conforms()
        except (Exception, BaseExceptionGroup) as failure:
            failures.append(f"{operation.label}: {str(failure)[:600]}")
    assert operations > 90  # every kind's routes were generated and tried
    assert not failures, "\n\n".join(failures)
    assert set(statuses) - {401, 403}, f"the key let nothing through: {statuses}"
