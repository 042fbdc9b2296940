"""API access tokens: sign-in tokens from /api/v1/auth/login and personal tokens users create."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models


class TokenKind(models.TextChoices):
    #: Issued by a sign-in through the API; ends like a browser session
    #: (idle and absolute timeouts).
    SIGN_IN = "sign_in", "Sign-in token"
    #: Created by the user for automation; ends at the expiry they chose.
    PERSONAL = "personal", "Personal token"


class Scope(models.TextChoices):
    READ = "read", "Read your account"
    SECURITY = "security", "Change your security settings"
    ADMIN = "admin", "Administer users and settings"


class AccessToken(models.Model):
    """One bearer token.  Only the SHA-256 of the secret is stored."""

    #: The token's name in URLs and listings; random, so ids cannot be guessed.
    public_id = models.CharField(max_length=16, unique=True)
    token_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    kind = models.CharField(max_length=16, choices=TokenKind.choices)
    name = models.CharField(max_length=100, blank=True)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField()
    #: The absolute end; sign-in tokens also end after the idle timeout.
    expires_at = models.DateTimeField()
    #: Written at the first use, then at most once a minute, so that reads do not become writes.
    #: Equal to ``created_at`` until the first use (the idle timeout counts from it).
    last_used_at = models.DateTimeField()
    #: When the password was last entered for this token (sensitive changes need it recent).
    reauthenticated_at = models.DateTimeField(null=True, blank=True)
    #: When a code of the user's second step was last right for this token (``POST /me/step-up/verify``):
    #: a change to the second step itself needs it recent, as well as the password.
    second_factor_at = models.DateTimeField(null=True, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = (models.Index(fields=("user", "expires_at")),)

    @property
    def last_use(self) -> datetime | None:
        """When the token was last used (within a minute); None before its first use."""
        return None if self.last_used_at == self.created_at else self.last_used_at

    def __str__(self) -> str:
        return f"{self.kind} token {self.public_id} of user {self.user_id}"
