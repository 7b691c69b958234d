"""What a simulation run is asked to do: its size, its seed, how people behave, what goes wrong.

Everything here is plain data that round-trips through JSON, because a run stores its config in
the database so that ``resume`` continues exactly the run that was started.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from lifecycle import InvalidPayload

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,19}$")


def _probability(owner: str, name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InvalidPayload(f"{owner}.{name}", f"is a probability from 0 to 1, got {value!r}")


@dataclass(frozen=True)
class Faults:
    """Failures injected into a run. Probabilities (0 to 1) per call, message or trigger.

    ``decline``, ``timeout`` (the provider acted, the reply was lost), ``timeout_unprocessed``
    (the request never arrived) and ``error`` (a server error) apply to every sandbox gateway and
    carrier call; ``duplicate`` and ``late`` to payment callbacks and carrier pushes; ``conflict``
    makes an actor fire from a stale read, as if another process had written in between.
    """

    decline: float = 0.0
    timeout: float = 0.0
    timeout_unprocessed: float = 0.0
    error: float = 0.0
    duplicate: float = 0.0
    late: float = 0.0
    conflict: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            _probability("faults", f.name, getattr(self, f.name))
        if self.decline + self.timeout + self.timeout_unprocessed + self.error > 1:
            raise InvalidPayload("faults", "decline + timeout + timeout_unprocessed + error exceed 1")

    @classmethod
    def parse(cls, spec: str | None) -> Faults:
        """``"decline=0.02,timeout=0.01,duplicate=0.05,conflict=0.01"`` → `Faults`."""
        if spec is None or not spec.strip():
            return cls()
        known = {f.name for f in fields(cls)}
        values: dict[str, float] = {}
        for part in spec.split(","):
            name, sep, number = part.strip().partition("=")
            name = name.strip()
            if not sep or name not in known:
                raise InvalidPayload("faults", f"{part.strip()!r} is not NAME=RATE with NAME one of "
                                               f"{', '.join(sorted(known))}")
            try:
                values[name] = float(number)
            except ValueError:
                raise InvalidPayload("faults", f"{name}={number!r}: the rate is a number") from None
        return cls(**values)

    def spec(self) -> str:
        """The inverse of `parse`: only the faults that are on."""
        return ",".join(f"{f.name}={getattr(self, f.name):g}" for f in fields(self)
                        if getattr(self, f.name))

    @property
    def any(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True)
class Behaviour:
    """How the simulated sellers, buyers, operators and carriers behave: probabilities (0 to 1).

    Choices that share a group are shares of one draw (the order's fate, a cancel request's
    answer, a dispute's path); what they leave over goes to the group's ordinary case.
    """

    # sellers
    self_employed: float = 0.01  # applies as self-employed: refused at registration
    rejected: float = 0.15  # documents rejected at the first review
    gives_up: float = 0.25  # of those rejected: closes instead of resubmitting
    never_pays_fee: float = 0.04
    suspended: float = 0.05
    reinstated: float = 0.75  # of those suspended; the operator closes the others
    closes: float = 0.01  # closes the store some time during the run
    renews_fee: float = 0.85  # renews after the annual fee lapses
    runs_coupons: float = 0.5
    coupon_left_in_draft: float = 0.1
    coupon_deactivated: float = 0.25
    coupon_raised: float = 0.3

    # buyers and orders: the order's fate (one draw; the rest confirm or leave it to auto_confirm)
    never_pays: float = 0.04
    cancels_unpaid: float = 0.02
    cancels_paid: float = 0.04
    ships_late: float = 0.02
    disputes_received: float = 0.06
    disputes_not_received: float = 0.03
    disputes_after_completion: float = 0.01
    confirms: float = 0.65  # of the orders left: the buyer confirms receipt
    # details
    uses_coupon: float = 0.3
    claims_without_ordering: float = 0.05
    hosted_checkout: float = 0.3  # pays on the gateway's page; the order learns it by callback
    sample_order: float = 0.03
    cancel_accepted: float = 0.45  # of cancel requests (one draw with cancel_rejected)
    cancel_rejected: float = 0.35  # the rest go unanswered: cancel_request_timeout
    ships_online: float = 0.5
    waybill_typo: float = 0.02  # the seller mistypes an offline waybill first
    disputes_lost_parcel: float = 0.8  # opens not_received on a lost or returned parcel

    # disputes: the path (one draw; the rest: the seller accepts the claim)
    seller_silent: float = 0.08  # seller_response_timeout
    offer_accepted: float = 0.22
    offer_rejected_escalated: float = 0.12
    offer_rejected_recountered: float = 0.06
    offer_ignored: float = 0.07  # negotiation_timeout
    seller_escalates: float = 0.05
    withdraws: float = 0.12
    asks_return: float = 0.3  # a received claim asks to send the goods back
    offers_return: float = 0.3  # a counter-offer asks for the goods back
    ships_return: float = 0.85  # else return_timeout
    arbitrate_refund: float = 0.4  # of arbitrations (one draw with arbitrate_return)
    arbitrate_return: float = 0.3  # the rest: no_refund

    # carriers (sandbox tracking timelines and pushes)
    tracking_delay: float = 0.08
    customs_hold: float = 0.05
    lost: float = 0.02
    returned: float = 0.02
    missed_pickup: float = 0.03
    late_push: float = 0.05

    # the seller's account (issue #20, SPEC §12)
    staff: float = 0.3  # an open store creates sub-accounts: a shipper and a dispute answerer
    staff_disabled: float = 0.4  # of those: an operator disables the shipper later
    staff_enabled_again: float = 0.5  # of those disabled: the owner enables it again, else removes it
    violations_minor: float = 0.06  # violations below every threshold (one draw with the next three)
    violations_restricted: float = 0.04  # 12 points: promotion of new listings restricted
    violations_orders_refused: float = 0.03  # 24 points: new orders refused
    violations_suspended: float = 0.02  # 48 points: the store suspended
    appeals: float = 0.5  # of violations: the seller appeals
    appeal_overturned: float = 0.4  # of appeals: the operator overturns (else upholds)
    leaves_after_violation: float = 0.5  # of stores with minor violations: close once they expire
    redeems_points: float = 0.5  # a store redeems a catalogue item with its points
    redeems_too_much: float = 0.3  # of those: first asks for more than the balance covers
    points_corrected: float = 0.1  # an operator corrects a store's points
    profiles: float = 0.8  # an open store fills in its profile (its email to confirm)
    contact_expires: float = 0.15  # the code is left to expire, then sent again (one draw
    contact_reissued: float = 0.15  # with contact_reissued: a new code asked for at once)
    adds_phone: float = 0.3  # a phone number too, confirmed by SMS
    avatars: float = 0.6  # of profiles: an avatar uploaded for review
    avatar_rejected: float = 0.2  # one draw with avatar_overdue; a rejected seller uploads again
    avatar_overdue: float = 0.15  # the review waits past its deadline (the overdue queue)
    order_messages: float = 0.08  # a buyer writes to the seller about an order (every dispute does)

    def __post_init__(self) -> None:
        for f in fields(self):
            _probability("behaviour", f.name, getattr(self, f.name))
        groups = {
            "order fates": ORDER_FATES,
            "cancel answers": ("cancel_accepted", "cancel_rejected"),
            "dispute paths": DISPUTE_PATHS,
            "arbitration decisions": ("arbitrate_refund", "arbitrate_return"),
            "lost and returned parcels": ("lost", "returned"),
            "onboarding troubles": ("self_employed", "rejected", "never_pays_fee"),
            "store troubles": ("suspended", "closes"),
            "violation levels": ("violations_minor", "violations_restricted",
                                 "violations_orders_refused", "violations_suspended"),
            "contact codes": ("contact_expires", "contact_reissued"),
            "avatar reviews": ("avatar_rejected", "avatar_overdue"),
        }
        for group, names in groups.items():
            if sum(getattr(self, name) for name in names) > 1 + 1e-9:
                raise InvalidPayload("behaviour", f"the {group} ({', '.join(names)}) add up to more than 1")


ORDER_FATES = ("never_pays", "cancels_unpaid", "cancels_paid", "ships_late", "disputes_received",
               "disputes_not_received", "disputes_after_completion")
DISPUTE_PATHS = ("seller_silent", "offer_accepted", "offer_rejected_escalated",
                 "offer_rejected_recountered", "offer_ignored", "seller_escalates", "withdraws")

DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)
MAX_SHARDS = 256


@dataclass(frozen=True)
class Config:
    """One simulation run.

    ``sellers`` onboard over the first day; ``orders`` arrive spread over ``days`` simulated days
    (after a short warm-up while the first stores open); the run then goes on, at most
    ``drain_days`` more, until every order has ended. ``name`` prefixes every id the run creates
    and keys its progress record, so several runs can share a database. ``fee_period_days``
    shortens the annual store fee (so that ``fee_expired`` happens in a short run), and
    ``violation_points_period_days`` the 365 days a violation's penalty points count (so that
    violations expire in one); they apply when `run_on` opens the engine.

    ``shards`` splits the market into that many independent sub-markets (issue #15): seller
    ``k`` and order ``n`` of the run belong to shard ``k % shards`` and ``n % shards``, and each
    shard has its own clock, sandboxes, deadlines and ids (`shards`). The report depends on
    it, never on how many processes run the shards. The default, one shard, is the market as
    it was before shards (sharding costs a small market CPU: docs/simulation.md). ``shard`` is
    set only on a shard's own config.
    """

    sellers: int = 20
    orders: int = 300
    days: int = 90
    seed: int = 0
    faults: Faults = field(default_factory=Faults)
    behaviour: Behaviour = field(default_factory=Behaviour)
    name: str = "sim"
    start: datetime = DEFAULT_START
    tick_minutes: int = 60
    push_every_hours: int = 3
    drain_days: int = 120
    fee_period_days: int | None = None
    violation_points_period_days: int | None = None
    check: bool = True
    shards: int = 1
    shard: int | None = None

    def __post_init__(self) -> None:
        for name, least in (("sellers", 1), ("orders", 0), ("days", 1), ("tick_minutes", 1),
                            ("push_every_hours", 1), ("drain_days", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise InvalidPayload(name, f"is a whole number of at least {least}, got {value!r}")
        if self.sellers > 9999 or self.orders > 9_999_999:
            raise InvalidPayload("size", "at most 9,999 sellers and 9,999,999 orders")
        if 24 * 60 % self.tick_minutes:
            raise InvalidPayload("tick_minutes", "must divide a day")
        if not NAME.fullmatch(self.name):
            raise InvalidPayload("name", "1-20 lower-case letters, digits and hyphens")
        if self.start.tzinfo is None:
            raise InvalidPayload("start", "needs a time zone")
        for name in ("fee_period_days", "violation_points_period_days"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise InvalidPayload(name, f"is a whole number of days, at least one, got {value!r}")
        shards = self.shards
        # A shard's own config keeps the run's shards; its sellers are its share.
        most = MAX_SHARDS if self.shard is not None else min(self.sellers, MAX_SHARDS)
        if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= most:
            raise InvalidPayload("shards", f"is a whole number from 1 to the sellers (at most "
                                           f"{MAX_SHARDS}), got {shards!r}")

    def run_serial(self, n: int) -> int:
        """The number, in the whole run, of this shard's ``n``-th order (ids count within a
        shard): what must not repeat across shards, such as the waybills sellers type in."""
        return n if self.shard is None else n * self.shards + self.shard

    @property
    def label(self) -> str:
        """What the run's (or its shard's) ids start with, and its progress row is named."""
        return self.name if self.shard is None else f"{self.name}-{self.shard}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["start"] = self.start.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        values = dict(data)
        values["faults"] = Faults(**values.get("faults", {}))
        values["behaviour"] = Behaviour(**values.get("behaviour", {}))
        values["start"] = datetime.fromisoformat(values["start"]) if "start" in values else DEFAULT_START
        values.setdefault("shards", 1)  # a run stored before shards was one market
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})
