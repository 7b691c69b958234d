"""Sub-accounts (SPEC §12): a store's staff, each acting within the permissions its owner gave.

The owner (``seller:acme``) creates the sub-account ``acme:ana`` with permissions from a closed
list, changes them, disables and re-enables it, and removes it; an operator may disable one for
support (a staff login that leaked). ``active ⇄ disabled → removed``.

The sub-account acts as ``seller:acme/ana`` (`lifecycle.actor`): as its store for ownership,
under its own id in history. Its aggregate id is ``acme:ana``, not ``acme/ana``: an id with a
``/`` cannot sit in one segment of an HTTP path (Starlette decodes ``%2F`` before it routes), and
``:`` is how other composed ids are written already (a voucher is ``<coupon>:<buyer>``).

`refusal` is what the trigger path asks before a sub-account's action (`lifecycle.pipeline`):
the sub-account must exist and be active (read in the trigger's own transaction, so disabling
one takes effect on its very next action), and the trigger must be one its permissions cover.
A trigger `COVERED_BY` does not name is the owner's alone: the account's own machines (the
seller's onboarding, the sub-accounts themselves, a profile, points) and any kind added later.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field

from lifecycle.actor import Actor
from lifecycle.errors import InvalidPayload
from lifecycle.machines.definition import Aggregate, Context, Guard, MachineDefinition, Transition
from lifecycle.machines.payloads import Empty, Payload, iso

KIND = "subaccount"
SELLER, OPERATOR = frozenset({"seller"}), frozenset({"seller", "operator"})

#: the closed list of what an owner may grant, and what each lets a sub-account do
PERMISSIONS: Mapping[str, str] = {
    "ship_orders": "ship orders",
    "answer_disputes": "answer disputes",
    "manage_coupons": "manage coupons",
    "view_money": "view money",
}
Permission = Literal["ship_orders", "answer_disputes", "manage_coupons", "view_money"]

#: which permission covers each seller trigger of the order, dispute, coupon and voucher
#: machines; every (kind, trigger) not here is the owner's alone
COVERED_BY: Mapping[tuple[str, str], str] = {
    # The shipping of an order: booking the carrier's pickup, handing it over, or shipping it
    # by a carrier of one's own with its tracking number.
    ("order", "book_pickup"): "ship_orders",
    ("order", "confirm_pickup"): "ship_orders",
    ("order", "ship_offline"): "ship_orders",
    # Every seller move in a dispute.
    ("dispute", "accept_claim"): "answer_disputes",
    ("dispute", "counter_offer"): "answer_disputes",
    ("dispute", "escalate"): "answer_disputes",
    ("dispute", "confirm_return_received"): "answer_disputes",
    # A coupon from its definition to its withdrawal.
    ("coupon", "create"): "manage_coupons",
    ("coupon", "activate"): "manage_coupons",
    ("coupon", "raise"): "manage_coupons",
    ("coupon", "lower"): "manage_coupons",
    ("coupon", "deactivate"): "manage_coupons",
    # A voucher has no seller trigger: its order and its coupon move it.
}
#: seller triggers of those machines kept for the owner on purpose (not merely unlisted):
#: answering a buyer's cancellation request decides whether the buyer's money goes back
OWNER_ONLY: frozenset[tuple[str, str]] = frozenset({
    ("order", "accept_cancel"),
    ("order", "reject_cancel"),
})

#: order data that tells what the store received and was paid out: left out for a sub-account
#: without view_money, with the ledger (the order's terms, its lines and total, stay: shipping
#: and answering disputes need them)
MONEY_FIELDS: Mapping[str, tuple[str, ...]] = {
    "order": ("amount_paid", "refunded", "commission", "payout", "payment_ref", "payout_ref"),
}


def subaccount_id(store: str, name: str) -> str:
    """The aggregate id of the store's sub-account ``name``: ``acme:ana``."""
    return f"{store}:{name}"


def id_of_actor(actor: Actor) -> str:
    """The aggregate id of the sub-account ``actor`` is (``seller:acme/ana`` → ``acme:ana``)."""
    assert actor.sub is not None
    return subaccount_id(actor.id, actor.sub)


def id_from_text(text: str) -> str:
    """``acme/ana`` or ``acme:ana`` (how people write a sub-account) → ``acme:ana``."""
    if "/" in text:
        actor = Actor("seller", text)
        return id_of_actor(actor)
    return text


def refusal(actor: Actor, kind: str, trigger: str, account: Aggregate | None) -> str | None:
    """Why the sub-account ``actor`` may not fire ``trigger`` on a ``kind`` (its aggregate
    ``account``, read in the same transaction), or None when it may."""
    inactive = _inactive(actor, account)
    if inactive is not None:
        return inactive
    assert account is not None
    needed = COVERED_BY.get((kind, trigger))
    if needed is None:
        return f"only the store's owner ({actor.role}:{actor.id}) may {trigger} a {kind}"
    granted = account.data.get("permissions", [])
    if needed in granted:
        return None
    return f"{PERMISSIONS[needed]} needs the {needed} permission; {_its(granted)}"


def money_refusal(actor: Actor, account: Aggregate | None) -> str | None:
    """Why ``actor`` may not see a store's money, or None when it may (owners, operators and
    the system always may; a sub-account with view_money while it is active)."""
    if actor.sub is None:
        return None
    inactive = _inactive(actor, account)
    if inactive is not None:
        return inactive
    assert account is not None
    granted = account.data.get("permissions", [])
    if "view_money" in granted:
        return None
    return f"viewing money needs the view_money permission; {_its(granted)}"


def _inactive(actor: Actor, account: Aggregate | None) -> str | None:
    if account is None:
        return f"there is no sub-account {actor.acting_id}"
    if account.state != "active":
        return f"sub-account {actor.acting_id} is {account.state}"
    return None


def _its(granted: list[str]) -> str:
    return f"its permissions are {', '.join(granted)}" if granted else "it has no permissions"


# --- the machine ----------------------------------------------------------------------------


class Permissions(Payload):
    permissions: Annotated[list[Permission], Field(max_length=20)]


def _store_and_name(id: str) -> tuple[str, str]:
    store, sep, name = id.rpartition(":")
    if not sep or not store:
        raise InvalidPayload("id", f"{id!r} is not STORE:NAME (for example acme:ana)")
    Actor("seller", store, name)  # the actor it will act as must be a valid one
    return store, name


def _new_id(actor: Actor) -> str:
    """A name made up when the owner gives none (``acme:u1a2b3c4d``); usually it names one."""
    return subaccount_id(actor.id, f"u{uuid.uuid4().hex[:8]}")


def _store_exists(ctx: Context) -> bool:
    return ctx.load("seller", _store_and_name(ctx.id)[0]) is not None


def _create(ctx: Context) -> None:
    store, name = _store_and_name(ctx.id)
    ctx.data.update(seller=store, name=name, created_by=str(ctx.actor), created_at=iso(ctx.now))
    _grant(ctx)


def _grant(ctx: Context) -> None:
    ctx.data["permissions"] = sorted(set(ctx.payload.permissions))
    ctx.data["permissions_changed_at"] = iso(ctx.now)


def _stamp(field_name: str) -> Any:
    def stamp(ctx: Context) -> None:
        ctx.data[field_name] = iso(ctx.now)
        ctx.data[f"{field_name[:-3]}_by"] = str(ctx.actor)

    return stamp


STORE_EXISTS = Guard("subaccount.store_exists", _store_exists,
                     "a sub-account belongs to a store registered on the platform")

LIVE = ("active", "disabled")

DEFINITION = MachineDefinition(
    KIND,
    states=("active", "disabled", "removed"),
    terminal=frozenset({"removed"}),
    owners={"seller": lambda id, data: data["seller"]},
    new_id=_new_id,
    transitions=(
        Transition("create", (), "active", SELLER, Permissions, (STORE_EXISTS,), _create),
        Transition("set_permissions", LIVE, None, SELLER, Permissions, (), _grant),
        # An operator may disable one for support (a leaked staff login); only the owner
        # gives it back its use.
        Transition("disable", ("active",), "disabled", OPERATOR, Empty, (), _stamp("disabled_at")),
        Transition("enable", ("disabled",), "active", SELLER, Empty, (), _stamp("enabled_at")),
        Transition("remove", LIVE, "removed", SELLER, Empty, (), _stamp("removed_at")),
    ),
)
