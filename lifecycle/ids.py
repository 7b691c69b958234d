"""What an id may be: aggregate ids, actor ids and idempotency keys (SPEC §2).

People type ids (a CLI argument, a search box), read them (a log line, a refusal) and the
database compares them character for character, so an id holds nothing a reader cannot see:
no whitespace, no control characters (NUL among them, which PostgreSQL cannot store at all),
no invisible ones (zero-width spaces, joiners, bidirectional marks). Two ids that look alike
are alike.
"""

from __future__ import annotations

from lifecycle.errors import InvalidPayload


def identifier(value: object, field: str, *, limit: int = 200) -> str:
    """``value`` if it is an id of at most ``limit`` characters; else `InvalidPayload` naming
    ``field`` and the first character that is refused."""
    if not isinstance(value, str):
        raise InvalidPayload(field, f"must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidPayload(field, "must not be empty")
    if len(value) > limit:
        raise InvalidPayload(field, f"must be at most {limit} characters, got {len(value)}")
    # One pass in C on the hot path: isprintable() is False for every character in the Unicode
    # categories "Other" (control, format, surrogate, private use, unassigned) and "Separator"
    # (spaces, line and paragraph separators) except the ASCII space, refused on its own.
    if not value.isprintable() or " " in value:
        raise InvalidPayload(field, "must not contain whitespace, control or invisible "
                                    f"characters; found {_first_refused(value)}")
    return value


def _first_refused(value: str) -> str:
    at = next(n for n, char in enumerate(value) if char == " " or not char.isprintable())
    return f"{value[at]!r} at position {at + 1}"
