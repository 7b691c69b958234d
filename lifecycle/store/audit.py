"""Whole-database queries behind `lifecycle check`: the ledger invariants of SPEC §6, and every
history with its aggregate for the replay. A part of `Recorder`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from sqlalchemy import and_, bindparam, func, literal_column, select

from lifecycle.store.statements import Statement, Statements
from lifecycle.store.tables import aggregates, history, ledger

HistoryStep = tuple[int, str, str | None, str, int]  # seq, trigger, source, dest, machine version

_ZERO: Any = literal_column("0")
_total: Any = func.sum(ledger.c.amount_minor)


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken invariant on one aggregate."""

    kind: str
    id: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} {self.id}: {self.rule}: {self.detail}"


def _escrow_walk() -> Any:
    """Each escrow entry with the balance after it, in the order written."""
    running = func.sum(ledger.c.amount_minor).over(
        partition_by=(ledger.c.kind, ledger.c.aggregate_id, ledger.c.currency),
        order_by=ledger.c.id,
    )
    return (select(ledger.c.kind, ledger.c.aggregate_id, ledger.c.seq, running.label("balance"))
            .where(ledger.c.account == literal_column("'escrow'"))
            .subquery())


_walk = _escrow_walk()


class AuditQueries(Statements):
    """Reads over the whole database, for `Engine.check`."""

    UNBALANCED = Statement(
        select(ledger.c.kind, ledger.c.aggregate_id, ledger.c.seq, ledger.c.posting,
               ledger.c.currency, _total.label("total"))
        .group_by(ledger.c.kind, ledger.c.aggregate_id, ledger.c.seq, ledger.c.posting,
                  ledger.c.currency)
        .having(_total != _ZERO))

    def unbalanced_postings(self) -> Iterator[Violation]:
        self.cur.execute(self.UNBALANCED)
        for kind, id, seq, posting, currency, total in self.cur.fetchall():
            yield Violation(kind, id, "ledger.posting_balances",
                            f"{posting} at seq {seq} sums to {total} minor units of {currency}")

    NEGATIVE_ESCROW = Statement(
        select(_walk.c.kind, _walk.c.aggregate_id, func.min(_walk.c.balance).label("lowest"))
        .where(_walk.c.balance < _ZERO)
        .group_by(_walk.c.kind, _walk.c.aggregate_id))

    def negative_escrow(self) -> Iterator[Violation]:
        """Escrow below zero at any point, walking each aggregate's entries in the order written."""
        self.cur.execute(self.NEGATIVE_ESCROW)
        for kind, id, lowest in self.cur.fetchall():
            yield Violation(kind, id, "ledger.escrow_never_negative",
                            f"escrow fell to {lowest} minor units")

    REFUNDS_OVER_PAID = Statement(
        select(ledger.c.kind, ledger.c.aggregate_id, _total.label("total"))
        .where(ledger.c.account == literal_column("'buyer'"))
        .group_by(ledger.c.kind, ledger.c.aggregate_id)
        .having(_total > _ZERO))

    def refunds_over_paid(self) -> Iterator[Violation]:
        """The buyer's account ends positive only if refunds exceeded payments."""
        self.cur.execute(self.REFUNDS_OVER_PAID)
        for kind, id, total in self.cur.fetchall():
            yield Violation(kind, id, "ledger.refunds_within_paid",
                            f"refunds exceed payments by {total} minor units")

    def escrow_left_at(self, kind: str, states: Iterable[str]) -> Iterator[Violation]:
        """Aggregates in a terminal state whose escrow is not empty."""
        names = list(states)
        sql = self.variant(("escrow_left_at", len(names)), lambda: _escrow_left_at(len(names)))
        self.cur.execute(sql, {"kind": kind, **{f"state_{n}": s for n, s in enumerate(names)}})
        for id, state, total in self.cur.fetchall():
            yield Violation(kind, id, "ledger.escrow_empty_at_end",
                            f"{state} with {total} minor units left in escrow")

    UNREFUNDED_CAPTURES = Statement(
        select(aggregates.c.id, aggregates.c.data)
        .where(aggregates.c.kind == literal_column("'unexpected_capture'"),
               aggregates.c.state == literal_column("'refund_pending'"))
        .order_by(aggregates.c.id))

    def unrefunded_captures(self) -> Iterator[Violation]:
        """Captures no order could take whose money has not gone back to the buyer yet."""
        self.cur.execute(self.UNREFUNDED_CAPTURES)
        for id, data in self.cur.fetchall():
            data = self.loads(data)
            yield Violation("unexpected_capture", id, "payment.unexpected_capture_refunded",
                            f"{data['amount']} {data['currency']} captured for order "
                            f"{data['order']} ({data['reason']}) is not refunded yet")

    # Violations and penalties (SPEC §12): the states whose points count, as the violation
    # machine names them.
    STANDINGS = Statement(
        select(aggregates.c.id, aggregates.c.data)
        .where(aggregates.c.kind == literal_column("'standing'"))
        .order_by(aggregates.c.id))
    ACTIVE_VIOLATIONS = Statement(
        select(aggregates.c.id, aggregates.c.data)
        .where(aggregates.c.kind == literal_column("'violation'"),
               aggregates.c.state.in_([literal_column("'recorded'"), literal_column("'appealed'"),
                                       literal_column("'final'")])))

    def penalty_points_drift(self) -> Iterator[Violation]:
        """A store's standing holds exactly its active violations and the sum of their points."""
        active: dict[str, dict[str, int]] = defaultdict(dict)
        self.cur.execute(self.ACTIVE_VIOLATIONS)
        for id, data in self.cur.fetchall():
            data = self.loads(data)
            active[data["seller"]][id] = int(data["points"])
        self.cur.execute(self.STANDINGS)
        for seller, data in self.cur.fetchall():
            data = self.loads(data)
            held = {id: int(v["points"]) for id, v in data.get("violations", {}).items()}
            actual = active.pop(seller, {})
            if held != actual or data.get("points") != sum(actual.values()):
                yield Violation("standing", seller, "penalty.points_match_violations",
                                f"holds {data.get('points')} points from {sorted(held)}; its "
                                f"active violations {sorted(actual)} carry "
                                f"{sum(actual.values())}")
        for seller, actual in sorted(active.items()):
            yield Violation("standing", seller, "penalty.points_match_violations",
                            f"no standing, though its active violations {sorted(actual)} carry "
                            f"{sum(actual.values())} points")

    HISTORIES = Statement(
        select(history.c.kind, history.c.aggregate_id, history.c.seq, history.c.trigger,
               history.c.source, history.c.dest, history.c.machine_version, aggregates.c.state,
               aggregates.c.version, aggregates.c.machine_version)
        .select_from(history.outerjoin(aggregates, and_(
            aggregates.c.kind == history.c.kind, aggregates.c.id == history.c.aggregate_id)))
        .order_by(history.c.kind, history.c.aggregate_id, history.c.seq))
    WITHOUT_HISTORY = Statement(
        select(aggregates.c.kind, aggregates.c.id, aggregates.c.state, aggregates.c.version,
               aggregates.c.machine_version).where(
            ~select(history.c.seq).where(history.c.kind == aggregates.c.kind,
                                         history.c.aggregate_id == aggregates.c.id).exists()))

    def histories(self) -> Iterator[tuple[str, str, str | None, int, int, list[HistoryStep]]]:
        """Each aggregate with its history: (kind, id, state, version, machine version,
        [(seq, trigger, source, dest, machine version)]).

        History is read in one ordered, streamed pass joined to its aggregate by the database,
        so memory stays flat however many aggregates there are; an aggregate with no history,
        or history with no aggregate (state None), is yielded too, so the caller can report it.
        """
        rows = self.stream(self.HISTORIES)
        for (kind, id), group in groupby(rows, key=lambda r: (r[0], r[1])):
            steps = list(group)
            state, version, machine_version = steps[0][7], steps[0][8] or 0, steps[0][9] or 0
            yield kind, id, state, version, machine_version, [
                (seq, t, s, d, v) for _k, _i, seq, t, s, d, v, *_ in steps]
        self.cur.execute(self.WITHOUT_HISTORY)
        for kind, id, state, version, machine_version in self.cur.fetchall():
            yield kind, id, state, version, machine_version, []

    def stream(self, sql: str) -> Iterator[tuple[Any, ...]]:
        """The rows of a long read, in batches rather than all at once: each dialect's recorder
        says how (a server-side cursor on PostgreSQL)."""
        raise NotImplementedError


def _escrow_left_at(states: int) -> Any:
    return (
        select(aggregates.c.id, aggregates.c.state, _total.label("total"))
        .join(ledger, and_(ledger.c.kind == aggregates.c.kind,
                           ledger.c.aggregate_id == aggregates.c.id))
        .where(aggregates.c.kind == bindparam("kind"),
               aggregates.c.state.in_([bindparam(f"state_{n}") for n in range(states)]),
               ledger.c.account == literal_column("'escrow'"))
        .group_by(aggregates.c.id, aggregates.c.state)
        .having(_total != _ZERO)
    )


# --- the points centre (SPEC §12) -----------------------------------------------------------

_POINTS_KIND: Any = literal_column("'points_account'")
_POINTS_UNIT: Any = literal_column("'PTS'")


def points_violations(records: AuditQueries) -> Iterator[Violation]:
    """The points ledger's invariants: no seller's points balance below zero at any point
    (its entries walked in the order written), and no rewarded action (a paid order, an
    answered quotation) earned twice. That each points posting balances is
    `AuditQueries.unbalanced_postings`'s, as for money."""
    records.cur.execute(records.variant(("points", "negative"), _negative_points))
    for id, lowest in records.cur.fetchall():
        yield Violation("points_account", id, "points.never_negative",
                        f"the points balance fell to {lowest}")
    earned: dict[tuple[str, str], str] = {}
    for id, seq, payload in records.stream(records.variant(("points", "earnings"), _earnings)):
        body = records.loads(payload)
        action = (str(body.get("reason")), str(body.get("reference")))
        if action in earned:
            yield Violation("points_account", id, "points.earned_once",
                            f"{action[0]} {action[1]} earned again at seq {seq} (first on "
                            f"points account {earned[action]})")
        else:
            earned[action] = id


def _negative_points() -> Any:
    running = func.sum(ledger.c.amount_minor).over(
        partition_by=ledger.c.aggregate_id, order_by=ledger.c.id)
    walk = (select(ledger.c.aggregate_id, running.label("balance"))
            .where(ledger.c.kind == _POINTS_KIND, ledger.c.currency == _POINTS_UNIT,
                   ledger.c.account == literal_column("'points'"))
            .subquery())
    return (select(walk.c.aggregate_id, func.min(walk.c.balance))
            .where(walk.c.balance < _ZERO)
            .group_by(walk.c.aggregate_id)
            .order_by(walk.c.aggregate_id))


def _earnings() -> Any:
    return (select(history.c.aggregate_id, history.c.seq, history.c.payload)
            .where(history.c.kind == _POINTS_KIND,
                   history.c.trigger == literal_column("'earn'"))
            .order_by(history.c.at, history.c.aggregate_id, history.c.seq))
