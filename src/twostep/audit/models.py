"""The auth log: every sign-in attempt, second-step result and security change."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Outcome(models.TextChoices):
    SUCCESS = "success", "Success"
    FAILURE = "failure", "Failure"
    INFO = "info", "Info"


class AuthEvent(models.Model):
    created_at = models.DateTimeField(db_index=True)
    #: What happened, e.g. "login.password", "login.second_step", "totp.enabled".
    kind = models.CharField(max_length=50)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    #: Why it failed (credentials, wrong_code, reused_code, locked, ...), or "".
    reason = models.CharField(max_length=50, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    #: The username as typed when it names an account; for a sign-in at a name that is no account, a
    #: label that does not tell the name (a password typed in the wrong field, typically:
    #: ``accounts.signin.logged_username``).
    username = models.CharField(max_length=150, blank=True)
    #: The admin who acted on ``user``, for admin actions.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    method = models.CharField(max_length=20, blank=True)
    #: Extra facts that are never secrets (e.g. an SMTP error text).
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = (
            models.Index(fields=("user", "created_at")),
            # What the break-glass switch did, for every instance's console
            # (mfa.policy.recent_break_glass): few rows, so a partial index.
            models.Index(
                fields=("created_at",), condition=models.Q(reason="forced_off_by_config"), name="audit_break_glass"
            ),
        )

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.kind} {self.outcome} {self.username}"
