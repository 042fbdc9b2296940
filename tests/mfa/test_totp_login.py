"""Sign-in with an authenticator app through the pages."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import PASSWORD, sign_in
from tests.mfa.recovery_codes.helpers import enrol_totp
from twostep.accounts.models import User
from twostep.core import clock
from twostep.factors import totp

pytestmark = pytest.mark.django_db


def enrol(user: User) -> bytes:
    return enrol_totp(user)


def test_password_then_code_signs_in(client: Client, user: User, two_factor_on: None) -> None:
    """A correct password leads to the second step; a current code completes sign-in."""
    key = enrol(user)
    response = sign_in(client, user.username)
    assert response.status_code == 302 and response["Location"] == "/login/verify"
    assert client.get("/account").status_code == 302
    response = client.post("/login/verify", {"code": totp.totp(key, clock.timestamp())})
    assert response.status_code == 302 and response["Location"] == "/account"
    assert client.get("/account").status_code == 200


def test_replayed_code_is_refused(client: Client, user: User, two_factor_on: None) -> None:
    """The same code cannot sign in twice."""
    key = enrol(user)
    code = totp.totp(key, clock.timestamp())
    sign_in(client, user.username)
    assert client.post("/login/verify", {"code": code})["Location"] == "/account"
    other = Client()
    sign_in(other, user.username, PASSWORD)
    response = other.post("/login/verify", {"code": code})
    assert response.status_code == 200
    assert b"That code didn" in response.content
    assert other.get("/account").status_code == 302


def test_sign_in_that_cannot_complete_keeps_the_code(
    client: Client, user: User, two_factor_on: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The code's consumption and the new session share one commit: when completing fails, nothing is spent (FLT-05)."""
    from twostep.accounts import views
    from twostep.audit.models import AuthEvent

    key = enrol(user)
    code = totp.totp(key, clock.timestamp())
    sign_in(client, user.username)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the auth log is unavailable")

    monkeypatch.setattr(views, "record", broken)
    with pytest.raises(RuntimeError):
        client.post("/login/verify", {"code": code})
    assert not AuthEvent.objects.filter(kind="login.second_step", outcome="success").exists()
    monkeypatch.undo()
    response = client.post("/login/verify", {"code": code})
    assert response.status_code == 302 and response["Location"] == "/account"
    assert AuthEvent.objects.filter(kind="login.second_step", outcome="success").count() == 1
    assert client.get("/account").status_code == 200
