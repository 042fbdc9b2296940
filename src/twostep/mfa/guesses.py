"""One budget of wrong codes per account, at sign-in and when setting up a factor.

A wrong code at sign-in (any method, recovery codes included) counts
against the account's second-step throttle: a growing delay, then the lock
(``twostep.mfa.throttle``).  Setting up email or SMS codes, and the email
check before a first factor, also mail or text a code and ask for it back.
Someone who holds only the password reaches those pages when two-factor
authentication is required and the account has no factor yet.  Each code
allows five tries and a new one may be asked for every minute within the
send caps, so on their own they would allow a slow guess without end; their
wrong codes count in the same budget, and none is checked while it is spent.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from twostep.accounts.models import User
from twostep.audit.services import Origin, Outcome, record
from twostep.core import clock
from twostep.mfa import throttle

#: What a user is told when a set-up code is not checked because the budget is spent.
REFUSALS = {
    "throttled": "Too many wrong codes. Wait a moment, then try again.",
    "locked": throttle.LOCKED_MESSAGE,
}

#: Failures of a code that were real guesses (a malformed code, or one with no
#: set-up in progress, cannot succeed and is not counted).
GUESSES = frozenset({"wrong_code", "expired_code", "code_exhausted", "reused_code"})


def check_code(user: User, origin: Origin, verify: Callable[[], str | None]) -> str | None:
    """Run ``verify`` (which checks and consumes a set-up code) within the account's budget.

    Returns ``locked`` or ``throttled`` without calling ``verify`` while the
    budget is spent; otherwise ``verify``'s failure reason, counted against
    the account when it was a guess, or None on success (which clears the
    count).  Call it inside the transaction that consumes the code: the
    account's row is locked for it, so parallel guesses queue and each sees
    the count the previous one left.
    """
    current = User.objects.select_for_update().get(pk=user.pk)
    try:
        throttle.check(current, clock.now())
    except throttle.Blocked as blocked:
        return blocked.reason
    reason = verify()
    if reason is None:
        throttle.register_success(user.pk)
    elif reason in GUESSES:
        count(user, origin)
    return reason


def count(user: User, origin: Origin, now: datetime | None = None) -> None:
    """One failed code for ``user``'s second-step budget; a lock it engages goes to the auth log."""
    failures, locked = throttle.register_failure(user.pk, now or clock.now())
    if locked:
        record(
            "second_step.locked",
            Outcome.FAILURE,
            origin=origin,
            user=user,
            reason="too_many_failures",
            detail={"failures": failures},
        )
