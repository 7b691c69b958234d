"""Who fires a trigger: a role and an id."""

from __future__ import annotations

from dataclasses import dataclass

from lifecycle.errors import InvalidPayload
from lifecycle.ids import identifier

ROLES = ("buyer", "seller", "operator", "system")


@dataclass(frozen=True, slots=True)
class Actor:
    """``Actor("buyer", "b-1")``. Buyers and sellers act only on what is theirs."""

    role: str
    id: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise InvalidPayload("actor.role", f"{self.role!r} is not one of {', '.join(ROLES)}")
        # 100, not the 200 an aggregate id may have: ids are built from actor ids (a voucher is
        # "<coupon id>:<buyer id>").
        identifier(self.id, "actor.id", limit=100)

    @classmethod
    def parse(cls, text: str) -> Actor:
        """``"buyer:b-1"`` → ``Actor("buyer", "b-1")``."""
        role, sep, id = text.partition(":")
        if not sep:
            raise InvalidPayload("actor", f"{text!r} is not ROLE:ID (for example buyer:b-1)")
        return cls(role, id)

    def __str__(self) -> str:
        return f"{self.role}:{self.id}"
