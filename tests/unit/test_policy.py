"""Policy values as the database stores them (JSON, exactly, never a float) and as operators
type them (``90m``, ``2d12h``, ``0.05``, ``annual_fee.default=1000.00``)."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lifecycle
from lifecycle import Policy

durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=36_600))
amounts = st.decimals(min_value=0, max_value=10**9, allow_nan=False, allow_infinity=False, places=4)


def stored(policy: Policy) -> Any:
    """What the database hands back: the JSON text, parsed."""
    return json.loads(json.dumps(policy.to_json()))


def test_the_defaults_are_stored_as_iso_durations_and_decimal_text() -> None:
    values = Policy().to_json()

    assert values["protection_period"] == "P15D"
    assert values["payment_timeout"] == "P1D"
    assert values["commission_rate"] == "0.05"
    assert values["annual_fee"] == {"default": "1000.00"}
    assert values["coupon_max_copies"] == 10_000
    assert values["annual_fee_currency"] == "USD"
    assert values["idempotency_retention"] == "P30D"
    assert values["outbox_retention"] == "P7D"
    assert not any(isinstance(v, float) for v in json.loads(json.dumps(values)).values())


def test_the_retention_periods_have_the_specs_defaults() -> None:
    assert Policy().idempotency_retention == timedelta(days=30)
    assert Policy().outbox_retention == timedelta(days=7)


@given(protection=durations, timeout=durations, rate=st.decimals(min_value=0, max_value=1, places=6),
       fees=st.dictionaries(st.sampled_from(["fashion", "toys", "tools"]), amounts, max_size=3),
       copies=st.integers(0, 999_999_999))
def test_a_stored_policy_reads_back_exactly(protection: timedelta, timeout: timedelta, rate: Decimal,
                                            fees: dict[str, Decimal], copies: int) -> None:
    policy = Policy().with_overrides(
        protection_period=protection, payment_timeout=timeout, commission_rate=rate,
        annual_fee={"default": Decimal("1000.00"), **fees}, coupon_max_copies=copies,
    )

    back = Policy.from_json(stored(policy))

    assert back == policy
    assert str(back.commission_rate) == str(rate)  # the same digits, not only the same value
    assert back.to_json() == policy.to_json()


@pytest.mark.parametrize(("duration", "iso", "typed"), [
    (timedelta(minutes=90), "PT1H30M", "1h30m"),
    (timedelta(hours=1), "PT1H", "1h"),
    (timedelta(days=2, hours=12), "P2DT12H", "2d12h"),
    (timedelta(0), "PT0S", "0s"),
    (timedelta(seconds=1, microseconds=500_000), "PT1.5S", "1.5s"),
    (timedelta(days=1, microseconds=1), "P1DT0.000001S", "1d0.000001s"),
])
def test_durations_are_iso_8601_when_stored_and_d_h_m_s_when_shown(duration: timedelta, iso: str,
                                                                  typed: str) -> None:
    policy = Policy().with_overrides(return_timeout=duration)

    assert policy.to_json()["return_timeout"] == iso
    assert {n: v for n, v, _unit in policy.settings()}["return_timeout"] == typed
    assert Policy.from_json({"return_timeout": iso}).return_timeout == duration
    assert Policy().with_settings([("return_timeout", typed)]).return_timeout == duration


def test_a_stored_policy_missing_values_takes_their_defaults() -> None:
    """Stored by an older lifecycle, before the retention periods existed."""
    older = {k: v for k, v in Policy().to_json().items()
             if k not in ("idempotency_retention", "outbox_retention")}
    older["protection_period"] = "PT1H"

    policy = Policy.from_json(older)

    assert policy.protection_period == timedelta(hours=1)
    assert policy.outbox_retention == timedelta(days=7)
    assert policy.idempotency_retention == timedelta(days=30)


def test_a_stored_policy_with_unknown_values_is_refused_naming_them() -> None:
    newer = {**Policy().to_json(), "surge_window": "P1D", "bonus_rate": "0.01"}

    with pytest.raises(lifecycle.UnknownPolicyValues) as refused:
        Policy.from_json(newer, version=7)

    assert refused.value.names == ("bonus_rate", "surge_window")
    assert "version 7" in str(refused.value)
    assert "bonus_rate, surge_window" in str(refused.value)


@pytest.mark.parametrize(("name", "value"), [
    ("commission_rate", 0.05),  # a float: never
    ("commission_rate", "NaN"),
    ("protection_period", 3600),
    ("protection_period", "P1M"),  # months vary in length: not stored
    ("protection_period", "PT"),
    ("annual_fee", {"default": 1000}),
    ("coupon_max_copies", "10000"),
    ("coupon_max_copies", True),
    ("annual_fee_currency", "usd"),
])
def test_a_malformed_stored_value_is_refused_naming_it(name: str, value: Any) -> None:
    with pytest.raises(lifecycle.InvalidPayload) as refused:
        Policy.from_json({name: value})

    assert refused.value.field.startswith(f"policy.{name}")


def test_settings_typed_by_an_operator() -> None:
    policy = Policy().with_settings([
        ("protection_period", "90m"), ("payment_timeout", "2d12h"), ("commission_rate", "0.04"),
        ("annual_fee.default", "900.00"), ("annual_fee.fashion", "800.00"),
        ("coupon_min_denomination.EUR", "4"), ("coupon_max_copies", "20000"),
        ("annual_fee_currency", "EUR"), ("fee_period", "P30D"),
    ])

    assert policy.protection_period == timedelta(minutes=90)
    assert policy.payment_timeout == timedelta(days=2, hours=12)
    assert policy.commission_rate == Decimal("0.04")
    assert policy.annual_fee == {"default": Decimal("900.00"), "fashion": Decimal("800.00")}
    assert policy.coupon_min_denomination == {"USD": Decimal("5"), "EUR": Decimal("4")}
    assert policy.coupon_max_copies == 20_000
    assert policy.annual_fee_currency == "EUR"
    assert policy.fee_period == timedelta(days=30)
    assert policy.with_settings([("annual_fee.fashion", "")]).annual_fee == {"default": Decimal("900.00")}


@pytest.mark.parametrize(("setting", "text", "field"), [
    ("bogus", "1h", "policy.bogus"),
    ("protection_period", "1x", "policy.protection_period"),
    ("protection_period", "", "policy.protection_period"),
    ("protection_period", "-1h", "policy.protection_period"),
    ("protection_period", "200000d", "policy.protection_period"),
    ("protection_period.x", "1h", "policy.protection_period.x"),
    ("commission_rate", "1.5", "policy.commission_rate"),
    ("commission_rate", "5%", "policy.commission_rate"),
    ("annual_fee", "900", "policy.annual_fee"),
    ("annual_fee.default", "", "policy.annual_fee"),
    ("annual_fee.default", "ten", "policy.annual_fee.default"),
    ("annual_fee.nothing", "", "policy.annual_fee.nothing"),
    ("coupon_max_copies", "1.5", "policy.coupon_max_copies"),
    ("annual_fee_currency", "dollars", "policy.annual_fee_currency"),
    ("handling_time", "20d", "policy.handling_time"),
])
def test_a_bad_setting_is_refused_naming_it(setting: str, text: str, field: str) -> None:
    with pytest.raises(lifecycle.InvalidPayload) as refused:
        Policy().with_settings([(setting, text)])

    assert refused.value.field == field


def test_differences_name_each_value_as_text() -> None:
    stored_policy = Policy().with_overrides(protection_period=timedelta(hours=1))
    given = Policy().with_settings([("commission_rate", "0.04"), ("annual_fee.fashion", "800.00")])

    assert stored_policy.differences(given) == [
        ("protection_period", "1h", "15d"),
        ("commission_rate", "0.05", "0.04"),
        ("annual_fee.fashion", "-", "800.00"),
    ]
    assert Policy().differences(Policy()) == []


# --- values no rule reads are retired, and stored versions holding them still load -----------


@pytest.mark.parametrize("held", ["P30D", "P45D", "nonsense", None])
def test_a_stored_policy_holding_the_retired_delivery_window_loads_without_it(held: Any) -> None:
    older = {**Policy().to_json(), "delivery_window": held}

    policy = Policy.from_json(older, version=3)

    assert policy == Policy()
    assert policy.differences(Policy()) == []
    assert Policy().differences(policy) == []
    assert "delivery_window" not in policy.to_json()


def test_the_retired_delivery_window_is_neither_shown_nor_settable() -> None:
    assert "delivery_window" in lifecycle.policy.RETIRED
    assert "delivery_window" not in {name for name, _value, _unit in Policy().settings()}
    with pytest.raises(lifecycle.InvalidPayload):
        Policy().with_settings([("delivery_window", "30d")])


def test_a_stored_policy_with_a_retired_and_an_unknown_value_names_only_the_unknown() -> None:
    newer = {**Policy().to_json(), "delivery_window": "P30D", "surge_window": "P1D"}

    with pytest.raises(lifecycle.UnknownPolicyValues) as refused:
        Policy.from_json(newer)

    assert refused.value.names == ("surge_window",)


@pytest.mark.parametrize("name", ["handling_time", "handling_time_min", "handling_time_max"])
def test_a_handling_time_is_whole_days(name: str) -> None:
    with pytest.raises(lifecycle.InvalidPayload) as refused:
        Policy().with_settings([(name, "5d12h")])

    assert refused.value.field == f"policy.{name}"
    assert "whole days" in refused.value.message


@pytest.mark.parametrize(("duration", "words"), [
    (timedelta(days=10), "10 days"),
    (timedelta(days=1), "1 day"),
    (timedelta(days=2, hours=12), "2 days 12 hours"),
    (timedelta(minutes=90), "1 hour 30 minutes"),
    (timedelta(seconds=1), "1 second"),
    (timedelta(seconds=1, microseconds=500_000), "1.5 seconds"),
    (timedelta(0), "0 seconds"),
])
def test_a_duration_in_a_refusals_words(duration: timedelta, words: str) -> None:
    assert lifecycle.policy.in_words(duration) == words
