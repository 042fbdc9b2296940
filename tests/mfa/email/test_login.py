"""Signing in with an email code through the pages, over a real SMTP server, including its failures."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import pytest
from django.conf import settings
from django.test import Client

from tests.conftest import sign_in
from tests.mail.smtp_server import Certificates, SmtpServer, configure_twostep
from tests.mfa.email.conftest import BACKUP
from tests.mfa.races import just_before
from twostep.accounts import services
from twostep.accounts.models import User
from twostep.audit.models import AuthEvent
from twostep.audit.services import CLI
from twostep.core import clock
from twostep.mfa import codes
from twostep.mfa.email import flows
from twostep.mfa.models import Authenticator, OneTimeCode, PendingLogin
from twostep.mfa.services import unlock_second_step
from twostep.usersessions.services import end_sessions

pytestmark = pytest.mark.django_db

RESEND = "/login/verify/email/resend"
COULD_NOT_SEND = "We could not send the code. Try again in a moment."


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def signed_in(client: Client) -> bool:
    return client.get("/account").status_code == 200


def start(client: Client, user: User) -> str:
    """The password step; returns the second-step page."""
    response = sign_in(client, user.username)
    assert response.status_code == 302 and response["Location"] == "/login/verify"
    return client.get("/login/verify").content.decode()


def test_code_is_sent_to_the_chosen_address_and_signs_in(
    client: Client, user: User, enrolled: Authenticator, mail_server: SmtpServer
) -> None:
    """After the password a code goes to the enrolled (non-primary) address; it completes sign-in."""
    page = start(client, user)
    assert "Enter the code sent to al•••p@example.org." in page
    assert "Send a new code" in page and "You can ask for a new code in 60 seconds." in page
    assert BACKUP not in page
    [received] = mail_server.wait_for(1)
    assert received.rcpt_tos == [BACKUP] and received.over_tls
    assert received.code() not in received.subject
    assert not signed_in(client)
    response = client.post("/login/verify", {"code": received.code()})
    assert response.status_code == 302 and response["Location"] == "/account"
    assert signed_in(client)
    assert Authenticator.objects.get(pk=enrolled.pk).last_used_at is not None


def test_code_works_once(client: Client, user: User, enrolled: Authenticator, mail_server: SmtpServer) -> None:
    """A code that signed in cannot sign in again from another browser (RR-06)."""
    start(client, user)
    code = mail_server.wait_for(1)[0].code()
    client.post("/login/verify", {"code": code})
    other = Client()
    start(other, user)
    other.post("/login/verify", {"code": code})
    assert not signed_in(other)


def test_resend_cooldown_and_old_code_dies(
    client: Client, user: User, enrolled: Authenticator, mail_server: SmtpServer, frozen_clock: clock.FrozenClock
) -> None:
    """ "Send a new code" waits 60 s; then a new code arrives, the old one stops working, the new one works (RR-06)."""
    start(client, user)
    first = mail_server.wait_for(1)[0].code()
    frozen_clock.advance(30)
    client.post(RESEND)
    assert "You can ask for a new code in 30 seconds." in client.get("/login/verify").content.decode()
    assert len(mail_server.messages()) == 1
    frozen_clock.advance(30)
    response = client.post(RESEND)
    assert response.status_code == 302 and response["Location"] == "/login/verify"
    assert "We sent a new code to al•••p@example.org" in client.get("/login/verify").content.decode()
    second = mail_server.wait_for(2)[1].code()
    client.post("/login/verify", {"code": first} if first != second else {"code": wrong(second)})
    assert not signed_in(client)
    client.post("/login/verify", {"code": second})
    assert signed_in(client)


def test_resend_does_not_reset_the_tries(
    client: Client, user: User, enrolled: Authenticator, mail_server: SmtpServer, frozen_clock: clock.FrozenClock
) -> None:
    """Three wrong codes, a resend, two more wrong codes: the sign-in has used its five tries (BF-02)."""
    start(client, user)
    code = mail_server.wait_for(1)[0].code()
    for _ in range(3):
        page = client.post("/login/verify", {"code": wrong(code)}).content.decode()
    # The hint speaks of emailed codes, not of an app's.
    assert "Only the newest code sent works, and only once." in page and "set up your app" not in page
    frozen_clock.advance(60)
    client.post(RESEND)
    new = mail_server.wait_for(2)[1].code()
    client.post("/login/verify", {"code": wrong(new)})
    response = client.post("/login/verify", {"code": wrong(new)})
    assert response.status_code == 302 and response["Location"] == "/login"
    client.post("/login/verify", {"code": new})
    assert not signed_in(client)
    assert User.objects.get(pk=user.pk).second_step_failures == 5


def test_code_expires_after_ten_minutes(
    client: Client, user: User, enrolled: Authenticator, mail_server: SmtpServer, frozen_clock: clock.FrozenClock
) -> None:
    """The code still works at 9 min 59 s, and no longer at 10 min 1 s."""
    start(client, user)
    code = mail_server.wait_for(1)[0].code()
    frozen_clock.advance(601)
    client.post("/login/verify", {"code": code})
    assert not signed_in(client)
    late = Client()
    start(late, user)
    code = mail_server.wait_for(2)[1].code()
    frozen_clock.advance(599)
    late.post("/login/verify", {"code": code})
    assert signed_in(late)


def test_five_wrong_codes_end_the_sign_in(
    client: Client, user: User, enrolled: Authenticator, mail_server: SmtpServer
) -> None:
    """Five wrong codes end the sign-in; the right code is refused afterwards."""
    start(client, user)
    code = mail_server.wait_for(1)[0].code()
    responses = [client.post("/login/verify", {"code": wrong(code)}) for _ in range(5)]
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 302]
    assert responses[-1]["Location"] == "/login"
    client.post("/login/verify", {"code": code})
    assert not signed_in(client)


def test_fifth_try_is_a_real_try(client: Client, user: User, enrolled: Authenticator, mail_server: SmtpServer) -> None:
    """After four wrong codes the right one still signs in."""
    start(client, user)
    code = mail_server.wait_for(1)[0].code()
    for _ in range(4):
        client.post("/login/verify", {"code": wrong(code)})
    client.post("/login/verify", {"code": code})
    assert signed_in(client)


def test_removed_address_stops_the_method(
    client: Client, user: User, admin: User, enrolled: Authenticator, mail_server: SmtpServer
) -> None:
    """When an admin removes the address, sign-in says to contact an admin and sends nothing anywhere."""
    services.remove_email(user, user.email_addresses.get(email=BACKUP).pk, origin=CLI, actor=admin)
    response = sign_in(client, user.username)
    assert response["Location"] == "/login/verify"
    response = client.get("/login/verify")
    assert response.status_code == 409
    assert "Contact an administrator" in response.content.decode()
    assert mail_server.messages() == []
    client.post(RESEND)
    client.post("/login/verify", {"code": "123456"})
    assert mail_server.messages() == []
    assert not signed_in(client)


def _assert_clear_failure(client: Client, user: User, smtp_words: str) -> PendingLogin:
    page = start(client, user)
    assert COULD_NOT_SEND in page and 'role="alert"' in page
    assert not signed_in(client)
    pending = PendingLogin.objects.get(user=user, completed_at__isnull=True)
    assert not OneTimeCode.objects.filter(pending_login=pending).exists()
    assert pending.failures == 0 and User.objects.get(pk=user.pk).second_step_failures == 0
    event = AuthEvent.objects.get(kind="login.code_sent", reason="delivery_failed", user=user)
    assert smtp_words in event.detail["error"] or smtp_words in event.detail["message"]
    assert not AuthEvent.objects.filter(kind="login.second_step", user=user, outcome="failure").exists()
    return pending


def test_smtp_down(
    client: Client,
    user: User,
    enrolled: Authenticator,
    mail_server: SmtpServer,
    closed_port: int,
    certificates: Certificates,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Port closed: the clear error, the refusal logged, nothing consumed; once mail works, a resend signs in (FLT-01)."""
    configure_twostep(monkeypatch, certificates, closed_port)
    _assert_clear_failure(client, user, "connection refused")
    # The pending sign-in was kept: with the server back, "Send a new code" works at once.
    configure_twostep(monkeypatch, certificates, mail_server.port)
    client.post(RESEND)
    client.post("/login/verify", {"code": mail_server.wait_for(1)[0].code()})
    assert signed_in(client)


def test_smtp_refuses_with_5xx(client: Client, user: User, enrolled: Authenticator, mail_server: SmtpServer) -> None:
    """A 5xx reply: the clear error, the server's reply in the log, no sign-in."""
    mail_server.data_reply = "554 5.7.1 Message rejected"
    _assert_clear_failure(client, user, "554 5.7.1 Message rejected")
    assert mail_server.messages() == []


def test_smtp_never_answers(
    client: Client,
    user: User,
    enrolled: Authenticator,
    hanging_port: int,
    certificates: Certificates,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A silent server: the request returns after the (1 s) timeout with the clear error, no sign-in (FLT-02)."""
    configure_twostep(monkeypatch, certificates, hanging_port, timeout=1.0)
    started = time.monotonic()
    _assert_clear_failure(client, user, "timed out")
    assert time.monotonic() - started < 4


def test_code_the_server_did_not_confirm_still_signs_in(
    client: Client,
    user: User,
    enrolled: Authenticator,
    mail_server: SmtpServer,
    certificates: Certificates,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server received the message but answered too late: the code it delivers signs in, and asking
    again right away sends nothing more (the code counts as sent)."""
    configure_twostep(monkeypatch, certificates, mail_server.port, timeout=1.0)
    mail_server.data_delay = 1.5
    page = start(client, user)
    assert COULD_NOT_SEND not in page and "Enter the code sent to al•••p@example.org." in page
    [received] = mail_server.wait_for(1)
    event = AuthEvent.objects.get(kind="login.code_sent", user=user)
    assert event.outcome == "success" and event.detail["unconfirmed"] == "no answer within 1 second"
    client.post(RESEND)
    assert len(mail_server.messages()) == 1
    client.post("/login/verify", {"code": received.code()})
    assert signed_in(client)


def test_failed_resend_is_reported_once(
    client: Client,
    user: User,
    enrolled: Authenticator,
    mail_server: SmtpServer,
    closed_port: int,
    certificates: Certificates,
    monkeypatch: pytest.MonkeyPatch,
    frozen_clock: clock.FrozenClock,
) -> None:
    """A resend that fails after a code went out says so; the earlier code keeps working."""
    start(client, user)
    code = mail_server.wait_for(1)[0].code()
    frozen_clock.advance(60)
    configure_twostep(monkeypatch, certificates, closed_port)
    client.post(RESEND)
    page = client.get("/login/verify").content.decode()
    assert page.count(COULD_NOT_SEND) == 1
    client.post("/login/verify", {"code": code})
    assert signed_in(client)


def test_resend_without_a_sign_in(client: Client, db: None) -> None:
    """Resend with no pending sign-in goes back to the password form."""
    response = client.post(RESEND)
    assert response.status_code == 302 and response["Location"] == "/login"


def test_locked_second_step_sends_no_code(
    client: Client, user: User, enrolled: Authenticator, mail_server: SmtpServer, frozen_clock: clock.FrozenClock
) -> None:
    """While the second step is locked, neither the password step nor "Send a new code" mails anything.

    A locked sign-in cannot succeed, and codes sent to it would only fill the user's mailbox.
    """
    User.objects.filter(pk=user.pk).update(second_step_failures=20, second_step_locked_at=clock.now())
    page = start(client, user)
    assert "Your second step is locked after too many wrong codes. Contact an administrator." in page
    frozen_clock.advance(120)
    client.post(RESEND)
    assert mail_server.messages() == []
    refusals = AuthEvent.objects.filter(kind="login.code_sent", user=user, reason="locked")
    assert refusals.count() == 2
    unlock_second_step(user, origin=CLI)
    # The unlock ended the sign-in that was open (BF-06): the password again, and a code goes out.
    assert client.post(RESEND)["Location"].startswith("/login")
    assert mail_server.messages() == []
    start(client, user)
    assert len(mail_server.wait_for(1)) == 1


def test_resend_as_the_sign_in_ends_goes_back_to_the_form(
    client: Client,
    user: User,
    enrolled: Authenticator,
    mail_server: SmtpServer,
    frozen_clock: clock.FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The user's sessions end (an administrator, another browser) just as "Send a new code" makes its code:
    back to the sign-in form saying so, nothing mailed, the auth log says why; not a server error."""
    start(client, user)
    mail_server.wait_for(1)
    frozen_clock.advance(61)
    just_before(monkeypatch, codes, "issue", partial(end_sessions, user))
    response = client.post(RESEND, follow=True)
    assert response.redirect_chain[-1][0] == "/login"
    assert "Your sign-in expired. Please sign in again." in response.content.decode()
    assert len(mail_server.messages()) == 1
    assert AuthEvent.objects.filter(kind="login.code_sent", outcome="failure", reason="ended", user=user).exists()


def test_codes_asked_for_from_one_address_are_capped(
    client: Client,
    user: User,
    enrolled: Authenticator,
    make_user: Callable[..., User],
    mail_server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past ``security.codes_per_address``, another account signing in from the same client gets no code,
    and the page says why and for how long (BF-09)."""
    monkeypatch.setattr(settings.CONFIG.security, "codes_per_address", 1)
    bob = make_user("bob", emails=["bob@example.com", "bob.backup@example.org"])
    flows.start_enrolment(bob, bob.email_addresses.get(email="bob.backup@example.org").pk, CLI)
    flows.confirm_enrolment(bob, mail_server.last_code("bob.backup@example.org"), CLI)
    mail_server.received.clear()
    start(client, user)
    page = start(Client(), bob)
    assert "Too many codes were asked for from your network. Try again in 15 minutes." in page
    assert [m.rcpt_tos for m in mail_server.messages()] == [[BACKUP]]
