"""Second factors, and sign-ins waiting for one."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Method(models.TextChoices):
    TOTP = "totp", "Authenticator app"
    EMAIL = "email", "Email code"
    SMS = "sms", "SMS code"


class Authenticator(models.Model):
    """One second factor of one user.

    A row with ``confirmed_at`` unset is an enrolment in progress: it is never
    used for sign-in and is discarded after ``pending_until``.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="authenticators")
    method = models.CharField(max_length=16, choices=Method.choices)
    #: Fernet token of the method's secret (the TOTP key); never plaintext.
    secret = models.TextField(blank=True)
    #: Where codes go for email/SMS: an address or E.164 number of the user's.
    destination = models.CharField(max_length=254, blank=True)
    #: TOTP replay guard: the last accepted time step; only later steps pass.
    last_step = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    pending_until = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = (
            models.UniqueConstraint(
                fields=("user", "method"), condition=Q(confirmed_at__isnull=False), name="one_active_factor_per_method"
            ),
            models.UniqueConstraint(
                fields=("user", "method"), condition=Q(confirmed_at__isnull=True), name="one_pending_factor_per_method"
            ),
        )

    def __str__(self) -> str:
        return f"{self.method} of user {self.user_id}"

    @property
    def is_confirmed(self) -> bool:
        return self.confirmed_at is not None


class PendingLogin(models.Model):
    """A sign-in that passed the password and waits for the second step.

    Holds no password.  The browser (or API client) holds the token; only its
    SHA-256 is stored here.
    """

    token_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    method = models.CharField(max_length=16, choices=Method.choices)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    failures = models.PositiveSmallIntegerField(default=0)
    completed_at = models.DateTimeField(null=True, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    def __str__(self) -> str:
        return f"pending login of user {self.user_id}"


class OneTimeCode(models.Model):
    """A code sent by email or SMS, stored only as a keyed hash.

    It is bound either to one pending sign-in or to one enrolment (the
    unconfirmed Authenticator whose destination it proves).  Only the newest
    sent code of a binding is live; it dies after ``expires_at``, after its
    tries are used up, or when used.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    method = models.CharField(max_length=16, choices=Method.choices)
    #: The address or number the code was sent to (kept for send caps and the log).
    destination = models.CharField(max_length=254)
    pending_login = models.ForeignKey(PendingLogin, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    authenticator = models.ForeignKey(Authenticator, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    #: Set once the message was handed to the mail server or SMS provider.
    sent_at = models.DateTimeField(null=True, blank=True, db_index=True)
    expires_at = models.DateTimeField()
    failures = models.PositiveSmallIntegerField(default=0)
    consumed_at = models.DateTimeField(null=True, blank=True)
    superseded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = (
            models.Index(fields=("user", "sent_at")),
            models.Index(fields=("destination", "sent_at")),
        )

    def __str__(self) -> str:
        return f"{self.method} code for user {self.user_id}"
