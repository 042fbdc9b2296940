"""Listing and ending a user's sessions: on sign-out, password change, role change, deactivation, 2FA reset."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.base_user import AbstractBaseUser
from django.dispatch import Signal

from twostep.core import clock
from twostep.usersessions.backend import stored_key
from twostep.usersessions.models import UserSession

#: Sent after sessions of a user were ended; arguments: ``user``, ``except_key``.
#: The API connects to it to revoke the user's access tokens too.
sessions_ended = Signal()


def end_sessions(user: AbstractBaseUser, *, except_key: str | None = None) -> int:
    """Delete every session of ``user`` (but the one whose key is ``except_key``); return how many ended."""
    sessions = UserSession.objects.filter(user_id=user.pk)
    if except_key:
        sessions = sessions.exclude(session_key=stored_key(except_key))
    deleted, _ = sessions.delete()
    sessions_ended.send(sender=UserSession, user=user, except_key=except_key)
    return deleted


@dataclass(frozen=True)
class SessionInfo:
    """What the Security page shows of one session.  ``handle`` is not the session key."""

    handle: str
    device: str
    ip: str | None
    signed_in_at: datetime
    last_seen: datetime | None
    current: bool


def handle_for(row_name: str) -> str:
    """A public name for a session (its row's name, ``stored_key``, hashed again): pages show this."""
    return hashlib.sha256(row_name.encode()).hexdigest()[:20]


def current_handle(session_key: str | None) -> str:
    """The public name of the session whose key is ``session_key`` ("" for none)."""
    return handle_for(stored_key(session_key)) if session_key else ""


def list_sessions(user: AbstractBaseUser, current_key: str | None) -> list[SessionInfo]:
    """The user's live sessions, most recently active first; ``current_key`` is this request's session key."""
    rows = UserSession.objects.filter(user_id=user.pk, expire_date__gt=clock.now()).order_by("-last_seen")
    current_row = stored_key(current_key) if current_key else None
    return [
        SessionInfo(
            handle=handle_for(row.session_key),
            device=describe_agent(row.user_agent),
            ip=row.ip,
            signed_in_at=row.created_at,
            last_seen=row.last_seen,
            current=row.session_key == current_row,
        )
        for row in rows
    ]


def end_session(user: AbstractBaseUser, handle: str) -> bool:
    """End the session of ``user`` named by ``handle``; False when there is none."""
    for key in UserSession.objects.filter(user_id=user.pk).values_list("session_key", flat=True):
        if handle_for(key) == handle:
            UserSession.objects.filter(session_key=key).delete()
            return True
    return False


_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Safari/", "Safari"))
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def describe_agent(user_agent: str, *, known_only: bool = False) -> str:
    """A short human name for a User-Agent, e.g. "Firefox on Linux".

    When neither browser nor system is recognised: the raw text (shortened),
    or with ``known_only`` just "Unknown device", for messages that must not
    carry words a stranger chose.
    """
    if not user_agent:
        return "Unknown device"
    browser = next((name for marker, name in _BROWSERS if marker in user_agent), None)
    system = next((name for marker, name in _SYSTEMS if marker in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    if known_only:
        return browser or system or "Unknown device"
    return browser or system or re.sub(r"\s+", " ", user_agent)[:60]
