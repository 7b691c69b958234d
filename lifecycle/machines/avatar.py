"""A seller's avatar upload (SPEC §12, issue #20): kind ``avatar``, one aggregate per upload.

``submitted → under_review → approved | rejected``, reviewed by an operator. A review not
finished within the policy's ``avatar_review_timeout`` (24 hours from the upload) moves it to
``overdue``: the operators' queue of late reviews (``lifecycle avatar list --state overdue``),
from which it is approved or rejected like one under review. An approval shows the avatar on
the seller's profile (``show_avatar``); only an approved one is ever shown, so a newer upload
waiting for review leaves the shown one in place.

The image's bytes are not in the aggregate's data (every load reads that): `Engine.upload_avatar`
checks them (`inspect_jpeg`) and keeps them in the ``avatar_images`` table, in the upload's
transaction; the data holds their size, dimensions and SHA-256.
"""

from __future__ import annotations

import io
import uuid
import warnings
from typing import Annotated, Literal

from PIL import Image, UnidentifiedImageError
from pydantic import Field, StringConstraints

from lifecycle.errors import InvalidPayload
from lifecycle.machines.definition import (
    Context,
    Deadline,
    Fire,
    Guard,
    MachineDefinition,
    Transition,
    sends,
)
from lifecycle.machines.notifications import notify
from lifecycle.machines.payloads import Empty, Payload, Reason, iso

SELLER, OPERATOR, SYSTEM = frozenset({"seller"}), frozenset({"operator"}), frozenset({"system"})
OPEN = ("submitted", "under_review")  # the review clock runs in both
CONTENT_TYPE = "image/jpeg"


def new_avatar_id() -> str:
    return f"a-{uuid.uuid4().hex[:12]}"


def inspect_jpeg(image: bytes, max_bytes: int) -> tuple[int, int]:
    """(width, height) of ``image`` if its bytes are a JPEG of at most ``max_bytes``; else
    `InvalidPayload` naming ``image``. The size is checked before anything is decoded; the
    format from the bytes (Pillow), never from a file name."""
    if not isinstance(image, bytes | bytearray):
        raise InvalidPayload("image", f"must be bytes, got {type(image).__name__}")
    if len(image) > max_bytes:
        raise InvalidPayload("image", f"is {_megabytes(len(image))}; an avatar is at most "
                                      f"{_megabytes(max_bytes)} (policy avatar_max_bytes)")
    if not image:
        raise InvalidPayload("image", "is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(image)) as opened:
                found, size = opened.format, opened.size
                opened.verify()
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning,
            OSError, SyntaxError, ValueError):
        raise InvalidPayload("image", "is not an image Pillow can read: an avatar is a JPEG") from None
    if found != "JPEG":
        raise InvalidPayload("image", f"is a {found} image, not a JPEG: only JPG avatars are "
                                      "accepted (whatever the file is named)")
    return size


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.2f} MB ({size} bytes)"


class AvatarUpload(Payload):
    """What `Engine.upload_avatar` records of the image it stored."""

    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    size: Annotated[int, Field(strict=True, ge=1)]
    width: Annotated[int, Field(strict=True, ge=1)]
    height: Annotated[int, Field(strict=True, ge=1)]
    content_type: Literal["image/jpeg"] = "image/jpeg"


def _within_size(ctx: Context) -> bool:
    return bool(ctx.payload.size <= ctx.policy.avatar_max_bytes)


def _profile_open(ctx: Context) -> bool:
    profile = ctx.load("profile", ctx.actor.id)
    return profile is not None and profile.state == "active"


def _at_most(ctx: Context) -> str:
    return f"an avatar is at most {_megabytes(ctx.policy.avatar_max_bytes)} (policy avatar_max_bytes)"


WITHIN_SIZE = Guard("avatar.max_size", _within_size, _at_most)
PROFILE_OPEN = Guard("avatar.profile_open", _profile_open,
                     "an avatar is shown on a profile: create the seller's profile first",
                     uses_payload=False)


def _upload(ctx: Context) -> None:
    ctx.data.update(seller=ctx.actor.id, sha256=ctx.payload.sha256, size=ctx.payload.size,
                    width=ctx.payload.width, height=ctx.payload.height,
                    content_type=ctx.payload.content_type, submitted_at=iso(ctx.now))


def _review(ctx: Context) -> None:
    ctx.data.update(reviewer=ctx.actor.id, review_started_at=iso(ctx.now))


def _overdue(ctx: Context) -> None:
    ctx.data["overdue_at"] = iso(ctx.now)


@sends(("profile", "show_avatar"))
def _approve(ctx: Context) -> None:
    ctx.data.update(reviewer=ctx.actor.id, approved_at=iso(ctx.now))
    ctx.follow_ups.append(Fire("profile", ctx.data["seller"], "show_avatar", {"avatar": ctx.id}))
    notify(ctx, account=ctx.data["seller"], category="notifications",
           template="avatar.approved", values={"avatar": ctx.id})


def _reject(ctx: Context) -> None:
    ctx.data.update(reviewer=ctx.actor.id, rejected_at=iso(ctx.now),
                    rejection_reason=ctx.payload.reason)
    notify(ctx, account=ctx.data["seller"], category="notifications",
           template="avatar.rejected", values={"avatar": ctx.id, "reason": ctx.payload.reason})


REVIEWABLE = ("under_review", "overdue")

DEFINITION = MachineDefinition(
    "avatar",
    states=("submitted", "under_review", "overdue", "approved", "rejected"),
    terminal=frozenset({"approved", "rejected"}),
    owners={"seller": lambda id, data: data["seller"]},
    new_id=lambda actor: new_avatar_id(),
    transitions=(
        Transition("upload", (), "submitted", SELLER, AvatarUpload, (WITHIN_SIZE, PROFILE_OPEN),
                   _upload),
        Transition("review", ("submitted",), "under_review", OPERATOR, Empty, (), _review),
        Transition("overdue", OPEN, "overdue", SYSTEM, Empty, (), _overdue),
        Transition("approve", REVIEWABLE, "approved", OPERATOR, Empty, (), _approve),
        Transition("reject", REVIEWABLE, "rejected", OPERATOR, Reason, (), _reject),
    ),
    # From the upload, in both open states: taking a review up does not restart the clock.
    deadlines=tuple(Deadline(state, "overdue", lambda policy, data: policy.avatar_review_timeout,
                             "submitted_at") for state in OPEN),
)
