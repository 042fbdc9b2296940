"""An administrator acting on their own account in the console."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from tests.conftest import sign_in
from tests.mfa.recovery_codes.helpers import enrol_totp
from twostep.accounts.models import Role, User
from twostep.mfa.models import Authenticator

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client: Client, admin: User, make_user: Callable[..., User]) -> Client:
    make_user("second-admin", role=Role.ADMIN)
    assert sign_in(client, admin.username).status_code == 302
    return client


def test_resetting_ones_own_password_ends_on_the_sign_in_page(admin_client: Client, admin: User) -> None:
    """The reset ends this session too: the answer is the sign-in page with the message, not an error."""
    response = admin_client.post(f"/admin/users/{admin.username}/password", {"password": "a brand new long one"})
    assert response.status_code == 302 and response["Location"] == "/login"
    page = admin_client.get("/login").content.decode()
    assert f"Password of {admin.username} reset" in page and "ended your own session too" in page
    assert admin_client.get("/admin/users").status_code == 302
    assert sign_in(Client(), admin.username, "a brand new long one")["Location"] != "/login"


def test_resetting_ones_own_second_factor_ends_on_the_sign_in_page(
    client: Client, admin: User, make_user: Callable[..., User]
) -> None:
    make_user("second-admin", role=Role.ADMIN)
    enrol_totp(admin)  # two-step sign-in is off in this test: the password alone signs in
    assert sign_in(client, admin.username)["Location"] == "/account"
    admin_client = client
    response = admin_client.post(f"/admin/users/{admin.username}/reset-2fa", {"confirm": "yes"})
    assert response.status_code == 302 and response["Location"] == "/login"
    assert "ended your own session too" in admin_client.get("/login").content.decode()
    assert not Authenticator.objects.filter(user=admin).exists()


def test_an_admin_cannot_deactivate_themselves(admin_client: Client, admin: User) -> None:
    """Refused with the reason; another administrator can do it."""
    response = admin_client.post(
        f"/admin/users/{admin.username}", {"display_name": "", "role": Role.ADMIN, "is_active": ""}
    )
    assert response.status_code == 200
    assert "You cannot deactivate your own account" in response.content.decode()
    assert User.objects.get(pk=admin.pk).is_active


def test_an_admin_cannot_change_their_own_role_or_delete_themselves(admin_client: Client, admin: User) -> None:
    """Refused with the reason, as deactivating is (another administrator can); the page offers no deletion."""
    page = admin_client.get(f"/admin/users/{admin.username}").content.decode()
    assert "This is your own account: another administrator can delete it" in page
    assert f'action="/admin/users/{admin.username}/delete"' not in page
    demoted = admin_client.post(
        f"/admin/users/{admin.username}",
        {
            "display_name": "",
            "role": Role.USER,
            "is_active": "on",
            "initial-role": Role.ADMIN,
            "initial-is_active": "on",
        },
    )
    assert "You cannot change your own role" in demoted.content.decode()
    deleted = admin_client.post(f"/admin/users/{admin.username}/delete", {"confirm": admin.username}, follow=True)
    assert "You cannot delete your own account" in deleted.content.decode()
    admin.refresh_from_db()
    assert admin.is_admin and admin.is_active


def test_other_users_are_unaffected(admin_client: Client, user: User) -> None:
    """Resetting someone else's password keeps the admin on the user's page."""
    response = admin_client.post(f"/admin/users/{user.username}/password", {"password": "a brand new long one"})
    assert response["Location"] == f"/admin/users/{user.username}"
    assert "Password of alice reset" in admin_client.get(response["Location"]).content.decode()


def test_an_administrator_is_not_told_to_ask_an_administrator(
    admin_client: Client, admin: User, make_user: Callable[..., User]
) -> None:
    """Where a user reads "an administrator can add one", an administrator gets the way to do it."""
    page = admin_client.get("/account").content.decode()
    assert f'href="/admin/users/{admin.username}"' in page and "An administrator can add one" not in page
    plain = Client()
    sign_in(plain, make_user("plain").username)
    assert "An administrator can add one" in plain.get("/account").content.decode()
