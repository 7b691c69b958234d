"""Profiles, contacts and avatars (SPEC §12, issue #20): most sellers fill in their profile once
the store opens (name, business card, procurement information, an email to confirm), set their
privacy and email subscriptions, some add a phone; a verification code arrives in a
``notification.*`` event the engine emits, which the market hands here (`notified`): the seller
types it in minutes later, or lets it expire and asks for a new one, or asks for a new one at
once (``reissued``). Some upload an avatar (a small JPEG made with Pillow); an operator takes
it up and approves or rejects it (a rejected seller uploads another), or leaves it past the
24-hour deadline into the overdue queue. A store that closes has its profile closed, which
closes its contacts. A store's avatars are numbered: ``sim-s0001-a1``, ``-a2``."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache

from PIL import Image

from lifecycle import Actor, Aggregate, HistoryEntry
from lifecycle.simulation.vocabulary import Act, Create, Decision, Event, Marketplace, Turn
from lifecycle.simulation.world import AccountPlan, account_plan, number_of

WAITING = ("unverified", "reissued")
RESENDABLE = ("unverified", "reissued", "expired")
INDUSTRIES = ("toys", "apparel", "electronics", "home", "beauty", "tools")

Turning = Callable[[Aggregate | None, str, AccountPlan], Decision]  # (profile, store, plan)


@lru_cache(maxsize=64)
def avatar_jpeg(n: int) -> bytes:
    """A small JPEG for seller ``n``: a square of a colour of its own, the same bytes each run."""
    colour = ((n * 37) % 256, (n * 91) % 256, (n * 53) % 256)
    out = io.BytesIO()
    Image.new("RGB", (48, 48), colour).save(out, format="JPEG", quality=85)
    return out.getvalue()


def contact_store(contact: str) -> str:
    return contact.rpartition(":")[0]


def avatar_id(store: str, k: int) -> str:
    return f"{store}-a{k}"


def avatar_store(avatar: str) -> str:
    return avatar.rsplit("-a", 1)[0]


def upload_of(avatar: str) -> int:
    return int(avatar.rsplit("-a", 1)[1])


class ProfileActors:
    """Sellers keeping their profile, contacts and avatars, and the operators who review
    avatars."""

    kind = "profile"

    def __init__(self, market: Marketplace):
        self.market = market
        self.codes: dict[str, str] = {}  # contact → the latest code sent to it
        self.sent: Counter[str] = Counter()  # contact → codes sent this session
        self._turns: dict[str, Turning] = {
            "create": self._create, "privacy": self._privacy,
            "subscriptions": self._subscriptions, "phone": self._phone, "close": self._close,
        }

    def plan(self, store: str) -> AccountPlan:
        m = self.market
        return account_plan(m.seed, m.behaviour, number_of(store))

    # --- reacting -------------------------------------------------------------------------

    def watch(self, event: Event, at: datetime) -> None:
        """A store opened (its profile to fill in) or closed (its profile closed)."""
        m, store, seq = self.market, event["aggregate_id"], event["seq"]
        if event["trigger"] == "complete_profile" and self.plan(store).profile:
            m.later("profile", store, "create", seq, 1, 24, at)
        elif event["dest"] == "closed" and event["source"] != "closed":
            m.later("profile", store, "close", seq, 24, 72, at)

    def notified(self, event: Event, at: datetime) -> None:
        """A notification the engine emitted: a verification code is read from it."""
        notice = event["payload"]
        code = notice["values"].get("code")
        if code is None or notice["about"]["kind"] != "contact":
            return
        contact, m = notice["about"]["id"], self.market
        self.codes[contact] = str(code)
        self.sent[contact] += 1
        seq, first = notice["about"]["seq"], self.sent[contact] == 1
        way = self.plan(contact_store(contact)).contact if contact.endswith(":email") else "confirms"
        if first and way == "reissued":
            m.later("contact", contact, "resend", seq, 0.05, 0.15, at)
        elif not (first and way == "expires"):  # left to expire, then sent again
            m.later("contact", contact, "confirm", seq, 0.08, 0.3, at)

    def on_event(self, event: Event, at: datetime) -> None:
        kind, trigger, seq = event["kind"], event["trigger"], event["seq"]
        m, id = self.market, event["aggregate_id"]
        if kind == "profile" and trigger == "create":
            plan = self.plan(id)
            m.later("profile", id, "privacy", seq, 24, 72, at)
            m.later("profile", id, "subscriptions", seq, 48, 120, at)
            if plan.phone:
                m.later("profile", id, "phone", seq, 72, 144, at)
            if plan.avatar != "none":
                m.later("profile", id, "avatar:1", seq, 24, 96, at)
        elif kind == "contact" and trigger == "expire":
            m.later("contact", id, "resend", seq, 2, 24, at)
        elif kind == "avatar":
            self._avatar_moved(event, at)

    def _avatar_moved(self, event: Event, at: datetime) -> None:
        m, id, trigger, seq = self.market, event["aggregate_id"], event["trigger"], event["seq"]
        store, k = avatar_store(id), upload_of(id)
        late = self.plan(store).avatar == "overdue" and k == 1  # nobody takes it up in time
        if trigger == "upload" and not late:
            m.later("avatar", id, "review", seq, 1, 12, at)
        elif trigger in ("review", "overdue"):
            m.later("avatar", id, "decide", seq, 2, 20, at)
        elif trigger == "reject":
            m.later("profile", store, f"avatar:{k + 1}", seq, 24, 72, at)

    def resume(self, aggregate: Aggregate, history: list[HistoryEntry]) -> None:
        m = self.market
        if aggregate.kind == "contact" and aggregate.state in RESENDABLE:
            m.later("contact", aggregate.id, "resend", aggregate.version, 0.1, 2)
        elif aggregate.kind == "avatar" and aggregate.state not in ("approved", "rejected"):
            purpose = "review" if aggregate.state == "submitted" else "decide"
            m.later("avatar", aggregate.id, purpose, aggregate.version, 1, 12)

    # --- deciding -------------------------------------------------------------------------

    def decide(self, aggregate: Aggregate | None, turn: Turn) -> Decision:
        if turn.kind == "contact":
            return self._contact(aggregate, turn.purpose)
        if turn.kind == "avatar":
            return self._review(aggregate, turn.purpose)
        purpose, _, k = turn.purpose.partition(":")
        if purpose == "avatar":
            return self._upload(aggregate, turn.id, int(k))
        known = self._turns.get(purpose)
        if known is None or (aggregate is not None and aggregate.state != "active"):
            return None
        return known(aggregate, turn.id, self.plan(turn.id))

    def _create(self, profile: Aggregate | None, store: str, plan: AccountPlan) -> Decision:
        if profile is not None:
            return None
        n = number_of(store)
        return Create("profile", store, Actor("seller", store), {
            "name": f"Owner {n}", "gender": ("female", "male", "other", "undisclosed")[n % 4],
            "email": f"owner{n}@{store}.example",
            "business_card": {"company": f"Store {n} Trading Co.", "job_title": "Owner"},
            "company_profile": f"Store {n} sells to buyers in many countries.",
            "procurement": {"industry": INDUSTRIES[n % len(INDUSTRIES)],
                            "preferences": ["samples first"], "frequency": "monthly"}})

    def _privacy(self, profile: Aggregate | None, store: str, plan: AccountPlan) -> Decision:
        if profile is None:
            return None
        level = "nobody" if number_of(store) % 2 else "all_users"
        return Act("set_privacy", Actor("seller", store), {"personal": level})

    def _subscriptions(self, profile: Aggregate | None, store: str, plan: AccountPlan) -> Decision:
        if profile is None:
            return None
        return Act("set_subscriptions", Actor("seller", store),
                   {"business_opportunities": number_of(store) % 3 == 0})

    def _phone(self, profile: Aggregate | None, store: str, plan: AccountPlan) -> Decision:
        if profile is None:
            return None
        return Act("update", Actor("seller", store),
                   {"phone": f"+4420794609{number_of(store) % 100:02d}"})

    def _upload(self, profile: Aggregate | None, store: str, k: int) -> Decision:
        """The seller uploads avatar ``k`` (a JPEG of its own colour): not a trigger the
        turn fires, but `Engine.upload_avatar`, which checks the bytes."""
        if profile is not None and profile.state == "active":
            self.market.upload_avatar(avatar_id(store, k), Actor("seller", store),
                                      avatar_jpeg(number_of(store) + k))
        return None

    def _close(self, profile: Aggregate | None, store: str, plan: AccountPlan) -> Decision:
        if profile is None:
            return None
        return Act("close", self.market.operator, {})

    def _contact(self, contact: Aggregate | None, purpose: str) -> Decision:
        if contact is None:
            return None
        owner = Actor("seller", contact.data["seller"])
        code = self.codes.get(contact.id)
        if purpose == "confirm" and contact.state in WAITING:
            if code is None:  # sent before a restart: ask again
                return Act("resend", owner)
            return Act("confirm", owner, {"code": code})
        if purpose == "resend" and contact.state in RESENDABLE:
            return Act("resend", owner)
        return None

    def _review(self, avatar: Aggregate | None, purpose: str) -> Decision:
        if avatar is None:
            return None
        m = self.market
        if purpose == "review" and avatar.state == "submitted":
            return Act("review", m.operator)
        if purpose == "decide" and avatar.state in ("under_review", "overdue"):
            store = avatar_store(avatar.id)
            if self.plan(store).avatar == "rejected" and upload_of(avatar.id) == 1:
                return Act("reject", m.operator, {"reason": "the picture is not of the seller"})
            return Act("approve", m.operator)
        return None
