"""Session engine: Django's database sessions, in a table with user, IP, agent and last-seen."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from django.contrib.sessions.backends.db import SessionStore as DBStore

from twostep.core import clock

if TYPE_CHECKING:
    from twostep.usersessions.models import UserSession

#: Session keys that twostep itself keeps (Django's are _auth_user_*).
LAST_SEEN_KEY = "twostep_last_seen"
STARTED_KEY = "twostep_started"


class SessionStore(DBStore):
    #: Set by SessionLifetimeMiddleware before the session is saved.
    client_ip: str | None = None
    user_agent: str = ""

    @classmethod
    def get_model_class(cls) -> Any:
        from twostep.usersessions.models import UserSession

        return UserSession

    def create_model_instance(self, data: dict[str, Any]) -> Any:
        instance = cast("UserSession", super().create_model_instance(data))
        user_id = data.get("_auth_user_id")
        instance.user_id = int(user_id) if user_id is not None else None
        instance.ip = self.client_ip
        instance.user_agent = self.user_agent
        # Django rewrites every column on each save, so both times are kept
        # in the session data and copied here.
        now = clock.timestamp()
        instance.created_at = _datetime(data.get(STARTED_KEY, now))
        instance.last_seen = _datetime(data.get(LAST_SEEN_KEY, now))
        return instance


def _datetime(stamp: float) -> datetime:
    return datetime.fromtimestamp(stamp, tz=UTC)
