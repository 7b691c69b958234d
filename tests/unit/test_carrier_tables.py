"""The sandbox's carriers are one list (`SANDBOX_CARRIERS`); every table keyed by carrier covers
exactly it, so a carrier added to the list and forgotten in a table fails here, not mid-booking."""

from __future__ import annotations

import pytest

from lifecycle.adapters import registry
from lifecycle.adapters.rates import RATE_CARDS
from lifecycle.adapters.sandbox import ISSUERS, SANDBOX_CARRIERS
from lifecycle.adapters.waybills import VALIDATORS


def test_the_list_names_each_carrier_once() -> None:
    assert len(set(SANDBOX_CARRIERS)) == len(SANDBOX_CARRIERS)


@pytest.mark.parametrize(("table", "keys"), [
    ("issuers", set(ISSUERS)), ("rate cards", set(RATE_CARDS)), ("validators", set(VALIDATORS)),
    ("built-in registry", set(registry.builtin_carriers())),
])
def test_every_table_keyed_by_carrier_covers_the_list(table: str, keys: set[str]) -> None:
    assert keys == set(SANDBOX_CARRIERS), table
