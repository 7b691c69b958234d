"""The API key table (issue #16): a key's public part and the digest of its secret. A part of
`Recorder`.

Authenticating reads one row by its primary key; the secret itself never reaches the
database, only its SHA-256 (`lifecycle.api_keys` says why a fast hash is right here).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update

from lifecycle.store.statements import Statement, Statements
from lifecycle.store.tables import api_keys


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One row as stored: ``secret_sha256`` is the hex digest of the token's secret."""

    id: str
    role: str
    actor_id: str | None
    label: str
    secret_sha256: str
    created_at: datetime
    revoked_at: datetime | None


_COLUMNS = (api_keys.c.id, api_keys.c.role, api_keys.c.actor_id, api_keys.c.label,
            api_keys.c.secret_sha256, api_keys.c.created_at, api_keys.c.revoked_at)


class KeyRecords(Statements):
    """Statements on the api_keys table."""

    STORE_KEY = Statement(insert(api_keys).values(
        id=bindparam("id"), role=bindparam("role"), actor_id=bindparam("actor_id"),
        label=bindparam("label"), secret_sha256=bindparam("secret_sha256"),
        created_at=bindparam("created_at")))  # revoked_at: NULL

    def store_key(self, key: StoredKey) -> None:
        """Add a key; an id taken already raises the driver's IntegrityError (the primary key)."""
        self.cur.execute(self.STORE_KEY, {
            "id": key.id, "role": key.role, "actor_id": key.actor_id, "label": key.label,
            "secret_sha256": key.secret_sha256, "created_at": self.moment(key.created_at),
        })

    KEY = Statement(select(*_COLUMNS).where(api_keys.c.id == bindparam("id")))

    def stored_key(self, key_id: str) -> StoredKey | None:
        self.cur.execute(self.KEY, {"id": key_id})
        row = self.cur.fetchone()
        return None if row is None else self._key_of(row)

    KEYS = Statement(select(*_COLUMNS).order_by(api_keys.c.created_at, api_keys.c.id))
    LIVE_KEYS = Statement(select(*_COLUMNS).where(api_keys.c.revoked_at.is_(None))
                          .order_by(api_keys.c.created_at, api_keys.c.id))

    def stored_keys(self, *, include_revoked: bool) -> list[StoredKey]:
        """Every key (or only those not revoked), oldest first."""
        self.cur.execute(self.KEYS if include_revoked else self.LIVE_KEYS)
        return [self._key_of(row) for row in self.cur.fetchall()]

    REVOKE_KEY = Statement(update(api_keys)
                           .where(api_keys.c.id == bindparam("id"),
                                  api_keys.c.revoked_at.is_(None))
                           .values(revoked_at=bindparam("now")))

    def revoke_key(self, key_id: str, now: datetime) -> None:
        """Stamp the key revoked at ``now``, unless it was revoked already (the first time stands)."""
        self.cur.execute(self.REVOKE_KEY, {"id": key_id, "now": self.moment(now)})

    def _key_of(self, row: tuple[object, ...]) -> StoredKey:
        id, role, actor_id, label, digest, created_at, revoked_at = row
        return StoredKey(str(id), str(role), None if actor_id is None else str(actor_id),
                         str(label), str(digest), self.moment_of(created_at),
                         None if revoked_at is None else self.moment_of(revoked_at))
