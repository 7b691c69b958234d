"""The shipped machines keep the fingerprints databases have stored (SPEC §13).

A database that ran a (kind, version) refuses a process whose definition of it has another
shape (`DefinitionChanged`). So a change to a shipped machine's states, arrows, roles, payload
models, guard rules, effects, deadlines or follow-ups is a new version with a migration, never
an edit of version 1: this test fails on such an edit. The seller's account (issue #20) was
built beside them, by new machines, one guard's body and a `Reaction`.
"""

from __future__ import annotations

import lifecycle
from lifecycle.machines.shape import fingerprint

STORED = {
    ("seller", 1): "6a25735526e02b9b43eaf5cffe7a1b9d29bea7100e3d7d102dd9635cee1a5609",
    ("order", 1): "719288ffe5ff173740619305e78b2cdcca9ff648485661e20b38fa0c09ee58f4",
    ("dispute", 1): "e978786cb5afd9e8e3144fd3aa3f56b8272a3464f709127479999d98cc5a55d3",
    ("coupon", 1): "e44d59b91d4795ee3a38b94401d55ea0221f23065b7da44da53349afd5276b5d",
    ("voucher", 1): "eadfc88f828da8eb38f18ed067e2390897fc544a00cbd001d7eb2ecf4f2135f7",
    ("unexpected_capture", 1):
        "0286f90c76b95b54a356fa83b73db94aec755e761a7bf81a0dd7db0e2fa2e29a",
}


def test_the_machines_shipped_before_keep_their_stored_fingerprints() -> None:
    found = {key: fingerprint(lifecycle.MACHINES.at(*key)) for key in STORED}

    assert found == STORED
