"""Finding order messages through their lookups (`machines.message`): an order's messages, a
side's unread ones, those a side labelled or marked. A part of `Recorder`.

Each read is one statement over the lookup's primary key joined to the aggregates: it reads
the messages' rows (their state and data), never their history, and the unread read only the
rows still ``unread`` (``ix_aggregates_kind_state`` is not needed: the lookup narrows first).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select

from lifecycle.machines.definition import Aggregate
from lifecycle.store.statements import Statement, Statements
from lifecycle.store.tables import aggregates, lookups

_JOINED = lookups.join(aggregates, (aggregates.c.kind == lookups.c.kind)
                       & (aggregates.c.id == lookups.c.aggregate_id))
_FOUND = (select(aggregates.c.id, aggregates.c.state, aggregates.c.version, aggregates.c.data,
                 aggregates.c.machine_version)
          .select_from(_JOINED)
          .where(lookups.c.name == bindparam("name"), lookups.c.value == bindparam("value"),
                 lookups.c.kind == bindparam("kind")))
_OLDEST_FIRST = (aggregates.c.created_at, aggregates.c.id)


class MessageRecords(Statements):
    """The aggregates a lookup finds, oldest first: all of them, or those in one state."""

    INDEXED = Statement(_FOUND.order_by(*_OLDEST_FIRST))
    INDEXED_IN_STATE = Statement(_FOUND.where(aggregates.c.state == bindparam("state"))
                                 .order_by(*_OLDEST_FIRST))

    def indexed(self, name: str, value: str, kind: str, *,
                state: str | None = None) -> list[Aggregate]:
        """The ``kind`` aggregates indexed under (``name``, ``value``), by creation time; of
        ``state`` only when given."""
        params: dict[str, Any] = {"name": name, "value": value, "kind": kind}
        if state is None:
            self.cur.execute(self.INDEXED, params)
        else:
            self.cur.execute(self.INDEXED_IN_STATE, {**params, "state": state})
        return [Aggregate(kind, id, found, version, self.loads(data), machine_version)
                for id, found, version, data, machine_version in self.cur.fetchall()]
