"""Real waybill validation per carrier: format and check digit, each refusal with a precise reason.

Validators take a normalised number (`normalise_waybill`: no spaces or hyphens, upper case) and
return None or raise `InvalidWaybill`. The ``*_number`` functions build valid numbers from a
serial; the sandbox carriers issue their waybills with them.

| carrier       | format                                   | check                                  |
|---------------|------------------------------------------|----------------------------------------|
| `ups`         | ``1Z`` + 15 letters/digits + check digit | UPS mod 10, odd/even weights 1/2       |
| `postal`      | UPU S10: 2 letters, 8 digits, check, ISO country | mod 11, weights 8 6 4 2 3 5 9 7 |
| `dhl`         | DHL Express: 10 or 11 digits             | the digits before the last, mod 7      |
| `fedex`       | FedEx Express: 12 digits                 | weights 1 3 7 from the right, mod 11   |
| `tnt`         | 9 digits                                 | S10's mod 11 over the first eight      |
| `air_freight` | IATA air waybill: 3-digit airline + 8    | serial's first seven mod 7             |
| `sea_freight` | bill of lading: 4-letter SCAC + 6-12     | none: carriers publish no check digit  |
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from types import MappingProxyType

from lifecycle.adapters.countries import ISO_COUNTRIES
from lifecycle.adapters.errors import InvalidWaybill, UnknownAdapter

S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)
FEDEX_WEIGHTS = (1, 3, 7)  # applied from the rightmost digit before the check digit

_SEPARATORS = re.compile(r"[\s\-]")
_UPPER_ALNUM = re.compile(r"[A-Z0-9]+")


def normalise_waybill(number: str) -> str:
    """How a number is typed vs how it is kept: ``"1z 999 aa1-0123456784"`` → ``"1Z999AA10123456784"``."""
    return _SEPARATORS.sub("", number).upper()


# --- check digits -------------------------------------------------------------------------


def ups_check_digit(body: str) -> int:
    """UPS: over the 15 characters after ``1Z``, letters as ``(ord - 63) % 10``; odd positions
    count once, even positions twice; the check digit tops the sum up to a multiple of ten."""
    values = [int(c) if c.isdigit() else (ord(c) - 63) % 10 for c in body]
    total = sum(v * (2 if i % 2 else 1) for i, v in enumerate(values))
    return (10 - total % 10) % 10


def s10_check_digit(serial: str) -> int:
    """UPU S10: weights 8 6 4 2 3 5 9 7 over the eight serial digits; 11 - sum mod 11, where
    10 becomes 0 and 11 becomes 5."""
    check = 11 - sum(int(d) * w for d, w in zip(serial, S10_WEIGHTS, strict=True)) % 11
    return {10: 0, 11: 5}.get(check, check)


def mod7_check_digit(serial: str) -> int:
    """DHL Express and IATA air waybills: the serial read as a number, mod 7."""
    return int(serial) % 7


def fedex_check_digit(serial: str) -> int:
    """FedEx Express 12-digit: weights 1, 3, 7 repeating from the right over the first eleven
    digits; the sum mod 11, where 10 becomes 0."""
    total = sum(int(d) * FEDEX_WEIGHTS[i % 3] for i, d in enumerate(reversed(serial)))
    return total % 11 % 10


# --- validators ---------------------------------------------------------------------------


def _length(carrier: str, number: str, label: str, expected: int) -> None:
    if len(number) != expected:
        raise InvalidWaybill(
            carrier, number, "length", f"wrong length: {label} has {expected} characters, got {len(number)}"
        )


def _digits(carrier: str, number: str, part: str, label: str) -> None:
    if not (part.isascii() and part.isdigit()):
        raise InvalidWaybill(carrier, number, "characters", f"bad characters: {label} must be digits")


def _check(carrier: str, number: str, expected: int, got: str) -> None:
    if str(expected) != got:
        reason = f"bad check digit: expected {expected}, got {got}"
        raise InvalidWaybill(carrier, number, "check_digit", reason)


def validate_ups(number: str, carrier: str = "ups") -> None:
    """UPS: ``1Z``, six-character shipper, two-character service, seven-digit package, check."""
    _length(carrier, number, "a UPS tracking number (1Z + 16)", 18)
    if not number.startswith("1Z"):
        raise InvalidWaybill(carrier, number, "prefix", f"bad prefix: starts with 1Z, got {number[:2]!r}")
    if not _UPPER_ALNUM.fullmatch(number):
        raise InvalidWaybill(
            carrier, number, "characters", "bad characters: only upper-case letters and digits"
        )
    _digits(carrier, number, number[-1], "the check digit")
    _check(carrier, number, ups_check_digit(number[2:17]), number[-1])


def validate_s10(number: str, carrier: str = "postal") -> None:
    """UPU S10: two-letter service indicator, eight-digit serial, check digit, ISO country."""
    _length(carrier, number, "a UPU S10 number", 13)
    if not (number[:2].isascii() and number[:2].isalpha() and number[:2].isupper()):
        raise InvalidWaybill(
            carrier, number, "prefix", f"bad prefix: two upper-case letters, got {number[:2]!r}"
        )
    _digits(carrier, number, number[2:11], "the nine characters after the service indicator")
    country = number[11:]
    if country not in ISO_COUNTRIES:
        raise InvalidWaybill(
            carrier, number, "country", f"bad country code: {country!r} is not an ISO 3166-1 country"
        )
    _check(carrier, number, s10_check_digit(number[2:10]), number[10])


def validate_dhl_express(number: str, carrier: str = "dhl") -> None:
    """DHL Express: ten or eleven digits, the last equal to the number the others form, mod 7.

    DHL issues both lengths (``3318810025``, ``73891051146``); the check is the same.
    """
    if len(number) not in (10, 11):
        reason = f"wrong length: a DHL Express waybill has 10 or 11 digits, got {len(number)}"
        raise InvalidWaybill(carrier, number, "length", reason)
    _digits(carrier, number, number, "a DHL Express waybill")
    _check(carrier, number, mod7_check_digit(number[:-1]), number[-1])


def validate_fedex(number: str, carrier: str = "fedex") -> None:
    """FedEx Express: twelve digits, the last a weighted mod-11 check."""
    _length(carrier, number, "a FedEx Express tracking number", 12)
    _digits(carrier, number, number, "a FedEx Express tracking number")
    _check(carrier, number, fedex_check_digit(number[:11]), number[11])


def validate_tnt(number: str, carrier: str = "tnt") -> None:
    """TNT: nine-digit consignment number whose last digit is the S10 mod-11 check of the first
    eight (TNT numbers its consignment notes with the UPU algorithm)."""
    _length(carrier, number, "a TNT consignment number", 9)
    _digits(carrier, number, number, "a TNT consignment number")
    _check(carrier, number, s10_check_digit(number[:8]), number[8])


def validate_air_waybill(number: str, carrier: str = "air_freight") -> None:
    """IATA air waybill: three-digit airline prefix, seven-digit serial, its mod-7 check."""
    _length(carrier, number, "an air waybill (airline prefix + 8)", 11)
    _digits(carrier, number, number, "an air waybill")
    _check(carrier, number, mod7_check_digit(number[3:10]), number[10])


_BILL_OF_LADING = re.compile(r"[A-Z]{4}[A-Z0-9]{6,12}")


def validate_bill_of_lading(number: str, carrier: str = "sea_freight") -> None:
    """Ocean bill of lading: the line's four-letter SCAC and six to twelve letters or digits.

    Format only: shipping lines number their bills without a published check digit.
    """
    if not 10 <= len(number) <= 16:
        reason = f"wrong length: a bill of lading has 10 to 16 characters, got {len(number)}"
        raise InvalidWaybill(carrier, number, "length", reason)
    if not (number[:4].isascii() and number[:4].isalpha() and number[:4].isupper()):
        raise InvalidWaybill(
            carrier, number, "prefix", f"bad prefix: a four-letter SCAC, got {number[:4]!r}"
        )
    if not _BILL_OF_LADING.fullmatch(number):
        raise InvalidWaybill(
            carrier, number, "characters", "bad characters: only upper-case letters and digits"
        )


VALIDATORS: Mapping[str, Callable[[str], None]] = MappingProxyType({
    "ups": validate_ups,
    "postal": validate_s10,
    "dhl": validate_dhl_express,
    "fedex": validate_fedex,
    "tnt": validate_tnt,
    "air_freight": validate_air_waybill,
    "sea_freight": validate_bill_of_lading,
})


def validate_waybill(carrier: str, number: str) -> None:
    """Validate ``number`` with the built-in validator of ``carrier``."""
    try:
        validator = VALIDATORS[carrier]
    except KeyError:
        raise UnknownAdapter("carrier", carrier, VALIDATORS) from None
    validator(number)


# --- issuing valid numbers ----------------------------------------------------------------


def ups_number(shipper: str, service: str, package: int) -> str:
    """``1Z`` + six-character shipper + two-character service + seven-digit package + check."""
    body = f"{shipper}{service}{package:07d}"
    return f"1Z{body}{ups_check_digit(body)}"


def s10_number(service: str, serial: int, country: str) -> str:
    """``service`` (two letters) + eight-digit serial + check digit + ``country``."""
    digits = f"{serial:08d}"
    return f"{service}{digits}{s10_check_digit(digits)}{country}"


def dhl_express_number(serial: int) -> str:
    """Nine-digit serial + its mod-7 check."""
    digits = f"{serial:09d}"
    return f"{digits}{mod7_check_digit(digits)}"


def fedex_number(serial: int) -> str:
    """Eleven-digit serial + its FedEx check digit."""
    digits = f"{serial:011d}"
    return f"{digits}{fedex_check_digit(digits)}"


def tnt_number(serial: int) -> str:
    """Eight-digit serial + its S10 mod-11 check digit."""
    digits = f"{serial:08d}"
    return f"{digits}{s10_check_digit(digits)}"


def air_waybill_number(airline: int, serial: int) -> str:
    """Three-digit airline prefix + seven-digit serial + its mod-7 check."""
    digits = f"{serial:07d}"
    return f"{airline:03d}{digits}{mod7_check_digit(digits)}"


def bill_of_lading_number(scac: str, serial: int) -> str:
    """Four-letter SCAC + nine-digit serial."""
    return f"{scac}{serial:09d}"
