"""Concurrency on PostgreSQL (issue 9): chaos workers and timer workers on the same orders.

Eight processes fire random valid triggers on 100 orders (and their disputes), each read at a
version and fired with ``expected_version``; two more run the due deadlines with a clock far
past them. Afterwards every history replays, outbox matches history, the ledger checks out,
no deadline fired twice, and every success a worker reported is a history row with its actor.
"""

from __future__ import annotations

import multiprocessing
import random
import time
import traceback
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

import lifecycle
from lifecycle import Actor
from lifecycle.adapters.waybills import dhl_express_number
from tests.builders import (
    CHECKLIST,
    PICKUP,
    SYSTEM,
    buyer,
    order_payload,
    seller,
    seller_in,
)

ORDERS = 100
BUYERS = 4
WORKERS = 8
TIMER_WORKERS = 2
STEPS = 120  # per chaos worker
MAX_ATTEMPTS = 50  # re-reads after a Conflict before a step gives up
WORKER_DAYS = 2  # chaos clocks: the fixed start + this
TIMER_DAYS = 400  # timer clocks: well past every deadline the chaos clocks schedule

# How many orders the parent walks to each state before the chaos starts.
START_STATES = {
    "awaiting_payment": 15,
    "paid": 20,
    "cancel_requested": 5,
    "awaiting_pickup": 10,
    "shipped": 15,
    "in_transit": 10,
    "delivered": 15,
    "completed": 5,
    "in_dispute": 5,
}

# Deadline triggers whose transition ends (or never re-enters) their source state: each may
# appear at most once in one aggregate's history.
ONCE_PER_ORDER = ("payment_timeout", "ship_deadline", "cancel_request_timeout", "auto_confirm",
                  "release_funds")
ONCE_PER_DISPUTE = ("seller_response_timeout", "negotiation_timeout", "return_timeout")


def _shipment(serial: int) -> dict[str, Any]:
    return {"checklist": CHECKLIST, "carrier": "dhl", "waybill": dhl_express_number(serial)}


def _claim(order: lifecycle.Aggregate, rng: random.Random) -> dict[str, Any]:
    """A claim the buyer may make: received after delivery, else not received."""
    received = order.state in ("delivered", "completed")
    return {
        "type": "received" if received else "not_received",
        "reason": "quality" if received else "still_in_transit",
        "refund_amount": rng.choice(("5.00", "20.00", order.data["amount_paid"])),
        "return_goods": rng.random() < 0.3,
    }


def _payload(kind: str, trigger: str, target: lifecycle.Aggregate, rng: random.Random,
             serials: Any) -> dict[str, Any] | None:
    """A valid payload for ``trigger``; None when this test cannot build one."""
    if kind == "order":
        if trigger == "request_cancel":
            return {"reason": "changed my mind"}
        if trigger == "book_pickup":
            return PICKUP
        if trigger == "ship_offline":
            return _shipment(next(serials))
        if trigger == "tracking_exception":
            return {"kind": rng.choice(("lost", "customs_hold", "delay", "other"))}
        if trigger == "open_dispute":
            return _claim(target, rng)
        return {}
    if trigger == "counter_offer":
        return {"refund_amount": rng.choice(("1.00", "10.00")),
                "return_goods": rng.random() < 0.3, "note": "chaos offer"}
    if trigger == "arbitrate":
        decision = rng.choice(("no_refund", "refund", "return_and_refund"))
        if decision == "no_refund":
            return {"decision": decision}
        return {"decision": decision, "refund_amount": rng.choice(("2.00", "5.00"))}
    if trigger == "ship_return":
        return {"carrier": "dhl", "waybill": dhl_express_number(next(serials))}
    return {}


def _chaos(url: str, now: datetime, worker: int, order_ids: list[str]) -> dict[str, Any]:
    """Fire ``STEPS`` random valid triggers; the counts and every success (kind, id, version,
    trigger, actor role, actor id)."""
    rng = random.Random(9_000 + worker)
    serials = iter(range(100_000 * (worker + 1), 100_000 * (worker + 2)))
    system, operator = Actor("system", f"chaos-{worker}"), Actor("operator", f"op-{worker}")
    counts: Counter[str] = Counter()
    successes: list[tuple[str, str, int, str, str, str]] = []
    unexpected: list[str] = []
    refusals: list[str] = []
    with lifecycle.open(url, clock=lifecycle.SimulatedClock(now), log="error") as engine:
        candidates = list(order_ids)
        steps = 0
        while steps < STEPS and candidates:
            order_id = rng.choice(candidates)
            steps += 1
            for attempt in range(MAX_ATTEMPTS):
                if attempt:
                    counts["retries"] += 1
                kind, trigger = "order", "(reading)"
                try:
                    order = engine.get("order", order_id)
                    target = order
                    if order.data.get("dispute") and rng.random() < 0.7:
                        kind, target = "dispute", engine.get("dispute", order.data["dispute"])
                    actors = [buyer(order.data["buyer"]), seller(order.data["seller"]), system,
                              operator]
                    choices = [(actor, trigger) for actor in actors
                               for trigger in engine.allowed(kind, target.id, actor)]
                    if not choices and kind == "order":  # ended: nobody may act on it any more
                        counts["ended"] += 1
                        candidates.remove(order_id)
                        steps -= 1
                        break
                    if not choices:
                        counts["idle"] += 1
                        break
                    actor, trigger = rng.choice(choices)
                    payload = _payload(kind, trigger, target, rng, serials)
                    if payload is None:
                        counts["skipped"] += 1
                        break
                    fired = engine.fire(kind, target.id, trigger, actor, payload,
                                        expected_version=target.version)
                except lifecycle.Conflict:
                    counts["conflicts"] += 1
                    continue
                except lifecycle.LifecycleError as refusal:
                    counts[f"refused.{type(refusal).__name__}"] += 1
                    refusals.append(f"{kind} {trigger} {type(refusal).__name__}: {refusal}")
                    break
                except Exception:  # anything else escaping the engine is a failure
                    unexpected.append(traceback.format_exc())
                    break
                counts["successes"] += 1
                successes.append((kind, target.id, fired.version, trigger, actor.role, actor.id))
                break
            else:
                counts["gave_up"] += 1
    return {"counts": counts, "successes": successes, "unexpected": unexpected,
            "refusals": refusals}


def _timers(url: str, now: datetime, stop: Any) -> dict[str, Any]:
    """Run the due deadlines in small rounds until told to stop, then once more to the end."""
    fired = rounds = 0
    unexpected: list[str] = []
    with lifecycle.open(url, clock=lifecycle.SimulatedClock(now), log="error") as engine:
        try:
            while not stop.is_set():
                fired += engine.run_due_timers(limit=2)
                rounds += 1
                time.sleep(0.03)
            fired += engine.run_due_timers()
        except Exception:
            unexpected.append(traceback.format_exc())
    return {"fired": fired, "rounds": rounds, "unexpected": unexpected}


def _prepare(engine: lifecycle.Engine, n: int, state: str) -> str:
    """Order ``n`` walked to ``state`` along the happy path (a waybill of its own)."""
    b, s = buyer(f"b-{n % BUYERS}"), seller("s-1")
    order = engine.create("order", b, order_payload(), id=f"o-{n:03d}")
    paths: dict[str, list[tuple[str, Actor, dict[str, Any]]]] = {
        "awaiting_payment": [],
        "paid": [("pay", b, {})],
        "cancel_requested": [("pay", b, {}), ("request_cancel", b, {"reason": "changed my mind"})],
        "awaiting_pickup": [("pay", b, {}), ("book_pickup", s, PICKUP)],
        "shipped": [("pay", b, {}), ("ship_offline", s, _shipment(n + 1))],
    }
    paths["in_transit"] = [*paths["shipped"], ("tracking_in_transit", SYSTEM, {})]
    paths["delivered"] = [*paths["in_transit"], ("tracking_delivered", SYSTEM, {})]
    paths["completed"] = [*paths["delivered"], ("confirm_receipt", b, {})]
    paths["in_dispute"] = [*paths["delivered"], (
        "open_dispute", b,
        {"type": "received", "reason": "quality", "refund_amount": "20.00",
         "return_goods": n % 2 == 0},
    )]
    for trigger, actor, payload in paths[state]:
        order = engine.fire("order", order.id, trigger, actor, payload)
    assert order.state == state
    return order.id


def _scalar(engine: lifecycle.Engine, sql: str) -> int:
    with engine.database.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def test_eight_chaos_workers_and_two_timer_workers_leave_a_consistent_database(
    pg_engine: lifecycle.Engine, pg_url: str, clock: lifecycle.SimulatedClock
) -> None:
    engine = pg_engine
    seller_in(engine, "active")
    plan = [state for state, count in START_STATES.items() for _ in range(count)]
    assert len(plan) == ORDERS
    with ThreadPoolExecutor(8) as preparing:
        order_ids = list(preparing.map(lambda args: _prepare(engine, *args), enumerate(plan)))

    def history_rows(where: str = "TRUE") -> int:
        return _scalar(engine, f"SELECT count(*) FROM history WHERE {where}")

    # and the rows of the points account's reaction to a release (SPEC §12), written as
    # ``system:order.release_funds``: the seller's points account opened, earned, recorded
    follow_ups = ("(kind = 'dispute' AND trigger = 'open') "
                  "OR (kind = 'order' AND trigger = 'close_dispute') "
                  "OR (actor_role = 'system' AND actor_id = 'order.release_funds')")
    timer_rows = f"actor_role = 'system' AND actor_id = 'timer' AND NOT ({follow_ups})"
    before = history_rows()
    follow_ups_before = history_rows(follow_ups)
    timer_rows_before = history_rows(timer_rows)

    start = clock.now()
    spawn = multiprocessing.get_context("spawn")
    began = time.monotonic()
    with spawn.Manager() as manager:
        stop = manager.Event()
        with spawn.Pool(WORKERS + TIMER_WORKERS) as pool:
            timing = [pool.apply_async(_timers, (pg_url, start + timedelta(days=TIMER_DAYS), stop))
                      for _ in range(TIMER_WORKERS)]
            chaos = [pool.apply_async(_chaos, (pg_url, start + timedelta(days=WORKER_DAYS), w,
                                               order_ids))
                     for w in range(WORKERS)]
            reports = [result.get(timeout=120) for result in chaos]
            stop.set()
            timers = [result.get(timeout=120) for result in timing]
    elapsed = time.monotonic() - began

    counts: Counter[str] = sum((r["counts"] for r in reports), Counter())
    fired_by_timers = sum(t["fired"] for t in timers)
    summary = (f"chaos {elapsed:.1f}s: {dict(sorted(counts.items()))}; "
               f"timers fired {fired_by_timers} in {[t['rounds'] for t in timers]} rounds; "
               f"refusals {sorted({x.split(':')[0] for r in reports for x in r['refusals']})}")

    # Only LifecycleErrors escaped a fire; every Conflict was retried.
    unexpected = [u for r in [*reports, *timers] for u in r["unexpected"]]
    assert unexpected == [], unexpected[0]
    assert counts["gave_up"] == 0
    assert counts["retries"] == counts["conflicts"]
    assert counts["successes"] > 0, summary
    assert counts["conflicts"] > 0, f"no two writers ever met: {summary}"

    # Every aggregate's history is 1..N and replays to its stored state.
    with engine.database.connect() as conn:
        aggregates = conn.execute(text(
            "SELECT kind, id, state FROM aggregates WHERE kind IN ('order', 'dispute')"
        )).all()
        seqs: dict[tuple[str, str], list[int]] = {}
        recorded: dict[tuple[str, str, int], tuple[str, str, str]] = {}
        for row in conn.execute(text(
            "SELECT kind, aggregate_id, seq, trigger, actor_role, actor_id FROM history "
            "ORDER BY kind, aggregate_id, seq"
        )):
            seqs.setdefault((row.kind, row.aggregate_id), []).append(row.seq)
            recorded[row.kind, row.aggregate_id, row.seq] = (row.trigger, row.actor_role,
                                                            row.actor_id)
        history_keys = set(recorded)
        outbox_keys = Counter(
            (row.kind, row.aggregate_id, row.seq)
            for row in conn.execute(text("SELECT kind, aggregate_id, seq FROM outbox"))
        )
        repeated = conn.execute(text(
            "SELECT kind, aggregate_id, trigger, count(*) AS n FROM history "
            "WHERE trigger = ANY(:triggers) GROUP BY kind, aggregate_id, trigger "
            "HAVING count(*) > 1"
        ), {"triggers": [*ONCE_PER_ORDER, *ONCE_PER_DISPUTE]}).all()
        pickups = conn.execute(text(
            "SELECT aggregate_id, "
            "count(*) FILTER (WHERE trigger = 'pickup_timeout') AS lapsed, "
            "count(*) FILTER (WHERE trigger = 'book_pickup') AS booked "
            "FROM history WHERE kind = 'order' GROUP BY aggregate_id"
        )).all()
    assert len([a for a in aggregates if a.kind == "order"]) == ORDERS
    gaps = {key: found for key, found in seqs.items() if found != list(range(1, len(found) + 1))}
    assert gaps == {}
    for kind, id, state in aggregates:
        assert engine.replay(kind, id) == state

    # One outbox row per history row, and nothing else.
    assert sum(outbox_keys.values()) == len(history_keys)
    assert set(outbox_keys) == history_keys

    assert engine.check() == []

    # No deadline fired twice for the same deadline.
    assert repeated == []
    assert [p for p in pickups if p.lapsed > p.booked] == []

    # Every worker's success is the history row at the version it got back, with its actor.
    successes = [s for r in reports for s in r["successes"]]
    assert len(successes) == counts["successes"]
    missing = [s for s in successes if recorded.get((s[0], s[1], s[2])) != (s[3], s[4], s[5])]
    assert missing == []

    # Exact accounting: rows written = worker successes + timer fires + their follow-ups.
    written = history_rows() - before
    follow_up_rows = history_rows(follow_ups) - follow_ups_before
    assert history_rows(timer_rows) - timer_rows_before == fired_by_timers
    assert written == counts["successes"] + fired_by_timers + follow_up_rows
