"""A seller's profile (SPEC §12, issue #20): kind ``profile``, its id the seller's.

Personal information (name, gender, email, mobile phone), business information (business
card, procurement information, company profile), the privacy level of the personal and of the
procurement information, and the email subscriptions. A profile belongs to a registered
seller: one for an unknown seller is refused (``profile.seller_registered``).

The email and phone are written only by a confirmed `contact` (``apply_contact``): a create or
update that names one sends a code to it and leaves the profile's address as it was. The
avatar shown is the last one an operator approved (``show_avatar``, from the `avatar` machine).
Who sees what of a profile is `lifecycle.machines.privacy`'s to say.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from lifecycle.machines.contact import CHANNELS, contact_id
from lifecycle.machines.contact_points import Email, Phone
from lifecycle.machines.definition import (
    Context,
    Create,
    Fire,
    Guard,
    MachineDefinition,
    Transition,
    sends,
)
from lifecycle.machines.payloads import Code, Empty, LongText, Payload, Text, dump, iso

SELLER, OPERATOR, SYSTEM = frozenset({"seller"}), frozenset({"operator"}), frozenset({"system"})
PEOPLE = SELLER | OPERATOR

#: who may see a section of a profile (SPEC §12)
LEVELS = ("all_users", "certified_suppliers", "nobody")
Level = Literal["all_users", "certified_suppliers", "nobody"]
#: the sections that have a level, and the fields each holds
PERSONAL = ("name", "gender", "email", "phone")
PROCUREMENT = "procurement"
DEFAULT_PRIVACY = {"personal": "certified_suppliers", "procurement": "certified_suppliers"}
GENDERS = ("female", "male", "other", "undisclosed")
FREQUENCIES = ("weekly", "monthly", "quarterly", "yearly", "occasionally")


class BusinessCard(Payload):
    company: Text | None = None
    job_title: Text | None = None
    address: LongText | None = None
    website: Text | None = None


class Procurement(Payload):
    industry: Text | None = None
    preferences: Annotated[list[Text], Field(max_length=50)] | None = None
    frequency: Literal["weekly", "monthly", "quarterly", "yearly", "occasionally"] | None = None


class Privacy(Payload):
    personal: Level | None = None
    procurement: Level | None = None


class Subscriptions(Payload):
    membership_services: bool | None = None
    notifications: bool | None = None
    business_opportunities: bool | None = None


class ProfileDetails(Payload):
    """What ``update`` changes: only the fields given."""

    name: Text | None = None
    gender: Literal["female", "male", "other", "undisclosed"] | None = None
    email: Email | None = None  # takes effect once confirmed (`contact`)
    phone: Phone | None = None  # E.164 once checked; takes effect once confirmed
    business_card: BusinessCard | None = None
    company_profile: Annotated[str, Field(min_length=1, max_length=5000)] | None = None
    procurement: Procurement | None = None


class NewProfile(ProfileDetails):
    name: Text
    privacy: Privacy | None = None
    subscriptions: Subscriptions | None = None


class ContactConfirmed(Payload):
    """Written by a contact's ``confirm``; never sent by a caller."""

    channel: Literal["email", "phone"]
    address: str


class AvatarShown(Payload):
    """Written by an avatar's ``approve``; never sent by a caller."""

    avatar: Code


# --- rules --------------------------------------------------------------------------------


def _seller_registered(ctx: Context) -> bool:
    return ctx.load("seller", ctx.id) is not None


SELLER_REGISTERED = Guard("profile.seller_registered", _seller_registered,
                          "a profile belongs to a registered seller: register the seller first",
                          uses_payload=False)


# --- effects ------------------------------------------------------------------------------


@sends(("contact", "request"), ("contact", "change"))
def _create(ctx: Context) -> None:
    given = dump(ctx.payload)
    ctx.data.update(seller=ctx.id, privacy=dict(DEFAULT_PRIVACY),
                    subscriptions={"membership_services": True, "notifications": True,
                                   "business_opportunities": True},
                    created_at=iso(ctx.now))
    _merge(ctx, given)


@sends(("contact", "request"), ("contact", "change"))
def _update(ctx: Context) -> None:
    _merge(ctx, dump(ctx.payload))
    ctx.data["updated_at"] = iso(ctx.now)


def _merge(ctx: Context, given: dict[str, Any]) -> None:
    """The fields given, over what the profile holds; an email or phone goes to its contact
    to be confirmed instead (unless it is the one already confirmed)."""
    for channel in CHANNELS:
        address = given.pop(channel, None)
        if address is not None and address != ctx.data.get(channel):
            _ask_to_confirm(ctx, channel, address)
    for section in ("privacy", "subscriptions", "business_card", "procurement"):
        if section in given:  # a section's fields not given stay as they were
            ctx.data[section] = {**(ctx.data.get(section) or {}), **given.pop(section)}
    ctx.data.update(given)


def _ask_to_confirm(ctx: Context, channel: str, address: str) -> None:
    id = contact_id(ctx.id, channel)
    request = {"seller": ctx.id, "channel": channel, "address": address}
    if ctx.load("contact", id) is None:
        ctx.follow_ups.append(Create("contact", id, request))
    else:
        ctx.follow_ups.append(Fire("contact", id, "change", request))


def _set(section: str) -> Any:
    def set_section(ctx: Context) -> None:
        ctx.data[section] = {**ctx.data[section], **dump(ctx.payload)}
        ctx.data["updated_at"] = iso(ctx.now)

    set_section.__name__ = f"_set_{section}"
    return set_section


def _apply_contact(ctx: Context) -> None:
    ctx.data[ctx.payload.channel] = ctx.payload.address
    ctx.data[f"{ctx.payload.channel}_verified_at"] = iso(ctx.now)


def _show_avatar(ctx: Context) -> None:
    ctx.data["avatar"] = {"id": ctx.payload.avatar, "approved_at": iso(ctx.now)}


@sends(("contact", "close"))
def _close(ctx: Context) -> None:
    ctx.data["closed_at"] = iso(ctx.now)
    for channel in CHANNELS:
        id = contact_id(ctx.id, channel)
        contact = ctx.load("contact", id)
        if contact is not None and contact.state != "closed":
            ctx.follow_ups.append(Fire("contact", id, "close", {}))


DEFINITION = MachineDefinition(
    "profile",
    states=("active", "closed"),
    terminal=frozenset({"closed"}),
    owners={"seller": lambda id, data: id},
    new_id=lambda actor: actor.id,  # a seller's profile has the seller's id
    transitions=(
        Transition("create", (), "active", SELLER, NewProfile, (SELLER_REGISTERED,), _create),
        Transition("update", ("active",), "active", PEOPLE, ProfileDetails, (), _update),
        Transition("set_privacy", ("active",), "active", PEOPLE, Privacy, (), _set("privacy")),
        Transition("set_subscriptions", ("active",), "active", PEOPLE, Subscriptions, (),
                   _set("subscriptions")),
        Transition("apply_contact", ("active",), "active", SYSTEM, ContactConfirmed, (),
                   _apply_contact, internal=True),
        Transition("show_avatar", ("active",), "active", SYSTEM, AvatarShown, (), _show_avatar,
                   internal=True),
        Transition("close", ("active",), "closed", PEOPLE, Empty, (), _close),
    ),
)
