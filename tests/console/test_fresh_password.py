"""Changes in the console need the administrator's password entered within the last minutes (AZ-07)."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import PASSWORD, sign_in
from twostep.accounts.models import User
from twostep.core import clock

pytestmark = pytest.mark.django_db

REAUTHENTICATE = "/account/reauthenticate"


@pytest.fixture
def stale_admin(client: Client, admin: User, frozen_clock: clock.FrozenClock) -> Client:
    """An administrator signed in six minutes ago, the session still alive."""
    assert sign_in(client, admin.username).status_code == 302
    frozen_clock.advance(6 * 60)
    return client


@pytest.mark.parametrize(
    "path",
    [
        "/admin/users/new",
        "/admin/users/alice",
        "/admin/users/alice/password",
        "/admin/users/alice/reset-2fa",
        "/admin/users/alice/unlock",
        "/admin/users/alice/delete",
        "/admin/users/alice/emails",
        "/admin/users/alice/phones",
        "/admin/users/alice/trusted-browsers",
        "/admin/authentication",
        "/admin/two-factor",
        "/admin/email",
        "/admin/sms",
    ],
)
def test_every_change_asks_for_the_password_again(stale_admin: Client, user: User, path: str) -> None:
    response = stale_admin.post(
        path, {"password": "a brand new long one"}, HTTP_REFERER="http://testserver/admin/users/alice"
    )
    assert response.status_code == 302
    assert response["Location"] == f"{REAUTHENTICATE}?next=%2Fadmin%2Fusers%2Falice"


def test_after_the_password_the_change_goes_through(stale_admin: Client, user: User) -> None:
    """A stale session changes nothing; the password brings the admin back to the page, where the change works."""
    page = "/admin/users/alice"
    refused = stale_admin.post(f"{page}/password", {"password": "a brand new long one"}, HTTP_REFERER=page)
    assert refused["Location"].startswith(REAUTHENTICATE)
    assert User.objects.get(pk=user.pk).check_password(PASSWORD)
    back = stale_admin.post(REAUTHENTICATE, {"password": PASSWORD, "next": page})
    assert back["Location"] == page
    done = stale_admin.post(f"{page}/password", {"password": "a brand new long one"}, HTTP_REFERER=page)
    assert done["Location"] == page
    assert User.objects.get(pk=user.pk).check_password("a brand new long one")


def test_reading_the_console_needs_no_new_password(stale_admin: Client, user: User) -> None:
    assert stale_admin.get("/admin/users/alice").status_code == 200
    assert stale_admin.get("/admin/audit").status_code == 200


def test_a_foreign_referer_is_not_followed(stale_admin: Client, user: User) -> None:
    response = stale_admin.post("/admin/users/alice/unlock", HTTP_REFERER="https://evil.example/admin/x")
    assert response["Location"] == f"{REAUTHENTICATE}?next=%2Fadmin%2Fusers"


def test_console_offers_the_password_prompt_before_a_form_is_filled(client: Client, admin: User) -> None:
    """A stale password: every console page says so up front and links to the prompt, which leads back."""
    sign_in(client, admin.username)
    assert "Enter it now" not in client.get("/admin/users").content.decode()
    session = client.session
    session["twostep_reauth_at"] = clock.timestamp() - 301
    session.save()
    page = client.get("/admin/email").content.decode()
    assert 'href="/account/reauthenticate?next=/admin/email"' in page
