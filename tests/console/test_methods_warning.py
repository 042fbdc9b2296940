"""A policy that allows only SMS or email codes is flagged wherever it is set; SMS set-up names its risk (AZ-09)."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client

from tests.api.conftest import Api
from tests.conftest import sign_in
from tests.sms.conftest import fakes, twilio
from tests.sms.fakes import FakeTwilio
from twostep.accounts.models import User
from twostep.api import tokens
from twostep.audit.services import CLI
from twostep.core.runtime import set_setting
from twostep.mfa.policy import methods_warning

__all__ = ["fakes", "twilio"]

pytestmark = pytest.mark.django_db


def test_only_restricted_methods_are_flagged() -> None:
    assert methods_warning(["sms"]) and methods_warning(["email"]) and methods_warning(["email", "sms"])
    assert methods_warning(["totp"]) is None and methods_warning(["totp", "sms", "email"]) is None


def test_console_flags_a_policy_without_authenticator_apps(twilio: FakeTwilio, admin: User) -> None:
    """The Authentication page warns for SMS alone, before and after saving, and not once apps are allowed."""
    console = Client()
    sign_in(console, admin.username)
    assert 'id="methods-warning"' not in console.get("/admin/authentication").content.decode()
    saved = console.post("/admin/authentication", {"enabled": "on", "methods": ["sms"]}, follow=True)
    assert 'id="methods-warning"' in saved.content.decode() and "SIM swap" in saved.content.decode()
    set_setting("two_factor.methods", ["totp", "sms"])
    assert 'id="methods-warning"' not in console.get("/admin/authentication").content.decode()


def test_api_and_cli_flag_it(twilio: FakeTwilio, admin: User, capsys: pytest.CaptureFixture[str]) -> None:
    api, root = Api(Client()), tokens.issue_sign_in_token(admin, origin=CLI).secret
    assert api.get("/admin/settings", token=root).json()["warnings"] == []
    call_command("settings", "set", "two_factor.methods", "sms")
    assert "warning: Only SMS or email codes are allowed" in capsys.readouterr().err
    assert api.get("/admin/settings", token=root).json()["warnings"] == [methods_warning(["sms"])]
    call_command("settings", "set", "two_factor.methods", "totp,sms")
    assert "warning" not in capsys.readouterr().err


def test_sms_setup_names_the_risk(twilio: FakeTwilio, user: User) -> None:
    """The SMS set-up page says what SMS does not protect against, and points to the app when allowed."""
    client = Client()
    sign_in(client, user.username)
    page = client.get("/account/security/sms").content.decode()
    assert 'id="sms-risk"' in page and "another SIM card" in page and "set one up on your Security page" in page
    set_setting("two_factor.methods", ["sms"])
    page = client.get("/account/security/sms").content.decode()
    assert 'id="sms-risk"' in page and "set one up on your Security page" not in page
