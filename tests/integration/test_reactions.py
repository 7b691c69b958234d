"""Reactions: a machine answers another machine's transition in the same transaction, and the
other machine's definition (and so its version's fingerprint) does not change."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

import lifecycle
from lifecycle import Actor, DefinitionError, GuardFailed, MachineDefinition, Transition
from lifecycle.machines.definition import (
    Context,
    Create,
    Fire,
    FollowUp,
    Guard,
    Reaction,
    sends,
)
from lifecycle.machines.shape import fingerprint
from lifecycle.machines.verify import verify
from lifecycle.machines.versions import Machines

OPERATOR = frozenset({"operator"})
SYSTEM = frozenset({"system"})
ANA = Actor("operator", "ana")


LAMP = MachineDefinition(
    "lamp",
    states=("on", "off", "broken"),
    terminal=frozenset({"broken"}),
    owners={},
    new_id=lambda actor: "lamp-1",
    transitions=(
        Transition("install", (), "off", OPERATOR),
        Transition("switch", ("off",), "on", OPERATOR, when=lambda ctx: ctx.state == "off"),
        Transition("switch", ("on",), "off", OPERATOR),
        Transition("smash", ("on", "off"), "broken", OPERATOR),
    ),
)


@sends(("tally", "open"), ("tally", "count"))
def _count_switches(ctx: Context) -> Sequence[FollowUp]:
    if ctx.load("tally", ctx.id) is None:
        return [Create("tally", ctx.id, {})]
    return [Fire("tally", ctx.id, "count", {})]


def _count(ctx: Context) -> None:
    ctx.data["count"] = ctx.data.get("count", 1) + 1


AT_MOST_THREE = Guard("tally.at_most_three", lambda ctx: ctx.data.get("count", 1) < 3,
                      "a lamp is switched at most three times")

TALLY = MachineDefinition(
    "tally",
    states=("counting", "closed"),
    terminal=frozenset({"closed"}),
    owners={},
    new_id=lambda actor: "unused",
    transitions=(
        Transition("open", (), "counting", SYSTEM),
        Transition("count", ("counting",), "counting", SYSTEM, None, (AT_MOST_THREE,), _count,
                   internal=True),
        Transition("close", ("counting",), "closed", OPERATOR),
    ),
    reactions=(Reaction(("lamp", "switch"), _count_switches),),
)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[lifecycle.Engine]:
    opened = lifecycle.open(f"sqlite:///{tmp_path / 'reactions.db'}", machines=[LAMP, TALLY])
    yield opened
    opened.close()


def test_a_reaction_runs_with_the_transition_it_answers(engine: lifecycle.Engine) -> None:
    engine.create("lamp", ANA, {})
    engine.fire("lamp", "lamp-1", "switch", ANA)
    engine.fire("lamp", "lamp-1", "switch", ANA)

    assert engine.get("tally", "lamp-1").data["count"] == 2
    history = engine.history("tally", "lamp-1")
    assert [(h.trigger, str(h.actor)) for h in history] == [
        ("open", "system:lamp.switch"), ("count", "system:lamp.switch")]


def test_a_refused_reaction_refuses_the_transition_and_writes_nothing(
        engine: lifecycle.Engine) -> None:
    engine.create("lamp", ANA, {})
    for _ in range(3):
        engine.fire("lamp", "lamp-1", "switch", ANA)
    lamp, tally = engine.get("lamp", "lamp-1"), engine.get("tally", "lamp-1")

    with pytest.raises(GuardFailed, match="at most three"):
        engine.fire("lamp", "lamp-1", "switch", ANA)

    assert engine.get("lamp", "lamp-1") == lamp
    assert engine.get("tally", "lamp-1") == tally
    assert len(engine.history("lamp", "lamp-1")) == 4


def test_a_transition_no_machine_reacts_to_runs_alone(engine: lifecycle.Engine) -> None:
    engine.create("lamp", ANA, {})
    engine.fire("lamp", "lamp-1", "smash", ANA)

    with pytest.raises(lifecycle.NotFound):
        engine.get("tally", "lamp-1")


def test_reacting_changes_nothing_in_the_other_machines_fingerprint() -> None:
    before = fingerprint(LAMP)
    Machines([LAMP, TALLY])

    assert fingerprint(LAMP) == before
    assert fingerprint(TALLY) != fingerprint(MachineDefinition(
        "tally", states=TALLY.states, terminal=TALLY.terminal, owners={},
        new_id=TALLY.new_id, transitions=TALLY.transitions))


def test_a_shipped_definition_without_reactions_keeps_its_stored_fingerprint() -> None:
    # The shape gained a key for reactions; definitions without any must hash as before.
    from lifecycle.machines.shape import shape

    assert all("reactions" not in shape(d) for d in lifecycle.MACHINES.every()
               if not d.reactions)
    assert "reactions" in shape(TALLY)


def test_a_reaction_asking_for_what_it_did_not_declare_is_refused(tmp_path: Path) -> None:
    def undeclared(ctx: Context) -> Sequence[FollowUp]:
        return [Create("tally", ctx.id, {})]

    sloppy = MachineDefinition(
        "tally", states=TALLY.states, terminal=TALLY.terminal, owners={},
        new_id=TALLY.new_id, transitions=TALLY.transitions,
        reactions=(Reaction(("lamp", "switch"), undeclared),))
    with lifecycle.open(f"sqlite:///{tmp_path / 'sloppy.db'}", machines=[LAMP, sloppy]) as engine:
        engine.create("lamp", ANA, {})

        with pytest.raises(DefinitionError, match="does not declare"):
            engine.fire("lamp", "lamp-1", "switch", ANA)

        assert engine.get("lamp", "lamp-1").state == "off"


def test_a_reaction_acts_on_its_own_machine_only() -> None:
    @sends(("lamp", "smash"))
    def meddling(ctx: Context) -> Sequence[FollowUp]:
        return []

    with pytest.raises(DefinitionError, match="acts on its own machine only"):
        MachineDefinition("tally", states=TALLY.states, terminal=TALLY.terminal, owners={},
                          new_id=TALLY.new_id, transitions=TALLY.transitions,
                          reactions=(Reaction(("lamp", "switch"), meddling),))


def test_verify_finds_a_reaction_to_a_trigger_no_version_defines() -> None:
    lost = MachineDefinition(
        "tally", states=TALLY.states, terminal=TALLY.terminal, owners={},
        new_id=TALLY.new_id, transitions=TALLY.transitions,
        reactions=(Reaction(("lamp", "repair"), _count_switches),))

    findings = {(f.kind, f.check): f for f in verify(Machines([LAMP, lost]))}

    assert findings[("tally", "follow_ups")].problems == (
        "reacts to lamp repair, which no version of lamp defines",)
    assert findings[("tally", "follow_ups")].ok is False
    # and the tally's internal count is received: its reaction sends it
    findings = {(f.kind, f.check): f for f in verify(Machines([LAMP, TALLY]))}
    assert findings[("tally", "follow_ups")].ok
