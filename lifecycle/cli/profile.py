"""``lifecycle profile …`` and ``lifecycle avatar …``: the seller's profile, its contacts and
its avatar (SPEC §12, issue #20; docs/account-profile.md)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import click

import lifecycle
from lifecycle import Actor
from lifecycle.cli import output, payloads
from lifecycle.cli.actions import (
    NOTE,
    Action,
    Field,
    action_command,
    actor_for,
    build_payload,
    common_params,
    fire,
    offers,
    report,
)
from lifecycle.cli.options import as_option, either, json_option, operator_actor
from lifecycle.cli.reading import View, field, history_command, list_command, reading_commands
from lifecycle.cli.session import BadUsage, Noun, Session, pass_session

LEVELS = list(lifecycle.PRIVACY_LEVELS)
FREQUENCIES = list(lifecycle.PROCUREMENT_FREQUENCIES)
GENDERS = payloads.choices("profile", "update", "gender")
ON_OFF = click.Choice(["on", "off"])

DETAIL_FIELDS = (
    Field("--name", "name", "The person's name."),
    Field("--gender", "gender", f"{either(GENDERS)}.", type=click.Choice(GENDERS)),
    Field("--email", "email", "An email address: takes effect once its code is confirmed."),
    Field("--phone", "phone", "A mobile number with its country code (+44 20 7946 0958): "
                              "takes effect once its code is confirmed."),
    Field("--card-company", "business_card.company", "Business card: the company."),
    Field("--card-title", "business_card.job_title", "Business card: the job title."),
    Field("--card-address", "business_card.address", "Business card: the address."),
    Field("--card-website", "business_card.website", "Business card: the website."),
    Field("--company-profile", "company_profile", "The company profile, as text."),
    Field("--industry", "procurement.industry", "Procurement: the industry."),
    Field("--preference", "procurement.preferences",
          "Procurement: a preference (repeat the option).", multiple=True, metavar="TEXT"),
    Field("--frequency", "procurement.frequency", f"Procurement: {either(FREQUENCIES)}.",
          type=click.Choice(FREQUENCIES)),
)
PRIVACY_FIELDS = (
    Field("--personal", "privacy.personal", f"Who sees the personal information: {either(LEVELS)}.",
          type=click.Choice(LEVELS)),
    Field("--procurement", "privacy.procurement",
          f"Who sees the procurement information: {either(LEVELS)}.", type=click.Choice(LEVELS)),
)
SUBSCRIPTION_FIELDS = tuple(
    Field(f"--{name.replace('_', '-')}", name, f"Emails about {name.replace('_', ' ')}: on or off.",
          type=ON_OFF, convert=lambda value: value == "on")
    for name in ("membership_services", "notifications", "business_opportunities")
)


def _unnested(fields: tuple[Field, ...], prefix: str) -> tuple[Field, ...]:
    """The same options for a trigger whose payload is the section itself."""
    return tuple(replace(f, path=f.path.removeprefix(prefix)) for f in fields)


ACTIONS = (
    Action("update", "profile", "update",
           "Change the profile's personal or business information (only the fields given).",
           DETAIL_FIELDS, self_acting=True),
    Action("privacy", "profile", "set_privacy",
           "Set who sees the personal and the procurement information.",
           _unnested(PRIVACY_FIELDS, "privacy."), self_acting=True),
    Action("subscriptions", "profile", "set_subscriptions",
           "Choose which kinds of email the account receives (account security always goes).",
           SUBSCRIPTION_FIELDS, self_acting=True),
    Action("close", "profile", "close", "Close the profile for good.", (NOTE,), self_acting=True),
)


def create_command() -> click.Command:
    fields = (*(f if f.option != "--name" else Field("--name", "name", f.help, required=True)
                for f in DETAIL_FIELDS), *PRIVACY_FIELDS)

    def run(session: Session, id: str, actor: str | None, payload: str | None, key: str | None,
            as_json: bool, **values: Any) -> None:
        body = build_payload(fields, payload, values)
        who = actor_for("profile", "create", actor, id, self_acting=True)
        created = session.engine.create("profile", who, body, id=id, idempotency_key=key)
        report(created, as_json)

    offers("profile", "create", "profile create ID")
    return click.Command(
        "create",
        params=[click.Argument(["id"], metavar="SELLER"), *(f.param() for f in fields),
                *common_params("profile", "create", self_acting=True, create=True)],
        callback=pass_session(run),
        help="Create the profile of the registered seller SELLER. An email or phone given is "
             "sent a code and takes effect once confirmed (profile contact confirm).\n\n"
             "Fires create as seller:SELLER.",
        short_help="Create a seller's profile",
    )


def show_command() -> click.Command:
    @click.command("show")
    @click.argument("seller", metavar="SELLER")
    @as_option("Who reads, as ROLE:ID: the owner and operators see everything, a certified "
               "supplier what its levels allow them, anyone else what all users may see. "
               "Default: operator:$USER.")
    @click.option("--anonymous", is_flag=True, help="Read as nobody in particular (all users).")
    @json_option
    @pass_session
    def show(session: Session, seller: str, actor: str | None, anonymous: bool,
             as_json: bool) -> None:
        """The seller's profile as the reader may see it: its privacy levels applied."""
        if anonymous and actor is not None:
            raise BadUsage("--anonymous and --as: say one reader")
        reader = None if anonymous else operator_actor(actor)
        shown = session.engine.profile(seller, reader)
        if as_json:
            output.echo_json(shown)
            return
        output.echo(profile_text(shown))

    return show


def profile_text(shown: dict[str, Any]) -> str:
    hidden = set(shown["hidden"])
    lines = [f"profile {shown['seller']}",
             *output.pairs([("state", shown["state"]), ("as", shown["reader"])])]
    personal = shown["personal"] or {}
    lines += ["personal", *(output.pairs([("hidden", "not visible to this reader")])
                            if "personal" in hidden else output.pairs(personal.items()))]
    business = shown["business"]
    card = business["business_card"] or {}
    lines += ["business", *output.pairs([*((f"card {k}", v) for k, v in card.items()),
                                         ("company profile", business["company_profile"])])]
    procurement = shown["procurement"] or {}
    lines += ["procurement", *(output.pairs([("hidden", "not visible to this reader")])
                               if "procurement" in hidden else
                               output.pairs((k, output.short(v) if isinstance(v, list) else v)
                                            for k, v in procurement.items()) or ["  -"])]
    avatar = shown["avatar"]
    lines += output.pairs([("avatar", f"{avatar['id']} (approved {output.stamp(avatar['approved_at'])})"
                            if avatar else None)], indent="")
    for section in ("privacy", "subscriptions"):
        if section in shown:
            values = {k: ("on" if v is True else "off" if v is False else v)
                      for k, v in (shown[section] or {}).items()}
            lines += [section, *output.pairs(values.items())]
    return "\n".join(lines)


# --- contacts: an email or phone confirmed with a code ------------------------------------------


def _contact(seller: str, email: bool, phone: bool) -> tuple[str, str]:
    """(the seller, the contact's id) from ``SELLER --email``, ``SELLER --phone`` or the
    contact's own id, ``SELLER:email`` (what a refusal's list of commands names)."""
    if ":" in seller:
        seller, _, named = seller.rpartition(":")
        if named not in ("email", "phone") or (email and named != "email") or (
                phone and named != "phone"):
            raise BadUsage(f"{seller}:{named} is no contact: SELLER:email or SELLER:phone")
        return seller, lifecycle.contact_id(seller, named)
    if email == phone:
        raise BadUsage("say which contact: --email or --phone (or SELLER:email, SELLER:phone)")
    return seller, lifecycle.contact_id(seller, "email" if email else "phone")


@click.group(cls=Noun)
def contact() -> None:
    """The profile's email and phone: a new one takes effect once its code is confirmed."""


@contact.command("change")
@click.argument("seller", metavar="SELLER")
@click.option("--email", default=None, help="The new email address.")
@click.option("--phone", default=None, help="The new mobile number, with its country code.")
@as_option("Who acts (seller or operator), as ROLE:ID. Default: seller:SELLER.")
@json_option
@pass_session
def change(session: Session, seller: str, email: str | None, phone: str | None,
           actor: str | None, as_json: bool) -> None:
    """Give a new email or phone: a code is sent to it (the notification outbox), and it takes
    effect on the profile once confirmed. Fires update on the profile SELLER."""
    if (email is None) == (phone is None):
        raise BadUsage("give one of --email or --phone")
    body = {"email": email} if email is not None else {"phone": phone}
    who = Actor.parse(actor) if actor and ":" in actor else Actor("seller", actor or seller)
    fire(session.engine, "profile", seller, "update", who, body, None, None)
    channel = "email" if email is not None else "phone"
    report(session.engine.get("contact", lifecycle.contact_id(seller, channel)), as_json,
           "; a code was sent")


@contact.command("confirm")
@click.argument("seller", metavar="SELLER")
@click.option("--email", "email", is_flag=True, help="Confirm the email.")
@click.option("--phone", "phone", is_flag=True, help="Confirm the phone.")
@click.option("--code", required=True, help="The six-digit code the message carried.")
@as_option("Who confirms, as ROLE:ID. Default: seller:SELLER.")
@json_option
@pass_session
def confirm(session: Session, seller: str, email: bool, phone: bool, code: str,
            actor: str | None, as_json: bool) -> None:
    """Confirm a new email or phone with its code: the profile takes it. SELLER may be the
    contact's id, SELLER:email or SELLER:phone, instead of a flag. Fires confirm on it."""
    seller, id = _contact(seller, email, phone)
    who = Actor.parse(actor) if actor and ":" in actor else Actor("seller", actor or seller)
    report(fire(session.engine, "contact", id, "confirm", who, {"code": code}, None, None),
           as_json)


@contact.command("resend")
@click.argument("seller", metavar="SELLER")
@click.option("--email", "email", is_flag=True, help="Send the email's code again.")
@click.option("--phone", "phone", is_flag=True, help="Send the phone's code again.")
@click.option("--note", default=None, help="A note kept in the history with the transition.")
@as_option("Who asks (seller or operator), as ROLE:ID. Default: seller:SELLER.")
@json_option
@pass_session
def resend(session: Session, seller: str, email: bool, phone: bool, note: str | None,
           actor: str | None, as_json: bool) -> None:
    """Send a new code to the address waiting to be confirmed (the old code stops working).
    SELLER may be the contact's id (SELLER:email). Fires resend on it."""
    seller, id = _contact(seller, email, phone)
    who = Actor.parse(actor) if actor and ":" in actor else Actor("seller", actor or seller)
    body = {"note": note} if note is not None else {}
    report(fire(session.engine, "contact", id, "resend", who, body, None, None), as_json)


for _trigger in ("confirm", "resend"):  # ID: the contact's, SELLER:email
    offers("contact", _trigger, f"profile contact {_trigger} ID")

PROFILE_VIEW = View(
    kind="profile", noun="profile", created="created_at",
    details=(("name", field("name")),),
    columns=(("name", field("name")), ("email", field("email")), ("phone", field("phone"))),
)


@click.group(cls=Noun)
def profile() -> None:
    """The seller's profile: personal and business information, privacy, subscriptions."""


profile.add_command(create_command())
for _action in ACTIONS:
    profile.add_command(action_command(_action))
profile.add_command(show_command())
profile.add_command(contact)
profile.add_command(list_command(PROFILE_VIEW))
profile.add_command(history_command(PROFILE_VIEW))


# --- avatars ----------------------------------------------------------------------------------

AVATAR_VIEW = View(
    kind="avatar", noun="avatar", created="submitted_at",
    details=(("seller", field("seller")), ("size", field("size")), ("width", field("width")),
             ("height", field("height")), ("sha256", field("sha256")),
             ("submitted", field("submitted_at")), ("reviewer", field("reviewer")),
             ("overdue since", field("overdue_at")), ("approved", field("approved_at")),
             ("rejected for", field("rejection_reason"))),
    columns=(("seller", field("seller")), ("size", field("size")),
             ("submitted", field("submitted_at"))),
    filters=("seller",),
)

AVATAR_ACTIONS = (
    Action("review", "avatar", "review", "Take the avatar up for review.", (NOTE,)),
    Action("approve", "avatar", "approve", "Approve the avatar: the profile shows it.", (NOTE,)),
    Action("reject", "avatar", "reject", "Refuse the avatar, saying why.",
           (Field("--reason", "reason", "Why.", required=True),)),
)


@click.command("upload")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--as", "actor", required=True, metavar="ROLE:ID",
              help="The seller whose avatar it is: seller:ID or a bare ID.")
@json_option
@pass_session
def upload(session: Session, file: Path, actor: str, as_json: bool) -> None:
    """Upload FILE as the seller's new avatar, for an operator's review: a JPEG (the bytes are
    checked, not the name) of at most the policy's avatar_max_bytes (3 MB)."""
    who = actor_for("avatar", "upload", actor)
    size, limit = file.stat().st_size, session.engine.policy.avatar_max_bytes
    if size > limit:  # refused before the file is read
        raise lifecycle.InvalidPayload("image", f"is {size} bytes; an avatar is at most {limit} "
                                                "bytes (policy avatar_max_bytes)")
    report(session.engine.upload_avatar(who, file.read_bytes()), as_json)


offers("avatar", "upload", "avatar upload FILE")


@click.command("image")
@click.argument("id")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the JPEG.")
@as_option("Who reads, as ROLE:ID: anyone but its seller and operators gets an approved one "
           "only. Default: operator:$USER.")
@pass_session
def image(session: Session, id: str, out: Path, actor: str | None) -> None:
    """Write the avatar ID's image to a file."""
    data = session.engine.avatar_image(id, operator_actor(actor))
    out.write_bytes(data)
    output.echo(f"wrote {len(data)} bytes to {out}")


@click.group(cls=Noun)
def avatar() -> None:
    """Avatars: uploaded by a seller, reviewed by an operator; only an approved one is shown."""


avatar.add_command(upload)
for _action in AVATAR_ACTIONS:
    avatar.add_command(action_command(_action))
avatar.add_command(image)
for _command in reading_commands(AVATAR_VIEW):
    avatar.add_command(_command)
