"""Double-entry postings (SPEC §6). Each posting moves money between the accounts of one
aggregate and balances to zero by construction.

Sign convention: an entry adds its amount to its account. ``buyer`` and ``coupon_subsidy`` go
negative as money comes in from outside; ``escrow`` must never go negative; at a terminal order
state it is zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from lifecycle import money
from lifecycle.money import exponent

ACCOUNTS = ("buyer", "escrow", "seller", "platform_fee", "coupon_subsidy")

# The points centre (SPEC §12) keeps its double-entry ledger in the same table, in a unit of its
# own: whole points under the code ``PTS``, which is no ISO 4217 currency, so no order or fee
# can be priced in it (`money.exponent` refuses it) and no money view adds it to money.
POINTS = "PTS"
POINTS_ACCOUNTS = ("points", "points_issued", "points_redeemed", "points_forfeited")


@dataclass(frozen=True, slots=True)
class Posting:
    """One movement of money: ``kind`` names it (payment, refund, payout, ...)."""

    kind: str
    currency: str
    entries: tuple[tuple[str, Decimal], ...]

    def __post_init__(self) -> None:
        known = POINTS_ACCOUNTS if self.currency == POINTS else ACCOUNTS
        for account, _amount in self.entries:
            if account not in known:
                raise ValueError(f"unknown ledger account {account!r}")
        if sum((amount for _account, amount in self.entries), Decimal(0)) != 0:
            raise ValueError(f"{self.kind} posting does not balance: {self.entries}")


def transfer(kind: str, currency: str, *moves: tuple[str, str, Decimal]) -> Posting:
    """A posting from (from_account, to_account, amount) moves; zero moves are left out."""
    entries: list[tuple[str, Decimal]] = []
    for source, dest, amount in moves:
        if amount < 0:
            raise ValueError(f"{kind}: negative move {amount} from {source} to {dest}")
        if amount:
            entries += [(source, -amount), (dest, amount)]
    return Posting(kind, currency, tuple(entries))


def round_to(amount: Decimal, currency: str) -> Decimal:
    """Round half-even to the currency's minor unit."""
    return amount.quantize(Decimal(1).scaleb(-exponent(currency)), rounding=ROUND_HALF_EVEN)


def to_units(amount: Decimal, currency: str) -> int:
    """What the ledger table stores: minor units of a currency, or whole points."""
    return int(amount) if currency == POINTS else money.to_minor(amount, currency)


def from_units(units: int, currency: str) -> Decimal:
    """Back from what the ledger table stores (`to_units`)."""
    return Decimal(units) if currency == POINTS else money.from_minor(units, currency)
