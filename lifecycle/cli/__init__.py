"""The ``lifecycle`` command: a thin skin over the public API, one module per noun.

Exit codes: 0 done; 1 refused by the domain (wrong state, guard, role, conflict, not found);
2 bad usage or payload. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

from lifecycle.cli import (
    carriers,
    clock,
    coupon,
    db,
    dispute,
    generic,
    graph,
    helptext,
    keys,
    order,
    policy,
    profile,
    relay,
    seller,
    serve,
    simulate,
    timers,
    versions,
)
from lifecycle.cli.root import cli, main

for _command in (seller.seller, order.order, dispute.dispute, coupon.coupon, graph.graph,
                 *generic.COMMANDS, db.db, clock.clock, timers.timers, policy.policy, simulate.simulate,
                 carriers.carriers, keys.keys, serve.serve, relay.relay, relay.events,
                 *versions.COMMANDS, profile.profile, profile.avatar):
    cli.add_command(_command)
helptext.complete(cli)  # group listings give each command a whole sentence, never cut short

__all__ = ["cli", "main"]
