"""A run read back from the database at the end, a few bulk reads in all, into its `Report`.

Final states, the order funnel, times in simulated days, disputes by type and outcome, and the
money come from the aggregates and the ledger themselves (so a resumed run reports all of its
work, not only the last session's); what only the driver saw — conflicts retried, faults met,
messages delivered — comes from its tally. Wall-clock figures are kept apart in ``wall``: they
are the only part that differs between two runs with one seed.
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import lifecycle
from lifecycle import LedgerSum
from lifecycle.simulation.config import Config
from lifecycle.simulation.record import Tally
from lifecycle.simulation.report import Report, peak_rss_mb

Step = tuple[str, str | None]  # (trigger, the payload's "decision")

KINDS = ("seller", "coupon", "voucher", "order", "dispute", "unexpected_capture",
         # the seller's account (issue #20)
         "subaccount", "violation", "standing", "points_account", "message", "profile",
         "contact", "avatar")
# Kinds whose ids do not start with the run's name (``order_paid:sim-o0000042``): the run's
# are those of its sellers (their data's ``seller``).
BY_SELLER = ("points_earning",)
FUNNEL = ("placed", "paid", "shipped", "delivered", "completed", "funds_released")
DURATIONS = {
    "place_to_ship": ("placed_at", "shipped_at"),
    "ship_to_delivered": ("shipped_at", "delivered_at"),
    "place_to_funds_released": ("placed_at", "released_at"),
}
MONEY = ("captured", "coupon_subsidy", "refunded", "coupon_returned", "paid_out", "commission",
         "coupons_settled_by_sellers", "store_fees", "escrow_held",
         # captures no order could take (SPEC §7): kept apart, and given back
         "unexpected_captured", "unexpected_refunded")
DAY_SECONDS = 86_400
# What the funnel and the times read of each order's data.
ORDER_FIELDS = ("placed_at", "paid_at", "shipped_at", "delivered_at", "completed_at",
                "released_at")


def percentile(ordered: Sequence[float], p: float) -> float:
    """Linear interpolation between the closest ranks (what numpy does by default)."""
    if not ordered:
        return 0.0
    k = (len(ordered) - 1) * p / 100
    low, high = math.floor(k), math.ceil(k)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def summary(values: list[float]) -> dict[str, float]:
    values.sort()
    return {"n": len(values), **{f"p{p}": round(percentile(values, p), 3) for p in (50, 90, 99)}}


def _days_between(data: Mapping[str, Any], start: str, end: str) -> float | None:
    if start not in data or end not in data:
        return None
    delta = datetime.fromisoformat(data[end]) - datetime.fromisoformat(data[start])
    return delta.total_seconds() / DAY_SECONDS


class _Money:
    """Ledger entries summed into the report's money lines, per currency."""

    def __init__(self) -> None:
        self.totals: dict[str, dict[str, Decimal]] = defaultdict(
            lambda: dict.fromkeys(MONEY, Decimal(0)))

    def add(self, kind: str, posting: str, account: str, currency: str, positive: bool,
            amount: Decimal) -> None:
        """Entries of one posting and account, all above zero (``positive``) or none, summed."""
        totals = self.totals[currency]
        if posting == "unexpected_capture" and account == "buyer":
            totals["unexpected_captured"] -= amount
            return
        if posting == "refund" and account == "buyer" and kind == "unexpected_capture":
            totals["unexpected_refunded"] += amount
            return
        if posting == "store_fee":
            if account == "platform_fee":
                totals["store_fees"] += amount
            return
        if account == "escrow":
            totals["escrow_held"] += amount
        elif posting == "payment":
            if account == "buyer":
                totals["captured"] -= amount
            elif account == "coupon_subsidy":
                totals["coupon_subsidy"] -= amount
        elif account == "buyer" and positive:
            totals["refunded"] += amount
        elif account == "coupon_subsidy" and posting != "payout":
            totals["coupon_returned"] += amount  # a cancellation or refund hands it back
        elif posting == "payout":
            if account == "platform_fee":
                totals["commission"] += amount
            elif account == "seller" and positive:
                totals["paid_out"] += amount
            elif account == "seller":
                totals["coupons_settled_by_sellers"] -= amount

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {currency: {item: str(totals[item]) for item in MONEY}
                for currency, totals in sorted(self.totals.items())}


def _path(steps: Sequence[Step]) -> str:
    """A dispute's way from its opening: its triggers after the first, repeats folded."""
    path: list[str] = []
    for trigger, decision in steps[1:]:
        step = f"arbitrate({decision})" if trigger == "arbitrate" else trigger
        if not path or path[-1] != step:
            path.append(step)
    return " → ".join(path) or "(open)"


@dataclass(frozen=True)
class Seen:
    """What only the run's drivers saw, for its report: their tally (the shards' merged,
    `shards.merge`), where the simulated clock ended, and the wall-clock figures."""

    tally: Tally
    end: datetime
    running_seconds: float  # the drive, without the read-back
    cpu_seconds: float  # of every process that ran shards
    session_transitions: int  # fired in this session (a resumed run: since the resume)
    peak_rss_mb: float  # of the process that used the most


def survey(engine: lifecycle.Engine, config: Config, status: str, seen: Seen,
           wall_started: float) -> Report:
    """Read the run back from the database (every shard of it: the ids of all start with the
    run's name) and build its report; ``wall_started`` is when the run began, by
    ``time.perf_counter``."""
    running = seen.running_seconds
    states: dict[str, Counter[str]] = {
        kind: Counter(dict.fromkeys(lifecycle.definition(kind).states, 0)) for kind in KINDS}
    transitions = 0
    funnel: Counter[str] = Counter()
    endings: Counter[str] = Counter()
    durations: dict[str, list[float]] = {name: [] for name in DURATIONS}
    money = _Money()
    disputes: dict[str, Counter[str]] = defaultdict(Counter)
    paths: Counter[str] = Counter()

    prefix = f"{config.name}-"
    for kind, state, n, versions in engine.state_counts(KINDS, prefix=prefix):
        states[kind][state] += n
        transitions += versions
    tally = seen.tally
    for kind in BY_SELLER:
        states[kind] = Counter(dict.fromkeys(lifecycle.definition(kind).states, 0))
        for seller, state, n in engine.counts_by_field(kind, "seller"):
            if seller is not None and seller.startswith(prefix):
                states[kind][state] += n
        # their history rows, as the driver counted them
        transitions += sum(n for trigger, n in tally.triggers.items()
                           if trigger.startswith(f"{kind}."))
    for state, data in engine.field_values("order", prefix=prefix, text=ORDER_FIELDS,
                                           integer=("dispute_count",)):
        _order(data, state, funnel, endings, durations)
    terminal = lifecycle.definition("dispute").terminal
    for type_, state, n in engine.counts_by_field("dispute", "type", prefix=prefix):
        disputes[str(type_)][state if state in terminal else "open"] += n
    for type_, steps in engine.history_steps("dispute", terminal, prefix=prefix, label="type",
                                             detail="decision"):
        paths[f"{type_}: {_path(steps)}"] += 1
    for kind, posting, account, currency, positive, amount in engine.ledger_sums(
            ("seller", "order", "unexpected_capture"), prefix=prefix):
        money.add(kind, posting, account, currency, positive, amount)
    parked = Counter(deadline.trigger for deadline in engine.parked_deadlines(prefix=prefix))
    released = durations["place_to_funds_released"]
    histogram = Counter(int(value) for value in released)
    checking = time.perf_counter()
    violations = engine.check() if config.check else []
    checking = time.perf_counter() - checking
    check = {"ran": config.check, "passed": not violations, "violations": len(violations),
             "first": [str(v) for v in violations[:10]]}
    reached = {kind: {state: tally.reached[f"{kind}.{state}"]
                      for state in lifecycle.definition(kind).states}
               for kind in (*KINDS, *BY_SELLER)}
    points = engine.ledger_sums(("points_account",), prefix=prefix)
    end = seen.end
    wall_seconds = time.perf_counter() - wall_started
    return Report(
        name=config.name,
        status=status,
        config=config.to_dict(),
        simulated={"start": config.start.isoformat(), "end": end.isoformat(),
                   "days": round((end - config.start).total_seconds() / DAY_SECONDS, 3)},
        states={kind: dict(counts) for kind, counts in states.items()},
        reached=reached,
        funnel={stage: funnel[stage] for stage in FUNNEL},
        endings=dict(sorted(endings.items())),
        disputes={t: dict(sorted(c.items())) for t, c in sorted(disputes.items())},
        dispute_paths=dict(sorted(paths.items())),
        durations={name: summary(values) for name, values in durations.items()},
        release_histogram=tuple(sorted(histogram.items())),
        money=money.to_dict(),
        gateway=dict(tally.gateway),
        check=check,
        transitions=transitions,
        triggers=dict(sorted(tally.triggers.items())),
        activity=dict(sorted(tally.counters.items())),
        parked=dict(sorted(parked.items())),
        timeline=tuple(tally.samples),
        accounts=accounts(tally, points),
        wall={"seconds": round(wall_seconds, 3),
              "running_seconds": round(running, 3),
              "check_seconds": round(checking, 3),
              "cpu_seconds": round(seen.cpu_seconds, 3),
              "session_transitions": seen.session_transitions,
              "transitions_per_second": round(seen.session_transitions / running, 1)
              if running else 0.0,
              "peak_rss_mb": max(seen.peak_rss_mb, peak_rss_mb())},
    )


def _order(data: Mapping[str, Any], state: str, funnel: Counter[str], endings: Counter[str],
           durations: dict[str, list[float]]) -> None:
    funnel["placed"] += 1
    for stage, field in (("paid", "paid_at"), ("shipped", "shipped_at"),
                         ("delivered", "delivered_at"), ("completed", "completed_at")):
        funnel[stage] += field in data
    funnel["funds_released"] += state == "funds_released"
    if state == "cancelled":
        endings["cancelled after payment" if "paid_at" in data else "cancelled unpaid"] += 1
    elif state == "refunded":
        endings["refunded after a dispute"] += 1
    elif state != "funds_released":
        endings[f"still {state}"] += 1
    if data.get("dispute_count"):
        endings["disputed (any ending)"] += 1
    for name, (start, end) in DURATIONS.items():
        days = _days_between(data, start, end)
        if days is not None:
            durations[name].append(days)


def accounts(tally: Tally, points: Sequence[LedgerSum]) -> dict[str, dict[str, int]]:
    """The report's "Seller accounts" section (issue #20): what the run's staff, operators,
    sellers and buyers did with the seller's account, from the driver's tally (transitions
    by trigger, states entered, refusals counted) and the points ledger."""
    fired, entered, counted = tally.triggers, tally.reached, tally.counters
    moved: Counter[str] = Counter()
    for row in points:
        if row.account == "points":
            moved[f"{row.posting}{'+' if row.positive else '-'}"] += int(row.amount)
    return {
        "sub-accounts": {
            "created": fired["subaccount.create"], "permissions changed": fired["subaccount.set_permissions"],
            "disabled": fired["subaccount.disable"], "enabled again": fired["subaccount.enable"],
            "removed": fired["subaccount.remove"],
            "actions taken by sub-accounts": counted["accounts.staff_actions"],
            "orders shipped by sub-accounts": counted["accounts.staff_actions.ship_orders"],
            "disputes answered by sub-accounts":
                counted["accounts.staff_actions.answer_disputes"],
            "staff actions refused (then done by the owner)": counted["accounts.staff_refused"],
        },
        "violations": {
            "recorded": fired["violation.record"], "appealed": fired["violation.appeal"],
            "upheld": fired["violation.uphold"], "overturned": fired["violation.overturn"],
            "final without appeal": fired["violation.finalise"],
            "expired": fired["violation.expire"],
        },
        "penalties": {
            "promotion_restricted entered (times)": entered["standing.promotion_restricted"],
            "orders_refused entered (times)": entered["standing.orders_refused"],
            "store_suspended entered (times)": entered["standing.store_suspended"],
            "stores suspended by penalties": counted["penalties.stores_suspended"],
            "orders refused by penalties": counted["penalties.orders_refused"],
            "standings closed": entered["standing.closed"],
        },
        "points": {
            "accounts opened": fired["points_account.open"],
            "orders that earned": fired["points_account.earn"],
            "points earned": moved["earn+"],
            "redemptions": fired["points_account.redeem"],
            "points redeemed": -moved["redeem-"],
            "redemptions refused (balance too low)": counted["points.redemptions_refused"],
            "corrections": fired["points_account.correct"],
            "points corrected (added)": moved["correction+"],
            "points corrected (taken back)": -moved["correction-"],
            "penalties": fired["points_account.penalise"],
            "points penalised": -moved["penalty-"],
            "accounts closed": fired["points_account.close"],
        },
        "messages": {
            "sent": fired["message.send"], "read": fired["message.read"],
            "labelled": fired["message.label"], "marked": fired["message.mark"],
            "removed by operators": fired["message.remove"],
        },
        "profiles": {
            "created": fired["profile.create"], "privacy set": fired["profile.set_privacy"],
            "subscriptions set": fired["profile.set_subscriptions"],
            "updated": fired["profile.update"], "closed": fired["profile.close"],
            "notifications queued": counted["notifications.queued"],
            "contacts verified": fired["contact.confirm"],
            "codes expired": fired["contact.expire"], "codes sent again": fired["contact.resend"],
            "avatars uploaded": fired["avatar.upload"], "avatars approved": fired["avatar.approve"],
            "avatars rejected": fired["avatar.reject"],
            "avatars overdue": fired["avatar.overdue"],
        },
    }
