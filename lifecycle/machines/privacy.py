"""Who sees what of a profile (SPEC §12, issue #20): the one rule every read of a profile goes
through (`Engine.profile`, ``lifecycle profile show``, ``GET /v1/profiles/{id}/view``).

The personal information (name, gender, email, phone) and the procurement information each
have a level: ``all_users``, ``certified_suppliers`` or ``nobody``. The profile's owner (the
seller) and operators (and the system) see everything, levels and subscriptions included. A
*certified supplier* is another seller whose onboarding has passed authentication and is in
good standing: its seller aggregate is ``authenticated``, ``fee_paid``, ``active`` or
``fee_expired`` (not ``registered``, ``under_review``, ``authentication_rejected``,
``suspended`` or ``closed``). Everyone else — buyers, sellers not certified, anonymous
readers — sees only what is visible to all users. The business card, the company profile and
the approved avatar are the supplier's page: visible to all.
"""

from __future__ import annotations

from typing import Any

from lifecycle.actor import Actor
from lifecycle.machines.definition import Aggregate
from lifecycle.machines.profile import DEFAULT_PRIVACY, PERSONAL, PROCUREMENT

#: the seller states of a certified supplier (authentication passed, not suspended or closed)
CERTIFIED_STATES = frozenset({"authenticated", "fee_paid", "active", "fee_expired"})
#: kinds whose data no reader but the owner and operators may read whole (the generic reads
#: refuse the others): a profile's hidden fields, a contact's address
PRIVATE_KINDS = frozenset({"profile", "contact"})


def is_certified(seller: Aggregate | None) -> bool:
    """Whether a seller aggregate is a certified supplier's."""
    return seller is not None and seller.kind == "seller" and seller.state in CERTIFIED_STATES


def sees_everything(profile_id: str, reader: Actor | None) -> bool:
    """The owner, operators and the system."""
    if reader is None:
        return False
    return reader.role in ("operator", "system") or (reader.role == "seller"
                                                     and reader.id == profile_id)


def visible(level: str, reader_certified: bool) -> bool:
    """Whether a section at ``level`` shows to a reader who is not its owner or an operator."""
    return level == "all_users" or (level == "certified_suppliers" and reader_certified)


def profile_view(profile: Aggregate, reader: Actor | None,
                 reader_certified: bool) -> dict[str, Any]:
    """The profile as ``reader`` may see it: every section, a hidden one as None and named in
    ``hidden``. ``avatar`` is the last approved avatar (None when none is): a newer upload is
    not shown until an operator approves it."""
    data = profile.data
    everything = sees_everything(profile.id, reader)
    privacy = {**DEFAULT_PRIVACY, **data.get("privacy", {})}
    shown: dict[str, Any] = {
        "seller": profile.id,
        "state": profile.state,
        "reader": "anonymous" if reader is None else str(reader),
        "personal": {name: data.get(name) for name in PERSONAL},
        "business": {"business_card": data.get("business_card"),
                     "company_profile": data.get("company_profile")},
        "procurement": data.get(PROCUREMENT),
        "avatar": dict(data["avatar"]) if data.get("avatar") else None,
        "hidden": [],
    }
    if everything:
        shown["privacy"] = privacy
        shown["subscriptions"] = data.get("subscriptions")
        return shown
    for section in ("personal", "procurement"):
        if not visible(privacy[section], reader_certified):
            shown[section] = None
            shown["hidden"].append(section)
    return shown
