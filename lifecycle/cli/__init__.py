"""The ``lifecycle`` command: a thin skin over the public API, one module per noun.

Exit codes: 0 done; 1 refused by the domain (wrong state, guard, role, conflict, not found);
2 bad usage or payload. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

from lifecycle.cli.root import cli, main

# Each command by name: the module of `lifecycle.cli` that holds it, and its attribute. A
# module is imported when its command runs or help lists it (`Root.get_command`), so a command
# starts without the others' imports (issue #19: FastAPI for `serve`, the simulation, ...).
COMMANDS: dict[str, tuple[str, str]] = {
    "seller": ("seller", "seller"),
    "order": ("order", "order"),
    "dispute": ("dispute", "dispute"),
    "coupon": ("coupon", "coupon"),
    "graph": ("graph", "graph"),
    "create": ("generic", "create"),
    "fire": ("generic", "fire"),
    "show": ("generic", "show"),
    "history": ("generic", "history"),
    "list": ("generic", "list_"),
    "check": ("generic", "check"),
    "db": ("db", "db"),
    "clock": ("clock", "clock"),
    "timers": ("timers", "timers"),
    "policy": ("policy", "policy"),
    "simulate": ("simulate", "simulate"),
    "carriers": ("carriers", "carriers"),
    "keys": ("keys", "keys"),
    "serve": ("serve", "serve"),
    "relay": ("relay", "relay"),
    "events": ("relay", "events"),
    "migrate": ("versions", "migrate"),
    "verify": ("versions", "verify"),
    "machines": ("versions", "machines"),
    # the seller's account (SPEC §12)
    "violation": ("penalties", "violation"),
    "standing": ("penalties", "standing"),
    "points": ("points", "points"),
    "message": ("message", "message"),
    "subaccount": ("subaccount", "subaccount"),
    "profile": ("profile", "profile"),
    "avatar": ("profile", "avatar"),
}
cli.add_lazy(COMMANDS)

__all__ = ["COMMANDS", "cli", "main"]
