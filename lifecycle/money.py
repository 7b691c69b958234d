"""Money: `Decimal` amounts in an ISO 4217 currency, never floats; stored as integer minor units."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from lifecycle.errors import InvalidPayload

# ISO 4217 minor-unit exponents for the currencies a cross-border marketplace settles in.
EXPONENTS: dict[str, int] = {
    "USD": 2, "EUR": 2, "GBP": 2, "CNY": 2, "HKD": 2, "AUD": 2, "CAD": 2, "CHF": 2,
    "SGD": 2, "RUB": 2, "BRL": 2, "MXN": 2, "PLN": 2, "SEK": 2, "NOK": 2, "DKK": 2,
    "INR": 2, "TRY": 2, "ILS": 2, "AED": 2, "SAR": 2, "ZAR": 2, "NZD": 2, "THB": 2,
    "MYR": 2, "PHP": 2, "IDR": 2, "UAH": 2, "CZK": 2, "HUF": 2, "RON": 2,
    "JPY": 0, "KRW": 0, "CLP": 0, "VND": 0, "ISK": 0,
    "KWD": 3, "BHD": 3, "JOD": 3, "OMR": 3, "TND": 3,
}

MAX_AMOUNT = Decimal("1000000000")  # one billion: past this an amount is a typo, not an order


def exponent(currency: str) -> int:
    """Digits after the point in ``currency``; an unknown code is an error."""
    try:
        return EXPONENTS[currency]
    except KeyError:
        raise InvalidPayload("currency", f"{currency!r} is not a supported ISO 4217 code") from None


def check_amount(amount: Decimal, currency: str, field: str, *, allow_zero: bool = False) -> Decimal:
    """``amount`` if it is finite, positive (or zero when allowed) and fits the currency."""
    try:
        finite = amount.is_finite()
    except (AttributeError, InvalidOperation):
        finite = False
    if not finite:
        raise InvalidPayload(field, "must be a finite decimal amount")
    if amount < 0 or (amount == 0 and not allow_zero):
        raise InvalidPayload(field, "must be greater than zero" if not allow_zero else "must not be negative")
    if amount > MAX_AMOUNT:
        raise InvalidPayload(field, f"must be at most {MAX_AMOUNT}")
    places = exponent(currency)
    if amount != amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN):
        raise InvalidPayload(field, f"{currency} allows {places} decimal places, got {amount}")
    return amount


def to_minor(amount: Decimal, currency: str) -> int:
    """Integer minor units: 12.34 USD → 1234."""
    return int(amount.scaleb(exponent(currency)).to_integral_value(rounding=ROUND_HALF_EVEN))


def from_minor(units: int, currency: str) -> Decimal:
    """Back from minor units: 1234 USD → Decimal('12.34')."""
    return Decimal(units).scaleb(-exponent(currency))
