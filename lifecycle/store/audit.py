"""Whole-database queries behind `lifecycle check`: the ledger invariants of SPEC §6."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby

from sqlalchemy import Connection, and_, func, select

from lifecycle.store.tables import aggregates, history, ledger

HistoryStep = tuple[int, str, str | None, str]


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken invariant on one aggregate."""

    kind: str
    id: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} {self.id}: {self.rule}: {self.detail}"


def unbalanced_postings(conn: Connection) -> Iterator[Violation]:
    total = func.sum(ledger.c.amount_minor)
    rows = conn.execute(
        select(ledger.c.kind, ledger.c.aggregate_id, ledger.c.seq, ledger.c.posting,
               ledger.c.currency, total.label("total"))
        .group_by(ledger.c.kind, ledger.c.aggregate_id, ledger.c.seq, ledger.c.posting,
                  ledger.c.currency)
        .having(total != 0)
    )
    for r in rows:
        yield Violation(r.kind, r.aggregate_id, "ledger.posting_balances",
                        f"{r.posting} at seq {r.seq} sums to {r.total} minor units of {r.currency}")


def negative_escrow(conn: Connection) -> Iterator[Violation]:
    """Escrow below zero at any point, walking each aggregate's entries in the order written."""
    running = func.sum(ledger.c.amount_minor).over(
        partition_by=(ledger.c.kind, ledger.c.aggregate_id, ledger.c.currency),
        order_by=ledger.c.id,
    )
    walk = (
        select(ledger.c.kind, ledger.c.aggregate_id, ledger.c.seq, running.label("balance"))
        .where(ledger.c.account == "escrow")
        .subquery()
    )
    rows = conn.execute(
        select(walk.c.kind, walk.c.aggregate_id, func.min(walk.c.balance).label("lowest"))
        .where(walk.c.balance < 0)
        .group_by(walk.c.kind, walk.c.aggregate_id)
    )
    for r in rows:
        yield Violation(r.kind, r.aggregate_id, "ledger.escrow_never_negative",
                        f"escrow fell to {r.lowest} minor units")


def refunds_over_paid(conn: Connection) -> Iterator[Violation]:
    """The buyer's account ends positive only if refunds exceeded payments."""
    total = func.sum(ledger.c.amount_minor)
    rows = conn.execute(
        select(ledger.c.kind, ledger.c.aggregate_id, total.label("total"))
        .where(ledger.c.account == "buyer")
        .group_by(ledger.c.kind, ledger.c.aggregate_id)
        .having(total > 0)
    )
    for r in rows:
        yield Violation(r.kind, r.aggregate_id, "ledger.refunds_within_paid",
                        f"refunds exceed payments by {r.total} minor units")


def escrow_left_at(conn: Connection, kind: str, states: Iterable[str]) -> Iterator[Violation]:
    """Aggregates in a terminal state whose escrow is not empty."""
    total = func.sum(ledger.c.amount_minor)
    rows = conn.execute(
        select(aggregates.c.id, aggregates.c.state, total.label("total"))
        .join(ledger, and_(ledger.c.kind == aggregates.c.kind,
                           ledger.c.aggregate_id == aggregates.c.id))
        .where(aggregates.c.kind == kind, aggregates.c.state.in_(list(states)),
               ledger.c.account == "escrow")
        .group_by(aggregates.c.id, aggregates.c.state)
        .having(total != 0)
    )
    for r in rows:
        yield Violation(kind, r.id, "ledger.escrow_empty_at_end",
                        f"{r.state} with {r.total} minor units left in escrow")


def unrefunded_captures(conn: Connection) -> Iterator[Violation]:
    """Captures no order could take whose money has not gone back to the buyer yet."""
    rows = conn.execute(
        select(aggregates.c.id, aggregates.c.data)
        .where(aggregates.c.kind == "unexpected_capture", aggregates.c.state == "refund_pending")
        .order_by(aggregates.c.id)
    )
    for r in rows:
        data = r.data
        yield Violation("unexpected_capture", r.id, "payment.unexpected_capture_refunded",
                        f"{data['amount']} {data['currency']} captured for order {data['order']} "
                        f"({data['reason']}) is not refunded yet")


def histories(conn: Connection) -> Iterator[tuple[str, str, str | None, int, list[HistoryStep]]]:
    """Each aggregate with its history: (kind, id, state, version, [(seq, trigger, source, dest)]).

    History is read in one ordered, streamed pass joined to its aggregate by the database, so
    memory stays flat however many aggregates there are; an aggregate with no history, or
    history with no aggregate (state None), is yielded too, so the caller can report it.
    """
    joined = history.outerjoin(aggregates, and_(aggregates.c.kind == history.c.kind,
                                                aggregates.c.id == history.c.aggregate_id))
    rows = conn.execution_options(stream_results=True, yield_per=5000).execute(
        select(history.c.kind, history.c.aggregate_id, history.c.seq, history.c.trigger,
               history.c.source, history.c.dest, aggregates.c.state, aggregates.c.version)
        .select_from(joined)
        .order_by(history.c.kind, history.c.aggregate_id, history.c.seq)
    )
    for (kind, id), group in groupby(rows, key=lambda r: (r.kind, r.aggregate_id)):
        steps = list(group)
        state, version = steps[0].state, steps[0].version or 0
        yield kind, id, state, version, [(r.seq, r.trigger, r.source, r.dest) for r in steps]
    without_history = select(aggregates.c.kind, aggregates.c.id, aggregates.c.state,
                             aggregates.c.version).where(
        ~select(history.c.seq).where(history.c.kind == aggregates.c.kind,
                                     history.c.aggregate_id == aggregates.c.id).exists()
    )
    for kind, id, state, version in conn.execute(without_history):
        yield kind, id, state, version, []
