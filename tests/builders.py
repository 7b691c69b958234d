"""Arrange helpers: sellers, orders and disputes walked to a given state through the public API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine as Database

import lifecycle
from lifecycle import Actor
from lifecycle.store.repository import count_rows

OPERATOR = Actor("operator", "op-1")
SYSTEM = Actor("system", "timer")


def buyer(id: str = "b-1") -> Actor:
    return Actor("buyer", id)


def seller(id: str = "s-1") -> Actor:
    return Actor("seller", id)


REGISTRATION = {
    "company_name": "Acme Trading Co., Ltd.",
    "entity_type": "company",
    "country": "CN",
    "registration_number": "91310000MA1FL4XX",
    "email": "owner@acme.example",
}
DOCUMENTS = {
    "business_licence": "licence-2026-001",
    "payment_account_authentication": "alipay-corp-778",
    "product_list": ["toy-robot", "toy-car"],
    "payment_method": "alipay-corp-778",
}
FEE = {"sales_plan": "standard", "category": "toys"}


def profile(domain: str = "acme") -> dict[str, Any]:
    return {"store_name": "Acme Toys", "domain": domain, "handling_time_days": 7}


def registered_seller(engine: lifecycle.Engine, id: str = "s-1") -> lifecycle.Aggregate:
    return engine.create("seller", seller(id), REGISTRATION)


def seller_in(engine: lifecycle.Engine, state: str, id: str = "s-1") -> lifecycle.Aggregate:
    """A seller walked along the happy path (or one step off it) to ``state``."""
    steps: dict[str, list[tuple[str, Actor, dict[str, Any]]]] = {
        "registered": [],
        "under_review": [("submit_documents", seller(id), DOCUMENTS)],
        "authentication_rejected": [
            ("submit_documents", seller(id), DOCUMENTS),
            ("reject", OPERATOR, {"reasons": ["licence unreadable"]}),
        ],
        "authenticated": [("submit_documents", seller(id), DOCUMENTS), ("approve", OPERATOR, {})],
    }
    steps["fee_paid"] = [*steps["authenticated"], ("pay_fee", seller(id), FEE)]
    steps["active"] = [*steps["fee_paid"], ("complete_profile", seller(id), profile(f"store-{id}"))]
    steps["suspended"] = [*steps["active"], ("suspend", OPERATOR, {"reason": "counterfeit listing"})]
    steps["fee_expired"] = [*steps["active"], ("fee_lapse", SYSTEM, {})]
    steps["closed"] = [("close", seller(id), {})]
    aggregate = registered_seller(engine, id)
    for trigger, actor, payload in steps[state]:
        aggregate = engine.fire("seller", id, trigger, actor, payload)
    assert aggregate.state == state
    return aggregate


def order_payload(seller_id: str = "s-1", **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "seller": seller_id,
        "lines": [
            {"sku": "toy-robot", "quantity": 2, "unit_price": "19.99", "colour": "red"},
            {"sku": "toy-car", "quantity": 1, "unit_price": "5.00"},
        ],
        "currency": "USD",
        "consignee": {"name": "Ana Silva", "address": "Rua A 1, Lisboa", "country": "PT"},
        "logistics": {"carrier": "dhl", "service": "express", "shipping_fee": "7.50",
                      "delivery_days": 20},
    }
    payload.update(changes)
    return payload


CHECKLIST = {"quantity": True, "model": True, "specification": True, "colour": True}
ORDER_TOTAL = "52.48"  # 2 × 19.99 + 5.00 + 7.50 shipping


def order_in(
    engine: lifecycle.Engine,
    clock: lifecycle.SimulatedClock,
    state: str,
    *,
    buyer_id: str = "b-1",
    seller_id: str = "s-1",
) -> lifecycle.Aggregate:
    """An order (and its active seller, if missing) walked to ``state``."""
    try:
        engine.get("seller", seller_id)
    except lifecycle.NotFound:
        seller_in(engine, "active", seller_id)
    order = engine.create("order", buyer(buyer_id), order_payload(seller_id))
    b, s = buyer(buyer_id), seller(seller_id)
    paths: dict[str, list[tuple[str, Actor, dict[str, Any]]]] = {
        "awaiting_payment": [],
        "cancelled": [("cancel", b, {})],
        "paid": [("pay", b, {})],
        "cancel_requested": [("pay", b, {}), ("request_cancel", b, {"reason": "changed my mind"})],
        "awaiting_pickup": [("pay", b, {}), ("book_pickup", s, {"checklist": CHECKLIST})],
        "shipped": [("pay", b, {}), ("ship_offline", s,
                                     {"checklist": CHECKLIST, "carrier": "dhl",
                                      "waybill": "1234567890"})],
    }
    paths["in_transit"] = [*paths["shipped"], ("tracking_in_transit", SYSTEM, {})]
    paths["delivered"] = [*paths["in_transit"], ("tracking_delivered", SYSTEM, {})]
    paths["completed"] = [*paths["delivered"], ("confirm_receipt", b, {})]
    paths["funds_released"] = [*paths["completed"], ("release_funds", SYSTEM, {})]
    for trigger, actor, payload in paths[state]:
        order = engine.fire("order", order.id, trigger, actor, payload)
    assert order.state == state
    return order


def dispute_opened(
    engine: lifecycle.Engine,
    clock: lifecycle.SimulatedClock,
    *,
    type: str = "received",
    refund_amount: str = "20.00",
    return_goods: bool = False,
) -> tuple[lifecycle.Aggregate, lifecycle.Aggregate]:
    """A delivered order with a dispute open on it: (order, dispute)."""
    order = order_in(engine, clock, "delivered")
    reason = "quality" if type == "received" else "still_in_transit"
    if type == "not_received":
        clock.advance(timedelta(days=11))
    order = engine.fire("order", order.id, "open_dispute", buyer(order.data["buyer"]),
                        {"type": type, "reason": reason, "refund_amount": refund_amount,
                         "return_goods": return_goods})
    return order, engine.get("dispute", order.data["dispute"])


def rows(engine: lifecycle.Engine) -> dict[str, int]:
    """Rows in every table: compare before and after a refusal."""
    database: Database = engine.database
    with database.connect() as conn:
        return count_rows(conn)
