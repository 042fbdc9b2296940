"""Server-side sessions that know whose they are, from where, and since when."""

from __future__ import annotations

from django.conf import settings
from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import models


class UserSession(AbstractBaseSession):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="sessions"
    )
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    #: When the session signed in (or was created, for anonymous sessions).
    created_at = models.DateTimeField()
    last_seen = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = (models.Index(fields=("user", "expire_date")),)

    @classmethod
    def get_session_store_class(cls) -> type:
        from twostep.usersessions.backend import SessionStore

        return SessionStore
