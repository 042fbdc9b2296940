"""`twostep users add-email|remove-email|add-phone|remove-phone|unlock`: contacts and locks from the shell."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from twostep.accounts.models import User
from twostep.audit.models import AuthEvent
from twostep.core import clock
from twostep.mfa.models import Authenticator, Method

pytestmark = pytest.mark.django_db


def users(*args: str) -> str:
    out = StringIO()
    call_command("users", *args, stdout=out)
    return out.getvalue()


def test_an_admin_created_by_init_can_be_given_an_address(admin: User) -> None:
    """The first administrator has no address; the shell gives one (for the email check before enrolling)."""
    admin.email_addresses.all().delete()
    # The domain is lower-cased; the local part is the owner's.
    assert "Root@example.org added to root as primary." in users("add-email", "root", "Root@Example.org")
    assert list(admin.email_addresses.values_list("email", "is_primary")) == [("Root@example.org", True)]
    assert users("add-email", "root", "second@example.org") == "second@example.org added to root.\n"
    assert users("add-email", "root", "third@example.org", "--primary").startswith(
        "third@example.org added to root as primary"
    )
    assert admin.email_addresses.get(is_primary=True).email == "third@example.org"
    assert AuthEvent.objects.filter(kind="email.added", user=admin).count() == 3


def test_bad_or_duplicate_contacts_are_refused_with_the_reason(user: User) -> None:
    with pytest.raises(CommandError, match="already on this account"):
        users("add-email", user.username, "alice@example.com")
    with pytest.raises(CommandError, match="not an address of alice"):
        users("remove-email", user.username, "nobody@example.com")
    with pytest.raises(CommandError):
        users("add-phone", user.username, "12345")
    with pytest.raises(CommandError, match="no user named"):
        users("add-email", "nobody", "x@example.com")


def test_removing_the_address_codes_go_to_says_so(user: User) -> None:
    address = user.email_addresses.get(is_primary=False)
    Authenticator.objects.create(
        user=user, method=Method.EMAIL, destination=address.email, confirmed_at=user.created_at
    )
    said = users("remove-email", user.username, address.email.upper())
    assert f"{address.email} removed from alice." in said and "email codes went there" in said
    assert not user.email_addresses.filter(pk=address.pk).exists()
    assert AuthEvent.objects.filter(kind="email.removed", user=user).exists()


def test_phones_are_added_and_removed_by_their_number(user: User) -> None:
    assert "+15557654321 added to alice." in users("add-phone", user.username, "+1 555 765 4321")
    assert users("remove-phone", user.username, "+1 (555) 765-4321") == "+15557654321 removed from alice.\n"
    assert not user.phone_numbers.filter(number="+15557654321").exists()


def test_unlocking_an_account_that_is_not_locked_says_so(user: User) -> None:
    assert "was not locked; nothing changed" in users("unlock", user.username)
    assert not AuthEvent.objects.filter(kind="second_step.unlocked").exists()
    User.objects.filter(pk=user.pk).update(second_step_failures=3)
    assert "unlocked" in users("unlock", user.username)
    assert AuthEvent.objects.filter(kind="second_step.unlocked").exists()


def test_reset_2fa_counts_factors_in_words(user: User) -> None:
    """One factor is "1 factor", two are "2 factors"; never "factor(s)"."""
    Authenticator.objects.create(user=user, method=Method.TOTP, confirmed_at=clock.now())
    assert "alice reset: 1 factor removed, sessions ended." in users("reset-2fa", user.username)
    Authenticator.objects.create(user=user, method=Method.TOTP, confirmed_at=clock.now())
    Authenticator.objects.create(
        user=user, method=Method.EMAIL, destination="alice@example.com", confirmed_at=clock.now()
    )
    assert "alice reset: 2 factors removed, sessions ended." in users("reset-2fa", user.username)
