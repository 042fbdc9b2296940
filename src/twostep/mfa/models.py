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
    #: A name the user gave this factor ("Work phone"); empty: the method's own description.
    name = models.CharField(max_length=64, blank=True, default="")

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


class Purpose(models.TextChoices):
    """What a pending second step is for."""

    SIGN_IN = "sign_in", "Sign-in"
    #: A signed-in user proving a factor before changing their second step (``mfa.step_up``).
    STEP_UP = "step_up", "Confirming a security change"


class PendingLogin(models.Model):
    """A sign-in that passed the password and waits for the second step.

    Holds no password.  The browser (or API client) holds the token; only its
    SHA-256 is stored here.  A step-up (``purpose`` ``step_up``) is the same
    wait for a code by a user already signed in; it never completes a sign-in.
    """

    token_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    method = models.CharField(max_length=16, choices=Method.choices)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    failures = models.PositiveSmallIntegerField(default=0)
    completed_at = models.DateTimeField(null=True, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    purpose = models.CharField(max_length=16, choices=Purpose.choices, default=Purpose.SIGN_IN)
    #: A step-up begun through the API names the access token that began it
    #: (``email_check.token_holder``): only that token may answer it.  A sign-in
    #: names the pages or the API (``login.PAGES_HOLDER``, ``login.API_HOLDER``).
    holder = models.CharField(max_length=64, blank=True, default="")

    def __str__(self) -> str:
        return f"pending login of user {self.user_id}"


class EmailCheck(models.Model):
    """A user proving, with a code sent to one of their addresses, that they hold it (see mfa.email_check).

    Asked before a first factor is set up under a 2FA requirement, so that a
    stolen password alone cannot bind the thief's authenticator to the
    account.  ``holder`` names the browser session or access token that asked:
    only it may set up a factor on the strength of this check.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    holder = models.CharField(max_length=64)
    #: The address the code went to.
    destination = models.CharField(max_length=254)
    created_at = models.DateTimeField()
    passed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = (models.Index(fields=("user", "holder")),)

    def __str__(self) -> str:
        return f"email check of user {self.user_id}"


class OneTimeCode(models.Model):
    """A code sent by email or SMS, stored only as a keyed hash.

    It is bound to one pending sign-in, to one enrolment (the unconfirmed
    Authenticator whose destination it proves) or to one email check.  Only the newest
    sent code of a binding is live; it dies after ``expires_at``, after its
    tries are used up, or when used.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    method = models.CharField(max_length=16, choices=Method.choices)
    #: The address or number the code was sent to (kept for send caps and the log).
    destination = models.CharField(max_length=254)
    pending_login = models.ForeignKey(PendingLogin, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    # A code outlives the enrolment or check it was sent for (SET_NULL): it can no
    # longer be used, but it still counts toward the send limits until housekeeping
    # deletes it, so that starting over with another address does not reset them.
    authenticator = models.ForeignKey(Authenticator, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    email_check = models.ForeignKey(EmailCheck, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    #: Set once the message was handed to the mail server or SMS provider.
    sent_at = models.DateTimeField(null=True, blank=True, db_index=True)
    expires_at = models.DateTimeField()
    failures = models.PositiveSmallIntegerField(default=0)
    consumed_at = models.DateTimeField(null=True, blank=True)
    superseded_at = models.DateTimeField(null=True, blank=True)
    #: The client that asked for it (``core.client.address_group``; "" when
    #: none did, e.g. the command line), for the per-address send limit.
    requested_from = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        indexes = (
            models.Index(fields=("user", "sent_at")),
            models.Index(fields=("destination", "sent_at")),
            models.Index(fields=("requested_from", "sent_at")),
        )

    def __str__(self) -> str:
        return f"{self.method} code for user {self.user_id}"


# ---------------------------------------------------------------------------
# Recovery and choice (issue 8): default method, recovery codes, trusted
# browsers, and the grace period of a "2FA required" policy.


class DefaultMethod(models.Model):
    """The method a user wants to be asked for first at sign-in.

    Kept per user and method (not on the Authenticator row) so that it
    survives replacing a factor, e.g. moving the authenticator app to a new
    phone.  Without a row, or when that method is not usable, the factor
    enrolled first is asked for.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="+")
    method = models.CharField(max_length=16, choices=Method.choices)

    def __str__(self) -> str:
        return f"default {self.method} of user {self.user_id}"


class RecoveryCode(models.Model):
    """One single-use recovery code, stored only as a keyed hash (see mfa.recovery_codes.services)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = (models.UniqueConstraint(fields=("user", "code_hash"), name="recovery_code_unique_per_user"),)

    def __str__(self) -> str:
        return f"recovery code of user {self.user_id}"


class TrustedBrowser(models.Model):
    """A browser where the user chose "Trust this browser": it may skip the second step until ``expires_at``.

    The browser holds a random token in a cookie; only its SHA-256 is kept
    here.  ``fingerprint`` pins the user's password and factors as they were
    when trust was given: any change ends the trust.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    token_hash = models.CharField(max_length=64, unique=True)
    fingerprint = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)

    class Meta:
        indexes = (models.Index(fields=("user", "expires_at")),)

    def __str__(self) -> str:
        return f"trusted browser of user {self.user_id}"


class EnrolmentGrace(models.Model):
    """How much of the enrolment grace period a user has used (see mfa.enforcement).

    A row exists once 2FA was required of the user while they had no
    factor; ``sign_ins`` counts their sign-ins without a second step since.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="+")
    first_required_at = models.DateTimeField()
    sign_ins = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"enrolment grace of user {self.user_id}"
