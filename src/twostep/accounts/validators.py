"""Input rules for usernames, passwords, emails and phone numbers."""

from __future__ import annotations

import re

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

USERNAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}", re.ASCII)
#: Longer passwords are refused rather than hashed: argon2 on megabytes is a DoS.
MAX_PASSWORD_LENGTH = 1024


#: Names the console's addresses take for themselves: /admin/users/new creates a user,
#: so a user called "new" would have no page of their own.
RESERVED_USERNAMES = frozenset({"new"})


def normalize_username(raw: str) -> str:
    """Lower-case ``raw`` and check it.

    Raises:
        ValidationError: not 1-64 characters of a-z, 0-9, '.', '_' or '-'
            starting with a letter or digit, or one of ``RESERVED_USERNAMES``.
    """
    username = raw.strip().lower()
    if not USERNAME_RE.fullmatch(username):
        raise ValidationError(
            "A username is 1 to 64 characters: letters a-z (no accents), digits, '.', '_' or '-', "
            "starting with a letter or digit.",
            code="invalid_username",
        )
    if username in RESERVED_USERNAMES:
        raise ValidationError(f"“{username}” cannot be a username: choose another.", code="invalid_username")
    return username


#: RFC 5321's limit on a forward path, and the database column's length.
MAX_EMAIL_LENGTH = 254


def normalize_email(raw: str) -> str:
    """Raises ValidationError for anything that is not one email address of at most 254 characters."""
    email = raw.strip()
    if len(email) > MAX_EMAIL_LENGTH:
        raise ValidationError(f"An email address can have at most {MAX_EMAIL_LENGTH} characters.", code="invalid")
    validate_email(email)
    if not email.isprintable():
        # Django accepts control characters inside a quoted local part; no mailbox a person reads has them.
        raise ValidationError("An email address cannot contain control characters.", code="invalid")
    local, _, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}"


def normalize_phone(raw: str) -> str:
    """Return ``raw`` in E.164 form.

    The number must be written in international form (starting with ``+``),
    with a country calling code in use and a length possible for that country.

    Raises:
        ValidationError: not a valid phone number.
    """
    text = raw.strip()
    if not text.startswith("+"):
        raise ValidationError(
            f"{raw!r} is not in international form; write it like +15551234567.", code="invalid_phone"
        )
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        raise ValidationError(f"{raw!r} is not a phone number.", code="invalid_phone") from None
    # "Possible" (right length for a real country code) rather than "valid":
    # the metadata of valid number ranges lags behind real allocations, and
    # refusing a working number would lock its owner out of SMS codes.
    if not phonenumbers.is_possible_number(parsed):
        raise ValidationError(f"{raw!r} is not a valid phone number.", code="invalid_phone")
    if parsed.extension:
        # E.164 has no room for it, and an extension cannot receive a text message.
        raise ValidationError(
            f"{raw!r} has an extension; give a number that receives text messages directly.", code="invalid_phone"
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def textable_phone(raw: str) -> str:
    """``normalize_phone``, refusing premium-rate numbers: for a number that codes are texted to.

    Texts to a premium-rate number can cost whoever sends them (SMS toll
    fraud), and nobody receives sign-in codes on one.

    Raises:
        ValidationError: not a valid phone number, or a premium-rate one.
    """
    number = normalize_phone(raw)
    if phonenumbers.number_type(phonenumbers.parse(number)) == phonenumbers.PhoneNumberType.PREMIUM_RATE:
        raise ValidationError(
            f"{number} is a premium-rate number: texts to it could cost money, and it cannot receive codes.",
            code="invalid_phone",
        )
    return number


class MaximumLengthValidator:
    """Refuses passwords longer than MAX_PASSWORD_LENGTH characters."""

    def validate(self, password: str, user: object = None) -> None:
        if len(password) > MAX_PASSWORD_LENGTH:
            raise ValidationError(
                f"A password can be at most {MAX_PASSWORD_LENGTH} characters long.", code="password_too_long"
            )

    def get_help_text(self) -> str:
        return f"Your password can be at most {MAX_PASSWORD_LENGTH} characters long."
