"""Recording auth events.  Callers pass facts, never codes, passwords or secrets."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from twostep.audit.models import AuthEvent, Outcome
from twostep.core import clock


@dataclass(frozen=True)
class Origin:
    """Where a request came from: the web pages, the API or the CLI."""

    ip: str | None = None
    user_agent: str = ""

    @classmethod
    def of(cls, request: Any) -> Origin:
        return cls(getattr(request, "client_ip", None), getattr(request, "user_agent", ""))


CLI = Origin(None, "twostep-cli")

#: Roughly one event in this many triggers housekeeping.
PRUNE_ONE_IN = 500


def record(
    kind: str,
    outcome: str,
    *,
    origin: Origin,
    user: Any = None,
    username: str = "",
    reason: str = "",
    method: str = "",
    actor: Any = None,
    detail: dict[str, Any] | None = None,
) -> AuthEvent:
    """Append one event to the auth log and return it."""
    if user is not None and not username:
        username = user.username
    if secrets.randbelow(PRUNE_ONE_IN) == 0:
        # No scheduler to rely on: every few hundred events, one request
        # also deletes what has outlived the retention period.
        from twostep.core.housekeeping import prune

        prune()
    event = AuthEvent.objects.create(
        created_at=clock.now(),
        kind=kind,
        outcome=outcome,
        reason=reason,
        user=user,
        username=username[:150],
        actor=actor,
        ip=origin.ip,
        user_agent=origin.user_agent[:300],
        method=method,
        detail=detail or {},
    )
    from twostep.notifications.services import notify_for_event

    notify_for_event(event)
    return event


__all__ = ["CLI", "Origin", "Outcome", "record"]
