"""The README's worked example of versioned machines (issue #18, docs/versions.md).

    .venv/bin/python examples/versions.py [sqlite:///versions.db]

Version 1 of the order machine runs a shop with an order in each state; version 2
(`lifecycle.machines.examples.customs_hold`) adds `customs_hold` and shortens the ship deadline.
A dry run says what migrating would do to each order; the migration moves them; the timer worker
(on a simulated clock) then takes every order to a terminal state, and `check` passes.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import lifecycle
from lifecycle import Actor

URL = sys.argv[1] if len(sys.argv) > 1 else "sqlite:///versions.db"
EXAMPLE = "lifecycle.machines.examples.customs_hold"
BUYER, SELLER = Actor("buyer", "ana"), Actor("seller", "acme")
GATEWAY, CARRIER, OPS = Actor("system", "gateway"), Actor("system", "dhl"), Actor("operator", "ops")
CHECKED = {"quantity": True, "model": True, "specification": True, "colour": True}
ORDER = {"seller": "acme", "lines": [{"sku": "robot", "quantity": 2, "unit_price": "19.99"}],
         "currency": "USD", "logistics": {"carrier": "dhl", "service": "express",
                                          "shipping_fee": "7.50", "delivery_days": 20},
         "consignee": {"name": "Ana Silva", "address": "Rua A 1, Lisboa", "country": "PT"}}
# How far along version 1's happy path each order goes.
PATH = [("pay", BUYER, {}),
        ("ship_offline", SELLER, {"checklist": CHECKED, "carrier": "dhl", "waybill": "1234567891"}),
        ("tracking_in_transit", CARRIER, {}), ("tracking_delivered", CARRIER, {}),
        ("confirm_receipt", BUYER, {})]
STATES = ["awaiting_payment", "paid", "shipped", "in_transit", "delivered", "completed"]


def onboard(engine: lifecycle.Engine) -> None:
    engine.create("seller", SELLER, {"company_name": "Acme Trading Co., Ltd.",
                                     "entity_type": "company", "country": "CN",
                                     "registration_number": "91310000MA1FL4XX",
                                     "email": "owner@acme.example"}, id="acme")
    for trigger, actor, payload in [
        ("submit_documents", SELLER, {"business_licence": "BL-1", "product_list": ["robot"],
                                      "payment_account_authentication": "alipay-corp-1",
                                      "payment_method": "alipay-corp-1"}),
        ("approve", OPS, {}), ("pay_fee", SELLER, {"sales_plan": "standard", "category": "toys"}),
        ("complete_profile", SELLER, {"store_name": "Acme Toys", "domain": "acme",
                                      "handling_time_days": 7})]:
        engine.fire("seller", "acme", trigger, actor, payload)


def main() -> None:
    if URL.startswith("sqlite:///"):
        for suffix in ("", "-wal", "-shm"):
            Path(URL.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
    clock = lifecycle.SimulatedClock()
    # 1. Version 1 only: an order in each state.
    with lifecycle.open(URL, clock=clock) as v1:
        onboard(v1)
        orders = {}
        for n, state in enumerate(STATES):
            order = v1.create("order", BUYER, ORDER, id=f"o-{n + 1}")
            for trigger, actor, payload in PATH[:n]:
                order = v1.fire("order", order.id, trigger, actor, payload)
            orders[state] = order.id
    # 2. Every process now runs version 2 beside version 1.
    with lifecycle.open(URL, clock=clock, machines=EXAMPLE) as engine:
        dry = engine.migrate("order", 2, dry_run=True)
        print(f"dry run: {len(dry.plans)} in flight, {len(dry.stranded)} stranded, "
              f"money ok: {dry.to_json()['money_ok']}")
        for plan in dry.plans:
            moved = [f"{d.trigger} {d.action}"
                     + (f" {d.due_before:%m-%d} -> {d.due_after:%m-%d}" if d.action == "moved"
                        and d.due_before and d.due_after else "") for d in plan.deadlines]
            held = ", ".join(f"{a} {c}" for c, a in plan.escrow.items()) or "-"
            print(f"  {plan.id} {plan.state} -> {plan.new_state}: {'; '.join(moved)}; "
                  f"escrow {held}")
        done = engine.migrate("order", 2, actor=OPS)
        print(f"migrated {done.migrated}, {done.terminal_left} terminal left on version 1")
        held = engine.fire("order", orders["in_transit"], "tracking_exception", CARRIER,
                           {"kind": "customs_hold"})
        print(f"{held.id}: {held.state} (version {held.machine_version})")
        new = engine.create("order", BUYER, ORDER, id="o-new")
        print(f"a new order starts on version {new.machine_version}")
        for _day in range(90):  # the timer worker, day by day
            clock.advance(timedelta(days=1))
            engine.run_due_timers()
        for id in [*orders.values(), "o-new"]:
            order = engine.get("order", id)
            print(f"  {id}: {order.state}, version {order.machine_version}, "
                  f"replays to {engine.replay('order', id)}")
        print(f"check: {engine.check() or 'ok'}")


if __name__ == "__main__":
    main()
