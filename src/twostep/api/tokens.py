"""Access tokens: issue, authenticate, re-authenticate (password, second factor) and revoke.

A token is ``<prefix><43 random URL-safe characters>`` from ``secrets``; the
prefix (``tsa_`` for sign-in tokens, ``tsp_`` for personal tokens) lets secret
scanners and people recognise a leaked one.  Only its SHA-256 is stored.
The JSON API and the /account/tokens page both call these functions.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet

from twostep.accounts.models import User
from twostep.audit.services import Origin, Outcome, record
from twostep.core import clock

from .models import AccessToken, Scope, TokenKind

SIGN_IN_PREFIX = "tsa_"
PERSONAL_PREFIX = "tsp_"
#: Longer bearer values are refused before hashing.
MAX_TOKEN_LENGTH = 100
#: last_used_at is written at most this often (seconds).
LAST_USED_RESOLUTION = 60
PERSONAL_MAX_DAYS = 365
PERSONAL_DEFAULT_DAYS = 30
MAX_NAME_LENGTH = 100
#: Live personal tokens one user may hold; a bound on what a stolen session can mint.
MAX_PERSONAL_TOKENS = 50

#: The token a request is acting with, spared when its own sessions end
#: (the API counterpart of the browser keeping its session after a change).
_spared: ContextVar[int | None] = ContextVar("twostep_api_spared_token", default=None)


@dataclass(frozen=True)
class Issued:
    """A new token: ``secret`` is shown once and never stored."""

    token: AccessToken
    secret: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def _idle_timeout() -> timedelta:
    return timedelta(seconds=settings.CONFIG.security.session_idle_timeout)


def _absolute_timeout() -> timedelta:
    return timedelta(seconds=settings.CONFIG.security.session_absolute_timeout)


def _reauth_max_age() -> timedelta:
    return timedelta(seconds=settings.CONFIG.security.reauth_max_age)


def scopes_for(user: User) -> list[str]:
    """Every scope ``user``'s role allows: what a sign-in token carries."""
    scopes = [Scope.READ.value, Scope.SECURITY.value]
    if user.is_admin:
        scopes.append(Scope.ADMIN.value)
    return scopes


def _new(user: User, kind: str, prefix: str, *, origin: Origin, expires_at: datetime, **fields: Any) -> Issued:
    now = clock.now()
    secret = prefix + secrets.token_urlsafe(32)
    token = AccessToken.objects.create(
        public_id=secrets.token_hex(8),
        token_hash=_hash(secret),
        user=user,
        kind=kind,
        created_at=now,
        expires_at=expires_at,
        last_used_at=now,
        ip=origin.ip,
        user_agent=origin.user_agent[:300],
        **fields,
    )
    return Issued(token, secret)


def _purge_dead(user: User, now: datetime) -> None:
    dead = Q(expires_at__lte=now) | Q(kind=TokenKind.SIGN_IN, last_used_at__lte=now - _idle_timeout())
    AccessToken.objects.filter(dead, user=user).delete()


def issue_sign_in_token(user: User, *, origin: Origin, second_factor: bool = False) -> Issued:
    """A token for a completed sign-in, with every scope the user's role allows.

    The sign-in counts as a re-authentication, as it does for the pages, and
    with ``second_factor`` (a code was right just now) as a second-factor proof.
    """
    now = clock.now()
    _purge_dead(user, now)
    issued = _new(
        user,
        TokenKind.SIGN_IN,
        SIGN_IN_PREFIX,
        origin=origin,
        expires_at=now + _absolute_timeout(),
        scopes=scopes_for(user),
        reauthenticated_at=now,
        second_factor_at=now if second_factor else None,
    )
    return issued


def check_personal_token_request(
    user: User, name: str, scopes: Iterable[str], days: int, *, allowed_scopes: Iterable[str] | None = None
) -> tuple[str, list[str]]:
    """Return the cleaned (name, scopes) of a personal token request.

    ``allowed_scopes`` caps what may be granted (a token cannot mint a
    token with more rights than its own).

    Raises:
        ValidationError: empty or over-long name, no scope or an unknown one,
            the admin scope for a non-admin, a scope beyond ``allowed_scopes``,
            or an expiry outside 1..365 days.
    """
    clean_name = name.strip()
    if not clean_name or len(clean_name) > MAX_NAME_LENGTH or not clean_name.isprintable():
        raise ValidationError(
            f"Give the token a name of 1 to {MAX_NAME_LENGTH} letters, digits, spaces or punctuation.",
            code="invalid_name",
        )
    wanted = list(dict.fromkeys(scopes))
    if not wanted:
        raise ValidationError("Choose at least one scope.", code="invalid_scopes")
    unknown = sorted(set(wanted) - set(Scope.values))
    if unknown:
        raise ValidationError(f"Unknown scope(s): {', '.join(unknown)}.", code="invalid_scopes")
    if Scope.ADMIN in wanted and not user.is_admin:
        raise ValidationError("Only administrators can create tokens with the admin scope.", code="invalid_scopes")
    if allowed_scopes is not None:
        beyond = sorted(set(wanted) - set(allowed_scopes))
        if beyond:
            raise ValidationError(
                f"This token cannot grant scope(s) it does not have: {', '.join(beyond)}.", code="invalid_scopes"
            )
    if not 1 <= days <= PERSONAL_MAX_DAYS:
        raise ValidationError(f"A token expires after 1 to {PERSONAL_MAX_DAYS} days.", code="invalid_expiry")
    return clean_name, [scope for scope in Scope.values if scope in wanted]


def create_personal_token(
    user: User,
    *,
    name: str,
    scopes: Iterable[str],
    days: int = PERSONAL_DEFAULT_DAYS,
    origin: Origin,
    allowed_scopes: Iterable[str] | None = None,
    allowed_until: datetime | None = None,
) -> Issued:
    """Create a personal token; its secret is in the result and nowhere else.

    ``allowed_scopes`` and ``allowed_until`` bound what a token may create:
    no scope it lacks, and no life beyond its own expiry.

    Raises:
        ValidationError: see ``check_personal_token_request``; an expiry after
            ``allowed_until``; or the user already holds MAX_PERSONAL_TOKENS
            live personal tokens.
    """
    clean_name, clean_scopes = check_personal_token_request(user, name, scopes, days, allowed_scopes=allowed_scopes)
    now = clock.now()
    if allowed_until is not None and now + timedelta(days=days) > allowed_until:
        # Else a token about to expire could renew itself for a year with the password alone.
        left = max(0, (allowed_until - now).days)
        raise ValidationError(
            f"This token expires in {left} day{'' if left == 1 else 's'}; a token it creates cannot last longer.",
            code="invalid_expiry",
        )
    _purge_dead(user, now)
    if AccessToken.objects.filter(user=user, kind=TokenKind.PERSONAL).count() >= MAX_PERSONAL_TOKENS:
        raise ValidationError(
            f"You have {MAX_PERSONAL_TOKENS} personal tokens; revoke one first.", code="too_many_tokens"
        )
    issued = _new(
        user,
        TokenKind.PERSONAL,
        PERSONAL_PREFIX,
        origin=origin,
        expires_at=now + timedelta(days=days),
        name=clean_name,
        scopes=clean_scopes,
    )
    record(
        "api_token.created",
        Outcome.INFO,
        origin=origin,
        user=user,
        detail={"token": issued.token.public_id, "name": clean_name, "scopes": clean_scopes, "days": days},
    )
    return issued


def is_live(token: AccessToken, now: datetime | None = None) -> bool:
    """Unexpired (absolute and, for sign-in tokens, idle) and its user is active."""
    now = now or clock.now()
    if token.expires_at <= now:
        return False
    if token.kind == TokenKind.SIGN_IN and token.last_used_at <= now - _idle_timeout():
        return False
    return bool(token.user.is_active)


def authenticate(secret: str) -> AccessToken | None:
    """The live token whose secret is ``secret``, or None; records its use."""
    if not secret.startswith((SIGN_IN_PREFIX, PERSONAL_PREFIX)) or len(secret) > MAX_TOKEN_LENGTH:
        return None
    token = AccessToken.objects.select_related("user").filter(token_hash=_hash(secret)).first()
    now = clock.now()
    if token is None or not is_live(token, now):
        return None
    first_use = token.last_used_at == token.created_at
    if first_use or (now - token.last_used_at).total_seconds() >= LAST_USED_RESOLUTION:
        AccessToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def allows(token: AccessToken, scope: str) -> bool:
    """The token carries ``scope`` and the user's current role still permits it."""
    if scope not in token.scopes:
        return False
    return scope != Scope.ADMIN or token.user.is_admin


# Two proofs a token can carry, each good for ``security.reauth_max_age``:
# the password entered again, and (for a change to the second step itself) a
# code of a factor.  Both are stamps on the token, read and written alike.
_REENTERED = "reauthenticated_at"
_SECOND_FACTOR = "second_factor_at"


def _stamp(token: AccessToken, proof: str, when: datetime | None) -> None:
    AccessToken.objects.filter(pk=token.pk).update(**{proof: when})
    setattr(token, proof, when)


def _mark(token: AccessToken, proof: str) -> datetime:
    now = clock.now()
    _stamp(token, proof, now)
    return now + _reauth_max_age()


def _until(token: AccessToken, proof: str) -> datetime | None:
    stamped: datetime | None = getattr(token, proof)
    return None if stamped is None else stamped + _reauth_max_age()


def _recent(token: AccessToken, proof: str) -> bool:
    until = _until(token, proof)
    return until is not None and clock.now() <= until


def mark_reauthenticated(token: AccessToken) -> datetime:
    """Record a password re-entry for ``token``; return until when it counts."""
    return _mark(token, _REENTERED)


def forget_reauthentication(token: AccessToken) -> None:
    """The password must be entered again for ``token`` before the next sensitive change.

    As on the pages, after a step-up ended (too many wrong codes, expired).
    """
    _stamp(token, _REENTERED, None)


def reauthenticated_until(token: AccessToken) -> datetime | None:
    return _until(token, _REENTERED)


def recently_reauthenticated(token: AccessToken) -> bool:
    """The password was entered for this token within ``security.reauth_max_age``."""
    return _recent(token, _REENTERED)


def mark_second_factor(token: AccessToken) -> datetime:
    """Record a right code of a second factor (a step-up) for ``token``; return until when it counts."""
    return _mark(token, _SECOND_FACTOR)


def second_factor_until(token: AccessToken) -> datetime | None:
    return _until(token, _SECOND_FACTOR)


def recently_proved_second_factor(token: AccessToken) -> bool:
    """A code of a second factor was right for this token within ``security.reauth_max_age``."""
    return _recent(token, _SECOND_FACTOR)


def idle_expires_at(token: AccessToken) -> datetime | None:
    """When a sign-in token dies if unused (None for personal tokens)."""
    if token.kind != TokenKind.SIGN_IN:
        return None
    return min(token.expires_at, token.last_used_at + _idle_timeout())


def live_tokens(user: User) -> QuerySet[AccessToken]:
    now = clock.now()
    return (
        AccessToken.objects.filter(user=user, expires_at__gt=now)
        .exclude(kind=TokenKind.SIGN_IN, last_used_at__lte=now - _idle_timeout())
        .select_related("user")
    )


def find_live(user: User, public_id: str) -> AccessToken | None:
    return live_tokens(user).filter(public_id=public_id).first()


def revoke(token: AccessToken, *, origin: Origin, actor: User | None = None, reason: str = "revoked") -> None:
    """End one token now."""
    deleted, _ = AccessToken.objects.filter(pk=token.pk).delete()
    if deleted:
        record(
            "api_token.revoked",
            Outcome.INFO,
            origin=origin,
            user=token.user,
            actor=actor,
            reason=reason,
            detail={"token": token.public_id, "kind": token.kind},
        )


def revoke_all(user: User, *, origin: Origin, actor: User | None = None) -> int:
    """End every token of ``user``; return how many were live or not."""
    deleted, _ = AccessToken.objects.filter(user=user).delete()
    if deleted:
        record("api_token.revoked_all", Outcome.INFO, origin=origin, user=user, actor=actor, detail={"count": deleted})
    return deleted


@contextmanager
def sparing(token: AccessToken | None) -> Iterator[None]:
    """Inside the block, ending the user's sessions leaves ``token`` alive.

    The API wraps a user's own sensitive change (new factor, factor removed)
    in this, as the pages keep the browser's own session after one.
    """
    reset = _spared.set(token.pk if token is not None else None)
    try:
        yield
    finally:
        _spared.reset(reset)


def end_tokens_with_sessions(sender: object, user: Any, except_key: str | None = None, **kwargs: Any) -> None:
    """Receiver of ``usersessions.services.sessions_ended``: a user's tokens end with their sessions."""
    tokens = AccessToken.objects.filter(user_id=user.pk)
    spared = _spared.get()
    if spared is not None:
        tokens = tokens.exclude(pk=spared)
    tokens.delete()
