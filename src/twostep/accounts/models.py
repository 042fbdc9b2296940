"""Users, and the email addresses and phone numbers an admin gives them."""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models
from django.db.models import Q


class Role(models.TextChoices):
    USER = "user", "User"
    ADMIN = "admin", "Administrator"


class UserManager(BaseUserManager["User"]):
    def get_by_natural_key(self, username: str | None) -> User:
        return self.get(username=(username or "").lower())


class User(AbstractBaseUser):
    username = models.CharField(max_length=64, unique=True)
    display_name = models.CharField(max_length=150, blank=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.USER)
    is_active = models.BooleanField(default=True)
    #: Set for passwords an admin chose (or `twostep init` printed): the user
    #: must pick their own at the next sign-in.
    must_change_password = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    # Second-step failures, counted across every method (see mfa.throttle).
    second_step_failures = models.PositiveIntegerField(default=0)
    second_step_blocked_until = models.DateTimeField(null=True, blank=True)
    second_step_locked_at = models.DateTimeField(null=True, blank=True)

    USERNAME_FIELD = "username"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    objects = UserManager()

    class Meta:
        ordering = ("username",)

    def __str__(self) -> str:
        return self.username

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def name(self) -> str:
        return self.display_name or self.username

    def primary_email(self) -> str | None:
        address = self.email_addresses.filter(is_primary=True).first()
        return address.email if address else None

    # Django's auth machinery asks these of every user model.
    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return self.is_active and self.is_admin

    def has_module_perms(self, app_label: str) -> bool:
        return self.is_active and self.is_admin


class EmailAddress(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="email_addresses")
    email = models.EmailField(max_length=254)
    is_primary = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-is_primary", "email")
        constraints = (
            models.UniqueConstraint(fields=("user", "email"), name="email_unique_per_user"),
            models.UniqueConstraint(fields=("user",), condition=Q(is_primary=True), name="one_primary_email"),
        )

    def __str__(self) -> str:
        return self.email


class PhoneNumber(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="phone_numbers")
    #: E.164, e.g. +15551234567.
    number = models.CharField(max_length=20)
    is_primary = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-is_primary", "number")
        constraints = (
            models.UniqueConstraint(fields=("user", "number"), name="phone_unique_per_user"),
            models.UniqueConstraint(fields=("user",), condition=Q(is_primary=True), name="one_primary_phone"),
        )

    def __str__(self) -> str:
        return self.number


class SignInThrottle(models.Model):
    """Password-step failures for one key: ``user:<keyed hash of the typed name>``, ``device:<id>`` or ``ip:<address>``.

    Keys use the username as typed (lower-cased, then hashed), so unknown
    usernames are throttled exactly like real ones, the throttle reveals
    nothing, and a password typed as a username is not stored.
    """

    key = models.CharField(max_length=200, unique=True)
    failures = models.PositiveIntegerField(default=0)
    window_started_at = models.DateTimeField()
    blocked_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.key
