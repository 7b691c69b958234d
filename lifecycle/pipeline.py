"""The path of a trigger: load → authorise → validate → move → write → follow-ups.

A trigger is checked in this order, and the first refusal wins: the aggregate exists, the
actor owns it (buyers and sellers), the trigger is defined from its state (and is not one only
another aggregate may fire), the actor's role may fire it, the payload is well-formed, the
guards pass. Then the shared `transitions` machine of the kind moves a `Context`, the adapter
calls its effects asked for are carried out, and state, history, outbox, deadlines and the
follow-ups (a dispute created, an order moved by its dispute) are written in the trigger's
unit of work (`lifecycle.unit`). Anything raised on the way rolls all of it back.

Authorisation happens at the public entry only (`create`, `fire`, and `fire_in` for a due
deadline): a follow-up is the definition's own doing, so it takes the same path without it.
The public entries are also where a trigger is counted, timed and traced (`lifecycle.telemetry`).

One module, a little over 400 lines, on purpose: the whole path of a trigger reads top-down in
one place, each step a method in the order it runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from lifecycle import telemetry, timers
from lifecycle.actor import Actor
from lifecycle.adapter_calls import Adapters, carry_out
from lifecycle.errors import (
    AlreadyExists,
    Conflict,
    DefinitionError,
    Forbidden,
    GuardFailed,
    InvalidPayload,
    InvalidTransition,
    NotFound,
    UnknownKind,
)
from lifecycle.events import event_body, notification_body
from lifecycle.machines import ALIASES, subaccount
from lifecycle.machines.definition import (
    Aggregate,
    Call,
    Claim,
    Context,
    Create,
    Fire,
    Index,
    MachineDefinition,
    Notify,
    Post,
    Scan,
    Step,
)
from lifecycle.machines.payload_words import in_words
from lifecycle.machines.payloads import dump, nothing_given
from lifecycle.machines.versions import Machines
from lifecycle.policy import Policy
from lifecycle.request import Request, actor_of, id_of, key_of, payload_of
from lifecycle.store.recorder import Recorder
from lifecycle.store.repository import HistoryEntry
from lifecycle.unit import Unit, Units

# A follow-up may cause another (a dispute resolves, its order moves); never deeper than this.
MAX_FOLLOW_UP_DEPTH = 4


class Pipeline:
    """Runs triggers: each public one in a unit of work of its own, its follow-ups inside it."""

    def __init__(self, units: Units, adapters: Adapters, definitions: Machines):
        self.units = units
        self.adapters = adapters
        self.definitions = definitions

    # --- the public entries -------------------------------------------------------------

    def create(self, kind: str, actor: Actor, payload: Mapping[str, Any] | None, *,
               id: str | None, idempotency_key: str | None) -> Aggregate:
        """`Engine.create`: the kind's creating trigger, authorised, in a unit of its own."""
        definition = self.definition(kind)
        if id is not None:
            id = id_of(id)
        trigger = definition.creation.trigger
        request = Request(definition.kind, id, trigger, actor_of(actor), payload_of(payload),
                          key_of(idempotency_key))
        with telemetry.observe(definition.kind, trigger, (trigger,), request.actor.role, id) as seen:
            created = self.units.run(request, lambda unit: self._create(unit, definition, request),
                                     creates=True)
            seen.id = created.id
        return created

    def fire(self, kind: str, id: str, trigger: str, actor: Actor,
             payload: Mapping[str, Any] | None, *, idempotency_key: str | None,
             expected_version: int | None) -> Aggregate:
        """`Engine.fire`: one trigger, authorised, in a unit of its own."""
        definition = self.definition(kind)
        request = Request(definition.kind, id_of(id), trigger, actor_of(actor), payload_of(payload),
                          key_of(idempotency_key))
        with telemetry.observe(definition.kind, trigger, self.definitions.triggers[definition.kind],
                               request.actor.role, request.id):
            return self.units.run(
                request, lambda unit: self.fire_in(unit, definition, request, expected_version),
                creates=trigger == definition.creation.trigger)

    def fire_in(self, unit: Unit, definition: MachineDefinition, request: Request,
                expected_version: int | None) -> Aggregate:
        """Fire an authorised trigger in ``unit``: what `fire` runs, and a due deadline.
        ``definition`` is the newest of the kind; the aggregate runs the version it is pinned
        to (SPEC §13)."""
        current = self._load(unit, definition, request, expected_version)
        definition = self._pinned(definition, current)
        step = self._authorise(unit, definition, current, request)
        return self._apply(unit, definition, current, step, request, expected_version, depth=0)

    def _pinned(self, definition: MachineDefinition, current: Aggregate) -> MachineDefinition:
        """The version of the machine ``current`` runs: one comparison when it is the newest,
        one lookup when older (no slower: benchmarks/fire.py)."""
        if current.machine_version == definition.version:
            return definition
        return self.definitions.at(definition.kind, current.machine_version)

    def triggers_of(self, kind: str) -> frozenset[str]:
        """Every trigger any registered version of ``kind`` defines (telemetry's labels)."""
        return self.definitions.triggers[kind]

    def get(self, kind: str, id: str) -> Aggregate:
        definition = self.definition(kind)
        with self.units.store.quick() as records:
            found = records.load(definition.kind, id_of(id))
        if found is None:
            raise NotFound(definition.kind, id)
        return found

    def existing(self, kind: str, id: str) -> Aggregate | None:
        """The aggregate, or None if there is none (or ``id`` could not name one)."""
        try:
            id = id_of(id)
        except InvalidPayload:
            return None
        with self.units.store.quick() as records:
            return records.load(kind, id)

    def allowed(self, kind: str, id: str, actor: Actor) -> list[str]:
        """`Engine.allowed`: what ``actor`` may fire now."""
        definition = self.definition(kind)
        actor = actor_of(actor)
        with self.units.store.reading() as records:
            aggregate = records.load(definition.kind, id_of(id))
            if aggregate is None:
                raise NotFound(definition.kind, id)
            return self._offered(records, self._pinned(definition, aggregate), aggregate, actor)

    def money_refusal(self, actor: Actor) -> str | None:
        """Why ``actor`` may not see a store's money (a sub-account without view_money, or
        not active), read now; None when it may. Every read that shows money asks this."""
        actor = actor_of(actor)
        if actor.sub is None:
            return None
        with self.units.store.quick() as records:
            return subaccount.money_refusal(actor, _staff_account(records, actor))

    def definition(self, kind: str) -> MachineDefinition:
        if not isinstance(kind, str):
            raise UnknownKind(repr(kind), self.definitions)
        kind = ALIASES.get(kind, kind)
        try:
            return self.definitions[kind]
        except (KeyError, TypeError):
            raise UnknownKind(str(kind), self.definitions) from None

    # --- creating: authorise → validate → create → write → follow-ups -------------------

    def _create(self, unit: Unit, definition: MachineDefinition, request: Request) -> Aggregate:
        creation, actor = definition.creation, request.actor
        if creation.internal:
            raise Forbidden(actor.role, actor.acting_id, creation.trigger,
                            f"a {definition.kind} is created by another aggregate's trigger")
        if actor.role not in creation.roles:
            raise Forbidden(actor.role, actor.acting_id, creation.trigger,
                            f"only {_roles(creation.roles)} may {creation.trigger}")
        staff = _staff_refusal(unit.records, definition.kind, creation.trigger, actor)
        if staff is not None:
            raise Forbidden(actor.role, actor.acting_id, creation.trigger, staff)
        created, context, payload = self._new(unit, definition, request)
        # Whose it is shows only once the effect has filled in its data.
        if not _owns(definition, created, actor):
            raise Forbidden(actor.role, actor.acting_id, creation.trigger,
                            f"a {actor.role} creates only their own {definition.kind}")
        return self._insert(unit, definition, created, context, payload, request, depth=0)

    def _new(self, unit: Unit, definition: MachineDefinition,
             request: Request) -> tuple[Aggregate, Context, BaseModel | None]:
        """The aggregate a creating trigger makes, not yet written: its id free, its payload
        valid, its guards passed, its effect and adapter calls carried out."""
        creation, actor = definition.creation, request.actor
        id = request.id or definition.new_id(actor)
        if unit.records.load(definition.kind, id) is not None:
            raise AlreadyExists(definition.kind, id)
        payload = validate_payload(creation.payload, request.payload, {})
        context = Context(definition.kind, id, "", {}, payload, actor, unit.now, unit.policy,
                          unit.records.load, trigger=creation.trigger)
        _check_guards(creation.guards, context, creation.trigger)
        if creation.effect is not None:
            creation.effect(context)
        self._call_adapters(context, request.idempotency_key or f"{definition.kind}:{id}:1")
        context.state = definition.initial
        created = Aggregate(definition.kind, id, definition.initial, 1, context.data,
                            definition.version)
        return created, context, payload

    def _insert(self, unit: Unit, definition: MachineDefinition, created: Aggregate,
                context: Context, payload: BaseModel | None, request: Request,
                depth: int) -> Aggregate:
        unit.records.insert_aggregate(created, unit.now)
        self._record(unit, created, definition.creation.trigger, None, request.actor, payload,
                     request)
        timers.follow_state(unit.records, definition, created, None, unit.now, unit.policy)
        self._follow(unit, definition, context, created.version, depth)
        return created

    # --- firing: load → authorise → validate → move → write → follow-ups ----------------

    def _load(self, unit: Unit, definition: MachineDefinition, request: Request,
              expected_version: int | None, *, lock: bool = False) -> Aggregate:
        """The aggregate to move. ``lock``: hold its row until the transaction ends (FOR
        UPDATE on PostgreSQL), for a follow-up's target, which other transactions' follow-ups
        may move at the same moment (a seller's points account, credited by each of its
        orders' releases): they wait for each other instead of one failing with `Conflict`."""
        assert request.id is not None
        read = unit.records.lock_for_write if lock else unit.records.load_for_write
        found = read(definition.kind, request.id)
        if found is None:
            raise NotFound(definition.kind, request.id)
        current, last_moved = found
        # History runs forward per aggregate even when this transaction's clock reading is
        # older than another writer's that committed first (PostgreSQL, read committed).
        unit.now = max(unit.now, last_moved)
        if expected_version is not None and current.version != expected_version:
            raise Conflict(definition.kind, current.id, expected_version)
        return current

    def _authorise(self, unit: Unit, definition: MachineDefinition, current: Aggregate,
                   request: Request) -> Step:
        """The actor owns the aggregate, the trigger is one they may fire from its state (not
        an internal one), and their role may: the step to take."""
        actor, trigger = request.actor, request.trigger
        if not _owns(definition, current, actor):
            raise Forbidden(actor.role, actor.acting_id, trigger,
                            f"{definition.kind} {current.id} is not theirs")
        step = _defined(definition, current, trigger)
        if step.internal:
            raise _not_from_here(definition, current, trigger)
        if actor.role not in step.roles:
            raise Forbidden(actor.role, actor.acting_id, trigger, f"only {_roles(step.roles)} may {trigger}",
                            kind=definition.kind, id=current.id, state=current.state,
                            allowed=self._offered(unit.records, definition, current, actor,
                                                  unit.now, unit.policy))
        staff = _staff_refusal(unit.records, definition.kind, trigger, actor)
        if staff is not None:
            raise Forbidden(actor.role, actor.acting_id, trigger, staff,
                            kind=definition.kind, id=current.id, state=current.state,
                            allowed=self._offered(unit.records, definition, current, actor,
                                                  unit.now, unit.policy))
        return step

    def _apply(self, unit: Unit, definition: MachineDefinition, current: Aggregate, step: Step,
               request: Request, expected_version: int | None, depth: int) -> Aggregate:
        """Validate the payload, check the guards, move, write, and carry out the follow-ups."""
        payload = validate_payload(step.payload, request.payload, current.data)
        context = self._context(unit.records, current, request.actor, payload, unit.now,
                                unit.policy, request.trigger)
        for guard in step.guards:
            if not guard.check(context):
                raise self._refused_by(unit.records, guard.rule, guard.explain(context), context,
                                       definition, current)
        moved, read_version = self._move(unit, definition, current, context, request,
                                         expected_version)
        if not unit.records.update_aggregate(moved, read_version, unit.now):
            raise Conflict(definition.kind, current.id, expected_version)
        self._record(unit, moved, request.trigger, current.state, request.actor, payload, request)
        timers.follow_state(unit.records, definition, moved, current.state, unit.now, unit.policy)
        self._follow(unit, definition, context, moved.version, depth, current)
        return moved

    def _move(self, unit: Unit, definition: MachineDefinition, current: Aggregate,
              context: Context, request: Request,
              expected_version: int | None) -> tuple[Aggregate, int]:
        """Run the machine on the context, and the adapter calls its effects asked for: the
        aggregate moved, and the version its row must still have to be written."""
        trigger = request.trigger
        if not definition.machine.events[trigger].trigger(context):
            raise _not_from_here(definition, current, trigger)
        version, read_version = current.version + 1, current.version
        if any(isinstance(f, Call) for f in context.follow_ups):
            # Take the aggregate before any money moves: a writer that would lose the race
            # must learn it now, not after the gateway has acted.
            claimed = unit.records.claim_version(definition.kind, current.id, current.version)
            if claimed is None:
                raise Conflict(definition.kind, current.id, expected_version)
            read_version = claimed
            self._call_adapters(context, request.idempotency_key
                                or f"{definition.kind}:{current.id}:{version}:{trigger}")
        moved = Aggregate(definition.kind, current.id, context.state, version, context.data,
                          current.machine_version)
        return moved, read_version

    def _call_adapters(self, context: Context, key: str) -> None:
        """Carry out the adapter calls the effects asked for, before anything is written; their
        answers (a payment reference, a waybill) go into the aggregate's data. The key is the
        trigger's idempotency key, or one derived from the transition, so a retry of the same
        transition is the same request to the adapter."""
        calls = [f for f in context.follow_ups if isinstance(f, Call)]
        for n, call in enumerate(calls):
            answer = carry_out(self.adapters, call, f"{key}#{n}" if n else key)
            if call.result is not None:
                context.data[call.result] = answer

    def _record(self, unit: Unit, aggregate: Aggregate, trigger: str, source: str | None,
                actor: Actor, payload: BaseModel | None, request: Request) -> None:
        """History row and outbox event for one transition."""
        body = dump(payload)
        entry = HistoryEntry(aggregate.version, trigger, source, aggregate.state, actor, body,
                             request.idempotency_key, unit.now, aggregate.machine_version,
                             self.units.policy.version_of(unit.policy))
        unit.records.append_history(aggregate, entry)
        event = event_body(aggregate.kind, aggregate.id, aggregate.version, trigger, source,
                           aggregate.state, actor, body, unit.now)
        unit.records.append_outbox(event, unit.now)
        unit.events.append(event)

    # --- follow-ups: the same path, without authorisation ---------------------------------

    def _follow(self, unit: Unit, sender: MachineDefinition, context: Context, seq: int,
                depth: int, before: Aggregate | None = None) -> None:
        """Carry out what the transition asked of other aggregates, in the same transaction.
        ``before`` is the aggregate as the transition found it (None when it created it)."""
        if context.follow_ups and depth >= MAX_FOLLOW_UP_DEPTH:
            raise RuntimeError(f"follow-ups nested deeper than {MAX_FOLLOW_UP_DEPTH}: a definition loops")
        records = unit.records
        for follow_up in context.follow_ups:
            if isinstance(follow_up, Claim):
                self._claim(unit, context, follow_up, before)
                continue
            if isinstance(follow_up, Call):
                continue  # carried out before the transition was written
            if isinstance(follow_up, Index):
                value = follow_up.value
                records.index(follow_up.name, value(context.data) if callable(value) else value,
                              context.kind, context.id)
                continue
            if isinstance(follow_up, Post):
                records.post(context.kind, context.id, seq, follow_up.posting, unit.now)
                continue
            if isinstance(follow_up, Scan):
                records.record_scan(context.kind, context.id, follow_up, unit.now)
                continue
            if isinstance(follow_up, Notify):
                self._notify(unit, context, follow_up, seq)
                continue
            sent = self._sent(follow_up)
            if not sender.sends_to(context.trigger, follow_up.kind, sent):
                raise DefinitionError(
                    f"{sender.kind} {context.trigger} asked for {follow_up.kind} {sent}, which "
                    "its effect does not declare (`follow_ups.sends`)")
            self._carry_out(unit, follow_up, context.actor, depth)
        self._react(unit, context, depth)

    def _react(self, unit: Unit, context: Context, depth: int) -> None:
        """The other machines' `Reaction`s to this transition, in the same transaction, as
        the system actor named for it (``system:order.pay``)."""
        reactions = self.definitions.reactions.get((context.kind, context.trigger))
        if not reactions:
            return
        if depth >= MAX_FOLLOW_UP_DEPTH:
            raise RuntimeError(f"reactions nested deeper than {MAX_FOLLOW_UP_DEPTH}: machines "
                               "react to each other in a loop")
        actor = Actor("system", f"{context.kind}.{context.trigger}")
        for reacting, reaction in reactions:
            declared = getattr(reaction.effect, "sends", ())
            for follow_up in reaction.effect(context):
                if not isinstance(follow_up, Create | Fire) or (
                        follow_up.kind, self._sent(follow_up)) not in declared:
                    raise DefinitionError(
                        f"{reacting.kind}'s reaction to {context.kind} {context.trigger} asked "
                        f"for {follow_up!r}, which it does not declare (`follow_ups.sends`)")
                self._carry_out(unit, follow_up, actor, depth)

    def _sent(self, follow_up: Create | Fire) -> str:
        """The trigger a follow-up fires: a created aggregate's creating one."""
        if isinstance(follow_up, Create):
            return self.definition(follow_up.kind).creation.trigger
        return follow_up.trigger

    def _carry_out(self, unit: Unit, follow_up: Create | Fire, actor: Actor, depth: int) -> None:
        """Create or fire on another aggregate, unauthorised: the transition that asked for
        it was authorised."""
        definition = self.definition(follow_up.kind)
        if isinstance(follow_up, Create):
            # The id is built from others' ids (a voucher's from its coupon's and buyer's):
            # checked like a caller's, so nothing is written under one `get` would refuse.
            id = (id_of(follow_up.id, f"{follow_up.kind}_id") if follow_up.id is not None
                  else None)
            request = Request(follow_up.kind, id, definition.creation.trigger, actor,
                              follow_up.payload, None)
            try:
                created, created_context, payload = self._new(unit, definition, request)
            except AlreadyExists:
                # The effect that asked for it found none, and another transaction committed
                # one since (read committed): the effect decided on a stale read, so the whole
                # trigger is retried, as when both inserts meet on the key (`Conflict`).
                if id is None:
                    raise
                raise Conflict(follow_up.kind, id, None) from None
            self._insert(unit, definition, created, created_context, payload, request,
                         depth=depth + 1)
        else:
            request = Request(follow_up.kind, follow_up.id, follow_up.trigger, actor,
                              follow_up.payload, None)
            current = self._load(unit, definition, request, None, lock=True)
            definition = self._pinned(definition, current)
            step = _defined(definition, current, request.trigger)
            self._apply(unit, definition, current, step, request, None, depth + 1)

    def _notify(self, unit: Unit, context: Context, notice: Notify, seq: int) -> None:
        """A message the transition asked for, as an outbox event beside its own (issue #20)."""
        body = notification_body(notice.recipient_id, seq, context.trigger, context.source or None,
                                 context.state, context.actor, {
                                     "recipient": {"role": notice.recipient_role,
                                                   "id": notice.recipient_id},
                                     "about": {"kind": context.kind, "id": context.id, "seq": seq},
                                     "channel": notice.channel, "address": notice.address,
                                     "category": notice.category, "template": notice.template,
                                     "values": dict(notice.values)}, unit.now)
        unit.records.append_outbox(body, unit.now)
        unit.events.append(body)

    def _claim(self, unit: Unit, context: Context, claim: Claim, before: Aggregate | None) -> None:
        value = claim.value(context.data) if callable(claim.value) else claim.value
        holder = unit.records.claimed_by(claim.name, value)
        if holder is not None and holder != (context.kind, context.id):
            rule, message = f"{claim.name}.unique", f"{claim.name} {value!r} is taken"
            if before is None:
                raise GuardFailed(rule, message, trigger=context.trigger, state=context.source)
            raise self._refused_by(unit.records, rule, message, context,
                                   self.definition(context.kind), before)
        if holder is None:
            unit.records.claim(claim.name, value, context.kind, context.id)

    # --- what a refusal offers instead ------------------------------------------------------

    def _offered(self, records: Recorder, definition: MachineDefinition, aggregate: Aggregate,
                 actor: Actor, now: datetime | None = None,
                 policy: Policy | None = None) -> list[str]:
        """The triggers ``actor`` may fire on ``aggregate`` now: state, role, ownership and the
        payload-free guards. What `allowed` answers, and what a refusal offers instead."""
        if not _owns(definition, aggregate, actor):
            return []
        account = _staff_account(records, actor)
        context = self._context(records, aggregate, actor, None, now,
                                policy if policy is not None else self.units.policy.current())
        return [
            trigger
            for trigger in definition.external_triggers_from(aggregate.state)
            if _may_fire(definition.step(aggregate.state, trigger), actor, context)
            and (actor.sub is None
                 or subaccount.refusal(actor, definition.kind, trigger, account) is None)
        ]

    def _refused_by(self, records: Recorder, rule: str, message: str, context: Context,
                    definition: MachineDefinition, before: Aggregate) -> GuardFailed:
        """A rule's refusal, naming where it happened and what the actor may fire instead."""
        return GuardFailed(rule, message, trigger=context.trigger,
                           kind=before.kind, id=before.id, state=before.state,
                           role=context.actor.role,
                           allowed=self._offered(records, definition, before, context.actor,
                                                 context.now, context.policy))

    def _context(self, records: Recorder, aggregate: Aggregate, actor: Actor, payload: Any,
                 now: datetime | None, policy: Policy, trigger: str = "") -> Context:
        return Context(aggregate.kind, aggregate.id, aggregate.state, dict(aggregate.data),
                       payload, actor, now or self.units.clock.now(), policy, records.load,
                       trigger=trigger, source=aggregate.state)


# --- checks, kept as plain functions so `allowed` and `fire` share them -------------------


def _owns(definition: MachineDefinition, aggregate: Aggregate, actor: Actor) -> bool:
    return definition.owns(actor, aggregate.id, aggregate.data)


def _staff_account(records: Recorder, actor: Actor) -> Aggregate | None:
    """The sub-account ``actor`` acts as, read now (no cache: disabling one takes effect on
    its next action); None for an account's owner, or a sub-account that does not exist."""
    if actor.sub is None:
        return None
    return records.load(subaccount.KIND, subaccount.id_of_actor(actor))


def _staff_refusal(records: Recorder, kind: str, trigger: str, actor: Actor) -> str | None:
    """Why the sub-account ``actor`` may not fire ``trigger`` (inactive, or outside its
    permissions: `machines.subaccount`), or None; a store's owner, buyers, operators and the
    system always pass."""
    if actor.sub is None:
        return None
    return subaccount.refusal(actor, kind, trigger, _staff_account(records, actor))


def _defined(definition: MachineDefinition, current: Aggregate, trigger: str) -> Step:
    step = definition.step(current.state, trigger)
    if step is None:
        raise _not_from_here(definition, current, trigger)
    return step


def _not_from_here(definition: MachineDefinition, current: Aggregate,
                   trigger: str) -> InvalidTransition:
    return InvalidTransition(definition.kind, current.id, current.state, trigger,
                             definition.external_triggers_from(current.state),
                             terminal=current.state in definition.terminal)


def _may_fire(step: Step | None, actor: Actor, context: Context) -> bool:
    if step is None or step.internal or actor.role not in step.roles:
        return False
    return all(guard.check(context) for guard in step.guards if not guard.uses_payload)


def _check_guards(guards: tuple[Any, ...], context: Context, trigger: str) -> None:
    for guard in guards:
        if not guard.check(context):
            raise GuardFailed(guard.rule, guard.explain(context), trigger=trigger,
                              state=context.state)


def validate_payload(model: type[BaseModel] | None, payload: Mapping[str, Any],
                     data: Mapping[str, Any]) -> BaseModel | None:
    """The payload as its trigger's model (or a recorded scan's, `ingestion`); the first
    problem becomes `InvalidPayload`."""
    if model is None:
        if payload:
            raise InvalidPayload("payload", f"takes no fields, got {', '.join(sorted(payload))}")
        return None
    try:
        validated = model.model_validate(payload) if payload else nothing_given(model)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "payload"
        raise InvalidPayload(where, in_words(first)) from None
    check = getattr(validated, "check", None)
    if check is not None:
        check(data)  # rules that need the aggregate: amounts in the order's currency
    return validated


def _roles(roles: frozenset[str]) -> str:
    return " or ".join(sorted(roles))
