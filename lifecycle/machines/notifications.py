"""Notifications a transition asks for (SPEC §12, issue #20), and the email subscription centre
they respect.

An effect calls `notify`; when the recipient's subscriptions let the message through, a
`Notify` follow-up is appended and the pipeline writes it to the outbox as a
``notification.email`` (or ``notification.sms``) event in the transition's own transaction: a
notification service reads it like any event (the relay, `Engine.events`, a durable
subscription) and sends it. Nothing here sends anything.

The categories a person may switch off are the subscription centre's three; account-security
messages (verification codes) are always sent, whatever the subscriptions say.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lifecycle.errors import DefinitionError
from lifecycle.machines.definition import Context, Notify

#: the email subscription centre: the kinds of message an account may switch off
SUBSCRIBABLE = ("membership_services", "notifications", "business_opportunities")
#: messages about the account's own security (verification codes): never switched off
ACCOUNT_SECURITY = "account_security"
CATEGORIES = (*SUBSCRIBABLE, ACCOUNT_SECURITY)
CHANNELS = ("email", "sms")
#: what an account receives before it says otherwise: everything
DEFAULT_SUBSCRIPTIONS: Mapping[str, bool] = dict.fromkeys(SUBSCRIBABLE, True)


def notify(ctx: Context, *, account: str, category: str, template: str,
           values: Mapping[str, Any] | None = None, channel: str = "email",
           address: str | None = None, role: str = "seller") -> bool:
    """Ask for a message to ``role`` ``account`` about ``category`` (one of `CATEGORIES`),
    rendered from ``template`` with ``values``, by ``channel`` (email or sms). Whether it was
    asked for: False when the account switched ``category`` off in its profile's
    subscriptions (account security is never off).

    ``address``: where to send it; by default the verified email (or phone, for sms) on the
    account's profile, None when it has none (the notification service then looks it up
    elsewhere or drops it). ``values`` must be JSON-able: they travel in the event's payload.
    """
    if category not in CATEGORIES:
        raise DefinitionError(f"notification category {category!r} is not one of "
                              f"{', '.join(CATEGORIES)}")
    if channel not in CHANNELS:
        raise DefinitionError(f"notification channel {channel!r} is not one of {', '.join(CHANNELS)}")
    profile = ctx.load("profile", account) if role == "seller" else None
    data: Mapping[str, Any] = profile.data if profile is not None else {}
    if category != ACCOUNT_SECURITY and not subscribed(data, category):
        return False
    if address is None:
        address = data.get("email" if channel == "email" else "phone")
    ctx.follow_ups.append(Notify(role, account, channel, address, category, template,
                                 dict(values or {})))
    return True


def subscribed(profile_data: Mapping[str, Any], category: str) -> bool:
    """Whether a profile's subscriptions let ``category`` through (on unless switched off)."""
    if category == ACCOUNT_SECURITY:
        return True
    subscriptions = profile_data.get("subscriptions") or DEFAULT_SUBSCRIPTIONS
    return bool(subscriptions.get(category, True))
