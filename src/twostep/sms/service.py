"""The Django side of SMS: the stored provider configuration, the abuse limits, delivery.

The configuration lives in runtime settings (so every instance shares it):
``sms.provider`` and ``sms.options`` in clear, the provider's secret options
as one ``SecretBox`` token in ``sms.secrets`` (re-encrypted by ``twostep keys
rotate``), the shared ``sms.sender``, the global ``sms.daily_limit`` and the
optional ``sms.allowed_country_codes``.  It is validated by the provider's
``from_options`` before it is stored, and the built provider is kept per
process until the stored values change.

``deliver`` is the only way a message leaves: it checks the limits, sends,
and writes the outcome to the auth log with the number masked and without the
message body; a provider error reaches the log, scrubbed of the body.  A
failure after which the message may still have gone out (the request was
sent, the answer did not come) is ``Unconfirmed``, not ``NotSent``: whatever
the message carried must then be treated as sent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from twostep.accounts.validators import textable_phone
from twostep.audit.services import Origin, Outcome, record
from twostep.core import clock
from twostep.core.crypto import DecryptionError, KeyFileError
from twostep.core.keyring import register_encrypted_setting, secret_box
from twostep.core.models import Setting
from twostep.core.runtime import (
    Definition,
    SettingError,
    get_setting,
    get_settings,
    lock_settings,
    register_method_requirement,
    register_setting,
    set_setting,
)
from twostep.core.wording import plural
from twostep.mfa.codes import mask_phone
from twostep.mfa.models import OneTimeCode
from twostep.mfa.throttle import LOCKED_MESSAGE
from twostep.sms import http as sms_http
from twostep.sms import registry
from twostep.sms.base import ConfigurationError, DeliveryReceipt, SMSDeliveryError, SMSMessage, SMSProvider

logger = logging.getLogger("twostep.sms")

PROVIDER = "sms.provider"
OPTIONS = "sms.options"
SECRETS = "sms.secrets"
SENDER = "sms.sender"
DAILY_LIMIT = "sms.daily_limit"
COUNTRIES = "sms.allowed_country_codes"
CONFIG_KEYS = (PROVIDER, OPTIONS, SECRETS, SENDER)

DEFAULT_DAILY_LIMIT = 500
MAX_DAILY_LIMIT = 1_000_000
#: The global cap counts the codes sent in this rolling window.
DAILY_WINDOW = timedelta(hours=24)

#: An alphanumeric sender ID: 1-11 letters, digits or spaces with at least one letter (GSM rules).
_ALPHANUMERIC_SENDER = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")

#: What users are told for each reason a code was not sent.  The precise
#: cause (a provider's error, which cap) goes to the auth log only.
USER_MESSAGES = {
    "delivery_failed": "We could not send the code. Try again in a moment.",
    "not_configured": "SMS codes cannot be sent right now. Contact an administrator.",
    "country_not_allowed": "SMS codes cannot be sent to this phone number. Contact an administrator.",
    "daily_limit": "SMS codes cannot be sent right now: the service reached its daily limit. Try again later or contact an administrator.",
    "account_limit": "Too many codes were sent to your account. Try again in {minutes}.",
    "destination_limit": "Too many codes were sent to this phone number. Try again in {minutes}.",
    "address_limit": "Too many codes were asked for from your network. Try again in {minutes}.",
    "cooldown": "Wait {seconds} before asking for a new code.",
    "destination_removed": "This phone number is no longer on your account. Contact an administrator.",
    "locked": LOCKED_MESSAGE,
}


#: What users are told when the provider may have sent a code but did not
#: confirm it; ``{wait}`` is " in 42 seconds", or "" once a new code may be sent.
UNCONFIRMED_MESSAGE = (
    "The SMS provider did not confirm the message; if a code arrives, enter it; otherwise ask for a new one{wait}."
)


def unconfirmed_message(wait_seconds: int) -> str:
    """``UNCONFIRMED_MESSAGE`` for a resend allowed in ``wait_seconds`` (0: now)."""
    wait = f" in {plural(wait_seconds, 'second')}" if wait_seconds > 0 else ""
    return UNCONFIRMED_MESSAGE.format(wait=wait)


class NotSent(Exception):
    """No message was sent; nothing was consumed.

    (``send_test`` also raises it, with ``delivery_unconfirmed``, for a test
    message the provider did not confirm: it may arrive, but counts for nothing.)

    Attributes:
        reason: a key of ``USER_MESSAGES`` (also the auth log's reason).
        retry_after: how long until it may work, when known.
        admin_detail: what an administrator needs to fix it (never shown to users).
    """

    def __init__(self, reason: str, retry_after: timedelta | None = None, *, admin_detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        #: For administrators only (console, CLI): e.g. the provider's error.
        self.admin_detail = admin_detail

    @property
    def user_message(self) -> str:
        seconds = max(1, int((self.retry_after or timedelta(0)).total_seconds() + 0.999))
        return USER_MESSAGES.get(self.reason, USER_MESSAGES["delivery_failed"]).format(
            seconds=plural(seconds, "second"), minutes=plural(max(1, (seconds + 59) // 60), "minute")
        )


#: Why a message did not go out, in words for administrators (``explain_test_refusal``).
_ADMIN_REASONS = {
    "not_configured": "no SMS provider is set up and working",
    "country_not_allowed": "the number's country calling code is not among the allowed countries",
    "daily_limit": "the daily limit of SMS messages is reached",
    "delivery_failed": "the provider refused the message or could not be reached",
}


def explain_test_refusal(exc: NotSent) -> str:
    """Why ``send_test`` raised ``exc``, for the administrator who asked (console, CLI): in words, with the
    reason the auth log records and the provider's own error when there is one."""
    detail = f": {exc.admin_detail}" if exc.admin_detail else ""
    if exc.reason == "delivery_unconfirmed":
        # It may still arrive: "not sent" would be wrong.
        return f"The provider did not confirm the test SMS; it may still arrive{detail}"
    return f"The test SMS was not sent, {_ADMIN_REASONS.get(exc.reason, 'it was refused')} ({exc.reason}){detail}"


class Unconfirmed(Exception):
    """The provider may have sent the message but did not confirm it.

    The request went out, then the answer did not come in time, the
    connection broke, or the answer did not say (see
    ``SMSDeliveryError.possibly_sent``).  What the message carried must be
    treated as sent: a code stays usable and counts against every limit.

    Attributes:
        admin_detail: the provider's error, for administrators only.
    """

    def __init__(self, admin_detail: str) -> None:
        super().__init__(admin_detail)
        self.admin_detail = admin_detail


# ---------------------------------------------------------------------------
# Runtime settings


#: The provider, its options, secrets and sender are checked together (a
#: stored secret is only sent where it was entered for), so they are only
#: changed through ``save_configuration``.
CONFIGURED_ON = "`twostep sms configure` or on the console's SMS page (/admin/sms)"


def _check_provider(value: Any) -> str:
    if not isinstance(value, str):
        raise SettingError("must be a provider name")
    if value and value not in registry.available():
        names = ", ".join(sorted(registry.available())) or "none"
        raise SettingError(f"unknown SMS provider {value!r}; available: {names}")
    return value


def _check_options(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise SettingError("must be an object of text values")
    return value


def _check_token(value: Any) -> str:
    if not isinstance(value, str):
        raise SettingError("must be an encrypted token")
    return value


def check_sender(value: Any) -> str:
    """An E.164 number, an alphanumeric sender ID (1-11 characters), or empty.

    Raises:
        SettingError: anything else.
    """
    if not isinstance(value, str):
        raise SettingError("must be text")
    text = value.strip()
    if not text:
        return ""
    if text.startswith("+"):
        try:
            parsed = phonenumbers.parse(text, None)
        except phonenumbers.NumberParseException:
            parsed = None
        if parsed is None or not phonenumbers.is_possible_number(parsed):
            raise SettingError(f"{text!r} is not a phone number in international form (+15551234567)")
        return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
    if not _ALPHANUMERIC_SENDER.fullmatch(text):
        raise SettingError(
            "a sender is a number in international form (+15551234567) or a name of 1 to 11 letters, digits or spaces"
        )
    return text


def parse_whole_number(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise SettingError(f"{text!r} is not a whole number") from None


def check_daily_limit_value(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DAILY_LIMIT:
        raise SettingError(f"must be a whole number from 1 to {MAX_DAILY_LIMIT}")
    return value


def parse_countries(text: str) -> list[str]:
    return [item.strip().lstrip("+") for item in text.replace(" ", ",").split(",") if item.strip()]


def check_countries(value: Any) -> list[str]:
    """Country calling codes such as ``["1", "44"]``; empty allows every country.

    Raises:
        SettingError: not a list of calling codes in use.
    """
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SettingError("must be a list of country calling codes")
    codes: list[str] = []
    for item in value:
        typed = item.strip().lstrip("+")
        # isdecimal, not isdigit: superscripts are digits that int() refuses.  Other
        # scripts' decimal digits (full-width forty-four) are read, and kept as ASCII, the
        # form phone numbers are compared in.  A calling code has at most 3 digits.
        code = str(int(typed)) if typed.isdecimal() and len(typed) <= 3 else ""
        if not code or phonenumbers.region_code_for_country_code(int(code)) == "ZZ":
            raise SettingError(f"{item!r} is not a country calling code (e.g. 1 for the US, 44 for the UK)")
        if code not in codes:
            codes.append(code)
    return sorted(codes, key=int)


def register_settings() -> None:
    """Declare the SMS runtime settings (called from the mfa app's ``ready``)."""
    for definition in (
        Definition(PROVIDER, "", str, _check_provider, "SMS provider.", CONFIGURED_ON),
        Definition(OPTIONS, {}, json.loads, _check_options, "SMS provider options that are not secret.", CONFIGURED_ON),
        Definition(SECRETS, "", str, _check_token, "SMS provider secrets (encrypted).", CONFIGURED_ON),
        Definition(
            SENDER,
            "",
            str,
            check_sender,
            "SMS sender: a number (+15551234567) or a name of up to 11 characters.",
            CONFIGURED_ON,
        ),
        Definition(
            DAILY_LIMIT,
            DEFAULT_DAILY_LIMIT,
            parse_whole_number,
            check_daily_limit_value,
            "At most this many SMS codes are sent in any 24 hours, for the whole service.",
        ),
        Definition(
            COUNTRIES,
            [],
            parse_countries,
            check_countries,
            "Country calling codes SMS codes may go to, e.g. 1,44 (empty: any country).",
        ),
    ):
        register_setting(definition)
    register_encrypted_setting(SECRETS)
    register_method_requirement("sms", sms_method_problem)


# ---------------------------------------------------------------------------
# The stored configuration


@dataclass(frozen=True)
class Configuration:
    """The provider configuration as stored (secrets decrypted)."""

    provider: str
    options: dict[str, str]
    secrets: dict[str, str] = field(repr=False)
    sender: str

    def provider_options(self) -> dict[str, str]:
        """What ``from_options`` receives: every option, secrets included, plus ``sender``."""
        return {**self.options, **self.secrets, "sender": self.sender}


def _raw() -> dict[str, Any]:
    return get_settings(*CONFIG_KEYS)


def _decrypt_secrets(token: str) -> dict[str, str]:
    if not token:
        return {}
    try:
        data = json.loads(secret_box().decrypt(token))
    except (DecryptionError, KeyFileError, ValueError) as exc:
        raise ConfigurationError(f"The stored SMS provider secrets cannot be read: {exc}") from None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def read_configuration() -> Configuration:
    """The stored configuration.

    Raises:
        ConfigurationError: the stored secrets cannot be decrypted.
    """
    raw = _raw()
    return Configuration(
        provider=str(raw[PROVIDER] or ""),
        options=dict(raw[OPTIONS] or {}),
        secrets=_decrypt_secrets(str(raw[SECRETS] or "")),
        sender=str(raw[SENDER] or ""),
    )


def save_configuration(
    provider: str,
    values: Mapping[str, str],
    sender: str,
    *,
    origin: Origin,
    actor: Any = None,
    clear: frozenset[str] = frozenset(),
) -> Configuration:
    """Validate and store a provider configuration.

    A secret option left blank keeps its stored value when neither the
    provider nor its endpoint options change (forms never show secrets back,
    so blank means "unchanged"); the secret options named in ``clear`` are
    removed instead.  A stored secret is never carried to a new endpoint: it
    must be entered again (or cleared).
    The provider is built once from the result, so a mistake is reported
    now rather than at someone's next sign-in.

    Raises:
        ConfigurationError: unknown provider, an invalid option, or a stored
            secret left blank while an endpoint changed (``setting`` names it).
    """
    cls = registry.provider_class(provider)
    try:
        clean_sender = check_sender(sender)
    except SettingError as exc:
        raise ConfigurationError(f"Sender: {exc}.", setting="sender") from None
    try:
        previous = read_configuration()
    except ConfigurationError:
        previous = Configuration("", {}, {}, "")
    keep_old = previous.provider == provider
    moved = [
        option.label
        for option in cls.options
        if option.endpoint
        and (str(values.get(option.name, "") or "").strip() or option.default)
        != (previous.options.get(option.name) or option.default)
    ]
    options: dict[str, str] = {}
    secrets: dict[str, str] = {}
    changed: list[str] = []
    for option in cls.options:
        value = str(values.get(option.name, "") or "").strip()
        if option.secret:
            old = previous.secrets.get(option.name, "") if keep_old else ""
            if not value and old and option.name not in clear and moved:
                raise ConfigurationError(
                    f"{option.label}: the {moved[0]} changed, and a stored secret is only sent where it was "
                    "entered for. Enter it again, or remove it.",
                    setting=option.name,
                )
            if not value and option.name not in clear:
                value = old
            if value != old:
                changed.append(option.name)
            if value:
                secrets[option.name] = value
        elif value:
            options[option.name] = value
    candidate = Configuration(provider, options, secrets, clean_sender)
    built = cls.from_options(candidate.provider_options(), debug=settings.DEBUG)
    built.close()
    token = secret_box().encrypt(json.dumps(secrets, sort_keys=True)) if secrets else ""
    with transaction.atomic():
        set_setting(PROVIDER, provider)
        set_setting(OPTIONS, options)
        set_setting(SECRETS, token)
        set_setting(SENDER, clean_sender)
    record(
        "sms.configured",
        Outcome.INFO,
        origin=origin,
        actor=actor,
        detail={
            "provider": provider,
            "options": {key: _loggable(value) for key, value in options.items()},
            "sender": clean_sender,
            "secrets_changed": changed,
        },
    )
    return candidate


def _loggable(value: str) -> str:
    # URLs may carry a token in their query string: log them without it.
    if value.startswith(("http://", "https://")):
        parts = urlsplit(value)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return value


def clear_configuration(*, origin: Origin, actor: Any = None) -> None:
    """Remove the provider and its secrets.

    Raises:
        ConfigurationError: SMS is still an allowed method (it would break
            every SMS sign-in); remove it from the allowed methods first.
    """
    if "sms" in get_setting("two_factor.methods"):
        raise ConfigurationError(
            "SMS codes are an allowed sign-in method: remove SMS from the allowed methods on the "
            "Authentication page before removing the provider."
        )
    with transaction.atomic():
        set_setting(PROVIDER, "")
        set_setting(OPTIONS, {})
        set_setting(SECRETS, "")
    record("sms.configured", Outcome.INFO, origin=origin, actor=actor, detail={"provider": ""})


# ---------------------------------------------------------------------------
# The provider in use


_lock = threading.Lock()
_built: tuple[str, SMSProvider] | None = None


def _fingerprint(raw: Mapping[str, Any]) -> str:
    text = json.dumps({key: raw[key] for key in CONFIG_KEYS}, sort_keys=True) + f"|debug={settings.DEBUG}"
    return hashlib.sha256(text.encode()).hexdigest()


def configured_provider() -> SMSProvider:
    """The provider built from the stored configuration (rebuilt when it changes).

    Raises:
        ConfigurationError: no provider is configured, or its configuration
            no longer builds (e.g. the console provider outside debug mode).
    """
    global _built
    raw = _raw()
    if not raw[PROVIDER]:
        raise ConfigurationError("No SMS provider is configured.")
    fingerprint = _fingerprint(raw)
    with _lock:
        if _built is not None and _built[0] == fingerprint:
            return _built[1]
    configuration = read_configuration()
    provider = registry.load_provider(configuration.provider, configuration.provider_options(), debug=settings.DEBUG)
    with _lock:
        _built = (fingerprint, provider)
    return provider


@dataclass(frozen=True)
class Status:
    """Whether SMS can be sent, for the console and the method rule."""

    provider: str
    label: str
    ready: bool
    problem: str


def status() -> Status:
    """The state of the stored configuration (never raises)."""
    raw = _raw()
    name = str(raw[PROVIDER] or "")
    if not name:
        return Status("", "", False, "No SMS provider is configured.")
    label = name
    try:
        label = registry.provider_class(name).label
        configured_provider()
    except ConfigurationError as exc:
        return Status(name, label, False, str(exc))
    return Status(name, label, True, "")


def sms_method_problem() -> str | None:
    """Why SMS cannot be an allowed method now, or None (the rule of ``two_factor.methods``)."""
    current = status()
    if current.ready:
        return None
    if not current.provider:
        return "SMS codes need an SMS provider: set one up on the SMS page (/admin/sms) first."
    return f"SMS codes need a working SMS provider: {current.problem} Fix it on the SMS page (/admin/sms)."


# ---------------------------------------------------------------------------
# Limits


def limits() -> tuple[int, list[str]]:
    """(daily limit, allowed country calling codes; empty for any)."""
    values = get_settings(DAILY_LIMIT, COUNTRIES)
    return int(values[DAILY_LIMIT]), list(values[COUNTRIES])


def country_code(number: str) -> str:
    try:
        return str(phonenumbers.parse(number, None).country_code)
    except phonenumbers.NumberParseException:
        return ""


def check_country(number: str) -> None:
    """Raises NotSent("country_not_allowed") when ``number``'s country is not on the allowed list."""
    _, countries = limits()
    if countries and country_code(number) not in countries:
        raise NotSent("country_not_allowed")


def sent_in_window() -> int:
    """SMS codes sent in the last 24 hours.

    Codes whose delivery certainly failed are discarded, so not counted;
    unconfirmed ones (the message may have gone out) are.
    """
    return OneTimeCode.objects.filter(method="sms", sent_at__gte=clock.now() - DAILY_WINDOW).count()


def check_daily_limit() -> None:
    """Raises NotSent("daily_limit") when the service sent its daily limit of codes.

    Callers that then create a code hold ``lock_for_sending()`` so that
    concurrent requests cannot both pass the last free slot.
    """
    limit, _ = limits()
    if sent_in_window() >= limit:
        raise NotSent("daily_limit", admin_detail=f"{limit} codes were sent in the last 24 hours (the daily limit)")


def lock_for_sending() -> None:
    """Serialise code creation across instances (call inside a transaction).

    Locks the ``sms.provider`` settings row, which exists whenever SMS can
    be sent.  On SQLite the write transaction itself already serialises.
    """
    list(Setting.objects.select_for_update().filter(key=PROVIDER).values_list("key", flat=True))


class LimitsError(Exception):
    """Invalid limits; ``errors`` maps each form field to its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def save_limits(daily_limit: str, countries: str, *, origin: Origin, actor: Any = None) -> tuple[int, list[str]]:
    """Store the daily limit and the allowed country calling codes, both as typed.

    Raises:
        LimitsError: either value is invalid (nothing is stored then).
    """
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    fields: tuple[tuple[str, str, str, Any, Any], ...] = (
        (DAILY_LIMIT, "daily_limit", daily_limit, parse_whole_number, check_daily_limit_value),
        (COUNTRIES, "countries", countries, parse_countries, check_countries),
    )
    for key, field_name, text, parse, check in fields:
        try:
            changes[key] = check(parse(text))
        except SettingError as exc:
            errors[field_name] = f"{str(exc)[:1].upper()}{str(exc)[1:]}."
    if errors:
        raise LimitsError(errors)
    with transaction.atomic():
        # In the order every change of several settings locks them (the API's too).
        lock_settings(changes)
        for key, value in changes.items():
            set_setting(key, value)
    record("sms.limits", Outcome.INFO, origin=origin, actor=actor, detail=changes)
    return changes[DAILY_LIMIT], changes[COUNTRIES]


def preflight(number: str) -> None:
    """Check, before a code is created, that a message to ``number`` could be sent now.

    Raises:
        NotSent: ``not_configured``, ``country_not_allowed`` or ``daily_limit``.
    """
    try:
        configured_provider()
    except ConfigurationError:
        raise NotSent("not_configured") from None
    check_country(number)
    check_daily_limit()


# ---------------------------------------------------------------------------
# Delivery


def mask(number: str) -> str:
    return mask_phone(number)


def scrub(text: str, message: SMSMessage, *extra_secrets: str) -> str:
    """``text`` without the message body, the full number or any of ``extra_secrets``."""
    cleaned = text
    for secret in (message.body, *extra_secrets):
        if secret:
            cleaned = cleaned.replace(secret, "[redacted]")
    for form in {message.to, message.to.lstrip("+")}:
        if form:
            cleaned = cleaned.replace(form, mask(message.to))
    return cleaned[:500]


def _not_sent(reason: str, detail: dict[str, Any], *, origin: Origin, user: Any, actor: Any) -> None:
    record(
        "sms.not_sent",
        Outcome.FAILURE,
        origin=origin,
        user=user,
        actor=actor,
        method="sms",
        reason=reason,
        detail=detail,
    )


def possibly_sent(exc: SMSDeliveryError) -> bool:
    """Whether the message may have gone out despite ``exc``.

    The provider's own word (``exc.possibly_sent``) when it gives one;
    otherwise judged by the httpx error ``exc`` was raised from (a provider
    that wraps a read timeout without saying so), and False without one.
    """
    if exc.possibly_sent is not None:
        return exc.possibly_sent
    return sms_http.possibly_sent(exc.__cause__ or exc.__context__)


def deliver(
    number: str,
    body: str,
    *,
    purpose: str,
    origin: Origin,
    user: Any = None,
    actor: Any = None,
    secret: str = "",
    code_id: int | None = None,
    valid_for: int | None = None,
) -> DeliveryReceipt:
    """Send ``body`` to ``number`` with the configured provider and log the outcome.

    ``valid_for`` is how many seconds the code in ``body`` works; providers
    that can drop a message still queued after that are told.

    ``secret`` (the code in ``body``) is scrubbed from anything logged, in
    case a provider echoes it.  ``code_id``, the one-time code row the
    message carries, goes into the auth log events (``code_id``), so that an
    unconfirmed code can be told apart later.

    Raises:
        NotSent: ``not_configured``, ``country_not_allowed`` or
            ``delivery_failed`` (the message certainly did not go out; the
            provider's error is in the auth log).
        Unconfirmed: the message may have gone out, but the provider did not
            confirm it (auth log: ``sms.unconfirmed``).
    """
    who = {"origin": origin, "user": user, "actor": actor}
    detail: dict[str, Any] = {"to": mask(number), "purpose": purpose}
    if code_id is not None:
        detail["code_id"] = code_id
    try:
        provider = configured_provider()
    except ConfigurationError as exc:
        _not_sent("not_configured", {**detail, "error": str(exc)}, **who)
        raise NotSent("not_configured", admin_detail=str(exc)) from None
    try:
        check_country(number)
    except NotSent as exc:
        _not_sent(exc.reason, {**detail, "country_code": country_code(number)}, **who)
        raise NotSent(
            exc.reason, admin_detail=f"+{country_code(number)} is not an allowed country calling code"
        ) from None
    message = SMSMessage(to=number, body=body, sender=str(get_settings(SENDER)[SENDER] or ""), valid_for=valid_for)
    detail["provider"] = provider.name
    try:
        receipt = provider.send(message)
    except SMSDeliveryError as exc:
        error = scrub(str(exc), message, secret)
        facts = {**detail, "error": error, "retryable": exc.retryable, "status": exc.status}
        if possibly_sent(exc):
            record(
                "sms.unconfirmed",
                Outcome.FAILURE,
                method="sms",
                reason="delivery_unconfirmed",
                detail=facts,
                **who,
            )
            logger.warning(
                "SMS to %s through %s was not confirmed (it may have been sent): %s", detail["to"], provider.name, error
            )
            raise Unconfirmed(error) from None
        _not_sent("delivery_failed", facts, **who)
        logger.warning("SMS to %s through %s failed: %s", detail["to"], provider.name, error)
        raise NotSent("delivery_failed", admin_detail=error) from None
    except Exception as exc:  # a provider's bug must fail closed: never a 500, never a "success"
        error = scrub(f"{type(exc).__name__}: {exc}", message, secret)
        _not_sent("delivery_failed", {**detail, "error": error, "retryable": False, "status": None}, **who)
        logger.error("SMS provider %s raised an unexpected error: %s", provider.name, error)
        raise NotSent("delivery_failed", admin_detail=error) from None
    if not isinstance(receipt, DeliveryReceipt):
        error = "the provider returned no delivery receipt"
        _not_sent("delivery_failed", {**detail, "error": error}, **who)
        raise NotSent("delivery_failed", admin_detail=error)
    record(
        "sms.sent",
        Outcome.SUCCESS,
        method="sms",
        detail={**detail, "message_id": receipt.message_id},
        **who,
    )
    return receipt


def test_message() -> str:
    return f"{settings.CONFIG.two_factor.issuer}: this is a test message. SMS delivery works."


def send_test(number: str, *, origin: Origin, actor: Any = None) -> DeliveryReceipt:
    """Send a test message to ``number`` (an administrator's check of the provider).

    Counts against nothing, but respects the allowed countries and the daily limit.

    Raises:
        ValueError: ``number`` is not a phone number in international form.
        NotSent: see ``deliver``; also ``daily_limit``, and
            ``delivery_unconfirmed`` when the provider did not confirm the
            message (it may still arrive; ``admin_detail`` says why).
    """
    try:
        clean = textable_phone(number)
    except ValidationError as exc:
        raise ValueError(exc.messages[0]) from None
    try:
        check_daily_limit()
    except NotSent:
        _not_sent("daily_limit", {"to": mask(clean), "purpose": "test"}, origin=origin, user=None, actor=actor)
        raise
    try:
        return deliver(clean, test_message(), purpose="test", origin=origin, actor=actor)
    except Unconfirmed as exc:
        # A test message carries no code and counts for nothing: the
        # administrator is told it was not confirmed, and why.
        raise NotSent("delivery_unconfirmed", admin_detail=exc.admin_detail) from None
