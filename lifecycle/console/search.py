"""Search: aggregates of one kind by id, state, buyer, seller, and created or updated time.

Over `Engine.find` pages in id order (the engine filters by state; the rest is matched here, as
``lifecycle order list`` does), reading at most `SCAN_LIMIT` aggregates a search: past that the
page says so and offers to go on. A buyer or seller is whoever the machine says owns the
aggregate for that role (`MachineDefinition.owner_of`: an order's buyer, a seller's own id).
Created is the first history row's time, updated the last one's; they are read only for the
aggregates the other filters kept, and only when a time filter is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import lifecycle

PAGE = 50
SCAN_LIMIT = 5000
_FIND_PAGE = 500


@dataclass(frozen=True)
class Query:
    """What the search form asks for; empty text means any."""

    kind: str = "order"
    id: str = ""
    state: str = ""
    buyer: str = ""
    seller: str = ""
    created_from: datetime | None = None
    created_to: datetime | None = None
    updated_from: datetime | None = None
    updated_to: datetime | None = None
    after: str = ""

    @property
    def timed(self) -> bool:
        return any(t is not None for t in (self.created_from, self.created_to,
                                           self.updated_from, self.updated_to))


@dataclass(frozen=True)
class Hit:
    aggregate: lifecycle.Aggregate
    buyer: str | None
    seller: str | None
    created: datetime | None
    updated: datetime | None


@dataclass(frozen=True)
class Found:
    hits: list[Hit]
    next_after: str | None  # pass as ``after`` for the next page
    scanned: int
    cut_short: bool  # stopped at SCAN_LIMIT before a page was full


def moment(text: str, field: str) -> datetime | None:
    """A time the form was given (``2026-01-05``, ``2026-01-05T10:00``, with or without a zone;
    UTC when none), or None when empty; anything else is `InvalidPayload` naming the field."""
    text = text.strip()
    if not text:
        return None
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        raise lifecycle.InvalidPayload(field, f"{text!r} is not a date or time "
                                              "(2026-01-05 or 2026-01-05T10:00)") from None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


def _within(value: datetime | None, start: datetime | None, end: datetime | None) -> bool:
    if start is None and end is None:
        return True
    if value is None:
        return False
    return (start is None or value >= start) and (end is None or value < end)


def run(engine: lifecycle.Engine, query: Query) -> Found:
    """One page of what ``query`` matches."""
    definition = engine.definition(query.kind)
    if query.state and query.state not in definition.states:
        raise lifecycle.InvalidPayload("state", f"{query.state!r} is not a state of {definition.kind} "
                                                f"({', '.join(definition.states)})")
    if query.id:
        found = engine.get(definition.kind, query.id.strip())
        hit = _hit(engine, definition, found, query.timed)
        return Found([hit] if _keeps(query, hit) else [], None, 1, False)
    hits: list[Hit] = []
    cursor = query.after or None
    scanned = 0
    while scanned < SCAN_LIMIT:
        page = engine.find(definition.kind, state=query.state or None, limit=_FIND_PAGE,
                           after_id=cursor)
        for aggregate in page:
            scanned += 1
            cursor = aggregate.id
            hit = _hit(engine, definition, aggregate, False)
            if not _owners_match(query, hit):
                continue
            if query.timed:
                hit = _hit(engine, definition, aggregate, True)
                if not _keeps(query, hit):
                    continue
            hits.append(hit)
            if len(hits) == PAGE:
                return Found(hits, aggregate.id, scanned, False)
            if scanned >= SCAN_LIMIT:
                break
        if len(page) < _FIND_PAGE:
            return Found(hits, None, scanned, False)
    return Found(hits, cursor, scanned, True)


def _owners_match(query: Query, hit: Hit) -> bool:
    return (not query.buyer or hit.buyer == query.buyer.strip()) and (
        not query.seller or hit.seller == query.seller.strip())


def _keeps(query: Query, hit: Hit) -> bool:
    return (_owners_match(query, hit)
            and (not query.state or hit.aggregate.state == query.state)
            and _within(hit.created, query.created_from, query.created_to)
            and _within(hit.updated, query.updated_from, query.updated_to))


def _hit(engine: lifecycle.Engine, definition: lifecycle.MachineDefinition,
         aggregate: lifecycle.Aggregate, timed: bool) -> Hit:
    buyer = definition.owner_of("buyer", aggregate.id, aggregate.data)
    seller = definition.owner_of("seller", aggregate.id, aggregate.data)
    created = updated = None
    if timed:
        entries = engine.history(definition.kind, aggregate.id)
        created, updated = entries[0].at, entries[-1].at
    return Hit(aggregate, buyer, seller, created, updated)
