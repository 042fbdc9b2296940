"""The console's user page: editing the user, adding addresses and numbers."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

import pytest
from django.core.management import call_command
from django.test import Client

from tests.conftest import PASSWORD, sign_in
from tests.mfa.recovery_codes.helpers import enrol_totp
from twostep.accounts import services
from twostep.accounts.models import User
from twostep.audit.models import AuthEvent
from twostep.audit.services import CLI
from twostep.mfa.models import Authenticator

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client: Client, admin: User) -> Client:
    assert sign_in(client, admin.username).status_code == 302
    return client


@pytest.mark.parametrize(
    ("path", "field", "typed", "error"),
    [
        ("emails", "email", "alice at example", "Enter a valid email address."),
        ("emails", "email", "alice@example.com", "already"),
        ("phones", "phone", "555 123 4567", "international form"),
    ],
)
def test_a_refused_entry_stays_in_its_field_with_the_reason(
    admin_client: Client, user: User, path: str, field: str, typed: str, error: str
) -> None:
    """The page comes back (400) with what was typed and why it was refused; nothing is added."""
    before = user.email_addresses.count() + user.phone_numbers.count()
    response = admin_client.post(f"/admin/users/{user.username}/{path}", {"action": "add", field: typed})
    assert response.status_code == 400
    page = response.content.decode()
    assert f'value="{typed}"' in page and error in page
    assert user.email_addresses.count() + user.phone_numbers.count() == before


def test_an_accepted_entry_is_added(admin_client: Client, user: User) -> None:
    response = admin_client.post(f"/admin/users/{user.username}/phones", {"action": "add", "phone": "+44 7911 123456"})
    assert response.status_code == 302
    assert user.phone_numbers.filter(number="+447911123456").exists()


def test_make_primary_and_remove(admin_client: Client, user: User) -> None:
    """The other two actions of both lists; a bad id is a message, not an error page."""
    backup = user.email_addresses.get(is_primary=False)
    page = f"/admin/users/{user.username}"
    assert admin_client.post(f"{page}/emails", {"action": "primary", "id": backup.pk})["Location"] == f"{page}#emails"
    assert user.email_addresses.get(is_primary=True).pk == backup.pk
    admin_client.post(f"{page}/phones", {"action": "add", "phone": "+15557654321"})
    added = user.phone_numbers.get(number="+15557654321")
    assert admin_client.post(f"{page}/phones", {"action": "remove", "id": added.pk})["Location"] == f"{page}#phones"
    assert not user.phone_numbers.filter(pk=added.pk).exists()
    refused = admin_client.post(f"{page}/phones", {"action": "remove", "id": "not a number"}, follow=True)
    assert refused.status_code == 200 and "Invalid request." in refused.content.decode()


def test_console_titles_say_where_you_are(admin_client: Client, user: User) -> None:
    """A tab of the console says it is one, and which user's page it shows."""
    page = admin_client.get(f"/admin/users/{user.username}").content.decode()
    assert f"<title>User {user.username} · Admin · twostep</title>" in page
    assert "<title>Users · Admin · twostep</title>" in admin_client.get("/admin/users").content.decode()
    assert "<title>Security · twostep</title>" in admin_client.get("/account/security").content.decode()


def test_user_page_ids_are_unique(admin_client: Client, user: User) -> None:
    """The address and number forms both have "Make primary": each label names its own checkbox."""
    import re

    page = admin_client.get(f"/admin/users/{user.username}").content.decode()
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_new_user_form_shows_every_problem_at_once(admin_client: Client) -> None:
    """One submission: each field says what is wrong with it, naming the bad line; nothing is created."""
    response = admin_client.post(
        "/admin/users/new",
        {
            "username": "Frank Spaces",
            "role": "user",
            "password": "short",
            "emails": "frank@example.org\nfrank@",
            "phones": "+15551234567\n555 0100",
        },
    )
    page = response.content.decode()
    assert response.status_code == 200
    for field in ("username", "password", "emails", "phones"):
        assert f'id="id_{field}_error"' in page, field
    assert "&#x27;frank@&#x27;" in page and "&#x27;555 0100&#x27;" in page
    assert not User.objects.filter(username__icontains="frank").exists()
    assert "Type it again" not in page, "the password was refused itself: its error says why"


def test_a_good_password_beside_a_refused_field_is_asked_again(admin_client: Client) -> None:
    """The password field comes back empty; its help says so, instead of a bare 'required' at the next try."""
    page = admin_client.post(
        "/admin/users/new",
        {"username": "frank", "role": "user", "password": "a long enough passphrase", "emails": "x@"},
    ).content.decode()
    assert "Type it again: a password is never shown back." in page
    assert "a long enough passphrase" not in page


def test_removing_where_codes_go_asks_first(admin_client: Client, user: User) -> None:
    """The address a user's email codes go to is marked, and removing it asks first (saying what it stops)."""
    from twostep.audit.models import AuthEvent
    from twostep.core import clock
    from twostep.mfa.models import Authenticator, Method

    backup = user.email_addresses.get(is_primary=False)
    Authenticator.objects.create(
        user=user, method=Method.EMAIL, destination=backup.email, created_at=clock.now(), confirmed_at=clock.now()
    )
    page = f"/admin/users/{user.username}"
    assert "email codes go here" in admin_client.get(page).content.decode()
    asked = admin_client.post(f"{page}/emails", {"action": "remove", "id": backup.pk})
    assert asked.status_code == 200 and "email codes go to" in asked.content.decode()
    assert user.email_addresses.filter(pk=backup.pk).exists()
    done = admin_client.post(f"{page}/emails", {"action": "remove", "id": backup.pk, "confirm": "yes"})
    assert done["Location"] == f"{page}#emails"
    assert not user.email_addresses.filter(pk=backup.pk).exists()
    removed = AuthEvent.objects.get(kind="email.removed", user=user)
    assert removed.actor is not None and removed.actor.is_admin


def test_empty_checkbox_groups_say_what_to_choose(admin_client: Client) -> None:
    """No allowed method ticked, or no token scope: the message says what to do, not just "required"."""
    methods = admin_client.post("/admin/authentication", {"enabled": "on"}).content.decode()
    assert "Choose at least one method" in methods
    scopes = admin_client.post("/account/tokens", {"name": "ci", "days": "30"}).content.decode()
    assert "Choose at least one scope" in scopes


def test_deleting_a_user_needs_their_name_typed(admin_client: Client, user: User) -> None:
    """A delete without the username typed (or with another one) deletes nothing and says why on the field,
    focused; with it, the user is gone."""
    page = f"/admin/users/{user.username}"
    for typed in ({}, {"confirm": ""}, {"confirm": "someone-else"}, {"confirm": user.username.upper()}):
        response = admin_client.post(f"{page}/delete", typed)
        assert response.status_code == 400
        html = response.content.decode()
        field = re.search(r'<input[^>]*id="delete_confirm"[^>]*>', html)
        assert field is not None and "autofocus" in field.group(0) and 'aria-invalid="true"' in field.group(0)
        assert f"Type {user.username} exactly to confirm the deletion." in html
        assert User.objects.filter(pk=user.pk).exists()
    assert admin_client.post(f"{page}/delete", {"confirm": user.username})["Location"] == "/admin/users"
    assert not User.objects.filter(pk=user.pk).exists()


def test_an_address_or_number_of_another_account_is_added_with_a_warning(
    admin_client: Client, user: User, make_user: Callable[..., User], capsys: pytest.CaptureFixture[str]
) -> None:
    """A number or address already on another account (a typo, or a shared phone) is added, with a warning
    that names that account: codes sent there reach whoever reads it."""
    make_user("bob", emails=["Shared@Example.org"], phones=["+15557654321"])
    page = f"/admin/users/{user.username}"
    added = admin_client.post(f"{page}/phones", {"action": "add", "phone": "+1 555 765 4321"}, follow=True)
    assert "+15557654321 is also on the account of bob" in html.unescape(added.content.decode())
    assert user.phone_numbers.filter(number="+15557654321").exists()
    mailed = admin_client.post(f"{page}/emails", {"action": "add", "email": "shared@example.org"}, follow=True)
    assert "is also on the account of bob" in html.unescape(mailed.content.decode())
    alone = admin_client.post(f"{page}/phones", {"action": "add", "phone": "+15550001111"}, follow=True)
    assert "is also on the account of" not in alone.content.decode()
    call_command("users", "add-phone", "bob", "+15550001111")
    assert "warning: +15550001111 is also on the account of alice" in capsys.readouterr().err


def test_a_new_user_with_another_accounts_address_is_created_with_a_warning(
    admin_client: Client, user: User, capsys: pytest.CaptureFixture[str]
) -> None:
    """Creating a user warns as adding an address or number does, in the console, the CLI and the API."""
    created = admin_client.post(
        "/admin/users/new",
        {
            "username": "frank",
            "role": "user",
            "password": "a perfectly fine passphrase",
            "emails": "frank@example.org\nAlice@Example.com",
            "phones": "+1 555 123 4567",
        },
        follow=True,
    )
    page = html.unescape(created.content.decode())
    assert "User frank created." in page
    assert "Alice@example.com is also on the account of alice" in page
    assert "+15551234567 is also on the account of alice" in page
    assert "frank@example.org is also" not in page
    call_command("users", "add", "grace", "--email", "alice.backup@example.org")
    assert "warning: alice.backup@example.org is also on the account of alice" in capsys.readouterr().err


def test_an_error_is_announced_and_a_search_that_finds_nobody_says_so(admin_client: Client, user: User) -> None:
    """Error messages after a redirect are alerts (read out at once), other messages status; an empty search
    result says so and offers the whole list back."""
    page = f"/admin/users/{user.username}"
    refused = admin_client.post(f"{page}/trusted-browsers", {"id": "999"}, follow=True).content.decode()
    assert '<p class="message error" role="alert">That browser is not trusted (any more).</p>' in refused
    found = admin_client.get("/admin/users?q=nobody-like-this").content.decode()
    assert "No user's name or username contains “nobody-like-this”." in found and 'href="/admin/users"' in found
    assert "No user's name" not in admin_client.get(f"/admin/users?q={user.username}").content.decode()


def test_a_refused_password_reset_says_why_on_the_field(admin_client: Client, user: User) -> None:
    """An empty or too-short password is shown on the password field (focused), on the user's page; the
    password is unchanged."""
    for typed, said in (("", "Enter a new password."), ("short", "too short")):
        response = admin_client.post(f"/admin/users/{user.username}/password", {"password": typed})
        page = response.content.decode()
        assert response.status_code == 400 and said in page, typed
        field = re.search(r'<input[^>]*id="id_password"[^>]*>', page)
        assert field is not None and "autofocus" in field.group(0) and 'aria-invalid="true"' in field.group(0)
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_make_primary_buttons_name_their_entry(admin_client: Client, user: User) -> None:
    """Like "Remove", each "Make primary" says which address or number it acts on, to a screen reader too."""
    admin_client.post(f"/admin/users/{user.username}/phones", {"action": "add", "phone": "+15557654321"})
    page = admin_client.get(f"/admin/users/{user.username}").content.decode()
    backup = user.email_addresses.get(is_primary=False)
    assert f'aria-label="Make primary: {html.escape(backup.email)}">Make primary</button>' in page
    assert 'aria-label="Make primary: +15557654321">Make primary</button>' in page
    assert ">Make primary</button>" not in page.replace('">Make primary</button>', "")


@pytest.mark.parametrize(
    ("path", "data", "field"),
    [
        ("emails", {"action": "add", "email": "alice at example"}, "email_email"),
        ("phones", {"action": "add", "phone": "555 123 4567"}, "phone_phone"),
    ],
)
def test_a_refused_entry_gets_the_focus(
    admin_client: Client, user: User, path: str, data: dict[str, str], field: str
) -> None:
    """After a refused entry the page opens on that field, and on no other."""
    page = admin_client.post(f"/admin/users/{user.username}/{path}", data).content.decode()
    focused = re.findall(r"<input[^>]*\bautofocus\b[^>]*>", page)
    assert len(focused) == 1 and f'id="{field}"' in focused[0], focused


def test_new_user_form_focuses_the_first_field_in_error(admin_client: Client) -> None:
    """The first field that is wrong has the focus; the password rules are shown before any try."""
    blank = admin_client.get("/admin/users/new").content.decode()
    assert "at least 8 characters" in blank
    page = admin_client.post(
        "/admin/users/new", {"username": "fine-name", "password": "short", "role": "user"}
    ).content.decode()
    focused = re.findall(r"<input[^>]*\bautofocus\b[^>]*>", page)
    assert len(focused) == 1 and 'id="id_password"' in focused[0], focused


def test_reset_2fa_asks_first_and_only_when_there_is_a_factor(admin_client: Client, user: User) -> None:
    """No factor: no button, and a stray post resets nothing. A factor: one click asks, naming user and factor."""
    page = f"/admin/users/{user.username}"
    assert f'action="{page}/reset-2fa"' not in admin_client.get(page).content.decode()
    stray = admin_client.post(f"{page}/reset-2fa", follow=True)
    assert "has no second factor: there is nothing to reset" in stray.content.decode()
    assert not AuthEvent.objects.filter(kind="two_factor.reset").exists()
    enrol_totp(user)
    assert f'action="{page}/reset-2fa"' in admin_client.get(page).content.decode()
    asked = admin_client.post(f"{page}/reset-2fa")
    text = asked.content.decode()
    assert asked.status_code == 200 and f"Reset two-factor authentication of {user.username}?" in text
    assert "Authenticator app" in text and "recovery codes" in text and "ends all their sessions" in text
    assert Authenticator.objects.filter(user=user, confirmed_at__isnull=False).exists()
    assert not AuthEvent.objects.filter(kind="two_factor.reset").exists()
    done = admin_client.post(f"{page}/reset-2fa", {"confirm": "yes"})
    assert done.status_code == 302
    assert not Authenticator.objects.filter(user=user).exists()


def edit_form_fields(page: str) -> dict[str, str]:
    """What the browser posts from the page's edit form as loaded: every input's value (checked boxes only)."""
    form = page[page.index('<form method="post" novalidate>') :]
    form = form[: form.index("</form>")]
    fields: dict[str, str] = {}
    for tag in re.findall(r"<input[^>]*>", form):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name is None or ('type="checkbox"' in tag and "checked" not in tag):
            continue
        fields[name.group(1)] = html.unescape(value.group(1)) if value else "on"
    selected = re.search(r'<select name="role"[^>]*>.*?<option value="([^"]+)"[^>]*selected', form, re.S)
    assert selected is not None
    fields["role"] = selected.group(1)
    return fields


@pytest.mark.parametrize("meanwhile", ["deactivated", "demoted"])
def test_saving_a_page_loaded_earlier_keeps_another_administrators_change(
    admin_client: Client, make_user: Callable[..., User], admin: User, meanwhile: str
) -> None:
    """Admin A opens the page, admin B deactivates (or demotes) the user, admin A corrects the display name.

    The save changes the name only: putting back "active" or "admin" as the
    page showed them would undo B's lock-out of a compromised account.
    """
    subject = make_user("eve", role="admin")
    posted = edit_form_fields(admin_client.get(f"/admin/users/{subject.username}").content.decode())
    assert posted["is_active"] == "on" and posted["role"] == "admin"
    if meanwhile == "deactivated":
        services.set_active(subject, False, origin=CLI, actor=admin)
    else:
        services.update_user(subject, role="user", origin=CLI, actor=admin)
    response = admin_client.post(f"/admin/users/{subject.username}", {**posted, "display_name": "Eve Online"})
    assert response.status_code == 302
    subject.refresh_from_db()
    assert subject.display_name == "Eve Online"
    assert (subject.is_active, subject.role) == ((False, "admin") if meanwhile == "deactivated" else (True, "user"))


def test_the_edit_form_still_changes_what_the_administrator_changed(admin_client: Client, user: User) -> None:
    """Unticking "Active" on the page deactivates; a post without the page's values still applies every field."""
    page = f"/admin/users/{user.username}"
    posted = edit_form_fields(admin_client.get(page).content.decode())
    del posted["is_active"]
    assert admin_client.post(page, posted).status_code == 302
    user.refresh_from_db()
    assert user.is_active is False
    assert admin_client.post(page, {"display_name": "Alice", "role": "user", "is_active": "on"}).status_code == 302
    user.refresh_from_db()
    assert user.is_active and user.display_name == "Alice"


def test_a_bad_line_of_a_new_users_numbers_or_addresses_is_named_once(admin_client: Client) -> None:
    """Each bad line is named in its message once ("'12345' is not in international form"), not twice."""
    form = {
        "username": "zoe",
        "role": "user",
        "password": "a long enough pass",
        "phones": "12345",
        "emails": "zoe at x",
    }
    page = html.unescape(admin_client.post("/admin/users/new", form).content.decode())
    assert "'12345' is not in international form" in page and "'12345': '12345'" not in page
    assert "'zoe at x': " in page  # a message that does not name the line gets it in front
    assert not User.objects.filter(username="zoe").exists()
