"""The ledger table: a transition's postings, and an aggregate's balances and entries. A part
of `Recorder`."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from sqlalchemy import bindparam, insert, select

from lifecycle.ledger import Posting, from_units, to_units
from lifecycle.store.repository import values_of
from lifecycle.store.statements import Statement, Statements
from lifecycle.store.tables import ledger

_of_aggregate = (ledger.c.kind == bindparam("kind")) & (ledger.c.aggregate_id == bindparam("id"))


class LedgerRecords(Statements):
    """Statements on the ledger table."""

    POST = Statement(insert(ledger).values(values_of(ledger, "id")))

    def post(self, kind: str, id: str, seq: int, posting: Posting, now: datetime) -> None:
        if not posting.entries:
            return
        at = self.moment(now)
        self.cur.executemany(self.POST, [
            {
                "kind": kind, "aggregate_id": id, "seq": seq, "posting": posting.kind,
                "account": account, "amount_minor": to_units(amount, posting.currency),
                "currency": posting.currency, "at": at,
            }
            for account, amount in posting.entries
        ])

    BALANCES = Statement(select(ledger.c.currency, ledger.c.account, ledger.c.amount_minor)
                         .where(_of_aggregate))

    def balances(self, kind: str, id: str) -> dict[str, dict[str, Decimal]]:
        """Balance per currency and account of one aggregate."""
        self.cur.execute(self.BALANCES, {"kind": kind, "id": id})
        minor: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for currency, account, amount_minor in self.cur.fetchall():
            minor[currency][account] += amount_minor
        return {
            currency: {account: from_units(units, currency) for account, units in accounts.items()}
            for currency, accounts in minor.items()
        }

    ENTRIES = Statement(select(ledger.c.seq, ledger.c.posting, ledger.c.account,
                               ledger.c.amount_minor, ledger.c.currency)
                        .where(_of_aggregate).order_by(ledger.c.id))

    def entries(self, kind: str, id: str) -> list[tuple[int, str, str, Decimal, str]]:
        """(seq, posting, account, amount, currency) in the order they were written."""
        self.cur.execute(self.ENTRIES, {"kind": kind, "id": id})
        return [(seq, posting, account, from_units(amount_minor, currency), currency)
                for seq, posting, account, amount_minor, currency in self.cur.fetchall()]
