"""The tables. Alembic migrations create them; this module describes them for queries."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

# JSONB on PostgreSQL, JSON text on SQLite.
Json = JSON().with_variant(JSONB(), "postgresql")
# SQLite's INTEGER PRIMARY KEY is its rowid; BIGINT would not autoincrement there.
RowId = BigInteger().with_variant(Integer(), "sqlite")
Moment = DateTime(timezone=True)

aggregates = Table(
    "aggregates",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("id", String(200), primary_key=True),
    Column("state", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    # The version of its kind's machine it runs (SPEC §13); changed only by `lifecycle migrate`.
    Column("machine_version", Integer, nullable=False, server_default=text("1")),
    Column("data", Json, nullable=False),
    Column("created_at", Moment, nullable=False),
    Column("updated_at", Moment, nullable=False),
    Index("ix_aggregates_kind_state", "kind", "state"),
)

# Append-only: one row per committed transition; (kind, aggregate_id, seq) has no gaps.
history = Table(
    "history",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("aggregate_id", String(200), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("trigger", String(64), nullable=False),
    Column("source", String(64), nullable=True),  # NULL for the creating transition
    Column("dest", String(64), nullable=False),
    Column("actor_role", String(16), nullable=False),
    Column("actor_id", String(200), nullable=False),
    Column("payload", Json, nullable=False),
    Column("idempotency_key", String(200), nullable=True),
    Column("at", Moment, nullable=False),
    # The machine and policy versions the transition ran under (policy NULL before issue #18).
    Column("machine_version", Integer, nullable=False, server_default=text("1")),
    Column("policy_version", Integer, nullable=True),
)

# Domain events for services to publish to their broker; written with the transition.
outbox = Table(
    "outbox",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("event", String(100), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("aggregate_id", String(200), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("body", Json, nullable=False),
    Column("created_at", Moment, nullable=False),
    Column("published_at", Moment, nullable=True),  # when a relay's broker confirmed it
    # Its place in the order readers of `Engine.events` see (commit order, gap-free): given
    # when first read, not at insert, since PostgreSQL commits rows out of their id order.
    Column("position", BigInteger, nullable=True),
    Index("ix_outbox_unpublished", "published_at", "id"),
    Index("ix_outbox_position", "position", unique=True),
    Index("ix_outbox_unpositioned", "id", sqlite_where=text("position IS NULL"),
          postgresql_where=text("position IS NULL")),
)

# The last outbox position given (one row, name "outbox"); the row's lock orders the givers.
event_sequence = Table(
    "event_sequence",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("last", BigInteger, nullable=False),
)

# Durable subscriptions (`Engine.subscription`): each name's last acknowledged position.
subscriptions = Table(
    "subscriptions",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("created_at", Moment, nullable=False),
    Column("updated_at", Moment, nullable=False),
)

# The relays that have run on this database (`lifecycle relay status`): what each published
# and when it was last seen. A database with none prunes events by age alone (SPEC §2).
relays = Table(
    "relays",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("target", String(500), nullable=False),  # the broker URL, without its password
    Column("started_at", Moment, nullable=False),
    Column("seen_at", Moment, nullable=False),
    Column("published", BigInteger, nullable=False),
)

idempotency = Table(
    "idempotency",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("aggregate_id", String(200), nullable=False),
    # What answers a retry: the state and version the first delivery led to, not a copy.
    Column("result", Json, nullable=False),
    Column("created_at", Moment, nullable=False),
    Index("ix_idempotency_created", "created_at"),
)

# Values that must be unique across aggregates (a store's second-level domain).
unique_claims = Table(
    "unique_claims",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(200), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("aggregate_id", String(200), nullable=False),
)

# Durable timers. A row is pending (due at due_at), paused (an open dispute holds the
# aggregate; `remaining_us` microseconds are left) or failed (parked after repeated errors). A deadline
# that fires, or whose state is left, is deleted in that transition's transaction.
deadlines = Table(
    "deadlines",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("aggregate_id", String(200), nullable=False),
    Column("state", String(64), nullable=False),
    Column("trigger", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("due_at", Moment, nullable=False),
    Column("remaining_us", BigInteger, nullable=True),  # microseconds left while paused
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", String(2000), nullable=True),
    Column("created_at", Moment, nullable=False),
    Index("ix_deadlines_due", "status", "due_at"),
    Index("ix_deadlines_aggregate", "kind", "aggregate_id"),
)

# Double-entry ledger: the entries of one posting share (kind, aggregate_id, seq, posting) and
# sum to zero. Amounts are integer minor units of `currency`.
ledger = Table(
    "ledger",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("aggregate_id", String(200), nullable=False),
    Column("seq", Integer, nullable=False),  # the history row of the transition that posted it
    Column("posting", String(32), nullable=False),  # payment, refund, payout, store_fee, ...
    Column("account", String(32), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("at", Moment, nullable=False),
    Index("ix_ledger_aggregate", "kind", "aggregate_id"),
)

# Values that find aggregates but need not be unique: a waybill, which may carry several orders.
lookups = Table(
    "lookups",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(200), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("aggregate_id", String(200), primary_key=True),
)

# The policy every process schedules with; each change is a new version (SPEC §2).
policy = Table(
    "policy",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("values", Json, nullable=False),
    Column("created_at", Moment, nullable=False),
)

# A carrier's scans of an order, one row each; ``moved`` says whether the scan moved the order.
tracking_events = Table(
    "tracking_events",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("aggregate_id", String(200), nullable=False),
    Column("carrier", String(64), nullable=False),
    Column("waybill", String(64), nullable=False),
    Column("event_id", String(200), nullable=True),
    Column("status", String(32), nullable=True),  # None: recorded as it came
    Column("exception_kind", String(32), nullable=True),
    Column("reported_at", Moment, nullable=True),
    Column("location", String(200), nullable=True),
    Column("detail", String(2000), nullable=True),
    Column("moved", Boolean, nullable=False),
    Column("recorded_at", Moment, nullable=False),
    Index("ix_tracking_events_aggregate", "kind", "aggregate_id", "event_id", unique=True),
)

# API keys (issue #16): who may call the service. Only the SHA-256 of a key's secret is stored,
# never the token; ``actor_id`` NULL is a role scope (the key acts as any actor of ``role``).
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(13), primary_key=True),  # "k" + 12 hex characters, public
    Column("role", String(16), nullable=False),
    Column("actor_id", String(100), nullable=True),
    Column("label", String(200), nullable=False),
    Column("secret_sha256", String(64), nullable=False),  # hex digest of the token's secret
    Column("created_at", Moment, nullable=False),
    Column("revoked_at", Moment, nullable=True),
)

# The machine definitions processes have opened this database with (issue #18): one row per
# (kind, version), written by the first; a later process whose definition of the same version
# differs is refused at start-up, naming what changed (``shape`` is what the fingerprint hashes).
machine_versions = Table(
    "machine_versions",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("fingerprint", String(64), nullable=False),
    Column("shape", Json, nullable=False),
    Column("registered_at", Moment, nullable=False),
)

# A sandbox's simulated time (issue #19): one row (id 1) in a database made with
# ``lifecycle db init --sandbox``, none in a production one. ``now`` only moves forward.
sandbox_clock = Table(
    "sandbox_clock",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("now", Moment, nullable=False),
    Column("started_at", Moment, nullable=False),
)

# An avatar's image (issue #20): one row per upload, written with the avatar's creation; kept
# out of the aggregate's data, which every load reads. Read only to show or review the image.
avatar_images = Table(
    "avatar_images",
    metadata,
    Column("avatar_id", String(200), primary_key=True),
    Column("content_type", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("image", LargeBinary, nullable=False),
    # No time of its own: the avatar's submitted_at says when it came.
)
