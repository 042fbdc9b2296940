"""Administrative actions on a user's second factors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction

from twostep.accounts.locking import lock_account
from twostep.accounts.models import User
from twostep.audit.services import Origin, Outcome, record
from twostep.core import clock
from twostep.mfa import throttle
from twostep.mfa.models import Authenticator, DefaultMethod, PendingLogin, RecoveryCode, TrustedBrowser
from twostep.usersessions.services import end_sessions


def sends_codes_to(user: User, method: str, destination: str) -> bool:
    """True when ``user``'s confirmed ``method`` factor (email or SMS) sends its codes to ``destination``."""
    return Authenticator.objects.filter(
        user=user, method=method, confirmed_at__isnull=False, destination__iexact=destination
    ).exists()


def reset_two_factor(user: User, *, origin: Origin, actor: User | None = None) -> int:
    """Remove every factor of ``user`` (the lost-device path), their recovery codes and
    trusted browsers, end their sessions and lift any lock.

    Returns the number of factors removed.  If 2FA is required of the user,
    they must enrol again at their next sign-in.
    """
    with transaction.atomic():
        # Not only when ``throttle.unlock`` writes it, after the factors are gone.
        lock_account(user.pk, no_key=True)
        removed = Authenticator.objects.filter(user=user, confirmed_at__isnull=False).count()
        Authenticator.objects.filter(user=user).delete()
        RecoveryCode.objects.filter(user=user).delete()
        TrustedBrowser.objects.filter(user=user).delete()
        DefaultMethod.objects.filter(user=user).delete()
        throttle.unlock(user)
        end_sessions(user)
    record("two_factor.reset", Outcome.INFO, origin=origin, user=user, actor=actor, detail={"removed": removed})
    return removed


def end_pending_sign_ins(sender: object, user: User, **kwargs: object) -> None:
    """Receiver of ``usersessions.services.sessions_ended``: sign-ins and step-ups waiting for a code end too.

    Whoever holds one already passed the password (or holds a session).  A
    password change, a factor moved to a new address or number, or "sign out
    everywhere" must stop it as it stops a session: otherwise a code sent
    to the old address, or the old password, still finishes signing in.
    """
    # Ended, not deleted: the codes they sent still count against the send limits.
    now = clock.now()
    PendingLogin.objects.filter(user_id=user.pk, completed_at__isnull=True, expires_at__gt=now).update(expires_at=now)


def unlock_second_step(user: User, *, origin: Origin, actor: User | None = None) -> None:
    """Lift a second-step lock, clear the failure count and end the sign-ins still waiting at the second step."""
    throttle.unlock(user)
    record("second_step.unlocked", Outcome.INFO, origin=origin, user=user, actor=actor)


def affected_under(values: Mapping[str, Any]) -> int:
    """``affected_by`` for the values of ``policy.SWITCH_KEYS`` as ``get_settings`` reads them."""
    return affected_by(bool(values["two_factor.enabled"]), list(values["two_factor.methods"]))


def affected_by(enabled: bool, methods: list[str]) -> int:
    """How many users would lose an active factor if 2FA were set to (enabled, methods).

    Deactivated users count: they would come back without it.
    """
    confirmed = Authenticator.objects.filter(confirmed_at__isnull=False)
    if not enabled:
        return confirmed.values("user").distinct().count()
    kept = confirmed.filter(method__in=methods).values("user")
    return confirmed.exclude(user__in=kept).values("user").distinct().count()
