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
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar, overload

from django.conf import settings
from django.db import transaction
from django.db.models import F

from twostep.accounts.models import User
from twostep.audit.services import Origin, Outcome, record
from twostep.core import clock
from twostep.factors.totp import is_well_formed
from twostep.mfa import guesses, throttle
from twostep.mfa import pending as store
from twostep.mfa.methods import CLOCK_BEHIND, SECRET_UNREADABLE, handler_for, is_usable
from twostep.mfa.models import Authenticator, PendingLogin, Purpose
from twostep.mfa.policy import two_factor_state

R = TypeVar("R")

GENERIC_FAILURE = "That code didn't work. Check it and try again."
#: When the code could not be checked at all (a fault of the service, e.g. ``SECRET_UNREADABLE``).
CANNOT_CHECK = "We could not check your code. Try again in a moment."


class SecondStepError(Exception):
    """The second step failed; ``reason`` is for the auth log only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


#: Who may answer a sign-in (``PendingLogin.holder``): the sign-in pages (the token sits in
#: the browser's session) or the API (the client holds it). Neither finishes the other's:
#: the sessions table stores session data signed, not encrypted, so whoever can read the
#: database sees the token of every sign-in a browser is in the middle of, and must not be
#: able to hand it to the API with a code instead of the password.
PAGES_HOLDER = "pages"
API_HOLDER = "api"
#: A sign-in begun by a version that did not record its holder (an instance not yet upgraded):
#: either side may finish it, so that no sign-in in progress fails during an upgrade. Such
#: sign-ins end within ``security.pending_login_ttl``.
_HOLDER_NOT_RECORDED = ""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def start(
    user: User, authenticator: Authenticator, origin: Origin, purpose: str = Purpose.SIGN_IN, holder: str = ""
) -> tuple[PendingLogin, str]:
    """Open a pending sign-in (or another ``purpose``'s wait) for ``user`` that ``authenticator`` must complete.

    ``holder`` names who alone may answer it besides the token (see ``PendingLogin.holder``).
    """
    now = clock.now()
    token = secrets.token_urlsafe(32)
    pending = PendingLogin.objects.create(
        token_hash=_hash(token),
        user=user,
        method=authenticator.method,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.CONFIG.security.pending_login_ttl),
        ip=origin.ip,
        purpose=purpose,
        holder=holder,
    )
    handler_for(authenticator.method).begin(pending, authenticator, origin)
    return pending, token


def resolve(token: str | None, purpose: str = Purpose.SIGN_IN, holder: str | None = None) -> PendingLogin | None:
    """The live pending sign-in for ``token``: unexpired, unfinished, not exhausted.

    Only one of ``purpose``: a step-up's token can never complete a sign-in.
    With ``holder``, only one begun by that holder (``API_HOLDER``, ``PAGES_HOLDER``).
    """
    pending = find(token, purpose)
    if pending is None or not is_live(pending):
        return None
    if holder is not None and pending.holder not in {holder, _HOLDER_NOT_RECORDED}:
        return None
    return pending


def find(token: str | None, purpose: str = Purpose.SIGN_IN) -> PendingLogin | None:
    """The pending sign-in (or step-up, with ``purpose``) for ``token``, live or not; None for an unknown one."""
    if not token:
        return None
    pending = store.find(_hash(token))
    if pending is None or pending.purpose != purpose:
        return None
    return pending


def event_of(pending: PendingLogin) -> str:
    """The auth-log event of a code typed for ``pending``: at sign-in, or to confirm a change."""
    return "reauthenticate.second_step" if pending.purpose == Purpose.STEP_UP else "login.second_step"


def is_live(pending: PendingLogin) -> bool:
    return (
        pending.completed_at is None
        and pending.expires_at > clock.now()
        and pending.failures < settings.CONFIG.security.attempts_per_login
        and pending.user.is_active
        and not _outlived_a_lock(pending)
    )


def _outlived_a_lock(pending: PendingLogin) -> bool:
    """Whether ``pending`` was open when the second step last locked, and that lock has run out.

    A lock ends the sign-ins open at the time: once a timed lock is over,
    only a sign-in begun afterwards, with the password entered again, goes on
    (an unlock ends them at once, ``throttle.unlock``).  While the lock lasts
    they stay, so that the locked user can type a recovery code.
    """
    locked_at = pending.user.second_step_locked_at
    return locked_at is not None and pending.created_at <= locked_at and not throttle.is_locked(pending.user)


def authenticator_for(pending: PendingLogin) -> Authenticator | None:
    """The factor the pending sign-in asks for, if it is still enrolled and allowed.

    The answer is also kept on ``pending`` for ``verify`` in the same request,
    which then needs no second look-up (see ``_AUTHENTICATOR``).
    """
    _, methods = two_factor_state()
    authenticator = None
    if pending.method in methods:
        authenticator = store.confirmed_factor(pending.user_id, pending.method)
        # E.g. an SMS factor whose number an admin removed from the account.
        if authenticator is not None and not is_usable(authenticator):
            authenticator = None
    pending.__dict__[_AUTHENTICATOR] = authenticator
    return authenticator


#: Attribute under which ``authenticator_for`` leaves its answer on the pending
#: sign-in.  Every caller (the pages, the API) asks ``authenticator_for`` just
#: before ``verify`` on the same object, so ``verify`` reuses it instead of two
#: more queries; the factor's own conditional UPDATE (by primary key) still
#: refuses a factor removed in between.
_AUTHENTICATOR = "_twostep_authenticator"


def cancel(token: str | None) -> None:
    """End a pending sign-in (the user went back to the password form)."""
    if token:
        PendingLogin.objects.filter(token_hash=_hash(token), completed_at__isnull=True).update(expires_at=clock.now())


@overload
def verify(pending: PendingLogin, code: str, origin: Origin) -> User: ...


@overload
def verify(pending: PendingLogin, code: str, origin: Origin, then: Callable[[User], R]) -> R: ...


def verify(pending: PendingLogin, code: str, origin: Origin, then: Callable[[User], Any] | None = None) -> Any:
    """Check ``code`` for ``pending``; return the user to sign in, or what ``then(user)`` returns.

    ``then`` runs inside the verification's transaction on success, so that
    the sign-in's own writes (its session, its log entry) share one commit
    with the code's consumption; if it raises, none of it is kept.

    One transaction decides the rest once the account's throttle state
    allows a try: the code's consumption, the spending of the pending
    sign-in, the failure counts and the auth-log entry.  The account's row
    is locked for that transaction (``SELECT ... FOR UPDATE`` on PostgreSQL;
    SQLite's write lock, taken at ``BEGIN IMMEDIATE``, serialises it anyway)
    and the throttle is checked again against the latest count, so that a
    storm of parallel guesses gets no more tries than sequential ones.
    Verifications of different accounts do not wait for each other.

    Raises:
        SecondStepError: expired or spent sign-in, locked or throttled
            account, malformed, wrong or reused code.  Failures of the code
            itself are counted against the account and the pending sign-in.
    """
    # The account as ``resolve`` read it in this request.
    user = pending.user
    try:
        throttle.check(user, clock.now())
    except throttle.Blocked as blocked:
        _record_failure(user, pending, origin, blocked.reason)
        raise SecondStepError(blocked.reason) from None
    try:
        with transaction.atomic():
            fresh = store.lock(pending.pk)
            if fresh is None:
                raise _SpentConcurrently
            user = fresh.user
            reason = _attempt(fresh, code, origin, pending.__dict__.get(_AUTHENTICATOR, _UNKNOWN))
            if reason is None and then is not None:
                return then(user)
    except _SpentConcurrently:
        # Another request completed this sign-in first; the code's consumption was rolled back.
        reason = "expired_login"
        _record_failure(user, pending, origin, reason)
    if reason is None:
        return user
    raise SecondStepError(reason)


def _has_failures(user: User) -> bool:
    return bool(
        user.second_step_failures
        or user.second_step_blocked_until is not None
        or user.second_step_locked_at is not None
    )


def _attempt(fresh: PendingLogin, code: str, origin: Origin, known: object) -> str | None:
    """``verify``'s work inside its transaction; the failure reason, or None on success."""
    user = fresh.user
    try:
        throttle.check(user, clock.now())
    except throttle.Blocked as blocked:
        _record_failure(user, fresh, origin, blocked.reason)
        return blocked.reason
    reason = _consume(fresh, code, known)
    if reason is None:
        # ``fresh`` was read in this transaction: no UPDATE when there is nothing to reset.
        if _has_failures(user):
            throttle.register_success(user.pk)
        record(event_of(fresh), Outcome.SUCCESS, origin=origin, user=user, method=fresh.method)
        return None
    if reason == "malformed_code":
        # No guess at the code, so not the account's; but the sign-in's own tries,
        # so that a login token cannot write auth-log lines without end.
        spend_a_try(fresh)
    elif reason not in _NOT_COUNTED:
        count_failure(user, fresh, origin)
    _record_failure(user, fresh, origin, reason)
    return reason


#: Refusals that are no guess at the code: the sign-in was over, the factor gone, or
#: the service at fault.  A malformed code is no guess either (see ``_attempt``).
_NOT_COUNTED = frozenset({"expired_login", "method_unavailable", CLOCK_BEHIND, SECRET_UNREADABLE})


class _SpentConcurrently(Exception):
    """Rolls back a code's consumption when the pending sign-in was completed meanwhile."""


#: ``verify`` was called without ``authenticator_for`` on the same object.
_UNKNOWN = object()


def _consume(fresh: PendingLogin, code: str, known: object) -> str | None:
    """Check and consume ``code`` inside ``verify``'s transaction; None on success, else the reason."""
    if not is_live(fresh):
        return "expired_login"
    if not is_well_formed(code):
        return "malformed_code"
    authenticator = authenticator_for(fresh) if known is _UNKNOWN else known
    if not isinstance(authenticator, Authenticator):
        return "method_unavailable"
    now = clock.now()
    reason = handler_for(fresh.method).verify(fresh, authenticator, code, now)
    if reason is not None:
        return reason
    if not store.spend(fresh.pk, now):
        raise _SpentConcurrently
    return None


def count_failure(user: User, pending: PendingLogin, origin: Origin, now: datetime | None = None) -> None:
    """Count one failed code against ``pending`` and the account; log the lock it may engage.

    Shared by every way of passing the second step (codes of each method,
    recovery codes), so that they all spend one budget.
    """
    spend_a_try(pending)
    guesses.count(user, origin, now)


def spend_a_try(pending: PendingLogin) -> None:
    """One of ``pending``'s own tries is used (``security.attempts_per_login`` in all)."""
    PendingLogin.objects.filter(pk=pending.pk).update(failures=F("failures") + 1)


def _record_failure(user: User, pending: PendingLogin, origin: Origin, reason: str) -> None:
    record(event_of(pending), Outcome.FAILURE, origin=origin, user=user, method=pending.method, reason=reason)
