"""What a buyer puts in the basket, the parcel the seller packs from it, and how a buyer fills a
basket up to use a coupon (SPEC §6: the threshold counts the eligible goods, not shipping)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_UP, Decimal
from typing import Any

from lifecycle.simulation.world import Product, SellerPlan, rng

MAX_QUANTITY = 20  # of one product, however far a coupon's threshold is


@dataclass(frozen=True, slots=True)
class Line:
    product: Product
    quantity: int


def basket(seed: int, plan: SellerPlan, n: int) -> tuple[Line, ...]:
    r = rng(seed, "basket", n)
    count = r.choices((1, 2, 3), (60, 30, 10))[0]
    products = r.sample(plan.catalogue, min(count, len(plan.catalogue)))
    return tuple(Line(p, 1 if p.weight_kg > 15 else r.choices((1, 2, 3, 5), (60, 25, 10, 5))[0])
                 for p in products)


def parcel(lines: Sequence[Line]) -> dict[str, str]:
    """The parcel the seller packs: the largest box, stacked as high as the items need."""
    weight = sum((line.product.weight_kg * line.quantity for line in lines), Decimal(0))
    weight = (weight * Decimal("1.05") + Decimal("0.05")).quantize(Decimal("0.1"), rounding=ROUND_UP)
    length = max(line.product.box[0] for line in lines)
    width = max(line.product.box[1] for line in lines)
    height = min(sum(line.product.box[2] * line.quantity for line in lines), 200)
    return {"weight_kg": str(weight), "length_cm": str(length), "width_cm": str(width),
            "height_cm": str(height)}


def goods_total(lines: Sequence[Line]) -> Decimal:
    return sum((line.product.price * line.quantity for line in lines), Decimal(0))


def eligible(terms: Mapping[str, Any], sku: str) -> bool:
    """Whether a coupon with these terms applies to the product."""
    products = terms["products"]
    return products == "all" or sku in products


def threshold(terms: Mapping[str, Any]) -> Decimal:
    """The eligible goods a coupon needs in the basket (zero when it has no threshold)."""
    return Decimal(terms.get("threshold") or 0)


def reach_threshold(lines: list[Line], terms: Mapping[str, Any], store: SellerPlan) -> list[Line] | None:
    """The basket a buyer makes to use a coupon: add an eligible product if there is none, then
    more of the cheapest eligible one until the coupon's threshold is reached; None if it cannot."""
    lines = list(lines)
    if not any(eligible(terms, line.product.sku) for line in lines):
        candidates = sorted((p for p in store.catalogue if eligible(terms, p.sku)),
                            key=lambda p: (p.price, p.sku))
        if not candidates:
            return None
        lines.append(Line(candidates[0], 1))
    need = threshold(terms)
    while goods_total([line for line in lines if eligible(terms, line.product.sku)]) < need:
        index, cheapest = min(((i, line) for i, line in enumerate(lines)
                               if eligible(terms, line.product.sku)),
                              key=lambda pair: (pair[1].product.price, pair[1].product.sku))
        if cheapest.quantity >= MAX_QUANTITY:
            return None
        lines[index] = Line(cheapest.product, cheapest.quantity + 1)
    return lines
