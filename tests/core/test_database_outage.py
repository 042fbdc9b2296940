"""A database outage during a request answers 503 saying so, lets nobody in, and is logged once."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.test import Client

from tests.conftest import PASSWORD
from twostep.accounts.models import User
from twostep.usersessions.backend import SessionStore

pytestmark = pytest.mark.django_db

REFUSED = 'connection failed: connection to server at "127.0.0.1", port 5499 failed: Connection refused'


@pytest.fixture
def database_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a session fails as it does when PostgreSQL is down (the first query of a request with a cookie)."""

    def load(self: SessionStore) -> dict[str, Any]:
        raise OperationalError(REFUSED)

    monkeypatch.setattr(SessionStore, "load", load)


@pytest.fixture
def cookie_client(signed_in_client: Client) -> Client:
    """A signed-in browser's cookie jar, in a client that returns Django's answer instead of re-raising."""
    client = Client(raise_request_exception=False)
    client.cookies = signed_in_client.cookies
    return client


def outage_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_healthz_with_a_session_cookie_answers_503_json(
    cookie_client: Client, database_down: None, caplog: pytest.LogCaptureFixture
) -> None:
    """/healthz answers as it does without a cookie: 503 {"status": "unavailable"}, logged once as one line."""
    response = cookie_client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}
    errors = outage_records(caplog)
    assert [record.name for record in errors] == ["twostep.database"]
    assert errors[0].exc_info is None and "GET /healthz" in errors[0].getMessage()
    assert "\n" not in errors[0].getMessage()


def test_api_with_a_session_cookie_answers_503_in_the_api_error_shape(
    cookie_client: Client, database_down: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Under /api/ the answer is the API's JSON error, not an HTML page."""
    response = cookie_client.get("/api/v1/me")
    assert response.status_code == 503 and response["Content-Type"] == "application/json; charset=utf-8"
    error = response.json()["error"]
    assert error["code"] == "unavailable" and "cannot reach its database" in error["message"]
    assert len(outage_records(caplog)) == 1


def test_page_answers_503_saying_nobody_was_signed_in(
    cookie_client: Client, database_down: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Other pages get an HTML page that says what happened, neither cached nor framable."""
    response = cookie_client.get("/account")
    assert response.status_code == 503
    page = response.content.decode()
    assert "twostep cannot reach its database; nobody was signed in; try again in a moment." in page
    assert response["Cache-Control"] == "no-store" and response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert len(outage_records(caplog)) == 1


def test_session_lost_while_signing_in_lets_nobody_in(
    user: User, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The right password, but the session cannot be stored (InterfaceError): 503, and no session exists."""

    def create(self: SessionStore) -> None:
        raise InterfaceError("connection already closed")

    client = Client(raise_request_exception=False)
    with monkeypatch.context() as patch:
        patch.setattr(SessionStore, "create", create)
        patch.setattr(SessionStore, "cycle_key", lambda self: create(self))
        response = client.post("/login", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 503
    assert "nobody was signed in" in response.content.decode()
    assert settings.SESSION_COOKIE_NAME not in response.cookies
    assert client.get("/account").status_code == 302  # still asked to sign in
    assert len(outage_records(caplog)) == 1


def test_other_faults_still_answer_500(
    cookie_client: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Only a database outage becomes 503: a bug stays a logged 500 with its traceback."""

    def load(self: SessionStore) -> dict[str, Any]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(SessionStore, "load", load)
    assert cookie_client.get("/account").status_code == 500
    assert [record.name for record in outage_records(caplog)] == ["django.request"]
    assert outage_records(caplog)[0].exc_info is not None


@pytest.mark.django_db(transaction=True)
def test_outage_while_checking_the_code_signs_nobody_in_and_spends_nothing(
    user: User, two_factor_on: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The database fails as the right code is being accepted: 503, no session, the step and the sign-in unspent (FLT-05)."""
    from tests.conftest import sign_in
    from tests.mfa.recovery_codes.helpers import enrol_totp
    from twostep.core import clock
    from twostep.factors import totp
    from twostep.mfa import pending
    from twostep.mfa.models import Authenticator, PendingLogin

    key = enrol_totp(user)
    client = Client(raise_request_exception=False)
    assert sign_in(client, user.username)["Location"] == "/login/verify"
    middle = client.cookies[settings.SESSION_COOKIE_NAME].value
    last_step = Authenticator.objects.get(user=user).last_step
    code = totp.totp(key, clock.timestamp())

    def spend(*args: object, **kwargs: object) -> bool:
        raise OperationalError(REFUSED)

    with caplog.at_level(logging.ERROR), monkeypatch.context() as patch:
        patch.setattr(pending, "spend", spend)
        response = client.post("/login/verify", {"code": code})
    assert response.status_code == 503 and "nobody was signed in" in response.content.decode()
    assert client.cookies[settings.SESSION_COOKIE_NAME].value == middle
    assert client.get("/account").status_code == 302
    assert Authenticator.objects.get(user=user).last_step == last_step
    assert not PendingLogin.objects.filter(user=user, completed_at__isnull=False).exists()
    assert User.objects.get(pk=user.pk).second_step_failures == 0
    retried = client.post("/login/verify", {"code": code})
    assert retried.status_code == 302 and retried["Location"] == "/account"
