"""The password step of sign-in, shared by the pages and the API."""

from __future__ import annotations

import math

from django.conf import settings
from django.contrib.auth import authenticate
from django.http import HttpRequest

from twostep.accounts import devices, throttle
from twostep.accounts.models import User
from twostep.accounts.throttle import SignInThrottled
from twostep.accounts.validators import MAX_PASSWORD_LENGTH, USERNAME_RE
from twostep.audit.services import Origin, Outcome, record
from twostep.core import clock
from twostep.core.crypto import keyed_hash
from twostep.core.wording import plural

__all__ = [
    "GENERIC_FAILURE",
    "SignInThrottled",
    "check_password_step",
    "check_reauthentication",
    "throttled_message",
]

GENERIC_FAILURE = "Your username or password is incorrect."


def throttled_message(refused: SignInThrottled) -> str:
    """What a throttled password try is told: how long to wait, in the unit that reads best.

    The wait grows with each failure, from a second to many minutes; it is
    the same for a name that is no account, so it tells nothing about one.
    """
    seconds = max(1, math.ceil(refused.retry_after.total_seconds()))
    wait = plural(seconds, "second") if seconds < 60 else plural(math.ceil(seconds / 60), "minute")
    return f"Too many sign-in attempts. Try again in {wait}."


#: Logged instead of what was typed in the username field when it cannot be a username.
NOT_A_USERNAME = "(not a username)"


def logged_username(typed: str, *, names_an_account: bool) -> str:
    """What the auth log keeps of a typed username: itself when it names an account; else a label.

    People type their password into the username field now and then, and
    many passwords ("hunter2", "Summer2024") could be usernames: a name that
    is no account is written as "(unknown name #1a2b3c4d)", a keyed digest
    that groups the tries at one name without telling it (every
    administrator reads the auth log), and a text that no account could be
    named as ``NOT_A_USERNAME``.
    """
    if names_an_account:
        return typed
    if not USERNAME_RE.fullmatch(typed.lower()):
        return NOT_A_USERNAME
    digest = keyed_hash(settings.SECRET_KEY.encode(), "unknown name in the auth log", typed.lower())
    return f"(unknown name #{digest[:8]})"


def _account_named(typed: str) -> User | None:
    """The account ``typed`` names (usernames are stored in lower case), active or not; None for none."""
    return User.objects.filter(username=typed.lower()).only("id", "username", "is_active").first()


def check_password_step(
    username: str, password: str, origin: Origin, request: HttpRequest | None = None
) -> User | None:
    """Return the user when ``username`` and ``password`` match an active account, else None.

    Unknown users, wrong passwords and inactive accounts take the same path
    through the password hasher (Django runs it against a dummy hash for
    unknown users), so neither the answer nor its timing tells them apart.
    The auth log records which it was.

    Raises:
        SignInThrottled: too many recent failures for this username (known or
            not) or this client IP; the password was not checked.
    """
    typed = username.strip()[:150]
    try:
        attempt = throttle.claim(typed, origin.ip, clock.now(), device=devices.device_id(request, typed))
    except throttle.SignInThrottled:
        named = _account_named(typed)
        logged = logged_username(typed, names_an_account=named is not None)
        record("login.password", Outcome.FAILURE, origin=origin, user=named, username=logged, reason="throttled")
        raise
    if len(password) > MAX_PASSWORD_LENGTH:
        password = password[: MAX_PASSWORD_LENGTH + 1]
    user = authenticate(request, username=typed.lower(), password=password)
    throttle.settle(attempt, password_was_right=isinstance(user, User))
    if isinstance(user, User):
        record("login.password", Outcome.SUCCESS, origin=origin, user=user, username=typed)
        return user
    known = _account_named(typed)
    logged = logged_username(typed, names_an_account=known is not None)
    if known is None:
        reason = "unknown_user"
    elif not known.is_active:
        reason = "inactive_user"
    else:
        reason = "credentials"
    record("login.password", Outcome.FAILURE, origin=origin, user=known, username=logged, reason=reason)
    return None


def check_reauthentication(user: User, password: str, origin: Origin, request: HttpRequest | None = None) -> bool:
    """True when ``password`` is ``user``'s, for a sensitive change; records the attempt.

    Wrong passwords here count against the same limits as the sign-in form
    (the name's, or this browser's device counter, and the address's), so a
    stolen session cannot be used to guess the password.

    Raises:
        SignInThrottled: too many recent failures; the password was not checked.
    """
    try:
        attempt = throttle.claim(
            user.username, origin.ip, clock.now(), device=devices.device_id(request, user.username)
        )
    except throttle.SignInThrottled:
        record("reauthenticate", Outcome.FAILURE, origin=origin, user=user, reason="throttled")
        raise
    right = user.check_password(password[: MAX_PASSWORD_LENGTH + 1])
    throttle.settle(attempt, password_was_right=right)
    if right:
        record("reauthenticate", Outcome.SUCCESS, origin=origin, user=user)
        return True
    record("reauthenticate", Outcome.FAILURE, origin=origin, user=user, reason="credentials")
    return False
