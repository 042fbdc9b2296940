"""Recording auth events.  Callers pass facts, never codes, passwords or secrets."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.db import transaction

from twostep.audit.models import AuthEvent, Outcome
from twostep.core import clock, rawsql


@dataclass(frozen=True)
class Origin:
    """Where a request came from: the web pages, the API or the CLI."""

    ip: str | None = None
    user_agent: str = ""

    @classmethod
    def of(cls, request: Any) -> Origin:
        return cls(getattr(request, "client_ip", None), getattr(request, "user_agent", ""))


CLI = Origin(None, "twostep-cli")
#: Work the service does on its own (housekeeping), not for a request.
SYSTEM = Origin(None, "twostep")

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
        # also deletes what has outlived the retention period and retries
        # unsent notifications.  Only once the caller's transaction (e.g. a
        # sign-in's) has committed: not while it holds its locks, and a
        # failure here must not undo it.  In the server it runs beside the
        # request (core.background): a retry may wait on a mail server.
        from twostep.core import background
        from twostep.core.housekeeping import prune

        transaction.on_commit(lambda: background.run(prune))
    event = AuthEvent(
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
    _insert(event)
    from twostep.notifications.services import notify_for_event

    notify_for_event(event)
    return event


@cache
def _insert_statement() -> tuple[list[Any], str]:
    fields = [rawsql.field(AuthEvent, f.name) for f in AuthEvent._meta.concrete_fields if not f.primary_key]
    return fields, rawsql.insert_sql(AuthEvent, fields, returning="id")


def _insert(event: AuthEvent) -> None:
    """Write ``event`` with one hand-written INSERT: every sign-in records two events."""
    fields, sql = _insert_statement()
    row = rawsql.fetchone(sql, rawsql.prepared(event, fields))
    assert row is not None  # noqa: S101 - INSERT ... RETURNING returns the row
    event.pk = row[0]
    event._state.adding = False


__all__ = ["CLI", "Origin", "Outcome", "record"]
