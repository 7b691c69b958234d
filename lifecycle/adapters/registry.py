"""Finding adapters by name: the built-in sandbox ones, plus any that an installed package declares
under the entry-point groups ``lifecycle.payments`` and ``lifecycle.carriers`` (SPEC §7), so a
service adds its own gateway or carrier without forking.

An entry point names a factory: any callable (a class will do) that takes keyword options and
returns the adapter. In a plug-in's ``pyproject.toml``::

    [project.entry-points."lifecycle.carriers"]
    acme_post = "acme_lifecycle.carrier:AcmePost"

Entry points are read when a name is looked up, never at import time, so installing a package is
seen without restarting anything but the process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from importlib import metadata
from typing import Any, cast

from lifecycle.adapters.errors import AdapterError, DuplicateAdapter, UnknownAdapter
from lifecycle.adapters.ports import Carrier, PaymentGateway
from lifecycle.adapters.sandbox import SANDBOX_CARRIERS, SandboxCarrier, SandboxGateway

PAYMENTS_GROUP = "lifecycle.payments"
CARRIERS_GROUP = "lifecycle.carriers"

PaymentGatewayFactory = Callable[..., PaymentGateway]
CarrierFactory = Callable[..., Carrier]

def builtin_payment_gateways() -> Mapping[str, PaymentGatewayFactory]:
    """The gateways lifecycle ships: ``sandbox``."""
    return {"sandbox": SandboxGateway}


def builtin_carriers() -> Mapping[str, CarrierFactory]:
    """The carriers lifecycle ships: a sandbox for each of `SANDBOX_CARRIERS`."""
    return {name: partial(SandboxCarrier, name) for name in SANDBOX_CARRIERS}


def _declared(group: str) -> list[metadata.EntryPoint]:
    # Looked up through the module so tests can substitute metadata.entry_points.
    return list(metadata.entry_points(group=group))


def _names(group: str, builtins: Mapping[str, object]) -> list[str]:
    return sorted({*builtins, *(ep.name for ep in _declared(group))})


def _provider(entry_point: metadata.EntryPoint) -> str:
    dist = entry_point.dist.name if entry_point.dist is not None else "an unnamed distribution"
    return f"{entry_point.value} (from {dist})"


def _factory(
    group: str, kind: str, builtins: Mapping[str, Callable[..., Any]], name: str
) -> Callable[..., Any]:
    declared = [ep for ep in _declared(group) if ep.name == name]
    providers = (["lifecycle (built in)"] if name in builtins else []) + [_provider(ep) for ep in declared]
    if len(providers) > 1:
        raise DuplicateAdapter(kind, name, providers)
    if name in builtins:
        return builtins[name]
    if not declared:
        raise UnknownAdapter(kind, name, _names(group, builtins))
    entry_point = declared[0]
    try:
        loaded = entry_point.load()
    # A plug-in's import can fail in any way its author allowed; report it as this adapter's.
    except Exception as exc:
        raise AdapterError(name, "load", f"entry point {entry_point.value} failed to load: {exc}") from exc
    if not callable(loaded):
        raise AdapterError(name, "load", f"entry point {entry_point.value} is not callable")
    return cast(Callable[..., Any], loaded)


def _members(port: object) -> list[str]:
    """The public members a port declares (its methods and ``name``)."""
    return sorted(member for member in vars(port) if not member.startswith("_"))


def _check(port: object, kind: str, name: str, adapter: object) -> None:
    """Refuse an adapter lacking any member of ``port``, saying which: a clearer failure now than
    an AttributeError in the middle of a transition."""
    missing = [member for member in _members(port) if not hasattr(adapter, member)]
    if missing:
        raise AdapterError(name, "load", f"the {kind} built does not implement {', '.join(missing)}")


def payment_gateway_names() -> list[str]:
    """Every payment gateway name available: built in and installed."""
    return _names(PAYMENTS_GROUP, builtin_payment_gateways())


def carrier_names() -> list[str]:
    """Every carrier name available: built in and installed."""
    return _names(CARRIERS_GROUP, builtin_carriers())


def payment_gateway_factory(name: str) -> PaymentGatewayFactory:
    """The factory for gateway ``name``; `UnknownAdapter` lists the known names."""
    return _factory(PAYMENTS_GROUP, "payment gateway", builtin_payment_gateways(), name)


def carrier_factory(name: str) -> CarrierFactory:
    """The factory for carrier ``name``; `UnknownAdapter` lists the known names."""
    return _factory(CARRIERS_GROUP, "carrier", builtin_carriers(), name)


def payment_gateway(name: str, **options: Any) -> PaymentGateway:
    """Build gateway ``name`` with ``options`` (for the sandbox: ``clock``, ``secrets``, ``seed``, ...)."""
    adapter = payment_gateway_factory(name)(**options)
    _check(PaymentGateway, "payment gateway", name, adapter)
    return adapter


def carrier(name: str, **options: Any) -> Carrier:
    """Build carrier ``name`` with ``options`` (for the sandbox: ``clock``, ``secrets``, ``seed``, ...)."""
    adapter = carrier_factory(name)(**options)
    _check(Carrier, "carrier", name, adapter)
    return adapter
