"""The second step of sign-in, shared by the HTML pages and the JSON API.

``start`` is called after a correct password; it returns a token that the
browser keeps in its server-side session (or that an API client holds).
``verify`` checks one code against the pending sign-in and, on success,
returns the user to sign in.  Every failure raises ``SecondStepError`` whose
``reason`` goes to the auth log while users see one generic message.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F

from twostep.accounts.models import User
from twostep.audit.services import Origin, Outcome, record
from twostep.core import clock
from twostep.factors.totp import is_well_formed
from twostep.mfa import throttle
from twostep.mfa.methods import handler_for, is_usable
from twostep.mfa.models import Authenticator, PendingLogin
from twostep.mfa.policy import two_factor_state

GENERIC_FAILURE = "That code didn't work. Check it and try again."


class SecondStepError(Exception):
    """The second step failed; ``reason`` is for the auth log only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def start(user: User, authenticator: Authenticator, origin: Origin) -> tuple[PendingLogin, str]:
    """Open a pending sign-in for ``user`` that ``authenticator`` must complete."""
    now = clock.now()
    token = secrets.token_urlsafe(32)
    pending = PendingLogin.objects.create(
        token_hash=_hash(token),
        user=user,
        method=authenticator.method,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.CONFIG.security.pending_login_ttl),
        ip=origin.ip,
    )
    handler_for(authenticator.method).begin(pending, authenticator, origin)
    return pending, token


def resolve(token: str | None) -> PendingLogin | None:
    """The live pending sign-in for ``token``: unexpired, unfinished, not exhausted."""
    if not token:
        return None
    pending = PendingLogin.objects.select_related("user").filter(token_hash=_hash(token)).first()
    if pending is None or not is_live(pending):
        return None
    return pending


def is_live(pending: PendingLogin) -> bool:
    return (
        pending.completed_at is None
        and pending.expires_at > clock.now()
        and pending.failures < settings.CONFIG.security.attempts_per_login
        and pending.user.is_active
    )


def authenticator_for(pending: PendingLogin) -> Authenticator | None:
    """The factor the pending sign-in asks for, if it is still enrolled and allowed."""
    _, methods = two_factor_state()
    if pending.method not in methods:
        return None
    authenticator = Authenticator.objects.filter(
        user_id=pending.user_id, method=pending.method, confirmed_at__isnull=False
    ).first()
    # E.g. an SMS factor whose number an admin removed from the account.
    if authenticator is not None and not is_usable(authenticator):
        return None
    return authenticator


def cancel(token: str | None) -> None:
    """End a pending sign-in (the user went back to the password form)."""
    if token:
        PendingLogin.objects.filter(token_hash=_hash(token), completed_at__isnull=True).update(expires_at=clock.now())


def verify(pending: PendingLogin, code: str, origin: Origin) -> User:
    """Check ``code`` for ``pending``; return the user to sign in.

    On success the pending sign-in is spent and the account's failure count is
    reset, in one transaction with the code's consumption.

    Raises:
        SecondStepError: expired or spent sign-in, locked or throttled
            account, malformed, wrong or reused code.  Failures of the code
            itself are counted against the account and the pending sign-in.
    """
    now = clock.now()
    user = User.objects.get(pk=pending.user_id)
    try:
        throttle.check(user, now)
    except throttle.Blocked as blocked:
        _record_failure(user, pending, origin, blocked.reason)
        raise SecondStepError(blocked.reason) from None
    reason = _consume(pending, code)
    if reason is None:
        throttle.register_success(user.pk)
        record("login.second_step", Outcome.SUCCESS, origin=origin, user=user, method=pending.method)
        return user
    if reason not in {"expired_login", "method_unavailable"}:
        _count_failure(user, pending, now, origin)
    _record_failure(user, pending, origin, reason)
    raise SecondStepError(reason)


def _consume(pending: PendingLogin, code: str) -> str | None:
    with transaction.atomic():
        fresh = PendingLogin.objects.select_related("user").get(pk=pending.pk)
        if not is_live(fresh):
            return "expired_login"
        if not is_well_formed(code):
            return "malformed_code"
        authenticator = authenticator_for(fresh)
        if authenticator is None:
            return "method_unavailable"
        now = clock.now()
        reason = handler_for(fresh.method).verify(fresh, authenticator, code, now)
        if reason is not None:
            return reason
        spent = PendingLogin.objects.filter(pk=fresh.pk, completed_at__isnull=True).update(completed_at=now)
        if not spent:
            # Another request completed this sign-in first; undo the code's consumption.
            transaction.set_rollback(True)
            return "expired_login"
        return None


def _count_failure(user: User, pending: PendingLogin, now: object, origin: Origin) -> None:
    with transaction.atomic():
        PendingLogin.objects.filter(pk=pending.pk).update(failures=F("failures") + 1)
        failures, locked = throttle.register_failure(user.pk, clock.now())
    if locked:
        record(
            "second_step.locked",
            Outcome.FAILURE,
            origin=origin,
            user=user,
            reason="too_many_failures",
            detail={"failures": failures},
        )


def _record_failure(user: User, pending: PendingLogin, origin: Origin, reason: str) -> None:
    record("login.second_step", Outcome.FAILURE, origin=origin, user=user, method=pending.method, reason=reason)
