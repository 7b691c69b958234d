"""The audit behind `Engine.check` and `Engine.replay`: every history replays through its
machine to its aggregate's state and version, and the ledger keeps the invariants of SPEC §6.
"""

from __future__ import annotations

from lifecycle.errors import ReplayMismatch
from lifecycle.machines import capture
from lifecycle.machines.versions import Machines, replay
from lifecycle.store.audit import HistoryStep, Violation, points_violations
from lifecycle.store.datastore import Store


def check(store: Store, definitions: Machines) -> list[Violation]:
    """Every violation in the database, read in one read transaction."""
    with store.reading() as records:
        violations = [
            *records.unbalanced_postings(),
            *records.negative_escrow(),
            *records.refunds_over_paid(),
            *records.escrow_left_at("order", definitions["order"].terminal),
            *records.escrow_left_at(capture.KIND, definitions[capture.KIND].terminal),
            *records.unrefunded_captures(),
            *records.penalty_points_drift(),
            *points_violations(records),
        ]
        for kind, id, state, version, machine_version, steps in records.histories():
            problem = replay_problem(definitions, kind, state, version, machine_version, steps)
            if problem:
                violations.append(Violation(kind, id, "history.replays_to_state", problem))
    return violations


def replay_problem(definitions: Machines, kind: str, state: str | None, version: int,
                   machine_version: int, steps: list[HistoryStep]) -> str | None:
    """What is wrong with an aggregate's history, or None when it replays to ``state`` at
    ``version`` and on ``machine_version``: each row through the version of the machine it
    ran under (SPEC §13)."""
    if state is None:
        return "history of an aggregate that does not exist"
    if [seq for seq, *_ in steps] != list(range(1, len(steps) + 1)):
        return "history sequence has a gap or a duplicate"
    try:
        replayed, replayed_on = replay(definitions, kind, ((t, s, d, v) for _seq, t, s, d, v in steps))
    except (ReplayMismatch, KeyError) as error:
        return str(error)
    if (replayed, len(steps)) != (state, version):
        return f"history leads to {replayed} v{len(steps)}, stored {state} v{version}"
    if replayed_on != machine_version:
        return (f"history runs version {replayed_on} of the {kind} machine, the aggregate "
                f"says {machine_version}")
    return None
