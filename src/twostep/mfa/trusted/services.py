"""Trusted browsers: "Trust this browser for 30 days" on the second step.

After a successful second step the user may ask to trust the browser.  The
browser then holds a random 256-bit token in a long-lived cookie (HttpOnly,
SameSite=Lax, Secure and ``__Host-`` over HTTPS); the server keeps only its
SHA-256 with the user, the browser's description, address and expiry.  At
the next sign-in of the *same* user on that browser the password is enough.

Trust ends when it expires, when the user or an administrator revokes it,
and whenever the user's sessions are ended for a security reason (password
change, a factor added or removed, 2FA reset, deactivation: the
``sessions_ended`` signal).  As a second, independent guard each record
keeps a fingerprint of the password hash and the confirmed factors at the
time trust was given; a trusted browser never skips the second step for a
user whose password or factors changed since, whatever path changed them.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from twostep.accounts.models import User
from twostep.audit.services import Origin, Outcome, record
from twostep.core import clock
from twostep.core.crypto import keyed_hash
from twostep.core.runtime import Definition, SettingError, check_bool, get_settings, parse_bool, register_setting
from twostep.mfa.models import Authenticator, TrustedBrowser
from twostep.usersessions.services import describe_agent

ENABLED_KEY = "trusted_browsers.enabled"
DAYS_KEY = "trusted_browsers.days"
DEFAULT_DAYS = 30
MAX_DAYS = 365
#: Tokens one browser remembers (people sharing a browser, or an admin and a user account).
TOKENS_PER_BROWSER = 5
#: Trusted browsers kept per user; trusting one more forgets the oldest.
MAX_PER_USER = 20
#: The session key under which /login/verify remembers the "Trust this browser" box.
TRUST_REQUESTED_KEY = "twostep_trust_requested"


def _parse_days(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise SettingError(f"{text!r} is not a whole number of days") from None


def _check_days(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DAYS:
        raise SettingError(f"must be a whole number of days from 1 to {MAX_DAYS}")
    return value


def register_settings() -> None:
    """Declare the admin's switches (called from the mfa app's ``ready``)."""
    register_setting(
        Definition(
            ENABLED_KEY,
            True,
            parse_bool,
            check_bool,
            'Offer "Trust this browser" on the second step, so that trusted browsers skip it.',
        )
    )
    register_setting(
        Definition(
            DAYS_KEY,
            DEFAULT_DAYS,
            _parse_days,
            _check_days,
            f"How long a trusted browser skips the second step, in days (1-{MAX_DAYS}).",
        )
    )


@dataclass(frozen=True)
class Policy:
    enabled: bool
    days: int


def policy() -> Policy:
    """Whether trust may be offered, and for how long (one query)."""
    values = get_settings(ENABLED_KEY, DAYS_KEY)
    return Policy(enabled=bool(values[ENABLED_KEY]), days=int(values[DAYS_KEY]))


def cookie_name() -> str:
    # Like the session cookie: the __Host- prefix (Secure, no Domain, Path=/) over HTTPS.
    return "__Host-twostep_trusted" if settings.SESSION_COOKIE_SECURE else "twostep_trusted"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def fingerprint(user: User) -> str:
    """A digest of what trust depends on: the password hash and the confirmed factors.

    Keyed, so that the stored value says nothing about the password hash.
    Argon2 parameter upgrades rehash the password at sign-in and so also end
    trust; that is rare and errs on the safe side.
    """
    factors = Authenticator.objects.filter(user_id=user.pk, confirmed_at__isnull=False).order_by("pk")
    parts = [f"{a.pk}:{a.method}:{a.confirmed_at.isoformat() if a.confirmed_at else ''}" for a in factors]
    return keyed_hash(settings.SECRET_KEY.encode(), "trusted-browser", "|".join([user.password, *parts]))


def _tokens_in(request: HttpRequest) -> list[str]:
    raw = request.COOKIES.get(cookie_name(), "")
    tokens = [token for token in raw.split(".") if 20 <= len(token) <= 64]
    return tokens[:TOKENS_PER_BROWSER]


def recognise(request: HttpRequest, user: User) -> TrustedBrowser | None:
    """The live trust this browser holds for ``user``, if it may skip the second step now.

    Never for another user's token, an expired or revoked one, one older than
    the number of days trust lasts now (an administrator may have lowered it
    since), a user whose password or factors changed since, a locked second
    step, or when the admin turned trusted browsers off.  A match is recorded
    in the auth log.
    """
    tokens = _tokens_in(request)
    if not tokens or user.second_step_locked_at is not None:
        return None
    current = policy()
    if not current.enabled:
        return None
    now = clock.now()
    match = (
        _live(user.pk, now, current.days)
        .filter(token_hash__in=[_hash(t) for t in tokens])
        .order_by("-created_at")
        .first()
    )
    if match is None:
        return None
    if match.fingerprint != fingerprint(user):
        # Stale: the password or the factors changed since trust was given.
        TrustedBrowser.objects.filter(pk=match.pk).delete()
        record("trusted_browser.refused", Outcome.INFO, origin=Origin.of(request), user=user, reason="changed")
        return None
    TrustedBrowser.objects.filter(pk=match.pk).update(last_used_at=now)
    record("trusted_browser.used", Outcome.SUCCESS, origin=Origin.of(request), user=user)
    return match


def remember(request: HttpRequest, response: HttpResponse, user: User) -> TrustedBrowser | None:
    """Trust this browser for ``user``: store the record and set the cookie on ``response``.

    Returns None (and does nothing) when the admin turned trusted browsers off.
    """
    current = policy()
    if not current.enabled:
        return None
    now = clock.now()
    token = secrets.token_urlsafe(32)
    origin = Origin.of(request)
    kept = _tokens_in(request)
    with transaction.atomic():
        TrustedBrowser.objects.filter(user_id=user.pk, expires_at__lte=now).delete()
        # This browser's earlier trust for the same user is replaced, not piled up.
        TrustedBrowser.objects.filter(user_id=user.pk, token_hash__in=[_hash(t) for t in kept]).delete()
        trusted = TrustedBrowser.objects.create(
            user_id=user.pk,
            token_hash=_hash(token),
            fingerprint=fingerprint(user),
            created_at=now,
            expires_at=now + timedelta(days=current.days),
            ip=origin.ip,
            user_agent=origin.user_agent[:300],
        )
        surplus = (
            TrustedBrowser.objects.filter(user_id=user.pk)
            .order_by("-created_at")
            .values_list("pk", flat=True)[MAX_PER_USER:]
        )
        TrustedBrowser.objects.filter(pk__in=list(surplus)).delete()
    # Keep the tokens this browser holds for other people; drop ones the server no longer knows.
    live = set(
        TrustedBrowser.objects.filter(token_hash__in=[_hash(t) for t in kept]).values_list("token_hash", flat=True)
    )
    others = [t for t in kept if _hash(t) in live]
    value = ".".join([token, *others][:TOKENS_PER_BROWSER])
    response.set_cookie(
        cookie_name(),
        value,
        max_age=current.days * 86400,
        path="/",
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )
    record("trusted_browser.added", Outcome.SUCCESS, origin=origin, user=user, detail={"days": current.days})
    return trusted


@dataclass(frozen=True)
class BrowserInfo:
    """What the Security page shows of one trusted browser.  ``handle`` is public; the token is not."""

    handle: int
    device: str
    ip: str | None
    trusted_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    current: bool


def _live(user_id: int, now: datetime, days: int) -> QuerySet[TrustedBrowser]:
    """The user's trust that has not ended: before its expiry, and younger than the ``days`` trust lasts
    now (an administrator may have lowered them since it was given)."""
    return TrustedBrowser.objects.filter(user_id=user_id, expires_at__gt=now, created_at__gt=now - timedelta(days=days))


def list_trusted(user: User, request: HttpRequest | None = None) -> list[BrowserInfo]:
    """The user's live trusted browsers, newest first; ``current`` marks the one making ``request``."""
    mine = {_hash(t) for t in _tokens_in(request)} if request is not None else set()
    days = policy().days
    rows = _live(user.pk, clock.now(), days).order_by("-created_at")
    return [
        BrowserInfo(
            handle=row.pk,
            device=describe_agent(row.user_agent),
            ip=row.ip,
            trusted_at=row.created_at,
            expires_at=min(row.expires_at, row.created_at + timedelta(days=days)),
            last_used_at=row.last_used_at,
            current=row.token_hash in mine,
        )
        for row in rows
    ]


def count_trusted(user_id: int) -> int:
    return _live(user_id, clock.now(), policy().days).count()


def revoke(user: User, handle: int, *, origin: Origin, actor: User | None = None) -> bool:
    """Stop trusting one browser of ``user``; False when there is no such (live) record of theirs."""
    deleted, _ = TrustedBrowser.objects.filter(user_id=user.pk, pk=handle).delete()
    if deleted:
        record("trusted_browser.revoked", Outcome.INFO, origin=origin, user=user, actor=actor)
    return bool(deleted)


def revoke_all(user: User, *, origin: Origin | None = None, actor: User | None = None, reason: str = "") -> int:
    """Stop trusting every browser of ``user``; return how many were trusted.

    Recorded in the auth log when ``origin`` is given and something was revoked.
    """
    deleted, _ = TrustedBrowser.objects.filter(user_id=user.pk).delete()
    if deleted and origin is not None:
        record(
            "trusted_browser.revoked_all",
            Outcome.INFO,
            origin=origin,
            user=user,
            actor=actor,
            reason=reason,
            detail={"count": deleted},
        )
    return int(deleted)


def prune_expired() -> int:
    """Delete trust records past their expiry (for housekeeping); return how many."""
    deleted, _ = TrustedBrowser.objects.filter(expires_at__lte=clock.now()).delete()
    return int(deleted)


def on_sessions_ended(sender: Any, user: Any, except_key: str | None = None, **kwargs: Any) -> None:
    """Receiver of ``usersessions.services.sessions_ended``: a password change, a factor added or
    removed, a 2FA reset or a deactivation ends the trust of every browser of the user."""
    if user is not None and getattr(user, "pk", None) is not None:
        revoke_all(user, origin=Origin(None, ""), reason="sessions_ended")
