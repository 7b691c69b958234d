"""The audit behind `Engine.check` and `Engine.replay`: every history replays through its
machine to its aggregate's state and version, and the ledger keeps the invariants of SPEC §6.
"""

from __future__ import annotations

from collections.abc import Mapping

from lifecycle.errors import ReplayMismatch
from lifecycle.machines import capture
from lifecycle.machines.definition import MachineDefinition
from lifecycle.store.audit import HistoryStep, Violation
from lifecycle.store.datastore import Store


def check(store: Store, definitions: Mapping[str, MachineDefinition]) -> list[Violation]:
    """Every violation in the database, read in one read transaction."""
    with store.reading() as records:
        violations = [
            *records.unbalanced_postings(),
            *records.negative_escrow(),
            *records.refunds_over_paid(),
            *records.escrow_left_at("order", definitions["order"].terminal),
            *records.escrow_left_at(capture.KIND, definitions[capture.KIND].terminal),
            *records.unrefunded_captures(),
        ]
        for kind, id, state, version, steps in records.histories():
            problem = replay_problem(definitions, kind, state, version, steps)
            if problem:
                violations.append(Violation(kind, id, "history.replays_to_state", problem))
    return violations


def replay_problem(definitions: Mapping[str, MachineDefinition], kind: str, state: str | None,
                   version: int, steps: list[HistoryStep]) -> str | None:
    """What is wrong with an aggregate's history, or None when it replays to ``state``
    at ``version``."""
    if state is None:
        return "history of an aggregate that does not exist"
    if [seq for seq, *_ in steps] != list(range(1, len(steps) + 1)):
        return "history sequence has a gap or a duplicate"
    try:
        replayed = definitions[kind].replay((t, s, d) for _seq, t, s, d in steps)
    except (ReplayMismatch, KeyError) as error:
        return str(error)
    if (replayed, len(steps)) != (state, version):
        return f"history leads to {replayed} v{len(steps)}, stored {state} v{version}"
    return None
