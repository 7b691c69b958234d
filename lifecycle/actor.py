"""Who fires a trigger: a role and an id, and for a seller's staff the sub-account acting.

``seller:acme/ana`` is the sub-account ``ana`` of the store ``acme`` (SPEC §12): it acts as its
store for ownership (``id`` is ``acme``: the store's orders are its orders), and history, events
and refusals name it by ``acting_id`` (``acme/ana``). Only sellers have sub-accounts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lifecycle.errors import InvalidPayload
from lifecycle.ids import identifier

ROLES = ("buyer", "seller", "operator", "system")
#: what separates a store from its sub-account in an actor id (``acme/ana``)
SUB_SEPARATOR = "/"
#: a sub-account's own name: short, and nothing a URL, a shell or an id separator would mangle
SUB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
# 100, not the 200 an aggregate id may have: ids are built from actor ids (a voucher is
# "<coupon id>:<buyer id>").
ACTOR_ID_LIMIT = 100


@dataclass(frozen=True, slots=True)
class Actor:
    """``Actor("buyer", "b-1")``. Buyers and sellers act only on what is theirs.

    ``Actor("seller", "acme", "ana")`` (or ``Actor("seller", "acme/ana")``, the same actor) is
    the store acme's sub-account ana: ``id`` stays the store's, ``sub`` names the staff member.
    """

    role: str
    id: str
    sub: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise InvalidPayload("actor.role", f"{self.role!r} is not one of {', '.join(ROLES)}")
        identifier(self.id, "actor.id", limit=ACTOR_ID_LIMIT)
        if self.sub is None and SUB_SEPARATOR in self.id:
            store, _, sub = self.id.partition(SUB_SEPARATOR)
            # A frozen dataclass: the one place its fields are set after __init__.
            object.__setattr__(self, "id", store)
            object.__setattr__(self, "sub", sub)
        if self.sub is not None:
            self._check_sub()

    def _check_sub(self) -> None:
        if self.role != "seller":
            raise InvalidPayload("actor", f"{self.role}:{self.id}{SUB_SEPARATOR}{self.sub} names "
                                          "a sub-account, and only sellers have sub-accounts")
        if not self.id or SUB_SEPARATOR in self.id:
            raise InvalidPayload("actor.id", "a sub-account needs its store, one id with no "
                                             f"{SUB_SEPARATOR}, before the {SUB_SEPARATOR} "
                                             "(seller:acme/ana)")
        if not isinstance(self.sub, str) or not SUB_NAME.fullmatch(self.sub):
            raise InvalidPayload("actor.sub", f"{self.sub!r} is not a sub-account name (1 to 40 "
                                              "letters, digits, _ . -, starting with a letter "
                                              "or digit)")
        if len(self.acting_id) > ACTOR_ID_LIMIT:
            raise InvalidPayload("actor.id", f"must be at most {ACTOR_ID_LIMIT} characters, got "
                                             f"{len(self.acting_id)}")

    @property
    def acting_id(self) -> str:
        """The id history, events and refusals record: ``acme/ana`` for a sub-account, else
        ``id``."""
        return self.id if self.sub is None else f"{self.id}{SUB_SEPARATOR}{self.sub}"

    @property
    def owner(self) -> Actor:
        """The account itself: the store a sub-account belongs to, or this actor."""
        return self if self.sub is None else Actor(self.role, self.id)

    @classmethod
    def parse(cls, text: str) -> Actor:
        """``"buyer:b-1"`` → ``Actor("buyer", "b-1")``; ``"seller:acme/ana"`` → the store
        acme's sub-account ana."""
        role, sep, id = text.partition(":")
        if not sep:
            raise InvalidPayload("actor", f"{text!r} is not ROLE:ID (for example buyer:b-1)")
        return cls(role, id)

    def __str__(self) -> str:
        return f"{self.role}:{self.acting_id}"
