"""Models to response dictionaries (the shapes in ``schemas``); never a secret."""

from __future__ import annotations

from typing import Any

from twostep.accounts.models import User
from twostep.accounts.services import also_on
from twostep.api import tokens
from twostep.api.models import AccessToken
from twostep.audit.models import AuthEvent
from twostep.mfa import methods
from twostep.mfa.models import Authenticator


def emails_of(user: User, *, sharing: bool = False) -> list[dict[str, Any]]:
    """The user's addresses; with ``sharing``, each with the other accounts that have it (``also_on``)."""
    return [
        {"id": e.pk, "email": e.email, "primary": e.is_primary, **({"also_on": also_on(e)} if sharing else {})}
        for e in user.email_addresses.all()
    ]


def phones_of(user: User, *, sharing: bool = False) -> list[dict[str, Any]]:
    """The user's numbers; with ``sharing``, each with the other accounts that have it (``also_on``)."""
    return [
        {"id": p.pk, "number": p.number, "primary": p.is_primary, **({"also_on": also_on(p)} if sharing else {})}
        for p in user.phone_numbers.all()
    ]


def created_user(user: User) -> dict[str, Any]:
    """``user_detail`` of a user just created: each address and number says which other accounts have it."""
    return {**user_detail(user), "emails": emails_of(user, sharing=True), "phones": phones_of(user, sharing=True)}


def factor(authenticator: Authenticator) -> dict[str, Any]:
    return {
        "method": authenticator.method,
        "destination": authenticator.destination or None,
        "usable": methods.is_usable(authenticator),
        "confirmed_at": authenticator.confirmed_at,
        "last_used_at": authenticator.last_used_at,
    }


def factors_of(user: User) -> list[dict[str, Any]]:
    confirmed = Authenticator.objects.filter(user=user, confirmed_at__isnull=False).order_by("confirmed_at")
    return [factor(a) for a in confirmed]


def token_out(token: AccessToken, *, current: AccessToken | None = None) -> dict[str, Any]:
    return {
        "id": token.public_id,
        "kind": token.kind,
        "name": token.name,
        "scopes": token.scopes,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "idle_expires_at": tokens.idle_expires_at(token),
        "last_used_at": token.last_use,
        "current": current is not None and token.pk == current.pk,
    }


def user_summary(user: User, *, has_factor: bool) -> dict[str, Any]:
    return {
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "is_active": user.is_active,
        "two_factor": has_factor,
        "locked": user.second_step_locked_at is not None,
        "created_at": user.created_at,
    }


def user_detail(user: User) -> dict[str, Any]:
    factors = factors_of(user)
    return {
        **user_summary(user, has_factor=bool(factors)),
        "must_change_password": user.must_change_password,
        "emails": emails_of(user),
        "phones": phones_of(user),
        "factors": factors,
        "second_step_failures": user.second_step_failures,
        "second_step_locked_at": user.second_step_locked_at,
    }


def event(item: AuthEvent, usernames: dict[int, str]) -> dict[str, Any]:
    return {
        "id": item.pk,
        "created_at": item.created_at,
        "kind": item.kind,
        "outcome": item.outcome,
        "reason": item.reason,
        "username": item.username,
        "actor": usernames.get(item.actor_id) if item.actor_id else None,
        "ip": item.ip,
        "user_agent": item.user_agent,
        "method": item.method,
        "detail": item.detail if isinstance(item.detail, dict) else {},
    }
