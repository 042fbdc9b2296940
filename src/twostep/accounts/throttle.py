"""Throttling of the password step, per account name and per client IP.

Per account: after ``ACCOUNT_FREE_FAILURES`` consecutive failures each further
try waits a growing delay (never a lock, so a stranger cannot lock a user
out by typing wrong passwords).  Per IP: more than ``IP_FAILURES_PER_WINDOW``
failures in ``IP_WINDOW`` block that address for a growing time.  Counters
live in the database (shared by every instance) and grow with single
``UPDATE`` statements, so concurrent failures are all counted.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F

from twostep.accounts.models import SignInThrottle

ACCOUNT_FREE_FAILURES = 5
IP_FAILURES_PER_WINDOW = 30
IP_WINDOW = timedelta(minutes=15)
MAX_DELAY = timedelta(minutes=15)


class SignInThrottled(Exception):
    """Too many failed sign-ins for this name or address; ``retry_after`` says how long to wait."""

    def __init__(self, retry_after: timedelta) -> None:
        super().__init__("too many sign-in attempts")
        self.retry_after = retry_after


def _keys(username: str, ip: str | None) -> list[str]:
    keys = [f"user:{username.strip().lower()[:150]}"]
    if ip:
        keys.append(f"ip:{ip}")
    return keys


def check(username: str, ip: str | None, now: datetime) -> None:
    """Raises SignInThrottled when the name or the address must wait."""
    waits = [
        blocked - now
        for blocked in SignInThrottle.objects.filter(key__in=_keys(username, ip), blocked_until__gt=now).values_list(
            "blocked_until", flat=True
        )
        if blocked is not None
    ]
    if waits:
        raise SignInThrottled(max(waits))


def _delay(excess: int) -> timedelta:
    return min(MAX_DELAY, timedelta(seconds=2**excess))


def register_failure(username: str, ip: str | None, now: datetime) -> None:
    """Count one failed password step against the name and the address."""
    for key in _keys(username, ip):
        with transaction.atomic():
            row = _row(key, now)
            if key.startswith("ip:") and now - row.window_started_at > IP_WINDOW:
                SignInThrottle.objects.filter(pk=row.pk).update(failures=0, window_started_at=now)
            SignInThrottle.objects.filter(pk=row.pk).update(failures=F("failures") + 1)
            failures = SignInThrottle.objects.values_list("failures", flat=True).get(pk=row.pk)
            limit = ACCOUNT_FREE_FAILURES if key.startswith("user:") else IP_FAILURES_PER_WINDOW
            if failures >= limit:
                SignInThrottle.objects.filter(pk=row.pk).update(blocked_until=now + _delay(failures - limit))


def register_success(username: str) -> None:
    """A correct password clears the account's counter (the address keeps its count)."""
    SignInThrottle.objects.filter(key__in=_keys(username, None)).delete()


def _row(key: str, now: datetime) -> SignInThrottle:
    row = SignInThrottle.objects.filter(key=key).first()
    if row is not None:
        return row
    try:
        with transaction.atomic():
            return SignInThrottle.objects.create(key=key, window_started_at=now)
    except IntegrityError:  # created concurrently
        return SignInThrottle.objects.get(key=key)
