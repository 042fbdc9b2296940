"""Changes in the console need the administrator's password entered within the last minutes (AZ-07)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.conftest import PASSWORD, sign_in
from twostep.accounts.models import User
from twostep.audit.models import AuthEvent, Outcome
from twostep.core import clock

pytestmark = pytest.mark.django_db

REAUTHENTICATE = "/account/reauthenticate"


def carried_password(page: str) -> str:
    """The value the prompt carries for the change's ``password`` field."""
    found = re.search(r'<input type="hidden" name="password" value="([^"]*)">', page)
    assert found is not None, "the prompt carries the password field"
    return found.group(1)


@pytest.fixture
def stale_admin(client: Client, admin: User, frozen_clock: clock.FrozenClock) -> Client:
    """An administrator signed in six minutes ago, the session still alive."""
    assert sign_in(client, admin.username).status_code == 302
    frozen_clock.advance(6 * 60)
    return client


#: Every address in the console that makes a change (POST), for alice.
CHANGES = [
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
]


@pytest.mark.parametrize("path", CHANGES)
def test_every_change_asks_for_the_password_again(stale_admin: Client, user: User, path: str) -> None:
    """The answer is the password prompt, which posts the change back to where it was going."""
    response = stale_admin.post(
        path, {"password": "a brand new long one"}, HTTP_REFERER="http://testserver/admin/users/alice"
    )
    assert response.status_code == 200
    assert response.templates[0].name == "accounts/reauthenticate.html"
    page = response.content.decode()
    assert f'action="{path}"' in page
    # Carried, but not written back into the page as typed: the prompt holds it encrypted.
    assert carried_password(page) and "a brand new long one" not in page
    assert 'name="reauth-password"' in page
    assert '<a href="/admin/users/alice">Cancel</a>' in page


def test_the_change_goes_through_once_the_password_is_given(stale_admin: Client, user: User) -> None:
    """A stale session changes nothing; the prompt's password makes the change that was posted, on a new session key."""
    page = "/admin/users/alice"
    change = {"password": "a brand new long one"}
    prompt = stale_admin.post(f"{page}/password", change, HTTP_REFERER=page)
    assert prompt.status_code == 200
    assert User.objects.get(pk=user.pk).check_password(PASSWORD)
    key = stale_admin.session.session_key
    # What the browser posts back: the carried field as the prompt holds it, and the password.
    answer = {"password": carried_password(prompt.content.decode()), "reauth-password": PASSWORD}
    done = stale_admin.post(f"{page}/password", answer, HTTP_REFERER=page)
    assert done.status_code == 302 and done["Location"] == page
    assert User.objects.get(pk=user.pk).check_password("a brand new long one")
    assert stale_admin.session.session_key != key
    # Fresh now: the next change needs no prompt.
    again = stale_admin.post(f"{page}/password", {"password": "yet another long one"}, HTTP_REFERER=page)
    assert again.status_code == 302
    assert User.objects.get(pk=user.pk).check_password("yet another long one")


def test_a_wrong_password_makes_no_change_and_keeps_the_fields(stale_admin: Client, user: User) -> None:
    page = "/admin/users/alice"
    wrong = stale_admin.post(
        f"{page}/password", {"password": "a brand new long one", "reauth-password": "not it"}, HTTP_REFERER=page
    )
    assert wrong.status_code == 200
    content = wrong.content.decode()
    assert "That password is incorrect." in content
    assert carried_password(content) and "a brand new long one" not in content
    assert 'value="not it"' not in content
    assert User.objects.get(pk=user.pk).check_password(PASSWORD)
    failures = AuthEvent.objects.filter(kind="reauthenticate", outcome=Outcome.FAILURE)
    assert failures.count() == 1
    # The field carried through the refusal still makes the change it was typed for.
    answer = {"password": carried_password(content), "reauth-password": PASSWORD}
    assert stale_admin.post(f"{page}/password", answer, HTTP_REFERER=page).status_code == 302
    assert User.objects.get(pk=user.pk).check_password("a brand new long one")


def test_wrong_passwords_at_the_prompt_are_throttled(stale_admin: Client, admin: User, user: User) -> None:
    """The prompt counts against the sign-in limits: a stolen, stale session cannot guess the password."""
    page = "/admin/users/alice"
    statuses = [
        stale_admin.post(f"{page}/unlock", {"reauth-password": f"guess {n}"}, HTTP_REFERER=page).status_code
        for n in range(12)
    ]
    assert 429 in statuses
    throttled = stale_admin.post(f"{page}/unlock", {"reauth-password": PASSWORD}, HTTP_REFERER=page)
    assert throttled.status_code == 429
    assert not AuthEvent.objects.filter(kind="reauthenticate", outcome=Outcome.SUCCESS).exists()
    still_stale = stale_admin.post(f"{page}/unlock", HTTP_REFERER=page)
    assert still_stale.templates[0].name == "accounts/reauthenticate.html"


def test_carried_fields_are_escaped_and_the_csrf_token_is_the_prompts_own(stale_admin: Client, user: User) -> None:
    response = stale_admin.post(
        "/admin/users/alice/emails",
        {"address": '"><script>alert(1)</script>', "csrfmiddlewaretoken": "from-the-form"},
    )
    content = response.content.decode()
    assert "<script>alert(1)</script>" not in content
    assert 'value="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in content
    assert "from-the-form" not in content
    prompt = content.split('action="/admin/users/alice/emails"')[1].split("</form>")[0]
    assert prompt.count('name="csrfmiddlewaretoken"') == 1


def test_a_foreign_referer_is_not_followed(stale_admin: Client, user: User) -> None:
    response = stale_admin.post("/admin/users/alice/unlock", HTTP_REFERER="https://evil.example/admin/x")
    content = response.content.decode()
    assert '<a href="/admin/users">Cancel</a>' in content
    assert "evil.example" not in content


def test_reading_the_console_needs_no_new_password(stale_admin: Client, user: User) -> None:
    assert stale_admin.get("/admin/users/alice").status_code == 200
    assert stale_admin.get("/admin/audit").status_code == 200


def test_console_offers_the_password_prompt_before_a_form_is_filled(client: Client, admin: User) -> None:
    """A stale password: every console page says so up front and links to the prompt, which leads back."""
    sign_in(client, admin.username)
    assert "Enter it now" not in client.get("/admin/users").content.decode()
    session = client.session
    session["twostep_reauth_at"] = clock.timestamp() - 301
    session.save()
    page = client.get("/admin/email").content.decode()
    assert 'href="/account/reauthenticate?next=/admin/email"' in page


def test_the_page_after_the_prompt_does_not_offer_it_again(stale_admin: Client, user: User) -> None:
    """The page a change leads to, once the password was given, says nothing more about the password."""
    page = "/admin/users/alice"
    bad = {"action": "add", "email": "not an address"}
    assert (
        stale_admin.post(f"{page}/emails", bad, HTTP_REFERER=page).templates[0].name == "accounts/reauthenticate.html"
    )
    answered = stale_admin.post(f"{page}/emails", {**bad, "reauth-password": PASSWORD}, HTTP_REFERER=page)
    assert answered.status_code == 400 and "Enter a valid email address" in answered.content.decode()
    assert "Changes on these pages need your password" not in answered.content.decode()


def test_only_what_the_prompt_sealed_for_this_field_is_opened(
    stale_admin: Client, admin: User, user: User, frozen_clock: clock.FrozenClock
) -> None:
    """A stored secret's ciphertext posted to a prompt stays what it is; a sealed value altered, sealed
    for another field or another user, or older than an hour opens to nothing: the change asks again."""
    from twostep.accounts import reauth
    from twostep.core.keyring import secret_box

    page = "/admin/users/alice"
    stored = secret_box().encrypt("JBSWY3DPEHPK3PXP")  # as a TOTP key or the SMTP password is kept
    done = stale_admin.post(f"{page}/password", {"password": stored, "reauth-password": PASSWORD}, HTTP_REFERER=page)
    assert done.status_code == 302
    alice = User.objects.get(pk=user.pk)
    assert alice.check_password(stored) and not alice.check_password("JBSWY3DPEHPK3PXP")

    wanted = "a brand new long one"
    frozen_clock.advance(6 * 60)
    sealed = carried_password(stale_admin.post(f"{page}/password", {"password": wanted}).content.decode())
    forgeries = [
        sealed[:-6] + "AAAAAA",
        reauth._sealed(admin.pk, "new_password", wanted),
        reauth._sealed(user.pk, "password", wanted),
    ]
    for forged in forgeries:
        frozen_clock.advance(6 * 60)
        refused = stale_admin.post(f"{page}/password", {"password": forged, "reauth-password": PASSWORD})
        assert refused.status_code != 302, forged
        assert not User.objects.get(pk=user.pk).check_password(wanted)
    for _ in range(2):  # past the hour, the session kept alive in between
        frozen_clock.advance(reauth.SEALED_FOR / 2 + 1)
        assert stale_admin.get("/account").status_code == 200
    late = stale_admin.post(f"{page}/password", {"password": sealed, "reauth-password": PASSWORD})
    assert late.status_code != 302 and not User.objects.get(pk=user.pk).check_password(wanted)
    frozen_clock.advance(6 * 60)
    fresh = carried_password(stale_admin.post(f"{page}/password", {"password": wanted}).content.decode())
    assert stale_admin.post(f"{page}/password", {"password": fresh, "reauth-password": PASSWORD}).status_code == 302
    assert User.objects.get(pk=user.pk).check_password(wanted)
