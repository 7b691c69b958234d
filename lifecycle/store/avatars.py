"""Avatar images (issue #20): written with the avatar's creation (`Engine.upload_avatar`, in
its batch), read only when the image itself is asked for — never by a load of the aggregate."""

from __future__ import annotations

from sqlalchemy import Connection, Insert, bindparam, insert, select

from lifecycle.store.tables import avatar_images

_IMAGE = select(avatar_images.c.image).where(avatar_images.c.avatar_id == bindparam("avatar_id"))


def store_image(avatar_id: str, image: bytes, sha256: str, content_type: str) -> Insert:
    """The statement that keeps one avatar's bytes (values bound, never inlined)."""
    return insert(avatar_images).values(avatar_id=avatar_id, content_type=content_type,
                                        size=len(image), sha256=sha256, image=image)


def image_of(conn: Connection, avatar_id: str) -> bytes | None:
    """The bytes of one avatar's image, or None if none was stored."""
    found = conn.execute(_IMAGE, {"avatar_id": avatar_id}).scalar_one_or_none()
    return bytes(found) if found is not None else None
