"""Statements on the ledger table."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection, select

from lifecycle.ledger import Posting
from lifecycle.money import from_minor, to_minor
from lifecycle.store.hot import cursor
from lifecycle.store.tables import ledger


def post(conn: Connection, kind: str, id: str, seq: int, posting: Posting, now: datetime) -> None:
    if not posting.entries:
        return
    hot, cur = cursor(conn)
    at = hot.moment(now)
    cur.executemany(hot.sql["post"], [
        {
            "kind": kind, "aggregate_id": id, "seq": seq, "posting": posting.kind,
            "account": account, "amount_minor": to_minor(amount, posting.currency),
            "currency": posting.currency, "at": at,
        }
        for account, amount in posting.entries
    ])


def balances(conn: Connection, kind: str, id: str) -> dict[str, dict[str, Decimal]]:
    """Balance per currency and account of one aggregate."""
    rows = conn.execute(
        select(ledger.c.currency, ledger.c.account, ledger.c.amount_minor)
        .where(ledger.c.kind == kind, ledger.c.aggregate_id == id)
    )
    minor: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        minor[row.currency][row.account] += row.amount_minor
    return {
        currency: {account: from_minor(units, currency) for account, units in accounts.items()}
        for currency, accounts in minor.items()
    }


def entries(conn: Connection, kind: str, id: str) -> list[tuple[int, str, str, Decimal, str]]:
    """(seq, posting, account, amount, currency) in the order they were written."""
    rows = conn.execute(
        select(ledger.c.seq, ledger.c.posting, ledger.c.account, ledger.c.amount_minor,
               ledger.c.currency)
        .where(ledger.c.kind == kind, ledger.c.aggregate_id == id)
        .order_by(ledger.c.id)
    )
    return [(r.seq, r.posting, r.account, from_minor(r.amount_minor, r.currency), r.currency)
            for r in rows]
