"""Policy values: the spec's defaults, stored with the data so every process uses the same ones.

Durations come from SPEC §3-§5 and §10; the commission from §6; the retention periods from §2.
The database keeps each policy as a JSON object (`Policy.to_json`): a duration as an ISO 8601
duration of days, hours, minutes and seconds (``"P15D"``, ``"PT1H"``, ``"P2DT12H"``,
``"PT0.5S"``; never months or years, whose length varies), a decimal as its text (``"0.05"``), a
per-category or per-currency table as an object of such texts, a count as an integer, a code as
text. Never a float. People type values as `Policy.with_settings` reads them: ``90m``, ``1h``,
``15d``, ``2d12h``, ``0.05``, ``annual_fee.default=1000.00``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from lifecycle.errors import InvalidPayload, UnknownPolicyValues


@dataclass(frozen=True)
class Policy:
    """Named defaults. ``Policy().with_overrides(payment_timeout=timedelta(hours=12))``.

    Every value is checked when a policy is made: a duration is between 0 and 100 years, an
    amount or a count is not negative, ``commission_rate`` is at most 1, ``annual_fee`` has a
    ``default`` category, the handling times are whole days and the default lies within its
    bounds. A bad value is `InvalidPayload` naming it (``policy.protection_period``).

    Each value is read where its rule is (the README's policy table lists them): the machines
    read them from the `Context`, deadlines from their duration functions, and refusals name
    them in their messages, so a value changed here changes the rule and its words together.
    """

    payment_timeout: timedelta = timedelta(hours=24)
    # A seller's handling time (SPEC §4, §10): chosen in whole days at complete_profile within
    # min..max, handling_time when the profile names none; an order's ship_deadline.
    handling_time: timedelta = timedelta(days=7)
    handling_time_min: timedelta = timedelta(days=3)
    handling_time_max: timedelta = timedelta(days=10)
    cancel_request_timeout: timedelta = timedelta(hours=48)
    pickup_timeout: timedelta = timedelta(days=3)
    # The longest delivery time an order may promise (its logistics.delivery_days), which is
    # the buyer's confirmation window before delivery (SPEC §4, §10).
    delivery_window_max: timedelta = timedelta(days=60)
    auto_confirm_after_delivery: timedelta = timedelta(days=5)
    protection_period: timedelta = timedelta(days=15)
    fee_period: timedelta = timedelta(days=365)
    not_received_after: timedelta = timedelta(days=10)
    seller_response_timeout: timedelta = timedelta(days=5)
    escalate_from: timedelta = timedelta(days=3)  # "from the 4th day after opening"
    negotiation_timeout: timedelta = timedelta(days=15)  # "on the 16th day after opening"
    return_timeout: timedelta = timedelta(days=10)
    commission_rate: Decimal = Decimal("0.05")
    annual_fee: dict[str, Decimal] = field(
        default_factory=lambda: {"default": Decimal("1000.00")}
    )
    annual_fee_currency: str = "USD"
    coupon_title_max: int = 60
    coupon_max_validity: timedelta = timedelta(days=62)
    coupon_max_copies: int = 10_000
    coupon_max_products: int = 50
    coupon_min_denomination: dict[str, Decimal] = field(
        default_factory=lambda: {"USD": Decimal("5")}
    )
    # The points centre (SPEC §12): whole points earned per action, and the catalogue's prices
    # in points (lifecycle.machines.points.CATALOGUE names the item each price is of).
    points_per_paid_order: int = 10  # an order paid through the protected payment
    points_per_quotation: int = 5  # a quotation answered to a buyer's request
    points_price_opportunities: int = 500  # a business-opportunity package
    points_price_click_credit: int = 200  # pay-per-click credit
    points_price_quote_rights: int = 100  # quotation rights
    # Retention (SPEC §2): the timer worker prunes idempotency records and published outbox
    # rows older than these.
    idempotency_retention: timedelta = timedelta(days=30)
    outbox_retention: timedelta = timedelta(days=7)
    # Violations and penalties (SPEC §12): a seller appeals a violation within the window; its
    # points count for the period after it was recorded; a store's active points reaching each
    # threshold restricts it. An operator who records a violation without points gives it its
    # type's default (`violation_points`).
    violation_appeal_window: timedelta = timedelta(days=7)
    violation_points_period: timedelta = timedelta(days=365)
    penalty_promotion_restricted_at: int = 12
    penalty_orders_refused_at: int = 24
    penalty_store_suspended_at: int = 48
    violation_points_intellectual_property: int = 6
    violation_points_listing: int = 2
    violation_points_prohibited_goods: int = 12
    violation_points_fulfilment: int = 2
    violation_points_fraud: int = 24
    # Order messages (SPEC §12, issue #20): a message's length, the labels one side puts on
    # one message, and how long after an order ends its parties may still write on it.
    message_text_max: int = 2000
    message_labels_max: int = 20
    message_after_end: timedelta = timedelta(days=30)
    # The seller's profile and avatar (SPEC §12, issue #20): a contact code expires after
    # contact_code_expiry; an avatar is a JPEG of at most avatar_max_bytes, reviewed within
    # avatar_review_timeout or put in the operators' overdue queue.
    contact_code_expiry: timedelta = timedelta(minutes=30)
    avatar_max_bytes: int = 3 * 1024 * 1024
    avatar_review_timeout: timedelta = timedelta(hours=24)

    def __post_init__(self) -> None:
        for f in fields(self):
            _KINDS[f.name].check(f"policy.{f.name}", getattr(self, f.name))
        _check_together(self)

    def with_overrides(self, **values: Any) -> Policy:
        """A copy with some values replaced; unknown names are an error."""
        for name in values:
            if name not in _KINDS:
                raise InvalidPayload(f"policy.{name}", f"unknown policy value; known: {sorted(_KINDS)}")
        return replace(self, **values)

    def with_settings(self, settings: Iterable[tuple[str, str]]) -> Policy:
        """A copy with values given as text, the way an operator types them: ``("protection_period",
        "1h")``, ``("commission_rate", "0.04")``, ``("annual_fee.fashion", "800.00")`` (one
        category or currency of a table; an empty text removes it). A bad name or value is
        `InvalidPayload` naming it; a name given twice is too."""
        changes: dict[str, Any] = {}
        seen: set[str] = set()
        for setting, text in settings:
            if setting in seen:
                raise InvalidPayload(f"policy.{setting}", "given twice")
            seen.add(setting)
            name, _, key = setting.partition(".")
            kind = _KINDS.get(name)
            if kind is None:
                raise InvalidPayload(f"policy.{setting}", f"unknown policy value; known: {', '.join(_KINDS)}")
            where = f"policy.{setting}"
            if kind is not _TABLE:
                if key:
                    raise InvalidPayload(where, f"{name} is one value, not a table: set {name}=VALUE")
                changes[name] = kind.parse(where, text)
                continue
            if not key:
                raise InvalidPayload(where, f"{name} is a table: set {name}.KEY=AMOUNT, one key "
                                            f"at a time (e.g. {EXAMPLES[name]})")
            table = dict(changes.get(name, getattr(self, name)))
            if text == "":
                if key not in table:
                    raise InvalidPayload(where, f"{name} has no {key!r} to remove")
                del table[key]
            else:
                table[key] = _DECIMAL.parse(where, text)
            changes[name] = table
        return replace(self, **changes)

    def fee_for(self, category: str) -> Decimal:
        """The annual store fee of a business category."""
        return self.annual_fee.get(category, self.annual_fee["default"])

    # --- stored with the data -----------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """Every value as JSON (see the module's doc); `from_json` reads it back equal."""
        return {f.name: _KINDS[f.name].dump(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_json(cls, values: Mapping[str, Any], *, version: int | None = None) -> Policy:
        """The policy a stored JSON object describes. A name it lacks (it was stored by an older
        lifecycle) takes its default; a name this lifecycle does not know (a newer one stored
        it) is refused with `UnknownPolicyValues`, rather than run with part of a policy. A
        name in `RETIRED` (a value an older lifecycle stored and no rule reads) is ignored."""
        if not isinstance(values, Mapping):
            raise InvalidPayload("policy", "a stored policy is a JSON object")
        unknown = sorted(str(name) for name in values if name not in _KINDS and name not in RETIRED)
        if unknown:
            raise UnknownPolicyValues(unknown, version)
        return cls(**{name: _KINDS[name].load(f"policy.{name}", value)
                      for name, value in values.items() if name not in RETIRED})

    # --- read by people -----------------------------------------------------------------

    def settings(self) -> list[tuple[str, str, str]]:
        """``(name, value, unit)`` for every value as an operator reads and types it; a table
        gives one row per key (``annual_fee.default``)."""
        rows: list[tuple[str, str, str]] = []
        for f in fields(self):
            value, kind = getattr(self, f.name), _KINDS[f.name]
            unit = UNITS.get(f.name, kind.unit)
            if f.name == "annual_fee":
                unit = f"{self.annual_fee_currency} a year, per business category"
            if kind is _TABLE:
                rows.extend((f"{f.name}.{key}", _DECIMAL.show(amount), unit)
                            for key, amount in sorted(value.items()))
            else:
                rows.append((f.name, kind.show(value), unit))
        return rows

    def differences(self, other: Policy) -> list[tuple[str, str, str]]:
        """``(name, this value, other value)`` for each value that differs, as text; a table's
        keys one by one, ``-`` for a key one of them lacks."""
        mine, theirs = dict(_flat(self)), dict(_flat(other))
        names = [*mine, *(name for name in theirs if name not in mine)]
        return [(name, mine.get(name, "-"), theirs.get(name, "-"))
                for name in names if mine.get(name) != theirs.get(name)]


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    """One stored version of the policy: what `Engine.stored_policy` and
    `Engine.policy_versions` return."""

    version: int
    policy: Policy
    set_at: datetime


# Values older lifecycles stored that no rule reads any more: `Policy.from_json` ignores them,
# whatever they hold, so every stored version still loads (and equals the policy without them).
RETIRED: Mapping[str, str] = {
    # 30 days that nothing ever read: the confirmation window is the delivery time the order
    # promises, at most delivery_window_max (SPEC §4, §10); there is no second window.
    "delivery_window": "never read; the confirmation window is the order's promised delivery "
                       "time, at most delivery_window_max",
}

EXAMPLES = {"annual_fee": "annual_fee.default=1000.00",
            "coupon_min_denomination": "coupon_min_denomination.USD=5"}

# Units `Policy.settings` shows beside the values that do not carry their own (durations do).
UNITS = {
    "commission_rate": "fraction of the goods' price (0.05 = 5%)",
    "annual_fee_currency": "ISO 4217 currency",
    "coupon_title_max": "characters",
    "coupon_max_copies": "copies per issue",
    "coupon_max_products": "products",
    "coupon_min_denomination": "in the currency named",
    **dict.fromkeys((
        "penalty_promotion_restricted_at", "penalty_orders_refused_at",
        "penalty_store_suspended_at", "violation_points_intellectual_property",
        "violation_points_listing", "violation_points_prohibited_goods",
        "violation_points_fulfilment", "violation_points_fraud"), "penalty points"),
    "points_per_paid_order": "points",
    "points_per_quotation": "points",
    "points_price_opportunities": "points",
    "points_price_click_credit": "points",
    "points_price_quote_rights": "points",
    "message_text_max": "characters",
    "message_labels_max": "labels per side, per message",
    "avatar_max_bytes": "bytes (3 MB = 3145728)",
}


def _flat(policy: Policy) -> Iterable[tuple[str, str]]:
    return ((name, value) for name, value, _unit in policy.settings())


def _check_together(policy: Policy) -> None:
    for name in ("handling_time_min", "handling_time_max", "handling_time"):
        if getattr(policy, name) % timedelta(days=1):
            raise InvalidPayload(f"policy.{name}", "must be whole days: a seller chooses a "
                                                   "handling time in days")
    if not policy.handling_time_min <= policy.handling_time <= policy.handling_time_max:
        raise InvalidPayload("policy.handling_time", "must lie between handling_time_min and "
                                                     "handling_time_max")
    if "default" not in policy.annual_fee:
        raise InvalidPayload("policy.annual_fee", "needs a 'default' category")
    if policy.commission_rate > 1:
        raise InvalidPayload("policy.commission_rate", "must be at most 1 (a fraction)")
    _check_penalty_thresholds(policy)


def _check_penalty_thresholds(policy: Policy) -> None:
    """Each restriction is harsher than the one before it, so it needs more points."""
    low, mid, high = (policy.penalty_promotion_restricted_at, policy.penalty_orders_refused_at,
                      policy.penalty_store_suspended_at)
    if not 1 <= low < mid < high:
        raise InvalidPayload("policy.penalty_orders_refused_at",
                             "the penalty thresholds rise: 1 <= penalty_promotion_restricted_at < "
                             "penalty_orders_refused_at < penalty_store_suspended_at, got "
                             f"{low}, {mid}, {high}")


def in_words(duration: timedelta) -> str:
    """A duration as a refusal names it: ``10 days``, ``1 day``, ``2 days 12 hours``,
    ``1 hour 30 minutes``, ``1.5 seconds``, ``0 seconds``."""
    clock = duration.seconds
    parts = [(duration.days, "day"), (clock // 3600, "hour"), (clock % 3600 // 60, "minute")]
    words = [f"{n} {unit}{'' if n == 1 else 's'}" for n, unit in parts if n]
    if clock % 60 or duration.microseconds or not words:
        fraction = f".{duration.microseconds:06d}".rstrip("0") if duration.microseconds else ""
        seconds = f"{clock % 60}{fraction}"
        words.append(f"{seconds} second{'' if seconds == '1' else 's'}")
    return " ".join(words)


# --- the kinds of value, each written to JSON, read back, typed by people, shown --------


@dataclass(frozen=True)
class _Kind:
    unit: str
    check: Callable[[str, Any], None]
    dump: Callable[[Any], Any]
    load: Callable[[str, Any], Any]
    parse: Callable[[str, str], Any]
    show: Callable[[Any], str]


LONGEST = timedelta(days=36_600)  # 100 years: nothing in the spec comes close
# days, hours, minutes, seconds with up to six decimals; ISO 8601 for storage, d h m s for people
_ISO = re.compile(r"P(?:(\d{1,6})D)?(?:T(?=\d)(?:(\d{1,8})H)?(?:(\d{1,10})M)?"
                  r"(?:(\d{1,12})(?:\.(\d{1,6}))?S)?)?")
_TYPED = re.compile(r"(?:(\d{1,6})d)?(?:(\d{1,8})h)?(?:(\d{1,10})m)?(?:(\d{1,12})(?:\.(\d{1,6}))?s)?")
_AMOUNT = re.compile(r"\d{1,15}(?:\.\d{1,10})?")
_COUNT = re.compile(r"\d{1,9}")
_CURRENCY = re.compile(r"[A-Z]{3}")


def _check_duration(where: str, value: Any) -> None:
    if not isinstance(value, timedelta):
        raise InvalidPayload(where, f"must be a duration (datetime.timedelta), got {type(value).__name__}")
    if not timedelta(0) <= value <= LONGEST:
        raise InvalidPayload(where, "must be between 0 and 100 years")


def _dump_duration(value: timedelta) -> str:
    """``P15D``, ``PT1H``, ``P2DT12H30M``, ``PT0.000001S``, ``PT0S``: exact to the microsecond."""
    days, seconds, micro = value.days, value.seconds, value.microseconds
    clock = ""
    if seconds // 3600:
        clock += f"{seconds // 3600}H"
    if seconds % 3600 // 60:
        clock += f"{seconds % 3600 // 60}M"
    if seconds % 60 or micro:
        clock += f"{seconds % 60}" + (f".{micro:06d}".rstrip("0") if micro else "") + "S"
    text = "P" + (f"{days}D" if days else "") + (f"T{clock}" if clock else "")
    return text if text != "P" else "PT0S"


def _duration_of(match: re.Match[str] | None, where: str, text: str, form: str) -> timedelta:
    if match is None or not any(match.groups()):
        raise InvalidPayload(where, f"{text!r} is not a duration; {form}")
    days, hours, minutes, seconds, fraction = match.groups()
    value = timedelta(days=int(days or 0), hours=int(hours or 0), minutes=int(minutes or 0),
                      seconds=int(seconds or 0), microseconds=int((fraction or "0").ljust(6, "0")))
    _check_duration(where, value)
    return value


def _load_duration(where: str, value: Any) -> timedelta:
    text = value if isinstance(value, str) else ""
    return _duration_of(_ISO.fullmatch(text), where, str(value), "stored as an ISO 8601 duration "
                                                                 "of days, hours, minutes, seconds")


def _parse_duration(where: str, text: str) -> timedelta:
    form = "write it like 90m, 1h, 15d, 2d12h or 30s"
    stripped = text.strip()
    match = (_ISO.fullmatch(stripped) if stripped.startswith("P")
             else _TYPED.fullmatch(stripped.lower()))
    return _duration_of(match, where, text, form)


def _show_duration(value: timedelta) -> str:
    """``15d``, ``2d12h``, ``1h30m``, ``0s``: how `Policy.with_settings` reads them back."""
    iso = _dump_duration(value)
    return iso.removeprefix("P").replace("T", "").lower()


def _check_amount(where: str, value: Any) -> None:
    if not isinstance(value, Decimal):
        raise InvalidPayload(where, f"must be a Decimal, got {type(value).__name__}")
    if not value.is_finite() or value < 0:
        raise InvalidPayload(where, f"must be a finite amount of at least 0, got {value}")


def _load_amount(where: str, value: Any) -> Decimal:
    if not isinstance(value, str):  # a JSON number could have passed through a float
        raise InvalidPayload(where, f"is stored as decimal text, got {type(value).__name__}")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise InvalidPayload(where, f"{value!r} is not a decimal") from None
    _check_amount(where, amount)
    return amount


def _parse_amount(where: str, text: str) -> Decimal:
    if not _AMOUNT.fullmatch(text.strip()):
        raise InvalidPayload(where, f"{text!r} is not a decimal like 0.05 or 1000.00")
    amount = Decimal(text.strip())
    _check_amount(where, amount)
    return amount


def _check_table(where: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise InvalidPayload(where, f"must be a dict of Decimals, got {type(value).__name__}")
    for key, amount in value.items():
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", key):
            raise InvalidPayload(f"{where}.{key}", "a key is 1-64 letters, digits, _ or -")
        _check_amount(f"{where}.{key}", amount)


def _load_table(where: str, value: Any) -> dict[str, Decimal]:
    if not isinstance(value, dict):
        raise InvalidPayload(where, "is stored as an object of decimal texts")
    table = {key: _load_amount(f"{where}.{key}", amount) for key, amount in value.items()}
    _check_table(where, table)
    return table


def _check_count(where: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidPayload(where, f"must be a whole number, got {type(value).__name__}")
    if not 0 <= value <= 999_999_999:
        raise InvalidPayload(where, f"must be a whole number from 0 to 999,999,999, got {value}")


def _load_count(where: str, value: Any) -> int:
    _check_count(where, value)
    return int(value)


def _parse_count(where: str, text: str) -> int:
    if not _COUNT.fullmatch(text.strip()):
        raise InvalidPayload(where, f"{text!r} is not a whole number like 60")
    return int(text)


def _check_currency(where: str, value: Any) -> None:
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        raise InvalidPayload(where, f"must be an ISO 4217 code of three capitals, got {value!r}")


def _load_currency(where: str, value: Any) -> str:
    _check_currency(where, value)
    return str(value)


def _parse_currency(where: str, text: str) -> str:
    _check_currency(where, text.strip())
    return text.strip()


_DURATION = _Kind("duration", _check_duration, _dump_duration, _load_duration,
                  _parse_duration, _show_duration)
_DECIMAL = _Kind("decimal", _check_amount, str, _load_amount, _parse_amount, str)
_TABLE = _Kind("decimal per key", _check_table,
               lambda table: {key: str(amount) for key, amount in sorted(table.items())},
               _load_table, lambda where, text: _parse_amount(where, text), str)
_COUNT_KIND = _Kind("count", _check_count, int, _load_count, _parse_count, str)
_CURRENCY_CODE = _Kind("ISO 4217 currency", _check_currency, str, _load_currency, _parse_currency, str)

# Each value's kind, by its annotation (a string: this module postpones annotations). A value
# of a new type fails here, at import, until it has a kind.
_BY_TYPE = {"timedelta": _DURATION, "Decimal": _DECIMAL, "dict[str, Decimal]": _TABLE,
            "int": _COUNT_KIND, "str": _CURRENCY_CODE}
_KINDS: dict[str, _Kind] = {f.name: _BY_TYPE[str(f.type)] for f in fields(Policy)}
