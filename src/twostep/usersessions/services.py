"""Ending sessions: on sign-out, password change, deactivation, 2FA reset."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser

from twostep.usersessions.models import UserSession


def end_sessions(user: AbstractBaseUser, *, except_key: str | None = None) -> int:
    """Delete every session of ``user`` (but ``except_key``); return how many ended."""
    sessions = UserSession.objects.filter(user_id=user.pk)
    if except_key:
        sessions = sessions.exclude(session_key=except_key)
    deleted, _ = sessions.delete()
    return deleted
