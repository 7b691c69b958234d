"""A machine definition is checked when it is built: a bad one fails loudly; and the real ones
are the SPEC's machines, state for state, arrow for arrow (with its roles), deadline for deadline.

No database: these build `MachineDefinition` objects directly.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

import lifecycle
from lifecycle.machines import DEFINITIONS
from lifecycle.machines.definition import Deadline, MachineDefinition, Transition
from tests.machines_spec import SPEC, Arrow, spec_arrows

SELLER, SYSTEM = frozenset({"seller"}), frozenset({"system"})


def _always(ctx: Any) -> bool:
    return True


def _later(policy: Any, data: Any) -> timedelta:
    return timedelta(days=1)


CREATE = Transition("create", (), "draft", SELLER)
PUBLISH = Transition("publish", ("draft",), "live", SELLER)
EXPIRE = Transition("expire", ("live",), "ended", SYSTEM)
END = Transition("end", ("draft", "live"), "ended", SELLER)
GOOD: dict[str, Any] = {
    "states": ("draft", "live", "ended"),
    "terminal": frozenset({"ended"}),
    "transitions": (CREATE, PUBLISH, EXPIRE, END),
    "owners": {"seller": lambda id, data: data["seller"]},
    "new_id": lambda actor: "c-1",
    "deadlines": (Deadline("live", "expire", _later),),
}


def build(**changes: Any) -> MachineDefinition:
    return MachineDefinition("coupon", **{**GOOD, **changes})


def refused(**changes: Any) -> str:
    """The `DefinitionError` message of the good definition with ``changes``."""
    with pytest.raises(lifecycle.DefinitionError) as error:
        build(**changes)
    assert "coupon" in str(error.value)
    return str(error.value)


def test_a_sound_definition_builds() -> None:
    definition = build()

    assert definition.initial == "draft"
    assert set(definition.triggers_from("live")) == {"expire", "end"}
    assert definition.step("draft", "publish") is not None
    assert definition.step("ended", "publish") is None


def test_unreachable_state_is_refused() -> None:
    message = refused(states=("draft", "live", "archived", "ended"),
                      transitions=(CREATE, PUBLISH, EXPIRE, END,
                                   Transition("purge", ("archived",), "ended", SELLER)))

    assert "unreachable" in message
    assert "archived" in message


def test_state_that_cannot_reach_a_terminal_state_is_refused() -> None:
    message = refused(states=("draft", "live", "stuck", "ended"),
                      transitions=(CREATE, PUBLISH, EXPIRE, END,
                                   Transition("jam", ("draft",), "stuck", SELLER),
                                   Transition("spin", ("stuck",), "stuck", SELLER)))

    assert "cannot reach a terminal state" in message
    assert "stuck" in message


def test_definition_without_terminal_state_is_refused() -> None:
    message = refused(terminal=frozenset(), transitions=(
        CREATE, PUBLISH, EXPIRE, END, Transition("reopen", ("ended",), "draft", SELLER)))

    assert "no terminal state" in message


def test_transition_with_no_roles_is_refused() -> None:
    message = refused(transitions=(CREATE, Transition("publish", ("draft",), "live", frozenset()),
                                   EXPIRE, END))

    assert "publish has no role" in message


def test_transition_with_an_unknown_role_is_refused() -> None:
    message = refused(transitions=(CREATE, Transition("publish", ("draft",), "live",
                                                      frozenset({"admin"})), EXPIRE, END))

    assert "'admin'" in message


def test_owner_of_an_unknown_role_is_refused() -> None:
    message = refused(owners={"merchant": lambda id, data: id})

    assert "'merchant'" in message


def test_deadline_on_a_trigger_not_defined_from_its_state_is_refused() -> None:
    message = refused(deadlines=(Deadline("draft", "expire", _later),))

    assert "deadline expire on draft" in message


def test_deadline_whose_trigger_system_may_not_fire_is_refused() -> None:
    message = refused(deadlines=(Deadline("live", "end", _later),))

    assert "deadline end on live" in message
    assert "system may not fire it" in message


def test_deadline_on_an_unknown_state_is_refused() -> None:
    message = refused(deadlines=(Deadline("paused", "expire", _later),))

    assert "'paused'" in message


@pytest.mark.parametrize(("transition", "unknown"), [
    pytest.param(Transition("publish", ("drafted",), "live", SELLER), "drafted", id="source"),
    pytest.param(Transition("publish", ("draft",), "published", SELLER), "published", id="dest"),
])
def test_transition_naming_an_unknown_state_is_refused(transition: Transition, unknown: str) -> None:
    message = refused(transitions=(CREATE, transition, EXPIRE, END))

    assert f"publish names unknown state {unknown!r}" in message


def test_creating_transition_to_an_unknown_state_is_refused() -> None:
    message = refused(transitions=(Transition("create", (), "new", SELLER), PUBLISH, EXPIRE, END))

    assert "unknown state 'new'" in message


def test_state_listed_twice_is_refused() -> None:
    message = refused(states=("draft", "live", "draft", "ended"))

    assert "listed twice" in message


@pytest.mark.parametrize("creating", [
    pytest.param((), id="none"),
    pytest.param((CREATE, Transition("import", (), "live", SYSTEM)), id="two"),
])
def test_definition_needs_exactly_one_creating_transition(
    creating: tuple[Transition, ...]
) -> None:
    message = refused(transitions=(*creating, PUBLISH, EXPIRE, END))

    assert "exactly one creating transition" in message


def test_transition_leaving_a_terminal_state_is_refused() -> None:
    message = refused(transitions=(CREATE, PUBLISH, EXPIRE, END,
                                   Transition("revive", ("ended",), "live", SELLER)))

    assert "leaves terminal state ended" in message


def test_internal_trigger_fired_by_anyone_but_system_is_refused() -> None:
    message = refused(transitions=(CREATE, PUBLISH, EXPIRE, END,
                                   Transition("sync", ("live",), "live", SELLER, internal=True)))

    assert "internal trigger sync" in message


def test_routes_of_one_trigger_that_differ_in_roles_are_refused() -> None:
    message = refused(transitions=(
        CREATE, EXPIRE, END,
        Transition("publish", ("draft",), "live", SELLER, when=_always),
        Transition("publish", ("draft",), "ended", SYSTEM),
    ))

    assert "routes of publish from draft differ" in message


def test_unconditional_route_before_another_is_refused() -> None:
    message = refused(transitions=(
        CREATE, EXPIRE, END,
        Transition("publish", ("draft",), "live", SELLER),
        Transition("publish", ("draft",), "ended", SELLER, when=_always),
    ))

    assert "unconditional route" in message


def test_routes_of_one_trigger_lead_to_each_of_their_destinations() -> None:
    definition = build(transitions=(
        CREATE, EXPIRE, END,
        Transition("publish", ("draft",), "live", SELLER, when=_always),
        Transition("publish", ("draft",), "ended", SELLER),
    ))

    step = definition.step("draft", "publish")
    assert step is not None
    assert step.dests == ("live", "ended")


# --- the real machines, against the SPEC written out by hand (tests/machines_spec.py) --------


def real_arrows(definition: MachineDefinition) -> list[Arrow]:
    return sorted(((t.trigger, tuple(sorted(t.source)), t.dest, tuple(sorted(t.roles)),
                    t.internal) for t in definition.transitions), key=repr)


def test_every_machine_has_its_spec_written_out() -> None:
    assert set(DEFINITIONS) == set(SPEC)


@pytest.mark.parametrize("kind", sorted(SPEC))
def test_real_machine_has_the_states_of_the_spec(kind: str) -> None:
    definition, spec = DEFINITIONS[kind], SPEC[kind]

    assert set(definition.states) == spec.states
    assert len(definition.states) == len(spec.states)
    assert definition.initial == spec.initial
    assert definition.terminal == spec.terminal
    assert definition.pausing == spec.pausing
    assert definition.public == spec.public


@pytest.mark.parametrize("kind", sorted(SPEC))
def test_real_machine_has_exactly_the_arrows_of_the_spec(kind: str) -> None:
    expected, real = spec_arrows(SPEC[kind].arrows), real_arrows(DEFINITIONS[kind])

    missing = [arrow for arrow in expected if arrow not in real]
    unexpected = [arrow for arrow in real if arrow not in expected]
    assert (missing, unexpected) == ([], [])
    assert real == expected  # and each just once


@pytest.mark.parametrize("kind", sorted(SPEC))
def test_real_machine_schedules_the_deadlines_of_the_spec(kind: str) -> None:
    definition, spec = DEFINITIONS[kind], SPEC[kind]

    assert sorted((d.state, d.trigger) for d in definition.deadlines) == sorted(spec.deadlines)
    assert {(d.state, d.trigger, source) for d in definition.deadlines
            for source in d.continues_from} == spec.continuing


def test_the_spec_tables_are_read_as_written() -> None:
    # The reader of the tables above, pinned on its own: a continued line, the markers.
    assert spec_arrows("""
        close  | a, b,
                 c         | z | seller, operator
        open   | -         | a | follow-up
        note   | a         | = | system
    """) == sorted([
        ("close", ("a", "b", "c"), "z", ("operator", "seller"), False),
        ("open", (), "a", ("system",), True),
        ("note", ("a",), None, ("system",), False),
    ], key=repr)


def test_an_empty_payload_is_validated_once_per_model_and_dumps_afresh() -> None:
    from lifecycle.machines.order_payloads import Pay
    from lifecycle.machines.payloads import Empty, dump, nothing_given

    assert nothing_given(Empty) is nothing_given(Empty)
    first = dump(nothing_given(Empty))
    first["note"] = "changed by a subscriber"
    assert dump(nothing_given(Empty)) == {}
    # Only an empty form: a given note is validated and dumped each time.
    assert dump(Empty.model_validate({"note": "hi"})) == {"note": "hi"}
    assert dump(nothing_given(Pay)) == Pay.model_validate({}).model_dump(mode="json",
                                                                          exclude_none=True)
