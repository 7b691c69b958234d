"""The policy every process shares (SPEC §2): stored in the database, each change a new
version, the newest in force from the next trigger of every engine on it.

Each trigger reads the newest version's number first thing, in its own transaction, and holds
that policy for everything it does (the deadlines it schedules, its guards, its fees); the
values are parsed again only when the number changed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC

import structlog

from lifecycle.clock import Clock
from lifecycle.errors import Conflict, NotFound, PolicyMismatch
from lifecycle.policy import Policy, PolicyVersion
from lifecycle.store.datastore import Store
from lifecycle.store.recorder import Recorder

log = structlog.get_logger("lifecycle")


class SharedPolicy:
    """The newest stored policy as one engine sees it, and the storing of new versions.

    ``opened_with`` is what the engine schedules with until it has read the database's;
    `lifecycle.open` stores or checks it (`put`).
    """

    def __init__(self, store: Store, clock: Clock, opened_with: Policy):
        self.store = store
        self.clock = clock
        self.opened_with = opened_with
        # The newest stored version read so far: parsed again only when the number changes.
        self._known: PolicyVersion | None = None
        self._local = threading.local()  # the policy the thread's open trigger holds

    def current(self) -> Policy:
        """Inside a trigger, the version its transaction read first; otherwise the database's
        newest (one indexed read)."""
        held: Policy | None = getattr(self._local, "policy", None)
        if held is not None:
            return held
        with self.store.quick() as records:
            return self.in_force(records)

    @contextmanager
    def held(self, records: Recorder) -> Iterator[Policy]:
        """Hold the transaction's policy for everything the trigger does, and yield it: what
        `hold` and `release` do around a block."""
        policy, outer = self.hold(records)
        try:
            yield policy
        finally:
            self.release(outer)

    def hold(self, records: Recorder) -> tuple[Policy, Policy | None]:
        """Hold the transaction's policy (the newest stored version, read on its connection;
        in the thread's open batch, the one the batch's first trigger read: `batch`) until
        `release`: (the policy, the one held before, to give back to `release`). A pair of
        calls, not a context manager, for the trigger path: a generator's ``with`` costs ~3 us."""
        local = self._local
        outer = getattr(local, "policy", None)
        policy = getattr(local, "batch_policy", None)
        if policy is None:
            policy = self.in_force(records)
            if getattr(local, "in_batch", False):
                local.batch_policy = policy
        local.policy = policy
        return policy, outer

    def release(self, outer: Policy | None) -> None:
        self._local.policy = outer

    @contextmanager
    def batch(self) -> Iterator[None]:
        """The thread's triggers inside the block (`Engine.batch`, one transaction) hold the
        policy the first of them read, not a newer one another process commits meanwhile:
        one read a batch instead of one a trigger. A version stored in the batch itself is
        read by the trigger after it."""
        if getattr(self._local, "in_batch", False):
            yield
            return
        self._local.in_batch, self._local.batch_policy = True, None
        try:
            yield
        finally:
            self._local.in_batch, self._local.batch_policy = False, None

    def version_of(self, policy: Policy) -> int | None:
        """The stored version number of ``policy`` as this engine read it (what a history row
        records it ran under), or None for one not read from the database."""
        known = self._known
        return known.version if known is not None and known.policy is policy else None

    def in_force(self, records: Recorder) -> Policy:
        newest = self.newest(records)
        # No row: the table was emptied under a running engine (tests truncate every table).
        return newest.policy if newest is not None else self.opened_with

    def newest(self, records: Recorder) -> PolicyVersion | None:
        """The newest stored version, read as one number and parsed only when it is not
        the one this engine read last. None while nothing is stored."""
        version = records.newest_policy_version()
        known = self._known
        if version is None:
            self._known = None  # emptied: a version 1 stored later is another policy
            return None
        if known is not None and known.version == version:
            return known
        stored = records.stored_policy(version)
        if stored is None:  # removed between the two reads; only a hand-edited table does that
            raise Conflict("policy", str(version))
        known = PolicyVersion(version, Policy.from_json(stored.values, version=version),
                              stored.created_at)
        self._known = known
        return known

    def stored(self) -> PolicyVersion:
        """The newest stored policy; `NotFound` while there is none."""
        with self.store.quick() as records:
            newest = self.newest(records)
        if newest is None:
            raise NotFound("policy", "newest")
        return newest

    def versions(self) -> list[PolicyVersion]:
        """Every stored version, oldest first."""
        with self.store.reading() as records:
            stored = records.stored_policies()
        return [PolicyVersion(s.version, Policy.from_json(s.values, version=s.version),
                              s.created_at) for s in stored]

    def put(self, given: Policy | None, *, update: bool,
            expected_version: int | None = None) -> PolicyVersion:
        """What `lifecycle.open` and `set_policy` do, in one write transaction: store the
        first version when there is none (``given``, or the defaults); otherwise keep the
        stored one when ``given`` is None or equal, store ``given`` as the next version when
        ``update``, and refuse with `PolicyMismatch` (writing nothing) when not."""
        for _attempt in range(5):
            try:
                with self.store.transaction() as records:
                    newest = self.newest(records)
                    seen = newest.version if newest is not None else None
                    if expected_version is not None and seen != expected_version:
                        raise Conflict("policy", str(seen), expected_version)
                    if newest is None:
                        return self._store(records, 1, given or self.opened_with)
                    if given is None or given == newest.policy:
                        return newest
                    if not update:
                        raise PolicyMismatch(newest.version, newest.policy.differences(given))
                    return self._store(records, newest.version + 1, given)
            except self.store.duplicate:
                continue  # another process stored that version first: look again
        raise Conflict("policy", "newest")

    def _store(self, records: Recorder, version: int, policy: Policy) -> PolicyVersion:
        now = self.clock.now().astimezone(UTC)
        records.store_policy(version, policy.to_json(), now)
        self._local.batch_policy = None  # the batch's next trigger holds the new version
        stored = PolicyVersion(version, policy, now)
        log.info("policy.stored", version=version)
        return stored
