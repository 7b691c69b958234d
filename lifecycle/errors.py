"""The errors lifecycle raises. Each carries its data and renders one line in the user's words.

Any of these raised by a trigger means nothing was written: no state, history, outbox or
idempotency row. The one exception is `Unavailable` when the connection broke while the commit
was on its way: retry with the same idempotency key to be sure.
"""

from __future__ import annotations

from collections.abc import Iterable


class LifecycleError(Exception):
    """Base of every error the engine raises on purpose."""

    #: exit code the CLI uses: 1 refused by the domain, 2 bad usage or payload, 3 database unavailable
    exit_code = 1


class InvalidTransition(LifecycleError):
    """The trigger is not defined from the aggregate's current state."""

    def __init__(self, kind: str, id: str, state: str, trigger: str, allowed: Iterable[str],
                 *, terminal: bool = False):
        self.kind, self.id, self.state, self.trigger = kind, id, state, trigger
        self.allowed = tuple(sorted(allowed))
        allowed_text = ", ".join(self.allowed) or ("none (terminal state)" if terminal else "none")
        super().__init__(
            f"{kind} {id} is {state}: cannot {trigger}; allowed from {state}: {allowed_text}"
        )


def _where(kind: str, id: str, state: str) -> str:
    """``order o-1 is paid: `` when the refusal knows where it happened, else nothing."""
    return f"{kind} {id} is {state}: " if kind and state else ""


def _instead(role: str, allowed: tuple[str, ...] | None) -> str:
    """``; allowed for buyer: request_cancel`` when what the actor may fire is known."""
    if allowed is None:
        return ""
    return f"; allowed for {role or 'them'}: {', '.join(allowed) or 'none'}"


class GuardFailed(LifecycleError):
    """A rule of the domain refused the trigger.

    ``kind``, ``id`` and ``state`` say where, when known; ``allowed`` is what the actor (of
    ``role``) may fire there, None when not known (a refusal while creating an aggregate).
    """

    def __init__(self, rule: str, message: str, *, trigger: str = "", state: str = "",
                 kind: str = "", id: str = "", role: str = "",
                 allowed: Iterable[str] | None = None):
        self.rule, self.trigger, self.state = rule, trigger, state
        self.kind, self.id, self.role = kind, id, role
        self.message = message
        self.allowed = tuple(sorted(allowed)) if allowed is not None else None
        what = f"{trigger} refused" if trigger else "refused"
        super().__init__(f"{_where(kind, id, state)}{what} by rule {rule}: {message}"
                         f"{_instead(role, self.allowed)}")


class CaptureRefused(GuardFailed):
    """A gateway's capture that did not pay its order (SPEC §7): the order was cancelled or
    paid already, does not exist, or is in another currency or amount. The capture is kept as
    an ``unexpected_capture`` aggregate (``capture``) and refunded through the gateway;
    ``refunded`` says whether the refund went through already (else its deadline retries it)."""

    def __init__(self, order_id: str, reason: str, capture: str, refunded: bool, *,
                 state: str = ""):
        self.order_id, self.reason, self.capture, self.refunded = order_id, reason, capture, refunded
        outcome = "refunded" if refunded else "its refund is pending (see `lifecycle timers list`)"
        super().__init__("payment.capture_matches_order",
                         f"the capture did not pay order {order_id}: {reason}; recorded as "
                         f"unexpected_capture {capture} and {outcome}",
                         trigger="pay", state=state)


class Forbidden(LifecycleError):
    """The actor's role may not fire this trigger, or the aggregate is not theirs.

    ``kind``, ``id``, ``state`` and ``allowed`` (what the actor may fire there) are given for
    a role refusal; a refusal because the aggregate is not theirs names none of them, so that
    nobody learns the state of what is not theirs.
    """

    def __init__(self, role: str, actor_id: str, trigger: str, reason: str, *, kind: str = "",
                 id: str = "", state: str = "", allowed: Iterable[str] | None = None):
        self.role, self.actor_id, self.trigger, self.reason = role, actor_id, trigger, reason
        self.kind, self.id, self.state = kind, id, state
        self.allowed = tuple(sorted(allowed)) if allowed is not None else None
        super().__init__(f"{_where(kind, id, state)}{role} {actor_id} may not {trigger}: {reason}"
                         f"{_instead(role, self.allowed)}")


class Unauthenticated(LifecycleError):
    """An API key that does not let its bearer in: missing, malformed, unknown, with the wrong
    secret, or revoked (issue #16). One message for all of them, so that a caller probing keys
    learns nothing about which part was wrong; the log says which (`lifecycle.api_keys`).

    Exit code 1, as any refusal: the CLI never authenticates, and a service answers it 401.
    """

    MESSAGE = "invalid or revoked API key"

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)


class Conflict(LifecycleError):
    """Another writer changed the aggregate since it was read. Retryable."""

    def __init__(self, kind: str, id: str, expected_version: int | None = None):
        self.kind, self.id, self.expected_version = kind, id, expected_version
        seen = f" (expected version {expected_version})" if expected_version is not None else ""
        super().__init__(f"{kind} {id} was changed concurrently{seen}; read it again and retry")


class Unavailable(LifecycleError):
    """The database could not be reached, or the connection to it was lost. Retryable: call
    again once it is back (the engine connects afresh). Contention is a `Conflict`, not this."""

    exit_code = 3

    def __init__(self, database: str, reason: str):
        self.database, self.reason = database, reason
        super().__init__(f"database {database} is unavailable ({reason}); try again when it is back")


class NotFound(LifecycleError):
    """No aggregate of that kind and id."""

    def __init__(self, kind: str, id: str):
        self.kind, self.id = kind, id
        super().__init__(f"no {kind} with id {id!r}")


class AlreadyExists(LifecycleError):
    """Creating an aggregate whose id is taken."""

    def __init__(self, kind: str, id: str):
        self.kind, self.id = kind, id
        super().__init__(f"{kind} {id!r} already exists")


class IdempotencyMismatch(LifecycleError):
    """The idempotency key was used before for a different request."""

    def __init__(self, key: str):
        self.key = key
        super().__init__(f"idempotency key {key!r} was already used for a different request")


class InvalidPayload(LifecycleError):
    """The payload (or an argument) is malformed; names the field."""

    exit_code = 2

    def __init__(self, field: str, message: str):
        self.field, self.message = field, message
        super().__init__(f"invalid {field}: {message}")


class UnknownKind(InvalidPayload):
    """No machine of that kind."""

    def __init__(self, kind: str, known: Iterable[str]):
        super().__init__("kind", f"{kind!r} is not one of {', '.join(sorted(known))}")


class DefinitionError(LifecycleError):
    """A machine definition is inconsistent; raised when the definitions load."""


class DefinitionChanged(DefinitionError):
    """A process's definition of a machine version differs from the one the database ran under
    that number (SPEC §13): refused at start-up, writing nothing."""

    exit_code = 2

    def __init__(self, kind: str, version: int, changes: list[str], registered_at: str):
        self.kind, self.version, self.changes = kind, version, changes
        listed = "; ".join(changes) or "its fingerprint differs"
        super().__init__(
            f"the {kind} machine's version {version} is not the one this database has run "
            f"under that number (since {registered_at}): {listed}. Give the changed definition "
            f"a new version (version={version + 1}) with a migration, or run the one it had")


class MigrationRefused(LifecycleError):
    """`lifecycle migrate` found aggregates the new version would strand, or money it would
    leave held: nothing was migrated."""

    def __init__(self, kind: str, target: int, stranded: list[str]):
        self.kind, self.target, self.stranded = kind, target, stranded
        shown = "; ".join(stranded[:5]) + (f"; and {len(stranded) - 5} more"
                                           if len(stranded) > 5 else "")
        super().__init__(f"migrating {kind} to version {target} would strand {len(stranded)} "
                         f"aggregate(s), so none was migrated: {shown}. See `--dry-run`; "
                         "map their states in the migration, or leave them out with --where")


class ReplayMismatch(LifecycleError):
    """An aggregate's history does not replay through its machine to its state."""

    def __init__(self, kind: str, seq: int, problem: str):
        self.kind, self.seq, self.problem = kind, seq, problem
        super().__init__(f"{kind} history entry {seq}: {problem}")


class SchemaOutdated(LifecycleError):
    """The database schema is not this version of lifecycle's: older (``current`` names it;
    None for a database with no lifecycle schema yet), or a newer lifecycle's."""

    exit_code = 2

    def __init__(self, message: str, current: str | None = None):
        self.current = current
        super().__init__(message)


class PolicyMismatch(LifecycleError):
    """`lifecycle.open` was given a policy that differs from the one the database holds.

    ``differences`` is ``(name, stored, given)`` per differing value, as text. Nothing was
    written: open with ``policy=None`` to use the stored policy, or ``update_policy=True`` to
    store the given one as the next version.
    """

    def __init__(self, version: int, differences: Iterable[tuple[str, str, str]]):
        self.version = version
        self.differences = tuple(differences)
        listed = "; ".join(f"{name} stored {stored}, given {given}"
                           for name, stored, given in self.differences)
        super().__init__(
            f"the database's policy (version {version}) differs from the one given: {listed}; "
            f"open with policy=None to use it, or update_policy=True to store the given one as "
            f"version {version + 1}"
        )


class UnknownPolicyValues(LifecycleError):
    """The stored policy has values this lifecycle does not know: a newer lifecycle wrote it.

    Refused rather than run with part of a policy; upgrade lifecycle to use this database.
    """

    exit_code = 2

    def __init__(self, names: Iterable[str], version: int | None = None):
        self.names, self.version = tuple(names), version
        which = f"policy version {version}" if version is not None else "policy"
        super().__init__(
            f"the database's {which} has values this lifecycle does not know: "
            f"{', '.join(self.names)} (a newer lifecycle stored it; upgrade lifecycle)"
        )


class EventsExpired(LifecycleError):
    """A reader of `Engine.events` (a durable subscription) asked for events after a position
    that retention has since pruned past: what lay between is gone. ``first`` is the first
    position still kept (None: none is); `Subscription.seek` to it to go on, knowingly."""

    def __init__(self, after: int, first: int | None):
        self.after, self.first = after, first
        kept = f"the first kept is {first}" if first is not None else "none is kept"
        super().__init__(f"events after position {after} were pruned by retention ({kept}); "
                         f"seek to a kept position to go on")


class DatabaseMissing(LifecycleError):
    """The database named does not exist (a SQLite file that is not there, or whose folder is
    not), and this call may not create one: only ``lifecycle db init`` or ``db upgrade`` do.
    ``database`` is the file (or URL, password hidden); nothing was created."""

    exit_code = 2

    def __init__(self, database: str, message: str):
        self.database = database
        super().__init__(message)


class NotOurDatabase(LifecycleError):
    """A database that holds another application's tables, or is no database at all: lifecycle
    neither reads nor changes it. ``database`` names it (password hidden)."""

    exit_code = 2

    def __init__(self, database: str, reason: str):
        self.database, self.reason = database, reason
        super().__init__(f"{database} is not a lifecycle database ({reason}); nothing was "
                         "changed: give the --db of a lifecycle database, or create a new one "
                         "with `lifecycle --db URL db init`")


class DatabaseExists(LifecycleError):
    """``db init`` on a database that is already a lifecycle database: nothing was changed."""

    def __init__(self, database: str, revision: str):
        self.database, self.revision = database, revision
        super().__init__(f"{database} is already a lifecycle database (schema {revision}); "
                         "`lifecycle db upgrade` migrates it to this version")


class NotASandbox(LifecycleError):
    """A clock command on a production database, whose time is the wall clock's: only a
    database made with ``lifecycle db init --sandbox`` has a clock one may move."""

    def __init__(self, database: str):
        self.database = database
        super().__init__(f"{database} is a production database: its time is the wall clock's "
                         "and cannot be moved; only a sandbox (`lifecycle --db URL db init "
                         "--sandbox`) has a clock of its own")
