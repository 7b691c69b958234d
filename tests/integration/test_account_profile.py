"""The seller's profile and avatar (SPEC §12, issue #20): one test per rule, each refusal its
own error with nothing written; privacy on every door (library, CLI, HTTP)."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image
from starlette.exceptions import StarletteDeprecationWarning

import lifecycle
from lifecycle import Actor, Engine, SimulatedClock
from lifecycle.cli import cli
from lifecycle.service import create_app
from tests.builders import DOCUMENTS, OPERATOR, REGISTRATION, rows, seller

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

ACME, RIVAL, NEWCOMER = seller("acme"), seller("rival"), seller("newcomer")
BUYER = Actor("buyer", "b-1")
EMAIL_CONTACT = lifecycle.contact_id("acme", "email")
PHONE_CONTACT = lifecycle.contact_id("acme", "phone")


# --- arranging ------------------------------------------------------------------------------


def jpeg(size: tuple[int, int] = (16, 16), colour: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG")
    return buffer.getvalue()


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "blue").save(buffer, "PNG")
    return buffer.getvalue()


def register(engine: Engine, who: Actor, *, certified: bool = False) -> None:
    engine.create("seller", who, REGISTRATION)
    if certified:
        engine.fire("seller", who.id, "submit_documents", who, DOCUMENTS)
        engine.fire("seller", who.id, "approve", OPERATOR)


def acme_profile(engine: Engine, **fields: Any) -> lifecycle.Aggregate:
    register(engine, ACME)
    return engine.create("profile", ACME, {"name": "Ana Li", **fields})


def notifications(engine: Engine) -> list[dict[str, Any]]:
    """Every notification in the outbox, as a notification service reads them."""
    return [e.body for e in engine.events(limit=10_000) if e.kind == "notification"]


def code_for(engine: Engine, contact: str) -> str:
    """The last code sent for ``contact``, from its notification event."""
    sent = [n for n in notifications(engine) if n["payload"]["about"]["id"] == contact]
    assert sent, f"no code was sent for {contact}"
    return str(sent[-1]["payload"]["values"]["code"])


# --- personal information: email and phone --------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [("email", "ana.example.com"), ("email", "ana@"),
                                              ("phone", "12345"), ("phone", "+44 20 1"),
                                              ("phone", "call me")])
def test_an_invalid_email_or_phone_is_refused_naming_the_field(
    engine: Engine, field: str, value: str
) -> None:
    register(engine, ACME)
    counts = rows(engine)

    with pytest.raises(lifecycle.InvalidPayload) as refused:
        engine.create("profile", ACME, {"name": "Ana", field: value})

    assert refused.value.field == field
    assert rows(engine) == counts


def test_an_invalid_email_in_an_update_writes_nothing(engine: Engine) -> None:
    before = acme_profile(engine)
    counts = rows(engine)

    with pytest.raises(lifecycle.InvalidPayload) as refused:
        engine.fire("profile", "acme", "update", ACME, {"email": "not-an-address"})

    assert refused.value.field == "email"
    assert rows(engine) == counts
    assert engine.get("profile", "acme") == before


def test_a_profile_for_an_unknown_seller_is_refused(engine: Engine) -> None:
    with pytest.raises(lifecycle.GuardFailed) as refused:
        engine.create("profile", seller("ghost"), {"name": "Nobody"})

    assert refused.value.rule == "profile.seller_registered"
    assert rows(engine)["aggregates"] == 0


def test_a_new_email_takes_effect_only_once_confirmed_with_the_code_sent(engine: Engine) -> None:
    acme_profile(engine, email="Ana@Example.COM")

    assert "email" not in engine.get("profile", "acme").data  # not before it is confirmed
    [sent] = notifications(engine)
    assert sent["name"] == "notification.email"
    assert sent["payload"]["address"] == "Ana@example.com"  # the domain normalised
    assert sent["payload"]["category"] == "account_security"
    code = sent["payload"]["values"]["code"]
    contact = engine.get("contact", EMAIL_CONTACT)
    assert contact.state == "unverified"
    assert code not in json.dumps(contact.data)  # only its salted digest is kept
    assert len(contact.data["code_sha256"]) == 64

    engine.fire("contact", EMAIL_CONTACT, "confirm", ACME, {"code": code})

    assert engine.get("profile", "acme").data["email"] == "Ana@example.com"
    assert engine.get("contact", EMAIL_CONTACT).state == "verified"


def test_a_phone_is_kept_as_e164_once_confirmed_by_the_code_sent_by_sms(engine: Engine) -> None:
    acme_profile(engine, phone="+44 20 7946 0958")
    [sent] = notifications(engine)
    assert (sent["name"], sent["payload"]["address"]) == ("notification.sms", "+442079460958")

    engine.fire("contact", PHONE_CONTACT, "confirm", ACME,
                {"code": sent["payload"]["values"]["code"]})

    assert engine.get("profile", "acme").data["phone"] == "+442079460958"


def test_a_changed_email_leaves_the_confirmed_one_until_confirmed(engine: Engine) -> None:
    acme_profile(engine, email="ana@acme.example")
    engine.fire("contact", EMAIL_CONTACT, "confirm", ACME, {"code": code_for(engine, EMAIL_CONTACT)})

    engine.fire("profile", "acme", "update", ACME, {"email": "li@acme.example"})

    assert engine.get("profile", "acme").data["email"] == "ana@acme.example"
    engine.fire("contact", EMAIL_CONTACT, "confirm", ACME, {"code": code_for(engine, EMAIL_CONTACT)})
    assert engine.get("profile", "acme").data["email"] == "li@acme.example"


def test_a_wrong_code_is_refused_and_writes_nothing(engine: Engine) -> None:
    acme_profile(engine, email="ana@acme.example")
    code = code_for(engine, EMAIL_CONTACT)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    before, counts = engine.get("contact", EMAIL_CONTACT), rows(engine)

    with pytest.raises(lifecycle.GuardFailed) as refused:
        engine.fire("contact", EMAIL_CONTACT, "confirm", ACME, {"code": wrong})

    assert refused.value.rule == "contact.code_matches"
    assert rows(engine) == counts
    assert engine.get("contact", EMAIL_CONTACT) == before
    assert "email" not in engine.get("profile", "acme").data


def test_an_expired_code_is_refused_before_and_after_the_timer_runs(
    engine: Engine, clock: SimulatedClock
) -> None:
    acme_profile(engine, email="ana@acme.example")
    code = code_for(engine, EMAIL_CONTACT)
    clock.advance(engine.policy.contact_code_expiry)  # 30 minutes by default
    counts = rows(engine)

    with pytest.raises(lifecycle.GuardFailed) as refused:  # the timer has not run yet
        engine.fire("contact", EMAIL_CONTACT, "confirm", ACME, {"code": code})
    assert refused.value.rule == "contact.code_unexpired"
    assert "30 minutes" in str(refused.value)
    assert rows(engine) == counts

    assert engine.run_due_timers() == 1
    assert engine.get("contact", EMAIL_CONTACT).state == "expired"
    counts = rows(engine)
    with pytest.raises(lifecycle.InvalidTransition) as late:
        engine.fire("contact", EMAIL_CONTACT, "confirm", ACME, {"code": code})
    assert late.value.state == "expired"
    assert "resend" in late.value.allowed
    assert rows(engine) == counts
    assert "email" not in engine.get("profile", "acme").data


def test_a_resent_code_replaces_the_old_one_and_has_its_own_30_minutes(
    engine: Engine, clock: SimulatedClock
) -> None:
    acme_profile(engine, email="ana@acme.example")
    old = code_for(engine, EMAIL_CONTACT)
    clock.advance(engine.policy.contact_code_expiry * 2 / 3)
    engine.fire("contact", EMAIL_CONTACT, "resend", ACME)
    new = code_for(engine, EMAIL_CONTACT)
    clock.advance(engine.policy.contact_code_expiry * 2 / 3)  # past the old code's expiry

    assert engine.run_due_timers() == 0  # the old code's deadline went with it
    if old != new:
        with pytest.raises(lifecycle.GuardFailed):
            engine.fire("contact", EMAIL_CONTACT, "confirm", ACME, {"code": old})
    engine.fire("contact", EMAIL_CONTACT, "confirm", ACME, {"code": new})
    assert engine.get("profile", "acme").data["email"] == "ana@acme.example"


def test_code_expiry_is_a_policy_value(tmp_path: Path, clock: SimulatedClock) -> None:
    from datetime import timedelta

    policy = lifecycle.Policy().with_overrides(contact_code_expiry=timedelta(minutes=5))
    with lifecycle.open(f"sqlite:///{tmp_path}/p.db", clock=clock, policy=policy) as engine:
        acme_profile(engine, email="ana@acme.example")
        clock.advance(timedelta(minutes=5))
        assert engine.run_due_timers() == 1
        assert engine.get("contact", EMAIL_CONTACT).state == "expired"


# --- notifications and the subscription centre --------------------------------------------


def test_an_email_category_switched_off_writes_no_notification(engine: Engine) -> None:
    acme_profile(engine)
    engine.fire("profile", "acme", "set_subscriptions", ACME, {"notifications": False})
    avatar = engine.upload_avatar(ACME, jpeg())
    engine.fire("avatar", avatar.id, "review", OPERATOR)
    before = len(notifications(engine))

    engine.fire("avatar", avatar.id, "approve", OPERATOR)

    assert len(notifications(engine)) == before


def test_an_email_category_left_on_writes_one_notification(engine: Engine) -> None:
    acme_profile(engine)
    avatar = engine.upload_avatar(ACME, jpeg())
    engine.fire("avatar", avatar.id, "review", OPERATOR)

    engine.fire("avatar", avatar.id, "reject", OPERATOR, {"reason": "blurry"})

    [sent] = notifications(engine)
    assert sent["aggregate_id"] == "acme"
    assert sent["payload"]["category"] == "notifications"
    assert sent["payload"]["template"] == "avatar.rejected"
    assert sent["payload"]["about"] == {"kind": "avatar", "id": avatar.id, "seq": 3}


def test_a_security_code_is_sent_whatever_the_subscriptions_say(engine: Engine) -> None:
    acme_profile(engine, subscriptions={"membership_services": False, "notifications": False,
                                        "business_opportunities": False})

    engine.fire("profile", "acme", "update", ACME, {"email": "ana@acme.example"})

    [sent] = notifications(engine)
    assert sent["payload"]["category"] == "account_security"
    assert sent["payload"]["values"]["code"].isdigit()


class LostBatch(Exception):
    """Raised out of a batch to roll it back."""


def test_a_notification_is_written_in_its_transitions_transaction(engine: Engine) -> None:
    acme_profile(engine)
    counts = rows(engine)

    seen: list[str] = []
    with contextlib.suppress(LostBatch), engine.batch():
        engine.fire("profile", "acme", "update", ACME, {"email": "li@acme.example"})
        seen = [e["name"] for e in engine.batch_events()]
        raise LostBatch  # the batch rolls back, and the message with it

    assert seen == ["profile.update", "contact.unverified", "notification.email"]
    assert rows(engine) == counts
    assert notifications(engine) == []


# --- avatars --------------------------------------------------------------------------------


def test_a_png_named_jpg_is_refused(engine: Engine, tmp_path: Path) -> None:
    acme_profile(engine)
    counts = rows(engine)

    with pytest.raises(lifecycle.InvalidPayload) as refused:
        engine.upload_avatar(ACME, png())
    assert refused.value.field == "image"
    assert "PNG" in str(refused.value)

    renamed = tmp_path / "me.jpg"
    renamed.write_bytes(png())
    result = CliRunner().invoke(cli, ["--db", str(engine.database.url), "avatar", "upload",
                                      str(renamed), "--as", "seller:acme"])
    assert result.exit_code == 2, result.output
    assert "not a JPEG" in result.stderr
    assert rows(engine) == counts


def test_bytes_that_are_no_image_are_refused(engine: Engine) -> None:
    acme_profile(engine)
    counts = rows(engine)

    with pytest.raises(lifecycle.InvalidPayload) as refused:
        engine.upload_avatar(ACME, b"\xff\xd8\xff this is not really a jpeg")

    assert refused.value.field == "image"
    assert rows(engine) == counts


def test_an_avatar_over_3_mb_is_refused(engine: Engine) -> None:
    acme_profile(engine)
    counts = rows(engine)
    big = jpeg() + b"\0" * (3 * 1024 * 1024)  # still a JPEG to Pillow, but over the size

    with pytest.raises(lifecycle.InvalidPayload) as refused:
        engine.upload_avatar(ACME, big)

    assert refused.value.field == "image"
    assert "at most 3.00 MB" in str(refused.value)
    assert rows(engine) == counts


def test_an_avatar_needs_a_profile(engine: Engine) -> None:
    register(engine, ACME)
    counts = rows(engine)

    with pytest.raises(lifecycle.GuardFailed) as refused:
        engine.upload_avatar(ACME, jpeg())

    assert refused.value.rule == "avatar.profile_open"
    assert rows(engine) == counts


def test_an_uploaded_jpeg_is_kept_beside_its_avatar_not_in_its_data(engine: Engine) -> None:
    acme_profile(engine)
    image = jpeg((32, 24))

    avatar = engine.upload_avatar(ACME, image)

    assert (avatar.state, avatar.data["width"], avatar.data["height"]) == ("submitted", 32, 24)
    assert avatar.data["size"] == len(image)
    assert engine.avatar_image(avatar.id, ACME) == image
    assert rows(engine)["avatar_images"] == 1
    assert all(not isinstance(v, bytes) for v in avatar.data.values())


def test_a_review_open_24_hours_goes_to_the_overdue_queue(
    engine: Engine, clock: SimulatedClock
) -> None:
    acme_profile(engine)
    avatar = engine.upload_avatar(ACME, jpeg())
    engine.fire("avatar", avatar.id, "review", OPERATOR)  # taking it up does not restart the clock
    clock.advance(engine.policy.avatar_review_timeout)

    assert engine.run_due_timers() == 1

    assert [a.id for a in engine.find("avatar", state="overdue")] == [avatar.id]
    listed = CliRunner().invoke(cli, ["--db", str(engine.database.url), "avatar", "list",
                                      "--state", "overdue", "--json"])
    assert [a["id"] for a in json.loads(listed.stdout)["items"]] == [avatar.id]
    assert engine.fire("avatar", avatar.id, "approve", OPERATOR).state == "approved"


def test_only_an_approved_avatar_is_ever_shown(engine: Engine) -> None:
    acme_profile(engine, **{"privacy": {"personal": "all_users"}})
    first = engine.upload_avatar(ACME, jpeg(colour="red"))
    assert engine.profile("acme", None)["avatar"] is None  # submitted: not shown
    engine.fire("avatar", first.id, "review", OPERATOR)
    engine.fire("avatar", first.id, "approve", OPERATOR)
    assert engine.profile("acme", None)["avatar"]["id"] == first.id

    second = engine.upload_avatar(ACME, jpeg(colour="green"))
    engine.fire("avatar", second.id, "review", OPERATOR)

    assert engine.profile("acme", BUYER)["avatar"]["id"] == first.id  # the pending one waits
    assert engine.avatar_image(first.id, BUYER) == jpeg(colour="red")
    with pytest.raises(lifecycle.NotFound):
        engine.avatar_image(second.id, BUYER)
    engine.fire("avatar", second.id, "reject", OPERATOR, {"reason": "not a face"})
    assert engine.profile("acme", None)["avatar"]["id"] == first.id


# --- privacy: who sees what, on every door ----------------------------------------------------

LEVELS = lifecycle.PRIVACY_LEVELS
READERS = ("owner", "operator", "certified", "uncertified", "buyer", "anonymous")
#: which readers see a section at each level
SEES = {
    "all_users": set(READERS),
    "certified_suppliers": {"owner", "operator", "certified"},
    "nobody": {"owner", "operator"},
}
READER_ACTORS: dict[str, Actor | None] = {
    "owner": ACME, "operator": OPERATOR, "certified": RIVAL, "uncertified": NEWCOMER,
    "buyer": BUYER, "anonymous": None,
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> str:
    """acme with a profile, a certified supplier (rival) and a seller still registering."""
    url = f"sqlite:///{tmp_path_factory.mktemp('privacy')}/world.db"
    with lifecycle.open(url, clock=SimulatedClock()) as engine:
        register(engine, ACME)
        register(engine, RIVAL, certified=True)
        register(engine, NEWCOMER)
        engine.create("profile", ACME, {"name": "Ana Li", "gender": "female",
                                        "company_profile": "Toys since 1999",
                                        "procurement": {"industry": "toys",
                                                        "frequency": "monthly"}})
    return url


def set_levels(url: str, level: str) -> None:
    with lifecycle.open(url) as engine:
        engine.fire("profile", "acme", "set_privacy", ACME,
                    {"personal": level, "procurement": level})


def assert_sees(shown: dict[str, Any], reader: str, level: str) -> None:
    seen = reader in SEES[level]
    assert (shown["personal"] is not None) == seen
    assert (shown["procurement"] is not None) == seen
    assert ("personal" in shown["hidden"]) != seen
    if seen:
        assert shown["personal"]["name"] == "Ana Li"
        assert shown["procurement"]["industry"] == "toys"
    assert shown["business"]["company_profile"] == "Toys since 1999"  # the supplier's page
    assert ("privacy" in shown) == (reader in ("owner", "operator"))


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("reader", READERS)
def test_privacy_through_the_library(world: str, level: str, reader: str) -> None:
    set_levels(world, level)
    with lifecycle.open(world) as engine:
        assert_sees(engine.profile("acme", READER_ACTORS[reader]), reader, level)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("reader", READERS)
def test_privacy_through_the_cli(world: str, level: str, reader: str) -> None:
    set_levels(world, level)
    actor = READER_ACTORS[reader]
    who = ["--anonymous"] if actor is None else ["--as", str(actor)]

    result = CliRunner().invoke(cli, ["--db", world, "profile", "show", "acme", *who, "--json"])

    assert result.exit_code == 0, result.output
    assert_sees(json.loads(result.stdout), reader, level)


@pytest.fixture(scope="module")
def http(world: str) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    with lifecycle.open(world) as engine:
        headers = {}
        for reader, actor in READER_ACTORS.items():
            if actor is not None:
                _, token = engine.create_key(actor.role, actor_id=actor.id)
                headers[reader] = {"Authorization": f"Bearer {token}"}
        with TestClient(create_app(engine)) as client:
            yield client, headers


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("reader", [r for r in READERS if r != "anonymous"])  # a key is needed
def test_privacy_through_the_http_api(world: str, http: Any, level: str, reader: str) -> None:
    client, headers = http
    set_levels(world, level)

    answer = client.get("/v1/profiles/acme/view", headers=headers[reader])

    assert answer.status_code == 200, answer.text
    assert_sees(answer.json(), reader, level)


@pytest.mark.parametrize("reader", ["certified", "buyer"])
@pytest.mark.parametrize("read", ["", "/history", "/allowed", "/deadlines"])
def test_the_generic_http_reads_of_a_profile_answer_only_its_owner_and_operators(
    world: str, http: Any, reader: str, read: str
) -> None:
    client, headers = http
    set_levels(world, "all_users")

    assert client.get(f"/v1/profiles/acme{read}", headers=headers[reader]).status_code == 404
    assert client.get(f"/v1/profiles/acme{read}", headers=headers["owner"]).status_code == 200


@pytest.mark.parametrize("actor", ["buyer:b-1", "seller:rival"])
def test_the_generic_cli_show_refuses_a_profiles_data_to_others(world: str, actor: str) -> None:
    result = CliRunner().invoke(cli, ["--db", world, "show", "profile", "acme", "--as", actor])

    assert result.exit_code == 1
    assert "lifecycle profile show" in result.stderr
    assert "Ana Li" not in result.output


def test_a_suspended_supplier_is_not_certified(tmp_path: Path) -> None:
    from tests.builders import seller_in

    with lifecycle.open(f"sqlite:///{tmp_path}/s.db", clock=SimulatedClock()) as engine:
        acme_profile(engine)
        engine.fire("profile", "acme", "set_privacy", ACME, {"personal": "certified_suppliers"})
        seller_in(engine, "suspended", "s-9")
        assert engine.profile("acme", seller("s-9"))["personal"] is None
        engine.fire("seller", "s-9", "reinstate", OPERATOR)
        assert engine.profile("acme", seller("s-9"))["personal"]["name"] == "Ana Li"


# --- the HTTP upload and the CLI's commands ---------------------------------------------------


def test_an_avatar_uploads_over_http_as_its_jpeg_bytes(engine: Engine) -> None:
    acme_profile(engine)
    _, token = engine.create_key("seller", actor_id="acme")
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"}
    with TestClient(create_app(engine)) as client:
        refused = client.post("/v1/avatars", content=png(), headers=auth)
        assert refused.status_code == 422
        assert rows(engine)["avatar_images"] == 0

        made = client.post("/v1/avatars", content=jpeg(), headers=auth)
        assert made.status_code == 201, made.text
        id = made.json()["id"]
        image = client.get(f"/v1/avatars/{id}/image", headers=auth)
        assert (image.status_code, image.content) == (200, jpeg())


def test_the_cli_walks_a_profile_from_creation_to_a_confirmed_email(engine: Engine) -> None:
    register(engine, ACME)
    db = ["--db", str(engine.database.url)]

    def run(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(cli, [*db, *args])
        assert result.exit_code == code, result.output
        return result.stdout

    run("profile", "create", "acme", "--name", "Ana Li", "--industry", "toys",
        "--personal", "all_users")
    run("profile", "contact", "change", "acme", "--email", "nope", code=2)
    run("profile", "contact", "change", "acme", "--email", "ana@acme.example")
    run("profile", "contact", "confirm", "acme", "--email", "--code", "000000"
        if code_for(engine, EMAIL_CONTACT) != "000000" else "111111", code=1)
    run("profile", "contact", "confirm", "acme", "--email", "--code",
        code_for(engine, EMAIL_CONTACT))
    run("profile", "subscriptions", "acme", "--business-opportunities", "off")

    shown = json.loads(run("profile", "show", "acme", "--anonymous", "--json"))
    assert shown["personal"]["email"] == "ana@acme.example"
    assert shown["procurement"] is None  # certified suppliers only, by default
    assert engine.get("profile", "acme").data["subscriptions"]["business_opportunities"] is False


def test_an_avatar_image_round_trips_on_postgresql(pg_engine: Engine) -> None:
    """The bytes go through `Engine.execute` as a plain value: bytea on PostgreSQL."""
    acme_profile(pg_engine)
    image = jpeg((40, 30))

    avatar = pg_engine.upload_avatar(ACME, image)

    assert pg_engine.avatar_image(avatar.id, ACME) == image
    assert rows(pg_engine)["avatar_images"] == 1


def test_an_avatar_uploaded_with_an_id_of_the_callers_keeps_it_and_a_taken_one_is_refused(
        engine: Engine) -> None:
    acme_profile(engine)

    avatar = engine.upload_avatar(ACME, jpeg(), id="acme-a1")

    assert avatar.id == "acme-a1"
    assert engine.avatar_image("acme-a1", ACME) == jpeg()
    with pytest.raises(lifecycle.AlreadyExists):
        engine.upload_avatar(ACME, jpeg(colour="blue"), id="acme-a1")
    assert engine.avatar_image("acme-a1", ACME) == jpeg()  # the first one's bytes kept
    assert len(engine.history("avatar", "acme-a1")) == 1
