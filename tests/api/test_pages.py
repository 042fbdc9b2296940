"""The /account/tokens page: personal tokens created (after a recent password) and revoked by their owner."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.api.conftest import Api
from tests.conftest import PASSWORD, asked_for_password, focused_field, sign_in
from twostep.accounts.models import Role, User
from twostep.api.models import AccessToken
from twostep.core import clock

pytestmark = pytest.mark.django_db

SECRET = re.compile(r'value="(tsp_[A-Za-z0-9_-]+)"')


def test_page_needs_sign_in(client: Client, db: None) -> None:
    """Anonymous visitors are sent to the sign-in page."""
    response = client.get("/account/tokens")
    assert response.status_code == 302 and response["Location"].startswith("/login")


def test_create_shows_the_secret_once_and_it_works(signed_in_client: Client, user: User) -> None:
    """Creating a token shows its secret in that response only; the token then works on the API."""
    response = signed_in_client.post("/account/tokens", {"name": "backup", "scopes": ["read"], "days": "30"})
    assert response.status_code == 200
    match = SECRET.search(response.content.decode())
    assert match is not None
    secret = match.group(1)
    assert Api(Client()).get("/me", token=secret).json()["username"] == "alice"
    assert (
        'data-copy-target="new-token"' in response.content.decode() and "twostep/copy.js" in response.content.decode()
    )
    assert '<label for="id_name">Name</label>' in response.content.decode()
    listing = signed_in_client.get("/account/tokens").content.decode()
    assert "backup" in listing and secret not in listing
    assert "<td>never</td>" not in listing, "it was used on the API just above"
    signed_in_client.post("/account/tokens", {"name": "spare", "scopes": ["read"], "days": "30"})
    assert "<td>never</td>" in signed_in_client.get("/account/tokens").content.decode(), "spare: not used yet"
    token = AccessToken.objects.get(user=user, kind="personal", name="backup")
    assert token.scopes == ["read"] and token.name == "backup"


def test_creation_needs_a_recent_password(
    signed_in_client: Client, user: User, frozen_clock: clock.FrozenClock
) -> None:
    """Five minutes after sign-in, creating a token asks for the password again first."""
    frozen_clock.advance(301)
    response = signed_in_client.post("/account/tokens", {"name": "late", "scopes": ["read"], "days": "7"})
    assert asked_for_password(response)
    assert not AccessToken.objects.filter(user=user).exists()
    response = signed_in_client.post(
        "/account/tokens", {"name": "late", "scopes": ["read"], "days": "7", "reauth-password": PASSWORD}
    )
    assert SECRET.search(response.content.decode())


def test_users_are_not_offered_the_admin_scope(signed_in_client: Client, user: User) -> None:
    """A regular user's form has no admin scope, and posting it anyway creates nothing."""
    page = signed_in_client.get("/account/tokens").content.decode()
    assert 'value="admin"' not in page and 'value="security"' in page
    response = signed_in_client.post("/account/tokens", {"name": "sneaky", "scopes": ["admin"], "days": "7"})
    assert response.status_code == 200 and not SECRET.search(response.content.decode())
    assert not AccessToken.objects.filter(user=user).exists()
    # The refused field takes the focus, so that its error is read with it.
    assert focused_field(response.content.decode()) == "id_scopes_0"


def test_a_refused_form_focuses_its_first_error(signed_in_client: Client) -> None:
    """With an empty name and no scope, the name (the first field in error) has the focus."""
    page = signed_in_client.post("/account/tokens", {"name": "", "days": "7"}).content.decode()
    assert focused_field(page) == "id_name"


def test_admins_are_offered_the_admin_scope(client: Client, make_user) -> None:  # type: ignore[no-untyped-def]
    """Administrators can give a token the admin scope."""
    make_user("boss", role=Role.ADMIN)
    sign_in(client, "boss")
    assert 'value="admin"' in client.get("/account/tokens").content.decode()


def test_revoke(signed_in_client: Client, user: User, make_user) -> None:  # type: ignore[no-untyped-def]
    """Revoking ends the token and says so; another user's token id, or one already revoked, changes nothing and
    says that the token had already been revoked (the same words: another user's tokens are not revealed)."""
    from twostep.api import tokens
    from twostep.audit.services import CLI

    mine = tokens.create_personal_token(user, name="ci", scopes=["read"], origin=CLI)
    other = tokens.create_personal_token(make_user("bob"), name="bobs", scopes=["read"], origin=CLI)
    refused = signed_in_client.post(f"/account/tokens/{other.token.public_id}/revoke", follow=True).content.decode()
    assert "That token had already been revoked, or has expired." in refused
    assert AccessToken.objects.filter(pk=other.token.pk).exists()
    response = signed_in_client.post(f"/account/tokens/{mine.token.public_id}/revoke")
    assert response.status_code == 302
    assert not AccessToken.objects.filter(pk=mine.token.pk).exists()
    again = signed_in_client.post(f"/account/tokens/{mine.token.public_id}/revoke", follow=True).content.decode()
    assert "That token had already been revoked, or has expired." in again
    assert signed_in_client.get(f"/account/tokens/{mine.token.public_id}/revoke").status_code == 405
