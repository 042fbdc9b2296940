"""Several methods per user: the default first, "Use another method", and no method the user or admin did not choose (FB-11, FB-12)."""

from __future__ import annotations

from functools import partial

import pytest
from django.conf import settings
from django.test import Client

from tests.authenticator_app import a_wrong_code
from tests.concurrency import at_once
from tests.conftest import sign_in
from tests.mail.smtp_server import SmtpServer, certificates, mail_server, smtp_server
from tests.mfa.email.conftest import BACKUP
from tests.mfa.races import code_check, just_before
from tests.mfa.recovery_codes.helpers import enrol_totp, events, next_code
from twostep.accounts.models import User
from twostep.audit.services import CLI
from twostep.core import clock
from twostep.core.runtime import set_setting
from twostep.mfa import choice
from twostep.mfa import login as second_step
from twostep.mfa.email import flows as email_flows
from twostep.mfa.models import Authenticator, DefaultMethod, OneTimeCode, PendingLogin
from twostep.mfa.policy import login_authenticators

__all__ = ["certificates", "mail_server", "smtp_server"]

pytestmark = pytest.mark.django_db


@pytest.fixture
def both(user: User, mail_server: SmtpServer) -> tuple[User, bytes]:
    """Alice with an authenticator app (first) and email codes to her backup address; the outbox emptied."""
    set_setting("two_factor.enabled", True)
    set_setting("two_factor.methods", ["totp", "email"])
    key = enrol_totp(user)
    address = user.email_addresses.get(email=BACKUP)
    email_flows.start_enrolment(user, address.pk, CLI)
    email_flows.confirm_enrolment(user, mail_server.last_code(BACKUP), CLI)
    mail_server.received.clear()
    return user, key


def verify_page(client: Client) -> str:
    response = client.get("/login/verify")
    assert response.status_code == 200
    return response.content.decode()


def test_first_enrolled_is_asked_first_and_nothing_is_sent(
    client: Client, both: tuple[User, bytes], mail_server: SmtpServer
) -> None:
    """Without a chosen default the first factor (TOTP) is asked; no email goes out for a method not chosen."""
    user, _ = both
    sign_in(client, user.username)
    html = verify_page(client)
    assert "authenticator app" in html and "Use another method" in html
    assert "Email a code to al•••p@example.org" in html
    assert mail_server.messages() == []


def test_choosing_email_sends_the_code_then_and_it_signs_in(
    client: Client, both: tuple[User, bytes], mail_server: SmtpServer
) -> None:
    """ "Use another method" → email sends one code to the enrolled address, which completes the sign-in."""
    user, _ = both
    sign_in(client, user.username)
    response = client.post("/login/verify/method", {"method": "email"})
    assert response.status_code == 302 and response["Location"] == "/login/verify"
    (message,) = mail_server.wait_for(1)
    assert message.rcpt_tos == [BACKUP]
    html = verify_page(client)
    assert "Enter the code sent to al•••p@example.org" in html and "Use your authenticator app" in html
    response = client.post("/login/verify", {"code": message.code()})
    assert response.status_code == 302 and response["Location"] == "/account"
    assert [e.method for e in events("login.method_chosen")] == ["email"]


def test_switching_back_kills_the_emailed_code(
    client: Client, both: tuple[User, bytes], mail_server: SmtpServer
) -> None:
    """A code sent for email does not complete the step once the user switched to the app (codes are per method)."""
    user, key = both
    sign_in(client, user.username)
    client.post("/login/verify/method", {"method": "email"})
    emailed = mail_server.wait_for(1)[0].code()
    client.post("/login/verify/method", {"method": "totp"})
    response = client.post("/login/verify", {"code": emailed})
    assert response.status_code == 200
    assert client.post("/login/verify", {"code": next_code(key)})["Location"] == "/account"


def test_switching_back_keeps_the_code_already_sent(
    client: Client, both: tuple[User, bytes], mail_server: SmtpServer, frozen_clock: clock.FrozenClock
) -> None:
    """Email, app, email again: no second email (switching is no way around the resend wait); the first code works."""
    user, _ = both
    sign_in(client, user.username)
    client.post("/login/verify/method", {"method": "email"})
    first = mail_server.wait_for(1)[0].code()
    client.post("/login/verify/method", {"method": "totp"})
    frozen_clock.advance(20)
    client.post("/login/verify/method", {"method": "email"})
    assert "Enter the code sent to al•••p@example.org" in verify_page(client)
    client.post("/login/verify/email/resend")
    assert len(mail_server.messages()) == 1
    assert client.post("/login/verify", {"code": first})["Location"] == "/account"


def test_switching_back_after_the_code_died_waits_out_the_cooldown(
    client: Client, both: tuple[User, bytes], mail_server: SmtpServer, frozen_clock: clock.FrozenClock
) -> None:
    """A code used up by wrong tries is not carried over, and a new one waits for the cooldown."""
    user, _ = both
    sign_in(client, user.username)
    client.post("/login/verify/method", {"method": "email"})
    mail_server.wait_for(1)
    PendingLogin.objects.filter(method="email").update(failures=0)
    OneTimeCode.objects.update(failures=5)
    client.post("/login/verify/method", {"method": "totp"})
    frozen_clock.advance(20)
    client.post("/login/verify/method", {"method": "email"})
    assert len(mail_server.messages()) == 1
    assert "You can ask for a new code in 40 seconds." in verify_page(client)
    frozen_clock.advance(41)
    client.post("/login/verify/email/resend")
    second = mail_server.wait_for(2)[1].code()
    assert client.post("/login/verify", {"code": second})["Location"] == "/account"


def test_switching_keeps_token_expiry_and_failures(client: Client, both: tuple[User, bytes]) -> None:
    """A switch cannot buy more tries or more time: the failure count and the expiry carry over."""
    user, key = both
    sign_in(client, user.username)
    client.post("/login/verify", {"code": a_wrong_code(key)})
    client.post("/login/verify", {"code": a_wrong_code(key)})
    before = PendingLogin.objects.get(completed_at__isnull=True, expires_at__gt=clock.now())
    client.post("/login/verify/method", {"method": "email"})
    after = PendingLogin.objects.get(completed_at__isnull=True, expires_at__gt=clock.now())
    assert after.pk != before.pk and after.method == "email"
    assert after.failures == 2 and after.expires_at == before.expires_at and after.created_at == before.created_at
    for _ in range(settings.CONFIG.security.attempts_per_login - 2):
        client.post("/login/verify", {"code": "000002"})
    assert client.get("/login/verify")["Location"] == "/login"


def test_default_method_is_asked_first(client: Client, both: tuple[User, bytes], mail_server: SmtpServer) -> None:
    """After "Make default" on email, sign-in asks for email first (and sends its code then)."""
    user, key = both
    client.post("/login", {"username": "alice", "password": "correct horse battery staple"})
    client.post("/login/verify", {"code": next_code(key)})
    response = client.post("/account/security/methods/default", {"method": "email"})
    assert response.status_code == 302
    assert DefaultMethod.objects.get(user=user).method == "email"
    # On their own page, signed in, the user reads their own address in full.
    address = Authenticator.objects.get(user=user, method="email").destination
    assert f"Email to {address} is now asked for first" in client.get("/account/security").content.decode()
    assert [a.method for a in login_authenticators(user.pk)] == ["email", "totp"]
    client.post("/logout")
    sign_in(client, user.username)
    assert "Enter the code sent to" in verify_page(client)
    assert len(mail_server.wait_for(1)) == 1


def test_default_survives_moving_the_app(both: tuple[User, bytes]) -> None:
    """Replacing the authenticator app keeps it the default (the default is a method, not a row)."""
    user, _ = both
    choice.set_default(user, "totp", CLI)
    from twostep.factors import totp
    from twostep.mfa.totp import flows as totp_flows

    key = totp.decode_secret(totp_flows.provisioning_for(user).secret)
    totp_flows.confirm(user, totp.totp(key, clock.timestamp()), CLI)
    assert login_authenticators(user.pk)[0].method == "totp"


def test_unusable_default_falls_back(both: tuple[User, bytes]) -> None:
    """If the default's address was removed, the other method is asked first."""
    user, _ = both
    choice.set_default(user, "email", CLI)
    user.email_addresses.filter(email=BACKUP).delete()
    assert login_authenticators(user.pk)[0].method == "totp"
    assert [a.method for a in choice.available(user.pk)] == ["totp"]


@pytest.mark.parametrize("method", ["sms", "fax", "", "email\x01", "TOTP"])
def test_cannot_switch_to_a_method_not_set_up(client: Client, user: User, two_factor_on: None, method: str) -> None:
    """Only the user's own enrolled methods can be chosen (FB-12)."""
    enrol_totp(user)
    sign_in(client, user.username)
    response = client.post("/login/verify/method", {"method": method})
    assert response.status_code == 302 and response["Location"] == "/login/verify"
    assert PendingLogin.objects.get(expires_at__gt=clock.now()).method == "totp"
    follow = client.get("/login/verify").content.decode()
    assert "That method is not available for your account." in follow


def test_cannot_switch_to_a_disallowed_method(
    client: Client, both: tuple[User, bytes], mail_server: SmtpServer
) -> None:
    """Once the admin disallows email, it is neither offered nor accepted, and nothing is sent (FB-11)."""
    user, _ = both
    set_setting("two_factor.methods", ["totp"])
    sign_in(client, user.username)
    assert "Email a code" not in verify_page(client)
    client.post("/login/verify/method", {"method": "email"})
    assert PendingLogin.objects.get(expires_at__gt=clock.now()).method == "totp"
    assert mail_server.messages() == []


def test_the_code_goes_only_to_the_enrolled_address(
    client: Client, both: tuple[User, bytes], mail_server: SmtpServer
) -> None:
    """Extra fields naming another destination are ignored: the code goes to the factor's own address (FB-12)."""
    user, _ = both
    sign_in(client, user.username)
    client.post(
        "/login/verify/method", {"method": "email", "destination": "evil@example.net", "email": "evil@example.net"}
    )
    (message,) = mail_server.wait_for(1)
    assert message.rcpt_tos == [BACKUP]


def test_switch_needs_a_pending_sign_in(client: Client, both: tuple[User, bytes], mail_server: SmtpServer) -> None:
    """Without the password step a switch request sends nothing (and GET is refused)."""
    assert client.get("/login/verify/method").status_code == 405
    response = client.post("/login/verify/method", {"method": "email"})
    assert response.status_code == 302 and response["Location"] == "/login"
    assert mail_server.messages() == []


def test_unavailable_method_offers_the_others(client: Client, both: tuple[User, bytes]) -> None:
    """If the method asked for became unusable mid sign-in, the page offers the remaining ones and recovery codes."""
    user, key = both
    choice.set_default(user, "email", CLI)
    sign_in(client, user.username)
    user.email_addresses.filter(email=BACKUP).delete()
    Authenticator.objects.filter(user=user, method="email").update(destination="gone@example.org")
    response = client.get("/login/verify")
    assert response.status_code == 409
    html = response.content.decode()
    assert "Use your authenticator app" in html and "Use a recovery code" in html
    client.post("/login/verify/method", {"method": "totp"})
    assert client.post("/login/verify", {"code": next_code(key)})["Location"] == "/account"


def test_security_page_names_and_defaults(client: Client, both: tuple[User, bytes]) -> None:
    """The methods panel lists both with the default marked; renaming shows the new name; bad names are refused."""
    user, key = both
    sign_in(client, user.username)
    client.post("/login/verify", {"code": next_code(key)})
    html = client.get("/account/security").content.decode()
    assert "Your sign-in methods" in html and ">default</span>" in html
    assert (
        client.post("/account/security/methods/rename", {"method": "totp", "name": "  Pixel   8 "}).status_code == 302
    )
    assert Authenticator.objects.get(user=user, method="totp").name == "Pixel 8"
    assert "Pixel 8" in client.get("/account/security").content.decode()
    client.post("/account/security/methods/rename", {"method": "totp", "name": "x" * 65})
    client.post("/account/security/methods/rename", {"method": "totp", "name": "bad\x07bell"})
    client.post("/account/security/methods/rename", {"method": "sms", "name": "nope"})
    assert Authenticator.objects.get(user=user, method="totp").name == "Pixel 8"
    assert len(events("two_factor.renamed")) == 1
    client.post("/account/security/methods/default", {"method": "sms"})
    assert not DefaultMethod.objects.exists()


def test_named_factor_is_named_at_sign_in(client: Client, both: tuple[User, bytes]) -> None:
    """The user's name for a factor appears in "Use another method"."""
    user, _ = both
    choice.rename(user, "email", "Backup mailbox", CLI)
    sign_in(client, user.username)
    assert "(Backup mailbox)" in verify_page(client)


@pytest.mark.django_db(transaction=True)
def test_switching_while_a_code_is_checked_does_not_deadlock(both: tuple[User, bytes]) -> None:
    """ "Use another method" and a code for the same sign-in at the same moment (two tabs, a retrying client).

    The switch must lock the account's row before the pending sign-in's, as
    the code's check does: on PostgreSQL, a switch that locked the pending
    row first deadlocked with a check holding the account's, and one of the
    two requests failed.
    """
    user, _ = both
    email = Authenticator.objects.get(user=user, method="email")

    for _ in range(40):
        # A wrong code counts against the account: start each round unthrottled.
        User.objects.filter(pk=user.pk).update(
            second_step_failures=0, second_step_blocked_until=None, second_step_locked_at=None
        )
        pending, _ = second_step.start(user, email, CLI)

        def switch(pending: PendingLogin = pending) -> str:
            choice.switch(pending, "totp", CLI)
            return "switched"

        assert sorted(at_once([code_check(pending, "000000"), switch])) == ["refused", "switched"]


@pytest.mark.django_db(transaction=True)
def test_a_double_clicked_switch_keeps_the_sign_in(
    both: tuple[User, bytes], mail_server: SmtpServer, frozen_clock: clock.FrozenClock
) -> None:
    """ "Email a code instead" sent twice at once (a double click, two tabs): both land on the email step.

    Both requests read the sign-in before either switched it.  The second
    then looked for the row the first had retired and was told the sign-in
    had expired: the page dropped the sign-in and sent the user back to the
    password, with the code already in their mailbox.
    """
    user, _ = both
    totp_factor = Authenticator.objects.get(user=user, method="totp")
    for _ in range(10):
        frozen_clock.advance(16 * 60)  # past the send caps of the previous round
        _, token = second_step.start(user, totp_factor, CLI)
        first, second = second_step.resolve(token), second_step.resolve(token)
        assert first is not None and second is not None

        def switch(pending: PendingLogin) -> str:
            try:
                return choice.switch(pending, "email", CLI).method
            except second_step.SecondStepError as exc:
                return exc.reason

        assert at_once([partial(switch, first), partial(switch, second)]) == ["email", "email"]
        live = second_step.resolve(token)
        assert live is not None and live.method == "email"
        # One code, not two: the second request found the sign-in switched already.
        assert OneTimeCode.objects.filter(pending_login=live).count() == 1


def test_a_factor_removed_while_it_is_renamed_is_no_server_error(
    both: tuple[User, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Email codes turned off in another tab right after their new name is saved: the rename still answers.

    The rename wrote the name, then read the factor back to show it; a
    removal in between left nothing to read and the request failed.
    """
    user, _ = both
    just_before(monkeypatch, choice, "record", partial(email_flows.remove, user, CLI))
    renamed = choice.rename(user, "email", "Backup mailbox", CLI)
    assert renamed.name == "Backup mailbox" and renamed.method == "email"
    assert not Authenticator.objects.filter(user=user, method="email").exists()
