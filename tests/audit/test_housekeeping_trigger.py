"""The housekeeping that an auth-log entry sometimes triggers runs after the caller's transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from tests.conftest import sign_in
from tests.mfa.recovery_codes.helpers import enrol_totp, signed_in_with_totp
from twostep.accounts.models import User
from twostep.audit import services as audit

pytestmark = pytest.mark.django_db


@pytest.fixture
def housekeeping_every_time(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Make every auth-log entry trigger housekeeping; return, per run, whether a transaction was open."""
    runs: list[bool] = []

    def prune() -> dict[str, int]:
        runs.append(connection.in_atomic_block)
        return {}

    monkeypatch.setattr(audit.secrets, "randbelow", lambda _: 0)
    monkeypatch.setattr("twostep.core.housekeeping.prune", prune)
    return runs


def test_sign_in_commits_before_housekeeping_runs(
    client: Client,
    user: User,
    two_factor_on: None,
    housekeeping_every_time: list[bool],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    """Housekeeping (deletes, notification retries over SMTP) never runs inside a sign-in's transaction."""
    key = enrol_totp(user)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = signed_in_with_totp(client, user, key)
        assert response.status_code == 302 and response["Location"] == "/account"
        # Deferred to the commit of the transactions that logged the entries.
        assert housekeeping_every_time == []
    assert callbacks
    assert len(housekeeping_every_time) == len(callbacks)


def test_failing_housekeeping_does_not_fail_the_sign_in(
    client: Client,
    user: User,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    """A broken clean-up is logged; the sign-in that happened to trigger it still succeeds."""

    def prune() -> dict[str, int]:
        raise RuntimeError("housekeeping failed")

    monkeypatch.setattr(audit.secrets, "randbelow", lambda _: 0)
    monkeypatch.setattr("twostep.core.housekeeping.prune", prune)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = sign_in(client, user.username)
    assert response.status_code == 302 and response["Location"] == "/account"
    assert callbacks
    assert client.get("/account").status_code == 200
