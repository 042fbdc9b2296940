"""`twostep settings set`: the break-glass path warns about the users it leaves without their second step."""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO

import pytest
from django.core.management import call_command

from twostep.accounts.models import User
from twostep.core import clock
from twostep.core.runtime import set_setting
from twostep.mail import config as mail_config
from twostep.mfa.models import Authenticator, Method

pytestmark = pytest.mark.django_db


def settings_set(key: str, value: str, capsys: pytest.CaptureFixture[str]) -> str:
    """Run `settings set KEY VALUE`; its standard error."""
    call_command("settings", "set", key, value)
    return capsys.readouterr().err


def settings_show() -> str:
    out = StringIO()
    call_command("settings", "show", stdout=out)
    return out.getvalue()


@pytest.fixture
def enrolled(two_factor_on: None, make_user: Callable[..., User]) -> None:
    """ann has an authenticator app, bob email codes, cy nothing; email codes can be sent."""
    set_setting("email.host", "smtp.example.com")
    ann, bob, _ = make_user("ann"), make_user("bob"), make_user("cy")
    Authenticator.objects.create(user=ann, method=Method.TOTP, confirmed_at=clock.now())
    Authenticator.objects.create(user=bob, method=Method.EMAIL, destination="bob@example.com", confirmed_at=clock.now())


def test_withdrawing_a_method_says_how_many_users_lose_their_second_step(
    enrolled: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only email allowed: ann's app no longer counts (bob's email codes now do); the change is still made."""
    err = settings_set("two_factor.methods", "email", capsys)
    assert (
        "warning: 1 user who set up a second factor is not asked for a code with these settings "
        "(1 before this change): none of their methods is allowed." in err
    )
    assert "two_factor.methods = email " in settings_show()  # a warning, not a refusal


def test_switching_two_factor_off_says_how_many(enrolled: None, capsys: pytest.CaptureFixture[str]) -> None:
    err = settings_set("two_factor.enabled", "false", capsys)
    assert "warning: 2 users who set up a second factor are not asked for a code with these settings" in err
    assert "(1 before this change): two-factor authentication is off." in err
    assert "two_factor.enabled = false" in settings_show()


def test_no_warning_when_nobody_is_left_without_a_code(enrolled: None, capsys: pytest.CaptureFixture[str]) -> None:
    """Allowing every enrolled method, or setting what is already set, is not worth a warning."""
    assert "not asked" not in settings_set("two_factor.methods", "totp,email", capsys)
    assert "not asked" not in settings_set("two_factor.methods", "totp,email", capsys)
    assert "not asked" not in settings_set("two_factor.enabled", "true", capsys)


def test_moving_the_mail_server_away_from_its_password_warns(capsys: pytest.CaptureFixture[str]) -> None:
    """As the console's page does: a password given for the server named before is not sent to the new one."""
    mail_config.save(host="smtp.example.com", port=587, security="starttls", username="mailer", from_address="")
    mail_config.set_password("relay secret")
    assert settings_set("email.host", "smtp.example.com", capsys) == ""
    err = settings_set("email.port", "2525", capsys)
    assert err.startswith("warning: ") and "twostep email set-password" in err
    assert "relay secret" not in err


def test_turning_2fa_on_while_the_configuration_forces_it_off_warns(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`settings set two_factor.enabled true` stores the value, and warns that this instance's configuration keeps
    two-factor authentication off (the break-glass switch wins); without the switch, no warning."""
    from django.conf import settings

    monkeypatch.setattr(settings.CONFIG.two_factor, "enabled", False)
    assert "stays off on this instance" in settings_set("two_factor.enabled", "true", capsys)
    monkeypatch.setattr(settings.CONFIG.two_factor, "enabled", True)
    assert "stays off" not in settings_set("two_factor.enabled", "true", capsys)
