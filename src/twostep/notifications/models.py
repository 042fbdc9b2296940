"""The outbox of security notifications: written with the change, delivered after it."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Notification(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    #: The auth-log kind that caused it, e.g. "totp.enabled".
    kind = models.CharField(max_length=50)
    #: What the message says: time, IP, browser, and the change (never a secret).
    context = models.JSONField(default=dict)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    #: Set while a worker sends it: the others leave it alone until then (a
    #: worker that stopped mid-send frees it when the time passes).
    claimed_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = (models.Index(fields=("sent_at", "created_at")),)

    def __str__(self) -> str:
        return f"{self.kind} for user {self.user_id}"
