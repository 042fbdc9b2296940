"""Filtering the auth log, shared by the console page, the API and ``twostep audit``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from twostep.audit.models import AuthEvent


@dataclass(frozen=True)
class EventFilter:
    username: str = ""
    outcome: str = ""
    kind: str = ""
    ip: str = ""
    since: datetime | None = None
    until: datetime | None = None


def events(criteria: EventFilter) -> QuerySet[AuthEvent]:
    """Events matching every given criterion, newest first."""
    queryset = AuthEvent.objects.select_related("actor").order_by("-created_at", "-id")
    if criteria.username:
        queryset = queryset.filter(username__iexact=criteria.username.strip())
    if criteria.outcome:
        queryset = queryset.filter(outcome=criteria.outcome)
    if criteria.kind:
        queryset = queryset.filter(kind__startswith=criteria.kind.strip())
    if criteria.ip:
        queryset = queryset.filter(ip=criteria.ip.strip())
    if criteria.since is not None:
        queryset = queryset.filter(created_at__gte=criteria.since)
    if criteria.until is not None:
        queryset = queryset.filter(created_at__lt=criteria.until)
    return queryset


def printable(text: object) -> str:
    """``text`` safe for one terminal line: control and other unprintable characters escaped.

    The auth log stores what strangers typed (a username at the password
    step, a token's name); a line break in it would forge a log line, an
    escape sequence would drive the reader's terminal.  Backslashes are
    escaped too, so that an escaped character cannot be faked.
    """
    return "".join(
        char if char.isprintable() and char != "\\" else char.encode("unicode_escape").decode("ascii")
        for char in str(text)
    )


def describe(event: AuthEvent) -> str:
    """One line for terminals: time, outcome, kind, who, from where, why."""
    parts = [
        event.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        f"{event.outcome:<7}",
        f"{event.kind:<22}",
        printable(event.username) or "-",
        event.ip or "-",
    ]
    if event.method:
        parts.append(f"method={event.method}")
    if event.reason:
        parts.append(f"reason={printable(event.reason)}")
    if event.actor is not None:
        parts.append(f"by={printable(event.actor.username)}")
    if event.detail:
        parts.append(" ".join(f"{key}={printable(value)}" for key, value in sorted(event.detail.items())))
    return "  ".join(parts)
