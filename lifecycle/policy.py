"""Policy values: the spec's defaults, each one overridable per engine.

Durations come from SPEC §3-§5 and §10; the commission from §6.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

from lifecycle.errors import InvalidPayload


@dataclass(frozen=True)
class Policy:
    """Named defaults. ``Policy().with_overrides(payment_timeout=timedelta(hours=12))``."""

    payment_timeout: timedelta = timedelta(hours=24)
    handling_time: timedelta = timedelta(days=7)
    handling_time_min: timedelta = timedelta(days=3)
    handling_time_max: timedelta = timedelta(days=10)
    cancel_request_timeout: timedelta = timedelta(hours=48)
    pickup_timeout: timedelta = timedelta(days=3)
    delivery_window_max: timedelta = timedelta(days=60)
    delivery_window: timedelta = timedelta(days=30)
    auto_confirm_after_delivery: timedelta = timedelta(days=5)
    protection_period: timedelta = timedelta(days=15)
    fee_period: timedelta = timedelta(days=365)
    not_received_after: timedelta = timedelta(days=10)
    seller_response_timeout: timedelta = timedelta(days=5)
    escalate_from: timedelta = timedelta(days=3)  # "from the 4th day after opening"
    negotiation_timeout: timedelta = timedelta(days=15)  # "on the 16th day after opening"
    return_timeout: timedelta = timedelta(days=10)
    commission_rate: Decimal = Decimal("0.05")
    annual_fee: dict[str, Decimal] = field(
        default_factory=lambda: {"default": Decimal("1000.00")}
    )
    annual_fee_currency: str = "USD"
    coupon_title_max: int = 60
    coupon_max_validity: timedelta = timedelta(days=62)
    coupon_max_copies: int = 10_000
    coupon_max_products: int = 50
    coupon_min_denomination: dict[str, Decimal] = field(
        default_factory=lambda: {"USD": Decimal("5")}
    )
    idempotency_retention: timedelta = timedelta(days=30)
    outbox_retention: timedelta = timedelta(days=7)

    def with_overrides(self, **values: Any) -> Policy:
        """A copy with some values replaced; unknown names are an error."""
        known = {f.name for f in fields(self)}
        for name in values:
            if name not in known:
                raise InvalidPayload(f"policy.{name}", f"unknown policy value; known: {sorted(known)}")
        return replace(self, **values)

    def fee_for(self, category: str) -> Decimal:
        """The annual store fee of a business category."""
        return self.annual_fee.get(category, self.annual_fee["default"])
