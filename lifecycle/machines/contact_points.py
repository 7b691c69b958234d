"""An email address and a mobile phone number as a profile holds them (SPEC §12): checked with
`email-validator` (the form only: no DNS lookup, which would make a trigger wait on the
network) and `phonenumbers` (an international number, kept as E.164), never a pattern of ours.

Both are pydantic types: a value that is not one is `InvalidPayload` naming its field.
"""

from __future__ import annotations

from typing import Annotated

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, StringConstraints


def normal_email(value: str) -> str:
    """The address in its normal form (the domain lower-cased); ValueError when malformed."""
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise ValueError(f"is not an email address: {error}") from None


def normal_phone(value: str) -> str:
    """The number as E.164 (``+442079460958``); ValueError unless it is a valid international
    number (with its country code, ``+44 20 7946 0958``)."""
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError("is not an international phone number: start with + and the "
                         "country code (+44 20 7946 0958)") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("is not a valid phone number for its country code")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=254),
                  AfterValidator(normal_email)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, max_length=40),
                  AfterValidator(normal_phone)]
