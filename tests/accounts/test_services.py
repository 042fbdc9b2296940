"""User administration services (shared by console, API and CLI)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from functools import partial

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client

from tests.authenticator_app import a_wrong_code
from tests.concurrency import at_once
from tests.conftest import sign_in
from tests.mfa.races import code_check
from tests.mfa.recovery_codes.helpers import enrol_totp, next_code
from twostep.accounts import services
from twostep.accounts.models import Role, User
from twostep.audit.models import AuthEvent
from twostep.audit.services import CLI
from twostep.core import clock
from twostep.mfa import login as second_step
from twostep.mfa.models import Authenticator
from twostep.usersessions.models import UserSession

pytestmark = pytest.mark.django_db


def test_create_user_with_addresses_and_phones(make_user: Callable[..., User]) -> None:
    """Several addresses and numbers are stored normalised; the first of each is primary."""
    user = make_user("Bob", emails=["Bob@Example.COM", "bob@work.example"], phones=["+44 7911 123456", "+15551234567"])
    assert user.username == "bob"
    assert [(e.email, e.is_primary) for e in user.email_addresses.order_by("created_at", "pk")] == [
        ("Bob@example.com", True),
        ("bob@work.example", False),
    ]
    assert [(p.number, p.is_primary) for p in user.phone_numbers.order_by("created_at", "pk")] == [
        ("+447911123456", True),
        ("+15551234567", False),
    ]
    assert AuthEvent.objects.filter(kind="user.created", user=user).exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"phones": ["5551234567"]}, "international form"),
        ({"phones": ["+15551234567 ext 5"]}, "has an extension"),
        ({"phones": ["+1555"]}, "not a valid phone number"),
        ({"emails": ["not-an-address"]}, "valid email"),
        ({"emails": ["x" * 250 + "@e.com"]}, "at most 254 characters"),
        ({"display_name": "D" * 151}, "at most 150 characters"),
        ({"role": "root"}, "Unknown role"),
    ],
)
def test_invalid_input_rejected_and_nothing_saved(kwargs: dict[str, object], message: str) -> None:
    """Bad input raises a readable error and creates no user (FUZZ-09)."""
    with pytest.raises(ValidationError, match=message):
        services.create_user("carol", password="a long enough pass", origin=CLI, **kwargs)  # type: ignore[arg-type]
    assert not User.objects.filter(username="carol").exists()


def test_duplicate_username_case_insensitive(make_user: Callable[..., User]) -> None:
    """Usernames are unique regardless of case."""
    make_user("dave")
    with pytest.raises(ValidationError, match="taken"):
        make_user("DAVE")


def test_a_username_the_console_uses_as_an_address_is_refused(client: Client, admin: User) -> None:
    """ "new" (any case) cannot be a username: /admin/users/new is the page that creates users, so such a user
    could never be opened, edited or deleted in the console.  Refused by the service (so by the API and the CLI)
    and on the console page."""
    with pytest.raises(ValidationError, match="cannot be a username"):
        services.create_user("New", password="a long enough pass", origin=CLI)
    sign_in(client, admin.username)
    page = client.post(
        "/admin/users/new", {"username": "new", "role": Role.USER, "password": "a long enough pass"}
    ).content.decode()
    assert "cannot be a username" in page
    assert not User.objects.filter(username="new").exists()


def test_weak_or_huge_password_rejected() -> None:
    """Password rules apply: too short, too common, or over 1024 characters."""
    for password in ("short", "password123", "x" * 1025):
        with pytest.raises(ValidationError):
            services.create_user("erin", password=password, origin=CLI)


def test_password_is_argon2id_hashed(make_user: Callable[..., User]) -> None:
    """The stored password is an argon2id hash, never the password."""
    user = make_user("frank", password="a long enough pass")
    with connection.cursor() as cursor:
        cursor.execute("SELECT password FROM accounts_user WHERE id = %s", [user.pk])
        (stored,) = cursor.fetchone()
    assert stored.startswith("argon2$argon2id$")
    assert "a long enough pass" not in stored


def test_primary_moves_when_primary_removed(user: User) -> None:
    """Removing the primary address promotes the oldest remaining one."""
    primary = user.email_addresses.get(is_primary=True)
    services.remove_email(user, primary.pk, origin=CLI)
    assert list(user.email_addresses.values_list("email", "is_primary")) == [("alice.backup@example.org", True)]


def test_cannot_touch_another_users_address(user: User, make_user: Callable[..., User]) -> None:
    """An address id of another user is refused (no IDOR through the services)."""
    other = make_user("mallory", emails=["m@example.com"])
    foreign = other.email_addresses.get()
    with pytest.raises(ValidationError, match="not on this account"):
        services.remove_email(user, foreign.pk, origin=CLI)
    assert other.email_addresses.exists()


def assert_cannot_be_removed(admin: User) -> None:
    """``admin`` can be neither demoted, deactivated nor deleted, as the last active administrator."""
    for remove in (
        lambda: services.update_user(admin, role=Role.USER, origin=CLI),
        lambda: services.set_active(admin, False, origin=CLI),
        lambda: services.delete_user(admin, origin=CLI),
    ):
        with pytest.raises(ValidationError, match="last active administrator"):
            remove()


def test_last_admin_is_protected(admin: User) -> None:
    """The last active administrator cannot be demoted, deactivated or deleted."""
    assert_cannot_be_removed(admin)


def test_an_inactive_administrator_does_not_count_as_another_one(admin: User, make_user: Callable[..., User]) -> None:
    """A deactivated administrator cannot sign in, so they do not let the last active one be demoted, deactivated or deleted."""
    dormant = make_user("dormant", role=Role.ADMIN)
    services.set_active(dormant, False, origin=CLI)
    assert_cannot_be_removed(admin)
    assert User.objects.filter(role=Role.ADMIN, is_active=True).get() == admin


def test_deactivation_and_password_reset_end_sessions(client: Client, user: User) -> None:
    """Deactivating a user or resetting their password deletes their sessions server-side (SES-06)."""
    sign_in(client, user.username)
    assert UserSession.objects.filter(user=user).count() == 1
    services.set_password(user, "another long password", origin=CLI, must_change=True)
    assert UserSession.objects.filter(user=user).count() == 0
    assert client.get("/account").status_code == 302

    sign_in(client, user.username, "another long password")
    services.set_active(user, False, origin=CLI)
    assert UserSession.objects.filter(user=user).count() == 0
    assert client.get("/account").status_code == 302


def test_deleting_user_ends_sessions(client: Client, user: User, admin: User) -> None:
    """A deleted user's session stops working at once."""
    sign_in(client, user.username)
    services.delete_user(user, origin=CLI, actor=admin)
    assert not UserSession.objects.filter(user_id=user.pk).exists()
    assert client.get("/account").status_code == 302


def test_new_role_ends_the_users_sessions(user: User, admin: User) -> None:
    """A promotion (or demotion) is a change of privilege: the user signs in again, with a new session."""
    browser = Client()
    sign_in(browser, user.username)
    assert browser.get("/account").status_code == 200
    services.update_user(user, display_name="Alice A.", origin=CLI, actor=admin)
    assert browser.get("/account").status_code == 200  # a new name changes no privilege
    services.update_user(user, role=Role.ADMIN, origin=CLI, actor=admin)
    assert browser.get("/admin/users").status_code == 302
    assert not UserSession.objects.filter(user=user).exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("emails", "alice@example.com\r\nBcc: everyone@example.org"),
        ("emails", "alice@example.com\nBcc: everyone@example.org"),
        ("emails", "alice@example.com>, <everyone@example.org"),
        ("emails", "alice@example.com\x00"),
        ("phones", "+44 20 7946 0958; +1 555 123 4567"),
        ("phones", "tel:+15551234567"),
    ],
)
def test_header_injection_and_junk_in_contacts_are_refused(field: str, value: str) -> None:
    """Line breaks, a second address, NUL or letters in an address or number are refused before anything is stored (FUZZ-09)."""
    with pytest.raises(ValidationError):
        services.create_user("carol", password="a long enough pass", origin=CLI, **{field: [value]})  # type: ignore[arg-type]
    assert not User.objects.filter(username="carol").exists()


def test_a_number_is_stored_only_in_its_normal_form(make_user: Callable[..., User]) -> None:
    """Spaces and a trailing line break around a number are dropped: only +digits are stored (FUZZ-09)."""
    user = make_user("carol", phones=["+1 555 123 4567\r\n"])
    assert list(user.phone_numbers.values_list("number", flat=True)) == ["+15551234567"]


def test_premium_rate_numbers_are_refused_where_codes_would_be_texted(make_user: Callable[..., User]) -> None:
    """No premium-rate number reaches an account or the test message: texts to one cost money (FUZZ-09)."""
    from twostep.sms import service as sms

    premium = "+19005551234"  # a US 900 number
    with pytest.raises(ValidationError, match="premium-rate"):
        make_user("caller", phones=[premium])
    user = make_user("texter", phones=["+15551234567"])
    with pytest.raises(ValidationError, match="premium-rate"):
        services.add_phone(user, premium, origin=CLI)
    with pytest.raises(ValueError, match="premium-rate"):
        sms.send_test(premium, origin=CLI)
    assert list(user.phone_numbers.values_list("number", flat=True)) == ["+15551234567"]


def demote_together(names: list[str]) -> list[str]:
    """Demote each named administrator at the same moment; ``demoted`` or ``refused`` for each."""

    def demote(name: str) -> str:
        try:
            services.update_user(User.objects.get(username=name), role=Role.USER, origin=CLI)
        except ValidationError:
            return "refused"
        return "demoted"

    return at_once([partial(demote, name) for name in names])


@pytest.mark.django_db(transaction=True)
def test_two_administrators_removing_each_other_at_once_leave_one(make_user: Callable[..., User]) -> None:
    """Demoting each other at the same moment, one of two administrators wins and one stays: the check
    and the change happen under a lock on the administrators' rows (real PostgreSQL in its run)."""
    make_user("ann", role=Role.ADMIN)
    make_user("bob", role=Role.ADMIN)
    for _ in range(5):  # a race that slips through shows within a few rounds
        User.objects.filter(username__in=["ann", "bob"]).update(role=Role.ADMIN)
        assert sorted(demote_together(["ann", "bob"])) == ["demoted", "refused"]
        assert User.objects.filter(role=Role.ADMIN, is_active=True).count() == 1


@pytest.mark.django_db(transaction=True)
def test_deleting_a_user_while_a_code_of_theirs_is_checked_does_not_deadlock(
    make_user: Callable[..., User], two_factor_on: None
) -> None:
    """An administrator deletes a user at the moment a code of theirs is checked.

    The deletion must lock the account's row before ending the pending
    sign-ins, as the code's check does: on PostgreSQL, a deletion that ended
    them first and deleted the account's row last deadlocked with a check
    holding the account's row and counting the wrong code against the
    sign-in, and one of the two failed.
    """
    for round_ in range(25):
        user = make_user(f"doomed{round_}")
        key = enrol_totp(user)
        factor = Authenticator.objects.get(user=user, method="totp")
        pending, _ = second_step.start(user, factor, CLI)

        def delete(user: User = user) -> str:
            services.delete_user(user, origin=CLI)
            return "deleted"

        assert sorted(at_once([code_check(pending, a_wrong_code(key)), delete])) == ["deleted", "refused"]
        assert not User.objects.filter(pk=user.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_signing_out_waits_for_a_sign_in_being_completed(user: User, two_factor_on: None) -> None:
    """`twostep users sign-out` at the moment a sign-in's code is accepted: that sign-in's session must end too.

    The sign-out takes the account's row as the code's check does, so it waits for the check's transaction
    (here held open while the sign-in's session is written) and then ends that session with the others.
    Without the lock, on PostgreSQL, it ended the sessions it could see and the new one outlived it.
    """
    key = enrol_totp(user)
    pending, _ = second_step.start(user, Authenticator.objects.get(user=user, method="totp"), CLI)
    writing, go_on = threading.Event(), threading.Event()

    def open_session(signed_in: User) -> str:
        UserSession.objects.create(
            session_key="k" * 40, session_data="", expire_date=clock.now() + timedelta(hours=1),
            user=signed_in, created_at=clock.now(),
        )  # fmt: skip
        writing.set()
        go_on.wait(5)
        return "signed in"

    def complete() -> str:
        return second_step.verify(pending, next_code(key), CLI, then=open_session)

    def sign_out() -> str:
        writing.wait(5)
        threading.Timer(0.5, go_on.set).start()  # the sign-in commits half a second later
        services.sign_out(user, origin=CLI)
        return "signed out"

    assert sorted(at_once([complete, sign_out])) == ["signed in", "signed out"]
    assert not UserSession.objects.filter(user=user).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("contact", ["email", "phone"])
def test_a_double_submitted_address_or_number_is_added_once(make_user: Callable[..., User], contact: str) -> None:
    """The same address (or number) added twice at the same moment, as a double click on "Add" sends it.

    One request adds it and the other is told it is already there, however
    the two meet: on PostgreSQL both saw it missing and the second insert
    broke the one-per-account rule, a server error.  The same for a first
    address added twice: both would have been primary.
    """
    add = services.add_email if contact == "email" else services.add_phone
    values = ("bob@example.com", "bob.other@example.com") if contact == "email" else ("+15551230001", "+15551230002")

    def adding(user: User, value: str) -> Callable[[], str]:
        def run() -> str:
            try:
                add(user, value, origin=CLI)
            except ValidationError as exc:
                assert exc.code == f"duplicate_{contact}"
                return "already there"
            return "added"

        return run

    for round_ in range(15):
        user = make_user(f"bob{round_}", emails=[], phones=[])
        assert sorted(at_once([adding(user, values[0]), adding(user, values[0])])) == ["added", "already there"]
        contacts = user.email_addresses if contact == "email" else user.phone_numbers
        assert [c.is_primary for c in contacts.all()] == [True]
        contacts.all().delete()
        assert sorted(at_once([adding(user, values[0]), adding(user, values[1])])) == ["added", "added"]
        assert sorted(c.is_primary for c in contacts.all()) == [False, True]


@pytest.mark.django_db(transaction=True)
def test_two_addresses_made_primary_at_once_leave_one_primary(make_user: Callable[..., User]) -> None:
    """Two administrators each make a different address primary at the same moment: one wins, no error."""
    user = make_user("bob", emails=["a@example.com", "b@example.com", "c@example.com"])
    ids = list(user.email_addresses.order_by("pk").values_list("pk", flat=True))
    for round_ in range(15):
        first, second = ids[1 + round_ % 2], ids[2 - round_ % 2]

        def make_primary(address: int) -> Callable[[], str]:
            def run() -> str:
                services.make_primary_email(user, address, origin=CLI)
                return "done"

            return run

        assert at_once([make_primary(first), make_primary(second)]) == ["done", "done"]
        assert user.email_addresses.filter(is_primary=True).count() == 1
        services.make_primary_email(user, ids[0], origin=CLI)


def test_an_administrators_edit_does_not_undo_what_changed_since_the_user_was_read(user: User, admin: User) -> None:
    """The console reads the user, the user changes their password meanwhile, the administrator renames them.

    The rename writes the name alone: writing back every column of the
    earlier read would restore the old password (and undo a forced change).
    """
    seen_by_the_console = User.objects.get(pk=user.pk)
    services.set_password(user, "a brand new passphrase 42", origin=CLI, must_change=True)
    services.update_user(seen_by_the_console, display_name="Alice Liddell", origin=CLI, actor=admin)
    stored = User.objects.get(pk=user.pk)
    assert stored.display_name == "Alice Liddell"
    assert stored.check_password("a brand new passphrase 42") and stored.must_change_password
