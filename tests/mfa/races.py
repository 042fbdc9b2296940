"""Tasks for ``tests.concurrency.at_once`` that the lock-order tests share; each returns what happened."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

import pytest

from twostep.accounts.models import User
from twostep.audit.services import CLI
from twostep.core import clock
from twostep.mfa import login as second_step
from twostep.mfa.models import PendingLogin, TrustedBrowser
from twostep.mfa.services import reset_two_factor


def just_before(monkeypatch: pytest.MonkeyPatch, owner: object, name: str, other_request: Callable[[], object]) -> None:
    """Run ``other_request`` just before the next call of ``owner.name``, as another request would.

    For the moment between a set-up's or check's own transaction and the
    making (``codes.issue``; for SMS, ``sms.service.preflight``, which comes
    before the sending transaction) or the delivery (``codes.mark_sent``) of
    its code, where another request may delete what the code is for.  The
    point must be outside any transaction of the request under test, so
    that ``other_request`` commits as it would on its own.  Only the next
    call: ``other_request`` itself runs the real one.
    """
    real = getattr(owner, name)

    def call(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(owner, name, real)
        other_request()
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, call)


def attempt(action: Callable[[], object], done: str, refusal: type[Exception]) -> Callable[[], str]:
    """Run ``action``: ``done``, or "refused" when it raises ``refusal`` (anything else fails the test)."""

    def run() -> str:
        try:
            action()
        except refusal:
            return "refused"
        return done

    return run


def sent_or_ended(action: Callable[[], object], done: str, refusal: type[Exception]) -> Callable[[], str]:
    """Run a set-up's start: ``done``, or "ended" when another request removed the set-up meanwhile.

    ``refusal`` is the flow's error; any reason of it but ``ended`` fails the test.
    """

    def run() -> str:
        try:
            action()
        except refusal as exc:
            assert getattr(exc, "reason", None) == "ended", exc
            return "ended"
        return done

    return run


def removal(remove: Callable[[], bool]) -> Callable[[], str]:
    """Turn a factor off with ``remove`` (which must find it on): "removed"."""

    def run() -> str:
        assert remove()
        return "removed"

    return run


def code_check(pending: PendingLogin, code: str) -> Callable[[], str]:
    """Check ``code`` for ``pending``: "signed in" or "refused"."""
    return attempt(partial(second_step.verify, pending, code, CLI), "signed in", second_step.SecondStepError)


def two_factor_reset(user: User) -> Callable[[], str]:
    """An administrator resets ``user``'s second factors: "reset"."""

    def reset() -> str:
        reset_two_factor(user, origin=CLI)
        return "reset"

    return reset


def trust_a_browser(user: User) -> None:
    """A browser ``user`` trusts: ending their sessions revokes it, and the auth log says so."""
    now = clock.now()
    TrustedBrowser.objects.create(
        user=user,
        token_hash=secrets.token_hex(32),
        fingerprint="fingerprint",
        created_at=now,
        expires_at=now + timedelta(days=30),
    )
