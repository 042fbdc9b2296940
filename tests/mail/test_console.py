"""The console's Outgoing mail page and `twostep email ...`."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from tests.conftest import sign_in
from tests.mail.smtp_server import Certificates, SmtpServer, configure_twostep
from twostep.accounts.models import User
from twostep.audit.models import AuthEvent
from twostep.core.models import Setting
from twostep.core.runtime import get_settings, set_setting
from twostep.mail import config

pytestmark = pytest.mark.django_db

SMTP_SECRET = "smtp-relay-secret-9f2"


@pytest.fixture
def admin_client(client: Client, admin: User) -> Client:
    assert sign_in(client, admin.username).status_code == 302
    return client


def test_only_admins_see_the_page(client: Client, user: User) -> None:
    """A signed-in user who is not an admin gets 403."""
    sign_in(client, user.username)
    assert client.get("/admin/email").status_code == 403


def test_save_settings_and_password_is_write_only(admin_client: Client) -> None:
    """Saving stores the values; the password is encrypted, never shown back, and kept when left empty."""
    response = admin_client.post(
        "/admin/email",
        {
            "action": "save",
            "host": "smtp.example.com",
            "port": "465",
            "security": "tls",
            "username": "mailer",
            "password": SMTP_SECRET,
            "from_address": "Sign-in <login@example.com>",
        },
    )
    assert response.status_code == 302
    assert get_settings(*config.KEYS) == {
        "email.host": "smtp.example.com",
        "email.port": 465,
        "email.security": "tls",
        "email.username": "mailer",
        "email.from_address": "Sign-in <login@example.com>",
    }
    page = admin_client.get("/admin/email").content.decode()
    assert SMTP_SECRET not in page
    assert "stored (encrypted)" in page
    assert SMTP_SECRET not in str(Setting.objects.get(key=config.PASSWORD_KEY).value)
    # Saving again with an empty password keeps the stored one.
    same_server = {"action": "save", "host": "smtp.example.com", "port": "465", "security": "tls", "username": "mailer"}
    assert admin_client.post("/admin/email", {**same_server, "from_address": "", "password": ""}).status_code == 302
    assert config.current().password == SMTP_SECRET
    event = AuthEvent.objects.filter(kind="settings.email").first()
    assert event is not None and SMTP_SECRET not in str(event.detail)


def test_another_server_needs_its_password(admin_client: Client) -> None:
    """Pointing the settings at another server with the password left empty is refused, and nothing is lost."""
    config.save(host="smtp.example.com", port=465, security="tls", username="mailer", from_address="")
    config.set_password(SMTP_SECRET)
    moved = {"action": "save", "host": "mx.elsewhere.example", "port": "465", "security": "tls", "username": "mailer"}
    response = admin_client.post("/admin/email", moved)
    assert response.status_code == 400
    page = response.content.decode()
    assert "only sent there" in page and 'value="mx.elsewhere.example"' in page
    assert get_settings(config.HOST)[config.HOST] == "smtp.example.com"
    assert admin_client.post("/admin/email", {**moved, "password": "the-new-one"}).status_code == 302
    assert config.current().password == "the-new-one"


def test_a_password_without_encryption_to_another_machine_is_refused_at_once(admin_client: Client) -> None:
    """Every send would refuse it: the page says so on saving, keeps what was typed, stores nothing; on this
    machine, or without a password, no encryption is fine."""
    clear = {"action": "save", "host": "smtp.example.com", "port": "25", "security": "none", "username": "mailer"}
    response = admin_client.post("/admin/email", {**clear, "password": SMTP_SECRET})
    assert response.status_code == 400
    page = response.content.decode()
    assert "never sends a password to another machine without encryption" in page
    assert 'value="smtp.example.com"' in page and SMTP_SECRET not in page
    assert get_settings(config.HOST)[config.HOST] == "" and not Setting.objects.filter(key=config.PASSWORD_KEY).exists()
    assert admin_client.post("/admin/email", {**clear, "password": ""}).status_code == 302
    local = {**clear, "host": "localhost", "password": SMTP_SECRET}
    assert admin_client.post("/admin/email", local).status_code == 302


def test_clear_password(admin_client: Client) -> None:
    """The stored password can be removed without ever being displayed."""
    config.set_password(SMTP_SECRET)
    admin_client.post(
        "/admin/email",
        {"action": "save", "host": "smtp.example.com", "port": "587", "security": "starttls", "clear_password": "on"},
    )
    assert config.password_source() == ""


def test_invalid_settings_are_explained(admin_client: Client) -> None:
    """Bad values re-show the form with the reason; nothing is stored."""
    response = admin_client.post(
        "/admin/email", {"action": "save", "host": "smtp example", "port": "99999", "security": "starttls"}
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "not a host name" in page and "less than or equal to 65535" in page
    assert get_settings("email.host")["email.host"] == ""


@pytest.mark.parametrize(
    ("setting", "on", "off", "reason"),
    [
        ("two_factor.methods", ["totp", "email"], ["totp"], "Email codes are an allowed sign-in method"),
        ("two_factor.enrolment_email_check", True, False, "The email check before enrolment is on"),
    ],
)
def test_smtp_server_stays_while_a_feature_needs_it(
    admin_client: Client, setting: str, on: object, off: object, reason: str
) -> None:
    """Removing the server while email codes or the email check use it is refused, from the page and the CLI.

    Without it every emailed code would fail: users of email codes could not sign in.
    """
    set_setting("email.host", "smtp.example.com")
    set_setting(setting, on)
    response = admin_client.post("/admin/email", {"action": "save", "host": "", "port": "587", "security": "starttls"})
    assert response.status_code == 400
    assert reason in response.content.decode()
    with pytest.raises(CommandError, match=reason):
        call_command("settings", "set", "email.host", "")
    assert get_settings("email.host")["email.host"] == "smtp.example.com"

    # Once nothing needs it, it can go.
    set_setting(setting, off)
    call_command("settings", "set", "email.host", "", stdout=io.StringIO())
    assert get_settings("email.host")["email.host"] == ""


def test_send_test_email_success(admin_client: Client, mail_server: SmtpServer) -> None:
    """ "Send test email" delivers through the saved settings and says so."""
    response = admin_client.post("/admin/email", {"action": "test", "to": "ops@example.com"})
    assert response.status_code == 200
    assert "The test email was sent to ops@example.com" in response.content.decode()
    [received] = mail_server.wait_for(1)
    assert received.rcpt_tos == ["ops@example.com"] and "at the request of root" in received.text
    assert AuthEvent.objects.filter(kind="email.test", outcome="success").exists()


def test_send_test_email_shows_the_smtp_error(
    admin_client: Client, mail_server: SmtpServer, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusing server's reply is shown in plain words and logged for later."""
    mail_server.rcpt_reply = "550 5.7.1 Relaying denied"
    response = admin_client.post("/admin/email", {"action": "test", "to": "ops@example.com"})
    page = response.content.decode()
    assert "The test email could not be sent." in page
    assert "refused the recipient" in page and "550 5.7.1 Relaying denied" in page
    event = AuthEvent.objects.get(kind="email.test", outcome="failure")
    assert "550 5.7.1 Relaying denied" in event.detail["error"]
    # The failure is listed on the page for later visits too.
    assert "550 5.7.1 Relaying denied" in admin_client.get("/admin/email").content.decode()


def test_send_test_email_to_a_non_address(admin_client: Client, mail_server: SmtpServer) -> None:
    """A malformed address is refused before any connection."""
    response = admin_client.post("/admin/email", {"action": "test", "to": "not-an-address"})
    assert response.status_code == 400
    assert "is not an email address" in response.content.decode()
    assert mail_server.messages() == []


def test_cli_email_test(mail_server: SmtpServer) -> None:
    """`twostep email test ADDRESS` sends the test message and says so."""
    out = io.StringIO()
    call_command("email", "test", "ops@example.com", stdout=out)
    assert "Test email sent to ops@example.com" in out.getvalue()
    assert "at the request of the command line" in mail_server.wait_for(1)[0].text


def test_cli_email_test_reports_the_error(
    mail_server: SmtpServer, closed_port: int, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the server is down the command fails (non-zero) with the reason."""
    configure_twostep(monkeypatch, certificates, closed_port)
    with pytest.raises(CommandError, match="connection refused") as failed:
        call_command("email", "test", "ops@example.com")
    assert str(failed.value).count("connection refused") == 1  # not repeated as "Details: ..."


def test_cli_password_is_read_from_stdin_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    """`email set-password` reads standard input; `email show` only says that one is stored."""
    monkeypatch.setattr("sys.stdin", io.StringIO(SMTP_SECRET + "\n"))
    call_command("email", "set-password", stdout=io.StringIO())
    assert config.current().password == SMTP_SECRET
    out = io.StringIO()
    call_command("email", "show", stdout=out)
    assert "email.password: stored, encrypted" in out.getvalue()
    assert SMTP_SECRET not in out.getvalue()


def test_cli_refuses_a_password_that_would_go_unencrypted(monkeypatch: pytest.MonkeyPatch) -> None:
    """As the page does: with no encryption to another machine, `email set-password` stores nothing and says why."""
    config.save(host="smtp.example.com", port=25, security="none", username="mailer", from_address="")
    monkeypatch.setattr("sys.stdin", io.StringIO(SMTP_SECRET + "\n"))
    with pytest.raises(CommandError, match="without encryption") as refused:
        call_command("email", "set-password", stdout=io.StringIO())
    assert refused.value.returncode == 2 and SMTP_SECRET not in str(refused.value)
    assert not Setting.objects.filter(key=config.PASSWORD_KEY).exists()
