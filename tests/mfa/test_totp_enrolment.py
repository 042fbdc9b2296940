"""Enrolling, replacing and removing an authenticator app; admin reset; secrets at rest."""

from __future__ import annotations

import html
import re

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from tests.authenticator_app import a_wrong_code
from tests.concurrency import at_once
from tests.conftest import PASSWORD, asked_for_password, prove_second_factor, sign_in
from twostep.accounts.models import User
from twostep.audit.models import AuthEvent
from twostep.audit.services import CLI
from twostep.core import clock
from twostep.core.keyring import secret_box
from twostep.factors import totp
from twostep.mfa.models import Authenticator
from twostep.mfa.totp import flows as totp_flows
from twostep.notifications.models import Notification
from twostep.usersessions.models import UserSession

pytestmark = pytest.mark.django_db


def reauthenticate(client: Client) -> None:
    response = client.post("/account/reauthenticate", {"password": PASSWORD, "next": "/account/security"})
    assert response.status_code == 302


def shown_secret(client: Client) -> str:
    page = client.get("/account/security/totp").content.decode()
    match = re.search(r'id="manual-key">([A-Z2-7]{4}(?: [A-Z2-7]{1,4})+)<', page)
    assert match, page
    return match.group(1).replace(" ", "")


def enrol_via_pages(client: Client) -> bytes:
    reauthenticate(client)
    secret = shown_secret(client)
    key = totp.decode_secret(secret)
    # The previous step's code, so that the current one is still free to sign in with. When the
    # step turns between reading the clock and the server's check, that code is two steps old:
    # the page refuses it and keeps the secret, so the next step's "previous" code is sent.
    for _ in range(2):
        response = client.post("/account/security/totp", {"code": totp.totp(key, clock.timestamp() - 30)})
        if response.status_code == 302:
            break
    assert response["Location"] == "/account/security"
    return key


@pytest.fixture
def signed_in(user: User, two_factor_on: None) -> Client:
    client = Client()
    sign_in(client, user.username)
    return client


def test_setup_needs_recent_password(signed_in: Client) -> None:
    """The setup page needs a password entered in the last 5 minutes (sign-in counts) (SES-10)."""
    assert signed_in.get("/account/security/totp").status_code == 200
    session = signed_in.session
    session["twostep_reauth_at"] = clock.timestamp() - 301
    session.save()
    assert signed_in.get("/account/security/totp")["Location"].startswith("/account/reauthenticate")
    bad = signed_in.post("/account/reauthenticate", {"password": "nope nope nope", "next": "/account/security/totp"})
    assert bad.status_code == 200 and b"incorrect" in bad.content
    before = signed_in.session.session_key
    reauthenticate(signed_in)
    assert signed_in.session.session_key != before  # a new session id with the raised privilege
    page = signed_in.get("/account/security/totp")
    assert page.status_code == 200
    assert b"<svg" in page.content and b"manual-key" in page.content


def test_pending_secret_stable_across_wrong_codes_and_expires(signed_in: Client, frozen_clock: object) -> None:
    """A wrong code keeps the same pending secret; after 10 minutes a new one is issued (OTP-11)."""
    reauthenticate(signed_in)
    first = shown_secret(signed_in)
    response = signed_in.post("/account/security/totp", {"code": a_wrong_code(totp.decode_secret(first))})
    assert b"didn&#x27;t match" in response.content or b"didn't match" in response.content
    # Kept in the auth log although the confirmation's transaction was rolled back.
    assert AuthEvent.objects.filter(kind="totp.enrol", outcome="failure", reason="wrong_code").count() == 1
    for malformed, message in [
        ("abcdef", "Enter the 6-digit code (digits only)."),
        ("12345", "Enter the 6-digit code (digits only)."),
        ("", "Enter the code."),
    ]:
        # Not a code at all: said so, rather than blaming the phone's clock.
        page = signed_in.post("/account/security/totp", {"code": malformed}).content.decode()
        assert message in page and "time on your phone" not in page
    assert shown_secret(signed_in) == first
    assert not Authenticator.objects.filter(confirmed_at__isnull=False).exists()
    frozen_clock.advance(601)  # type: ignore[attr-defined]
    reauthenticate(signed_in)
    assert shown_secret(signed_in) != first


def test_expired_setup_says_so_and_shows_a_new_key(signed_in: Client, frozen_clock: clock.FrozenClock) -> None:
    """A right code from a key that expired is not blamed on the phone's clock: the page says to scan the new one."""
    reauthenticate(signed_in)
    first = shown_secret(signed_in)
    frozen_clock.advance(601)
    reauthenticate(signed_in)
    code = totp.totp(totp.decode_secret(first), clock.timestamp())
    page = signed_in.post("/account/security/totp", {"code": code}).content.decode()
    assert "This set-up expired" in page and "scan the new QR code" in page
    assert "time on your phone" not in page
    assert re.search(r'<p class="error" role="alert" id="code-error">This set-up expired', page)
    new = re.search(r'id="manual-key">([A-Z2-7 ]+)<', page)
    assert new and new.group(1).replace(" ", "") != first
    assert not Authenticator.objects.filter(confirmed_at__isnull=False).exists()


@pytest.mark.parametrize(("offset", "said"), [(180, "about 3 minutes fast"), (-2 * 3600, "about 2 hours slow")])
def test_a_code_from_a_phone_whose_clock_is_off_says_so(
    signed_in: Client, frozen_clock: clock.FrozenClock, offset: int, said: str
) -> None:
    """A code the app shows with its clock minutes or hours off is refused, and the page says the phone's clock
    seems off and by how much, rather than only "didn't match"; the auth log keeps the offset."""
    reauthenticate(signed_in)
    key = totp.decode_secret(shown_secret(signed_in))
    code = totp.totp(key, clock.timestamp() + offset)
    page = signed_in.post("/account/security/totp", {"code": code}).content.decode()
    assert f"your phone&#x27;s clock seems {said}" in page and "automatic date and time" in page
    assert not Authenticator.objects.filter(confirmed_at__isnull=False).exists()
    event = AuthEvent.objects.get(kind="totp.enrol", reason="wrong_code")
    assert event.detail["device_clock_offset"] == offset


def test_setup_code_field_has_focus_after_a_refusal_only(signed_in: Client) -> None:
    """The set-up page opens at its first step, the QR code (a focused code field would scroll a phone past it
    and open its keyboard); after a refused code, the code field is focused.  A link opens the key in an app on
    the same phone."""
    reauthenticate(signed_in)
    page = signed_in.get("/account/security/totp").content.decode()
    field = re.search(r'<input type="text" name="code"[^>]*>', page)
    assert field and " autofocus" not in field.group(0) and "maxlength" not in field.group(0)
    uri = re.search(r'<a href="(otpauth://totp/[^"]+)">Open this key in your authenticator app</a>', page)
    assert uri and html.unescape(uri.group(1)).startswith("otpauth://totp/")
    refused = signed_in.post("/account/security/totp", {"code": "12345"}).content.decode()
    field = re.search(r'<input type="text" name="code"[^>]*>', refused)
    assert field and " autofocus" in field.group(0)


def test_qr_code_encodes_the_key_uri(signed_in: Client, user: User) -> None:
    """The page's QR code is an inline SVG; the URI follows the Key URI format with the issuer."""
    from twostep.mfa.totp import flows

    reauthenticate(signed_in)
    secret = shown_secret(signed_in)
    provisioning = flows.provisioning_for(user)
    assert provisioning.secret == secret
    assert provisioning.uri == (
        f"otpauth://totp/twostep:{user.username}?secret={secret}&issuer=twostep&algorithm=SHA1&digits=6&period=30"
    )


def test_secret_encrypted_at_rest(signed_in: Client, user: User) -> None:
    """No TOTP secret appears in the database in plaintext (SEC-03)."""
    key = enrol_via_pages(signed_in)
    secret = totp.encode_secret(key)
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM mfa_authenticator")
        stored = [row[0] for row in cursor.fetchall()]
    assert stored and all(secret not in value and value.startswith("gAAAA") for value in stored)


def test_the_first_app_brings_the_first_recovery_codes(signed_in: Client) -> None:
    """The set-up's code is the proof of a factor that new codes need: the page it leads to shows them."""
    enrol_via_pages(signed_in)
    page = signed_in.get("/account/security").content.decode()
    assert len(re.findall(r"<li><code>[0-9A-Z-]{19}</code></li>", page)) == 10


def test_secret_never_shown_after_confirmation(signed_in: Client) -> None:
    """After confirmation the Security page does not show the key; setup shows a new one (SEC-04)."""
    key = enrol_via_pages(signed_in)
    prove_second_factor(signed_in)
    secret = totp.encode_secret(key)
    assert secret.encode() not in signed_in.get("/account/security").content
    assert shown_secret(signed_in) != secret


def test_reenrolment_replaces_old_secret_only_on_confirmation(signed_in: Client, user: User) -> None:
    """The old app keeps working until the new one is confirmed, then stops at once (OTP-12)."""
    old_key = enrol_via_pages(signed_in)
    prove_second_factor(signed_in)
    new_secret = shown_secret(signed_in)
    active = Authenticator.objects.get(user=user, confirmed_at__isnull=False)
    assert totp.decode_secret(secret_box().decrypt(active.secret)) == old_key
    new_key = totp.decode_secret(new_secret)
    # Until it is confirmed, the new app's code does not sign in (OTP-11).
    early = Client()
    sign_in(early, user.username)
    assert early.post("/login/verify", {"code": totp.totp(new_key, clock.timestamp())}).status_code == 200
    assert early.get("/account").status_code == 302
    signed_in.post("/account/security/totp", {"code": totp.totp(new_key, clock.timestamp())})
    assert Authenticator.objects.filter(user=user, confirmed_at__isnull=False).count() == 1
    client = Client()
    sign_in(client, user.username)
    response = client.post("/login/verify", {"code": totp.totp(old_key, clock.timestamp() + 30)})
    assert response.status_code == 200
    assert client.post("/login/verify", {"code": totp.totp(new_key, clock.timestamp() + 30)})["Location"] == "/account"


def test_enrolment_ends_other_sessions(signed_in: Client, user: User) -> None:
    """Adding a factor signs the user out everywhere else (SES-05)."""
    other = Client()
    sign_in(other, user.username)
    assert other.get("/account").status_code == 200
    enrol_via_pages(signed_in)
    assert other.get("/account").status_code == 302
    assert signed_in.get("/account").status_code == 200


def test_removal_ends_other_sessions(signed_in: Client, user: User) -> None:
    """Turning the app off signs the user out everywhere else too, not this browser (SES-05)."""
    key = enrol_via_pages(signed_in)
    other = Client()
    sign_in(other, user.username)
    assert other.post("/login/verify", {"code": totp.totp(key, clock.timestamp())})["Location"] == "/account"
    prove_second_factor(signed_in)
    signed_in.post("/account/security/totp/remove", {"confirm": "yes"})
    assert not Authenticator.objects.filter(user=user).exists()
    assert other.get("/account").status_code == 302
    assert signed_in.get("/account").status_code == 200


def test_dropping_a_set_up_never_confirmed_turns_nothing_off(signed_in: Client, user: User) -> None:
    """A set-up in progress that is dropped was never an app: no other session ends, nothing is logged or
    mailed as a removal, and the caller is told none was on."""
    other = Client()
    sign_in(other, user.username)
    totp_flows.provisioning_for(user)
    assert totp_flows.remove(user, CLI) is False
    assert not Authenticator.objects.filter(user=user).exists()
    assert other.get("/account").status_code == 200
    assert not AuthEvent.objects.filter(kind="totp.disabled").exists()
    assert not Notification.objects.filter(user=user).exists()


def test_remove_needs_post_and_password(signed_in: Client, user: User) -> None:
    """Turning the app off is POST-only and needs a recent password (AZ-04)."""
    enrol_via_pages(signed_in)
    prove_second_factor(signed_in)
    assert signed_in.get("/account/security/totp/remove").status_code in (302, 405)
    session = signed_in.session
    session["twostep_reauth_at"] = clock.timestamp() - 301
    session.save()
    assert asked_for_password(signed_in.post("/account/security/totp/remove"))
    assert Authenticator.objects.filter(user=user, confirmed_at__isnull=False).exists()
    # Asked from the Security page's button, the prompt's "Cancel" leads back to that page,
    # not to the POST-only address of the button (a blank 405).
    asked = signed_in.post("/account/security/totp/remove", HTTP_REFERER="http://testserver/account/security")
    assert '<a href="/account/security">Cancel</a>' in asked.content.decode()
    # The password carries the click through, to the question the last method asks.
    confirm = signed_in.post("/account/security/totp/remove", {"reauth-password": PASSWORD})
    assert confirm.templates[0].name == "mfa/confirm_turn_off.html"
    signed_in.post("/account/security/totp/remove", {"confirm": "yes"})
    assert not Authenticator.objects.filter(user=user).exists()
    assert sign_in(Client(), user.username)["Location"] == "/account"


def test_admin_reset_from_console(signed_in: Client, user: User, admin: User) -> None:
    """An admin resets a user's 2FA: factors gone, sessions ended, event recorded (SES-06)."""
    enrol_via_pages(signed_in)
    console = Client()
    sign_in(console, admin.username)
    # One click asks first, naming the user and what goes; nothing is removed yet.
    asked = console.post(f"/admin/users/{user.username}/reset-2fa")
    page = asked.content.decode()
    assert asked.status_code == 200 and f"Reset two-factor authentication of {user.username}?" in page
    assert "Authenticator app" in page and "recovery codes" in page and 'name="confirm" value="yes"' in page
    assert Authenticator.objects.filter(user=user, confirmed_at__isnull=False).exists()
    assert UserSession.objects.filter(user=user).exists()
    response = console.post(f"/admin/users/{user.username}/reset-2fa", {"confirm": "yes"})
    assert response.status_code == 302
    assert not Authenticator.objects.filter(user=user).exists()
    assert not UserSession.objects.filter(user=user).exists()
    assert AuthEvent.objects.filter(kind="two_factor.reset", user=user, actor=admin).exists()
    assert sign_in(Client(), user.username)["Location"] == "/account"


def test_admin_pages_refused_to_users(signed_in: Client, user: User) -> None:
    """A normal user gets 403 from admin pages and cannot reset anyone's 2FA (AZ-06, AZ-07)."""
    assert signed_in.get("/admin/users").status_code == 403
    assert signed_in.get("/admin/authentication").status_code == 403
    assert signed_in.post(f"/admin/users/{user.username}/reset-2fa").status_code == 403
    assert signed_in.post("/admin/authentication", {"enabled": "", "methods": ["totp"]}).status_code == 403


def test_settings_page_warns_before_disabling(signed_in: Client, admin: User) -> None:
    """Switching 2FA off shows how many users are affected and needs a second confirmation."""
    enrol_via_pages(signed_in)
    console = Client()
    sign_in(console, admin.username)
    page = console.get("/admin/authentication")
    assert b"UTC" in page.content
    response = console.post("/admin/authentication", {"methods": ["totp"]})
    assert response.status_code == 200
    assert b"<strong>1</strong> user who" in response.content
    from twostep.core.runtime import get_setting

    assert get_setting("two_factor.enabled") is True
    response = console.post("/admin/authentication", {"methods": ["totp"], "confirm": "1"})
    assert response.status_code == 302
    assert get_setting("two_factor.enabled") is False


def test_withdrawing_a_method_says_whether_a_password_alone_then_sets_up_another(
    signed_in: Client, admin: User
) -> None:
    """Users left without an allowed method enrol again at their next sign-in: with the password alone unless the email check is on."""
    from twostep.core.runtime import set_setting

    enrol_via_pages(signed_in)
    set_setting("email.host", "smtp.example.test")
    set_setting("two_factor.methods", ["totp", "email"])
    console = Client()
    sign_in(console, admin.username)
    withdraw = {"enabled": "on", "methods": ["email"]}
    page = console.post("/admin/authentication", withdraw).content.decode()
    assert "<strong>1</strong> user who enrolled only methods you are switching off" in page
    assert "which their password alone allows" in page
    set_setting("two_factor.enrolment_email_check", True)
    page = console.post("/admin/authentication", withdraw).content.decode()
    assert "after entering a code sent to one of their email addresses" in page
    assert "password alone" not in page


def test_cli_reset_2fa(signed_in: Client, user: User, capsys: pytest.CaptureFixture[str]) -> None:
    """`twostep users reset-2fa NAME` is the lost-device path from a shell."""
    enrol_via_pages(signed_in)
    call_command("users", "reset-2fa", user.username)
    assert "1 factor removed" in capsys.readouterr().out
    assert not Authenticator.objects.filter(user=user).exists()
    assert signed_in.get("/account").status_code == 302


def test_key_rotation_reencrypts_and_logins_still_work(signed_in: Client, user: User) -> None:
    """`twostep keys rotate --drop-old` re-encrypts every secret; sign-in works after it (SEC-11)."""
    from django.conf import settings

    key = enrol_via_pages(signed_in)
    before = Authenticator.objects.get(user=user).secret
    original_keys = settings.ENCRYPTION_KEYS_PATH.read_text()
    try:
        call_command("keys", "rotate", "--drop-old")
        after = Authenticator.objects.get(user=user).secret
        assert after != before
        from twostep.core.crypto import SecretBox, read_keys

        keys = read_keys(settings.ENCRYPTION_KEYS_PATH)
        assert len(keys) == 1
        assert SecretBox(keys).decrypt(after) == totp.encode_secret(key)
        client = Client()
        sign_in(client, user.username)
        assert client.post("/login/verify", {"code": totp.totp(key, clock.timestamp() + 30)})["Location"] == "/account"
    finally:
        settings.ENCRYPTION_KEYS_PATH.write_text(original_keys)


def test_email_method_refused_without_outgoing_mail(admin: User) -> None:
    """Email codes cannot be allowed before SMTP is set up; the page says why and nothing changes."""
    from twostep.core.runtime import get_setting

    console = Client()
    sign_in(console, admin.username)
    page = console.get("/admin/authentication").content.decode()
    assert 'id="email-method-problem"' in page and "/admin/email" in page
    response = console.post("/admin/authentication", {"enabled": "on", "methods": ["totp", "email"]})
    assert response.status_code == 200
    assert "Email codes need outgoing mail" in response.content.decode()
    assert get_setting("two_factor.methods") == ["totp"]


@pytest.mark.django_db(transaction=True)
def test_two_tabs_opening_the_setup_at_once_show_one_secret(user: User) -> None:
    """The set-up opened in two tabs at the same moment (a restored session): both show the same secret.

    Each found no secret and made one; on PostgreSQL the second broke the
    one-set-up-per-method rule and its tab got a server error.
    """

    def open_setup() -> str:
        return totp_flows.provisioning_for(user).secret

    for _ in range(15):
        shown = at_once([open_setup, open_setup])
        assert len(shown) == 2 and len(set(shown)) == 1
        assert Authenticator.objects.filter(user=user, confirmed_at__isnull=True).count() == 1
        Authenticator.objects.filter(user=user).delete()
