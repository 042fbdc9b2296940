"""Configuring the SMS provider in tests."""

from __future__ import annotations

from tests.sms.fakes import FakeProviderServer, provider_options
from twostep.audit.services import CLI
from twostep.sms import service

SENDER = "+15550001111"


def configure(fake: FakeProviderServer, *, sender: str = SENDER, timeout: str = "5") -> None:
    """Point the service's SMS provider at ``fake`` (through the same path as the console)."""
    name, options, secrets = provider_options(fake, timeout=timeout)
    service.save_configuration(name, {**options, **secrets}, sender, origin=CLI)


def allow_sms(*, enabled: bool = True) -> None:
    """Turn 2FA on and allow TOTP and SMS (a provider must be configured first)."""
    from twostep.core.runtime import set_setting

    set_setting("two_factor.enabled", enabled)
    set_setting("two_factor.methods", ["totp", "sms"])
