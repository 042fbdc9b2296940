"""Fixtures for the SMS factor: fake providers, a configured provider, a user with two phones."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.sms.conftest import acme_plugin, fakes, twilio  # noqa: F401 - fixtures shared with tests/sms
from twostep.accounts import services
from twostep.accounts.models import User
from twostep.audit.services import CLI

PRIMARY = "+15551234567"
SECOND = "+15557654321"


@pytest.fixture
def phone_user(make_user: Callable[..., User]) -> User:
    """bob, with a primary and a second phone number (set by an admin)."""
    user = make_user("bob", emails=["bob@example.com"], phones=[PRIMARY])
    services.add_phone(user, SECOND, origin=CLI)
    return user


# The real-browser fixtures (Chromium through Playwright) of tests/browser.
from tests.browser.conftest import open_browser  # noqa: E402,F401
