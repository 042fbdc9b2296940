"""A TOTP sign-in on an instance whose encryption keys cannot read the stored secret."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from django.test import Client, override_settings

from tests.conftest import PASSWORD, sign_in
from tests.mfa.recovery_codes.helpers import enrol_totp
from twostep.accounts.models import User
from twostep.audit.models import AuthEvent
from twostep.core import clock
from twostep.core.crypto import new_key, write_keys
from twostep.factors import totp

pytestmark = pytest.mark.django_db


def test_a_secret_this_instance_cannot_decrypt_fails_cleanly(
    client: Client, user: User, two_factor_on: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another instance's keys: a 503 page that says to try later, nobody signed in, an ERROR line, an auth-log entry (FLT-11).

    The code is right: the failure is the service's, so it is not counted as a wrong guess.
    """
    key = enrol_totp(user)
    other_keys = tmp_path / "encryption.keys"
    write_keys(other_keys, [new_key()])  # as on an instance where the keys were rotated elsewhere
    assert sign_in(client, user.username)["Location"] == "/login/verify"
    with override_settings(ENCRYPTION_KEYS_PATH=other_keys), caplog.at_level(logging.ERROR):
        response = client.post("/login/verify", {"code": totp.totp(key, clock.timestamp())})
    assert response.status_code == 503
    assert "We could not check your code. Try again in a moment." in response.content.decode()
    assert "After several wrong codes" not in response.content.decode()  # not the user's doing
    assert client.get("/account").status_code == 302
    errors = [record.getMessage() for record in caplog.records if record.levelno == logging.ERROR]
    assert any("encryption keys of this instance" in message and "do not match" in message for message in errors)
    event = AuthEvent.objects.filter(kind="login.second_step").latest("pk")
    assert (event.outcome, event.reason) == ("failure", "secret_unreadable")
    user.refresh_from_db()
    assert user.second_step_failures == 0
    # With the right keys again (the file copied), the same sign-in goes on.
    response = client.post("/login/verify", {"code": totp.totp(key, clock.timestamp())})
    assert response.status_code == 302 and response["Location"] == "/account"


def test_through_the_api_it_is_503_second_step_unavailable(
    client: Client, user: User, two_factor_on: None, tmp_path: Path
) -> None:
    """An application is told the service could not check the code, not that the code was wrong."""
    key = enrol_totp(user)
    other_keys = tmp_path / "encryption.keys"
    write_keys(other_keys, [new_key()])
    started = client.post(
        "/api/v1/auth/login", {"username": user.username, "password": PASSWORD}, content_type="application/json"
    ).json()
    verify = {"login_token": started["login_token"], "code": totp.totp(key, clock.timestamp())}
    with override_settings(ENCRYPTION_KEYS_PATH=other_keys):
        refused = client.post("/api/v1/auth/login/verify", verify, content_type="application/json")
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "second_step_unavailable"
    user.refresh_from_db()
    assert user.second_step_failures == 0
    assert client.post("/api/v1/auth/login/verify", verify, content_type="application/json").status_code == 200
