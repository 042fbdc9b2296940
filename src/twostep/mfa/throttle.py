"""One throttling policy for the second step, counted per account across every method.

After ``second_step_delay_after`` consecutive failures each further attempt
must wait a growing delay; at ``second_step_lock_after`` the second step is
locked until an admin unlocks it, the user signs in with a recovery code, or
(when ``security.second_step_lock_minutes`` is set) that time has passed.
The state lives in the user's row, so every instance sees it, and increments
are single ``UPDATE`` statements, so concurrent failures are all counted.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F

from twostep.accounts.models import User
from twostep.core import clock
from twostep.core.backoff import doubling_wait
from twostep.mfa.models import PendingLogin

#: What a user is told when a code is not sent because the second step is locked.
LOCKED_MESSAGE = "Your second step is locked after too many wrong codes. Contact an administrator."
#: Longest wait between attempts once the delay has grown.
MAX_DELAY = timedelta(minutes=15)


class Blocked(Exception):
    """The account may not try a second step now."""

    def __init__(self, reason: str, retry_after: timedelta | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def delay_after(failures: int) -> timedelta:
    """The wait imposed after ``failures`` consecutive failures (zero below the threshold)."""
    threshold = settings.CONFIG.security.second_step_delay_after
    if failures < threshold:
        return timedelta(0)
    return doubling_wait(failures - threshold + 1, MAX_DELAY)


def lock_expired(locked_at: datetime, now: datetime) -> bool:
    """True when ``security.second_step_lock_minutes`` is set and that long has passed."""
    minutes = settings.CONFIG.security.second_step_lock_minutes
    return bool(minutes) and now >= locked_at + timedelta(minutes=minutes)


def is_locked(user: User, now: datetime | None = None) -> bool:
    """True while the second step is locked (an expired timed lock no longer counts)."""
    locked_at = user.second_step_locked_at
    return locked_at is not None and not lock_expired(locked_at, now or clock.now())


def check(user: User, now: datetime) -> None:
    """Raises Blocked when the account is locked or must still wait."""
    if is_locked(user, now):
        raise Blocked("locked")
    if user.second_step_blocked_until is not None and user.second_step_blocked_until > now:
        raise Blocked("throttled", user.second_step_blocked_until - now)


def register_failure(user_id: int, now: datetime) -> tuple[int, bool]:
    """Count one failure; return (consecutive failures, whether this locked the account)."""
    User.objects.filter(pk=user_id).update(second_step_failures=F("second_step_failures") + 1)
    failures = User.objects.filter(pk=user_id).values_list("second_step_failures", flat=True).get()
    if failures >= settings.CONFIG.security.second_step_lock_after:
        # A lock whose time ran out gives one more try, not a fresh budget:
        # the failure count stays, and the next failure locks again from now.
        previous = User.objects.filter(pk=user_id).values_list("second_step_locked_at", flat=True).get()
        if previous is None or lock_expired(previous, now):
            User.objects.filter(pk=user_id).update(second_step_locked_at=now)
            return failures, True
        return failures, False
    wait = delay_after(failures)
    if wait:
        User.objects.filter(pk=user_id).update(second_step_blocked_until=now + wait)
    return failures, False


def register_success(user_id: int) -> None:
    User.objects.filter(pk=user_id).exclude(
        second_step_failures=0, second_step_blocked_until=None, second_step_locked_at=None
    ).update(second_step_failures=0, second_step_blocked_until=None, second_step_locked_at=None)


def unlock(user: User) -> None:
    """Lift a lock and clear the failure count; end the sign-ins still open.

    Whoever guessed until the lock must enter the password again: a sign-in
    opened before the unlock gets no fresh tries from it.
    """
    User.objects.filter(pk=user.pk).update(
        second_step_failures=0, second_step_blocked_until=None, second_step_locked_at=None
    )
    now = clock.now()
    PendingLogin.objects.filter(user_id=user.pk, completed_at__isnull=True, expires_at__gt=now).update(expires_at=now)
