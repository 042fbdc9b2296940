"""Throttling of the password step, per account name and per client IP.

Per account: after ``ACCOUNT_FREE_FAILURES`` consecutive failures each further
try waits a growing delay, up to ``MAX_DELAY`` (never a lock).  A browser
that signed in to the account before counts on its own device id instead
(``twostep.accounts.devices``), so a stranger typing wrong passwords delays
only browsers the account was never used in.  Per IP: more than
``IP_FAILURES_PER_WINDOW`` failures in ``IP_WINDOW`` block that address (for
IPv6, its /64) for a growing time.  Counters live in the database, shared by
every instance.

A try is counted *before* its password is checked (``claim``), under a lock
on the counters' rows, and given back when the password was right
(``settle``).  Checking first and counting after the hash would let every
request that arrives while the first one hashes through the same check: a
burst as large as the server's concurrency at each turn of the delay.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Value, When

from twostep.accounts.models import SignInThrottle
from twostep.core.backoff import doubling_wait
from twostep.core.client import address_group
from twostep.core.crypto import keyed_hash

ACCOUNT_FREE_FAILURES = 5
IP_FAILURES_PER_WINDOW = 30
IP_WINDOW = timedelta(minutes=15)
MAX_DELAY = timedelta(minutes=15)


class SignInThrottled(Exception):
    """Too many failed sign-ins for this name or address; ``retry_after`` says how long to wait."""

    def __init__(self, retry_after: timedelta) -> None:
        super().__init__("too many sign-in attempts")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Claim:
    """One counted password try, to be settled once the password is checked."""

    account_key: str
    ip_key: str | None

    @property
    def keys(self) -> list[str]:
        """Its counters' keys, in the order every transaction locks them (claim and settle alike).

        Two transactions that took them in different orders could deadlock on PostgreSQL.
        """
        return sorted(key for key in (self.account_key, self.ip_key) if key)


def account_name(username: str) -> str:
    """The account a typed name counts for: trimmed, lower-cased, at most 150 characters."""
    return username.strip().lower()[:150]


def account_key(username: str) -> str:
    """The counter of a typed name: a keyed hash of it, never the text.

    Whatever is typed in the username field is counted, a password typed
    in the wrong field included: it must not be kept in the clear.
    """
    return f"user:{keyed_hash(settings.SECRET_KEY.encode(), 'sign-in throttle', account_name(username))}"


def _address_key(ip: str) -> str:
    return f"ip:{address_group(ip)}"


def claim(username: str, ip: str | None, now: datetime, *, device: str | None = None) -> Claim:
    """Count a password try against the name and the address, before the password is checked.

    With ``device`` (the id of a browser that signed in to this account
    before, ``twostep.accounts.devices``) the try counts against that device
    instead of the name, so that others' failures for the name do not delay it.

    Raises:
        SignInThrottled: the name or the address must wait; nothing was
            counted, and the password must not be checked.
    """
    counter = f"device:{device}" if device else account_key(username)
    attempt = Claim(counter, _address_key(ip) if ip else None)
    keys = attempt.keys
    # One transaction, one commit: a sign-in pays for this besides the hash.
    with transaction.atomic():
        SignInThrottle.objects.bulk_create(
            [SignInThrottle(key=key, window_started_at=now) for key in keys], ignore_conflicts=True
        )
        rows = _locked(keys)
        waits = [row.blocked_until - now for row in rows if row.blocked_until and row.blocked_until > now]
        if waits:
            raise SignInThrottled(max(waits))
        for row in rows:
            is_ip = row.key.startswith("ip:")
            if is_ip and now - row.window_started_at > IP_WINDOW:
                row.failures, row.window_started_at = 0, now
            row.failures += 1
            limit = IP_FAILURES_PER_WINDOW if is_ip else ACCOUNT_FREE_FAILURES
            if row.failures >= limit:
                row.blocked_until = now + doubling_wait(row.failures - limit, MAX_DELAY)
        SignInThrottle.objects.bulk_update(rows, ["failures", "window_started_at", "blocked_until"])
    return attempt


def _locked(keys: list[str]) -> list[SignInThrottle]:
    """The counters of ``keys`` (``Claim.keys``), locked in that order until the transaction ends."""
    return list(SignInThrottle.objects.select_for_update().filter(key__in=keys).order_by("key"))


def settle(attempt: Claim, *, password_was_right: bool) -> None:
    """Close a claimed try: a right password clears the name's (or device's) counter and gives the address its try back.

    A wrong password leaves the counts as ``claim`` made them.
    """
    if not password_was_right:
        return
    with transaction.atomic():
        if attempt.ip_key:
            _locked(attempt.keys)  # first: deleting the name's row would lock it before the address's
        SignInThrottle.objects.filter(key=attempt.account_key).delete()
        if attempt.ip_key:
            # One conditional UPDATE: the try back, and no block once under the limit again.
            SignInThrottle.objects.filter(key=attempt.ip_key, failures__gt=0).update(
                failures=F("failures") - 1,
                blocked_until=Case(
                    When(failures__lte=IP_FAILURES_PER_WINDOW, then=Value(None)), default=F("blocked_until")
                ),
            )
