"""The adapter registry: built-ins by name, outside adapters through entry points, and clear errors
for unknown, duplicated, broken or incomplete ones."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator, Mapping
from decimal import Decimal
from importlib import metadata
from pathlib import Path

import pytest

from lifecycle.adapters import registry
from lifecycle.adapters.errors import AdapterError, DuplicateAdapter, UnknownAdapter
from lifecycle.adapters.ports import Money, Parcel, Quote, ServiceLevel, TrackingEvent
from lifecycle.adapters.sandbox import SANDBOX_CARRIERS, SandboxCarrier, SandboxGateway
from lifecycle.clock import SimulatedClock

SECRET = b"registry-secret"


class AcmePost:
    """An outside carrier, as a service would write one: flat rate, format-only waybills."""

    def __init__(self, *, rate: str = "9.90"):
        self.rate = Decimal(rate)

    @property
    def name(self) -> str:
        return "acme_post"

    def quote(self, parcel: Parcel, origin: str, destination: str) -> list[Quote]:
        return [Quote("acme_post", "standard", self.rate, "USD", 6, parcel.weight_kg)]

    def book_pickup(self, order_id: str, parcel: Parcel, origin: str, destination: str,
                    service: ServiceLevel, key: str) -> str:
        return f"ACME{order_id}"

    def cancel_pickup(self, waybill: str, key: str) -> None:
        return None

    def validate_waybill(self, number: str) -> None:
        return None

    def track(self, waybill: str) -> list[TrackingEvent]:
        return []

    def parse_push(self, body: bytes, headers: Mapping[str, str]) -> list[TrackingEvent]:
        return []


class HalfCarrier:
    """Forgot most of the port."""

    name = "half"

    def quote(self, parcel: Parcel, origin: str, destination: str) -> list[Quote]:
        return []


Installed = list[metadata.EntryPoint]


def entry_point(name: str, value: str, group: str) -> metadata.EntryPoint:
    return metadata.EntryPoint(name=name, value=value, group=group)


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Installed:
    """Fake installed-package metadata: entry points added to the list are 'installed'."""
    points: Installed = []

    def entry_points(*, group: str) -> Installed:
        return [ep for ep in points if ep.group == group]

    monkeypatch.setattr(metadata, "entry_points", entry_points)
    return points


def test_built_ins_are_found_by_name(installed: Installed) -> None:
    clock = SimulatedClock()

    dhl = registry.carrier("dhl", clock=clock, secret=SECRET, seed=2)
    gateway = registry.payment_gateway("sandbox", clock=clock, secret=SECRET)

    assert isinstance(dhl, SandboxCarrier)
    assert dhl.name == "dhl"
    assert isinstance(gateway, SandboxGateway)
    assert registry.carrier_names() == sorted(SANDBOX_CARRIERS)
    assert registry.payment_gateway_names() == ["sandbox"]


def test_an_unknown_name_lists_the_known_ones(installed: Installed) -> None:
    installed.append(entry_point("acme_post", f"{__name__}:AcmePost", registry.CARRIERS_GROUP))

    with pytest.raises(UnknownAdapter) as unknown:
        registry.carrier_factory("pony_express")

    assert str(unknown.value) == (
        "invalid carrier: no carrier named 'pony_express'; known: "
        "acme_post, air_freight, dhl, fedex, postal, sea_freight, tnt, ups"
    )
    assert unknown.value.exit_code == 2
    with pytest.raises(UnknownAdapter, match="no payment gateway named 'stripe'; known: sandbox"):
        registry.payment_gateway("stripe")


def test_an_adapter_declared_by_an_entry_point_is_found_and_used(installed: Installed) -> None:
    installed.append(entry_point("acme_post", f"{__name__}:AcmePost", registry.CARRIERS_GROUP))

    acme = registry.carrier("acme_post", rate="4.50")
    [offer] = acme.quote(Parcel(Decimal(1), Decimal(10), Decimal(10), Decimal(10)), "CN", "DE")

    assert "acme_post" in registry.carrier_names()
    assert (offer.carrier, offer.price) == ("acme_post", Decimal("4.50"))
    assert acme.book_pickup("o-1", Parcel(Decimal(1), Decimal(1), Decimal(1), Decimal(1)), "CN", "DE",
                            "standard", "k") == "ACMEo-1"


def test_an_entry_point_may_not_shadow_a_built_in(installed: Installed) -> None:
    installed.append(entry_point("dhl", f"{__name__}:AcmePost", registry.CARRIERS_GROUP))

    with pytest.raises(DuplicateAdapter, match="carrier 'dhl' is declared more than once: lifecycle") as dup:
        registry.carrier_factory("dhl")

    assert dup.value.providers[1].startswith(f"{__name__}:AcmePost")
    registry.carrier_factory("ups")  # other names are unaffected


def test_an_entry_point_that_fails_to_import_is_an_adapter_error(installed: Installed) -> None:
    installed.append(entry_point("ghost", "no_such_module_for_lifecycle:Ghost", registry.PAYMENTS_GROUP))

    with pytest.raises(AdapterError, match="ghost load failed: entry point no_such_module_for_lifecycle"):
        registry.payment_gateway_factory("ghost")


def test_an_adapter_missing_part_of_the_port_is_refused(installed: Installed) -> None:
    installed.append(entry_point("half", f"{__name__}:HalfCarrier", registry.CARRIERS_GROUP))

    with pytest.raises(AdapterError) as refused:
        registry.carrier("half")

    assert refused.value.reason == (
        "the carrier built does not implement book_pickup, cancel_pickup, parse_push, track, validate_waybill"
    )


PLUGIN = '''
from decimal import Decimal

from lifecycle.adapters.sandbox import SandboxGateway
from lifecycle.clock import SystemClock


class AcmePay(SandboxGateway):
    """An outside gateway: here, the sandbox under another name."""

    def __init__(self, *, secret: bytes):
        super().__init__(clock=SystemClock(), secret=secret, name="acme_pay", seed=99)
'''


@pytest.fixture
def acme_pay_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real distribution on sys.path: a module and its dist-info with an entry_points.txt."""
    (tmp_path / "acme_pay.py").write_text(textwrap.dedent(PLUGIN))
    dist_info = tmp_path / "acme_pay-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-pay\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[lifecycle.payments]\nacme_pay = acme_pay:AcmePay\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("acme_pay", None)  # imported by the entry point; gone with its directory


def test_an_installed_distribution_adds_a_payment_gateway(acme_pay_installed: Path) -> None:
    gateway = registry.payment_gateway("acme_pay", secret=SECRET)
    ref = gateway.capture("o-1", Money(Decimal("12.00"), "USD"), "k-1")

    assert "acme_pay" in registry.payment_gateway_names()
    assert gateway.name == "acme_pay"
    assert ref.startswith("pay_")
