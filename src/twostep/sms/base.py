"""The SMS provider interface: what a provider is given, what it returns, what it raises.

A provider is a class found through the entry-point group
``twostep.sms_providers`` (see ``twostep.sms.registry``).  It is built once
from its options by ``from_options``, which checks them and raises
``ConfigurationError``; afterwards ``send`` either hands one message to the
carrier and returns a ``DeliveryReceipt`` or raises ``SMSDeliveryError``.
There is no "successful" default: a provider that cannot send must raise.

This module has no Django imports, so third-party providers depend on
nothing but it (and httpx, if they speak HTTP).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import httpx

#: Bumped when the interface below changes incompatibly.
SMS_PROVIDER_API_VERSION = "1"

#: Bounds for the ``timeout`` option of HTTP providers, in seconds: a stuck
#: provider must never hold a sign-in (and a server thread) for long.
MIN_TIMEOUT = 1.0
MAX_TIMEOUT = 30.0
DEFAULT_TIMEOUT = 10.0


class SMSError(Exception):
    """Base class of the errors raised by SMS providers."""


class ConfigurationError(SMSError):
    """A provider's options are missing or invalid.

    Attributes:
        setting: the option at fault (``"sender"`` for the sender, ``"provider"``
            when the provider as a whole cannot be used); shown next to that
            field in the admin console.
    """

    def __init__(self, message: str, *, setting: str = "provider") -> None:
        super().__init__(message)
        self.setting = setting


class SMSDeliveryError(SMSError):
    """The provider did not accept the message, or did not say that it did.

    The text is for administrators (it goes to the auth log), so it must say
    what the provider answered, and must never contain the message body.

    Attributes:
        retryable: True when sending the same message again later may work
            (timeouts, connection errors, throttling, 5xx); False when it will
            not until someone changes something (bad credentials, barred number).
        provider: the provider's name.
        status: the HTTP status the provider answered, if any.
        possibly_sent: True when the message may have gone out although no
            acceptance came back (the request was sent, then the answer did
            not come in time or the connection broke); False when it certainly
            did not (no connection was made, or the provider refused it);
            None when the provider does not say: twostep then judges by the
            httpx error it was raised from, if any, and otherwise takes it as
            not sent.  A possibly sent message counts against every limit and
            its code stays usable.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        provider: str = "",
        status: int | None = None,
        possibly_sent: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.provider = provider
        self.status = status
        self.possibly_sent = possibly_sent


@dataclass(frozen=True)
class SMSMessage:
    """One text message to one phone number.

    ``to`` is in E.164 form (``+15551234567``); ``sender`` is the number or
    alphanumeric name the administrator chose (may be empty: the provider's
    own default then applies).  ``valid_for`` is how many seconds the message
    is worth delivering (the lifetime of the code it carries), or None for a
    message that does not expire: a provider that can drop a message still
    queued after that time passes it on, so that nobody receives a code that
    no longer works.
    """

    to: str
    body: str
    sender: str = ""
    valid_for: int | None = None

    def __repr__(self) -> str:
        # The body holds a one-time code: never let it reach a log through repr().
        return (
            f"SMSMessage(to='…{self.to[-4:]}', body=<{len(self.body)} characters>, sender={self.sender!r}, "
            f"valid_for={self.valid_for!r})"
        )


@dataclass(frozen=True)
class DeliveryReceipt:
    """The provider accepted the message (which is not proof that it was delivered)."""

    provider: str
    message_id: str | None = None


@dataclass(frozen=True)
class Option:
    """One setting a provider needs; the admin console builds its form from these.

    ``secret`` options are stored encrypted and never shown back in full.
    ``endpoint`` options say where requests go (a URL, a host): when one of
    them changes, stored secrets are not carried over and must be entered
    again, so that nobody who can edit the settings can send them elsewhere.
    """

    name: str
    label: str
    required: bool = False
    secret: bool = False
    endpoint: bool = False
    default: str = ""
    help: str = ""


@runtime_checkable
class SMSProvider(Protocol):
    """What every SMS provider implements (API version 1).

    ``from_options`` receives the administrator's values for the declared
    ``options`` (as strings; missing optional ones are absent or empty) plus
    ``"sender"``, the shared sender number or name.  ``http`` is a client to
    use instead of creating one (tests pass one bound to a fake server);
    ``debug`` is True only when the server runs in debug mode.
    """

    #: The entry-point name, e.g. ``"twilio"``.
    name: ClassVar[str]
    #: Shown in the admin console, e.g. ``"Twilio"``.
    label: ClassVar[str]
    #: The settings this provider needs.
    options: ClassVar[tuple[Option, ...]]

    @classmethod
    def from_options(cls, options: Mapping[str, str], *, http: httpx.Client | None = None, debug: bool = False) -> Self:
        """Check ``options`` and return a ready provider.

        Raises:
            ConfigurationError: an option is missing or invalid.
        """
        ...

    def send(self, message: SMSMessage) -> DeliveryReceipt:
        """Hand ``message`` to the carrier.

        Raises:
            SMSDeliveryError: the provider refused, failed or did not answer in time.
        """
        ...

    def close(self) -> None:
        """Release network resources (a client the provider created itself)."""
        ...


def option_value(options: Mapping[str, Any], name: str, default: str = "") -> str:
    """``options[name]`` as a stripped string, or ``default`` when absent or blank."""
    value = options.get(name)
    text = "" if value is None else str(value).strip()
    return text or default


def required_option(options: Mapping[str, Any], name: str, label: str) -> str:
    """Raises ConfigurationError(setting=name) when the option is absent or blank."""
    value = option_value(options, name)
    if not value:
        raise ConfigurationError(f"{label} is required.", setting=name)
    return value


def timeout_option(options: Mapping[str, Any]) -> float:
    """The ``timeout`` option in seconds, within [MIN_TIMEOUT, MAX_TIMEOUT].

    Raises:
        ConfigurationError: not a number, or out of bounds.
    """
    text = option_value(options, "timeout", str(DEFAULT_TIMEOUT))
    try:
        value = float(text)
    except ValueError:
        raise ConfigurationError(f"Timeout must be a number of seconds, not {text!r}.", setting="timeout") from None
    if not MIN_TIMEOUT <= value <= MAX_TIMEOUT:
        raise ConfigurationError(
            f"Timeout must be between {MIN_TIMEOUT:g} and {MAX_TIMEOUT:g} seconds.", setting="timeout"
        )
    return value


__all__ = [
    "DEFAULT_TIMEOUT",
    "SMS_PROVIDER_API_VERSION",
    "ConfigurationError",
    "DeliveryReceipt",
    "Option",
    "SMSDeliveryError",
    "SMSError",
    "SMSMessage",
    "SMSProvider",
    "option_value",
    "required_option",
    "timeout_option",
]
