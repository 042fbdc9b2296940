"""Bad input to the pages gets a clear answer, never a server error, and changes nothing.

Each case was found by sending junk to every page route as a user and as an
administrator.  The NUL cases matter on PostgreSQL (run by ``make test``
too), which cannot store or compare text holding a NUL: there they were 500s.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from tests.conftest import PASSWORD, prove_second_factor, sign_in
from twostep.accounts import services
from twostep.accounts.models import User
from twostep.api import tokens
from twostep.audit.models import AuthEvent
from twostep.audit.services import CLI
from twostep.core import clock
from twostep.core.decorators import REAUTH_KEY
from twostep.core.search import MAX_SEARCH_LENGTH, search_term
from twostep.mfa.forms import ENTER_THE_CODE

pytestmark = pytest.mark.django_db


def ready_for_changes(client: Client, user: User) -> Client:
    """Signed in, with a password just re-entered and a code just confirmed: every page lets a change through."""
    assert sign_in(client, user.username).status_code == 302
    session = client.session
    session[REAUTH_KEY] = clock.timestamp()
    session.save()
    prove_second_factor(client)
    return client


@pytest.fixture
def admin_client(admin: User) -> Client:
    return ready_for_changes(Client(), admin)


@pytest.fixture
def user_client(user: User) -> Client:
    return ready_for_changes(Client(), user)


@pytest.mark.parametrize(
    ("who", "method", "path", "data"),
    [
        ("admin", "get", "/admin/users/al%00ice", {}),
        ("admin", "post", "/admin/users/al%00ice/emails", {"action": "add", "email": "x@example.com"}),
        ("admin", "get", "/admin/users", {"q": "al\x00ice"}),
        ("admin", "get", "/admin/audit", {"user": "al\x00ice", "kind": "login\x00"}),
        ("user", "post", "/account/security/methods/default", {"method": "totp\x00"}),
        ("user", "post", "/account/security/methods/rename", {"method": "totp\x00", "name": "Phone"}),
        ("user", "post", "/account/tokens/1%00/revoke", {}),
        ("user", "post", "/login/verify/method", {"method": "email\x00"}),
        ("user", "post", "/account/password", {"current_password": PASSWORD, "new_password": "a\x00b"}),
    ],
)
def test_a_nul_character_is_refused_at_the_door(
    admin_client: Client, user_client: Client, who: str, method: str, path: str, data: dict[str, str]
) -> None:
    """A NUL anywhere in the path, the query or a form field: 400 "Bad request", and nothing happens."""
    client = admin_client if who == "admin" else user_client
    before = AuthEvent.objects.count()
    response = getattr(client, method)(path, data)
    assert response.status_code == 400
    assert "Bad request" in response.content.decode()
    assert response["Cache-Control"] == "no-store"  # the page still gets every header of the others
    assert AuthEvent.objects.count() == before


def test_the_api_reads_its_own_json_bodies(client: Client, user: User) -> None:
    """The door check reads form bodies only: a JSON sign-in through the API still works."""
    response = client.post(
        "/api/v1/auth/login", {"username": user.username, "password": PASSWORD}, content_type="application/json"
    )
    assert response.status_code == 200, response.content


def test_the_api_refuses_a_nul_itself_and_names_the_field(client: Client, admin: User) -> None:
    """The API's own checks answer a NUL in a path or query parameter, saying which one: not the pages' 400."""
    signed_in = client.post(
        "/api/v1/auth/login", {"username": admin.username, "password": PASSWORD}, content_type="application/json"
    )
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {signed_in.json()['access_token']}"}
    for path, field in (("/api/v1/admin/users/al%00ice", "username"), ("/api/v1/admin/users?q=al%00ice", "q")):
        response = client.get(path, **bearer)
        assert response.status_code == 400, response.content
        error = response.json()["error"]
        assert error["code"] == "invalid_request" and [f["field"] for f in error["fields"]] == [field]


@pytest.mark.parametrize("target", ["abc", "account", "-1", "account/security", "javascript:alert(1)"])
def test_a_next_that_is_no_path_goes_to_the_account_page(client: Client, user: User, target: str) -> None:
    """``next=account`` (no leading slash) was taken for the name of a URL pattern: a 500 right after signing in."""
    response = client.post(f"/login?next={target}", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/account"
    signed_in_again = client.get(f"/login?next={target}")
    assert signed_in_again.status_code == 302 and signed_in_again["Location"] == "/account"
    reauthenticated = client.post("/account/reauthenticate", {"password": PASSWORD, "next": target})
    assert reauthenticated.status_code == 302 and reauthenticated["Location"] == "/account"


def test_a_path_next_still_works(client: Client, user: User) -> None:
    response = client.post("/login?next=/account/security", {"username": user.username, "password": PASSWORD})
    assert response["Location"] == "/account/security"


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_an_empty_or_foreign_post_to_the_app_setup_asks_for_the_code(
    user_client: Client, two_factor_on: None, content_type: str
) -> None:
    """No form fields at all (a JSON or text body): the page says a code is needed, as for an empty field."""
    response = user_client.post("/account/security/totp", "{}", content_type=content_type)
    assert response.status_code == 200
    assert ENTER_THE_CODE in response.content.decode()


def test_the_last_day_there_is_is_a_date_like_any_other(admin_client: Client) -> None:
    """``until=9999-12-31``: the day after it does not exist, so the log has no end limit, and no error."""
    response = admin_client.get("/admin/audit", {"until": "9999-12-31", "since": "0001-01-01"})
    assert response.status_code == 200


@pytest.mark.parametrize(("path", "field"), [("/admin/users", "q"), ("/admin/audit", "user"), ("/admin/audit", "kind")])
def test_a_huge_search_is_cut_not_taken_for_an_outage(admin_client: Client, admin: User, path: str, field: str) -> None:
    """60 000 characters: SQLite refused the LIKE pattern and the page said the database was down."""
    searched = admin.username + "x" * 60_000
    response = admin_client.get(path, {field: searched})
    assert response.status_code == 200
    assert "cannot reach its database" not in response.content.decode()
    assert search_term(searched) == searched[:MAX_SEARCH_LENGTH]


@pytest.mark.parametrize("name", ["Eve\u202eevil", "bell\x07", "esc\x1b[31m"])
def test_names_with_control_or_direction_characters_are_refused(
    make_user: Callable[..., User], user: User, name: str
) -> None:
    """A display name or token name that would show as something else in the console, or break a terminal."""
    with pytest.raises(ValidationError, match="display name"):
        make_user("eve", display_name=name)
    with pytest.raises(ValidationError, match="display name"):
        services.update_user(user, display_name=name, origin=CLI)
    with pytest.raises(ValidationError, match="letters, digits"):
        tokens.check_personal_token_request(user, name, ["read"], 30)
    assert User.objects.get(pk=user.pk).display_name != name


def test_an_address_with_a_control_character_is_refused(user: User) -> None:
    """Django accepts control characters in a quoted local part; no mailbox a person reads has them."""
    with pytest.raises(ValidationError, match="control characters"):
        services.add_email(user, '"a\x01b"@example.com', origin=CLI)
    assert not user.email_addresses.filter(email__contains="\x01").exists()
