"""An email factor confirms a change to the second step with a code mailed for that purpose (AZ-01)."""

from __future__ import annotations

from functools import partial

import pytest
from django.test import Client

from tests.conftest import forget_second_factor_proof, sign_in
from tests.mail.smtp_server import SmtpServer
from tests.mfa.email.conftest import BACKUP
from tests.mfa.races import just_before
from tests.mfa.test_step_up import asked_for_code
from twostep.accounts.models import User
from twostep.core import clock
from twostep.core.decorators import REAUTH_KEY
from twostep.core.runtime import set_setting
from twostep.mfa import codes, step_up
from twostep.mfa.models import Authenticator, OneTimeCode, PendingLogin, Purpose
from twostep.mfa.step_up_views import EXPIRED, SESSION_KEY

pytestmark = pytest.mark.django_db


def begin_step_up(client: Client, page: str) -> object:
    """Open ``page``, which asks how to confirm; choose the email code; return the code prompt."""
    chooser = client.get(page)
    assert chooser.status_code == 200 and "mfa/step_up/begin.html" in [t.name for t in chooser.templates]
    prompt = client.post(page, {"stepup-get": "1", "stepup-action": "begin", "stepup-method": "email"})
    assert asked_for_code(prompt)
    return prompt


def test_email_code_confirms(user: User, mail_server: SmtpServer, enrolled: Authenticator) -> None:
    """An email factor confirms with a code mailed for this purpose (real SMTP), not a sign-in code."""
    client = Client()
    sign_in(client, user.username)
    assert client.post("/login/verify", {"code": mail_server.last_code(BACKUP)})["Location"] == "/account"
    forget_second_factor_proof(client)  # the sign-in's code proved the factor just now
    mail_server.received.clear()
    begin_step_up(client, "/account/security/totp")
    message = mail_server.received[-1]
    assert "confirm a security change" in message.subject
    done = client.post(
        "/account/security/totp",
        {"stepup-get": "1", "stepup-action": "code", "stepup-code": mail_server.last_code(BACKUP)},
    )
    assert done.status_code == 302 and done["Location"] == "/account/security/totp"


def test_a_link_to_a_page_mails_nothing(user: User, mail_server: SmtpServer, enrolled: Authenticator) -> None:
    """AZ-04: a set-up page opened from a link (any site's) asks how to confirm, and sends nothing until
    a button is pressed; the button's POST needs the form's CSRF token."""
    signed_in = Client()
    sign_in(signed_in, user.username)
    assert signed_in.post("/login/verify", {"code": mail_server.last_code(BACKUP)})["Location"] == "/account"
    forget_second_factor_proof(signed_in)
    client = Client(enforce_csrf_checks=True)  # the browser, as another site's page drives it
    client.cookies = signed_in.cookies
    mail_server.received.clear()
    codes_before = OneTimeCode.objects.count()
    for page in ("/account/security/totp", "/account/security/email", "/account/security/sms"):
        chooser = client.get(page, HTTP_SEC_FETCH_SITE="cross-site")
        assert "Email a code to" in chooser.content.decode(), page
        # A script on a sibling site may fetch with HEAD or OPTIONS (no preflight, the cookie goes along).
        assert client.head(page).status_code == 200 and client.options(page).status_code == 200
    forged = client.post(
        "/account/security/totp", {"stepup-get": "1", "stepup-action": "begin", "stepup-method": "email"}
    )
    assert forged.status_code == 403
    assert OneTimeCode.objects.count() == codes_before and not mail_server.received
    assert not PendingLogin.objects.filter(user=user, purpose=Purpose.STEP_UP).exists()


def test_a_chooser_left_open_after_a_confirmation_elsewhere_shows_the_page(
    user: User, mail_server: SmtpServer, enrolled: Authenticator
) -> None:
    """Its button, pressed after a code was confirmed in another tab, opens the page; no empty form is sent on."""
    client = Client()
    sign_in(client, user.username)
    assert client.post("/login/verify", {"code": mail_server.last_code(BACKUP)})["Location"] == "/account"
    # The sign-in's code is a fresh proof: the chooser's button arrives with nothing left to confirm.
    pressed = client.post(
        "/account/security/totp", {"stepup-get": "1", "stepup-action": "begin", "stepup-method": "email"}
    )
    assert pressed.status_code == 302 and pressed["Location"] == "/account/security/totp"


def test_choosing_another_method_in_a_second_chooser_switches(
    user: User, mail_server: SmtpServer, enrolled: Authenticator, two_factor_on: None
) -> None:
    """Two choosers open: email chosen in one, the app in the other; the app is what is asked for."""
    from tests.mfa.recovery_codes.helpers import enrol_totp

    enrol_totp(user)
    set_setting("two_factor.methods", ["totp", "email"])
    client = Client()
    sign_in(client, user.username)
    assert client.post("/login/verify", {"code": mail_server.last_code(BACKUP)})["Location"] == "/account"
    forget_second_factor_proof(client)
    begin_step_up(client, "/account/security/totp")
    again = client.post(
        "/account/security/totp", {"stepup-get": "1", "stepup-action": "begin", "stepup-method": "totp"}
    )
    assert asked_for_code(again) and "authenticator app" in again.content.decode()
    live = step_up.resolve(client.session[SESSION_KEY], user)
    assert live is not None and live.method == "totp"


@pytest.mark.parametrize("ending", ["expired", "confirmed elsewhere"])
def test_a_new_code_asked_for_as_the_confirmation_ends(
    user: User,
    mail_server: SmtpServer,
    enrolled: Authenticator,
    frozen_clock: clock.FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    ending: str,
) -> None:
    """The confirmation ends just as "Send a new code" makes its code: nothing mailed, not a server error.
    Expired, the password is asked again, as for any expired one; confirmed in another tab, it is not."""
    client = Client()
    sign_in(client, user.username)
    assert client.post("/login/verify", {"code": mail_server.last_code(BACKUP)})["Location"] == "/account"
    forget_second_factor_proof(client)
    begin_step_up(client, "/account/security/totp")
    mailed = len(mail_server.messages())
    frozen_clock.advance(61)
    waiting = PendingLogin.objects.filter(user=user, purpose=Purpose.STEP_UP, completed_at__isnull=True)
    end = {"completed_at": clock.now()} if ending == "confirmed elsewhere" else {"expires_at": clock.now()}
    just_before(monkeypatch, codes, "issue", partial(waiting.update, **end))
    response = client.post("/account/security/totp", {"stepup-get": "1", "stepup-action": "resend"}, follow=True)
    assert response.redirect_chain[-1][0] == "/account/security"
    page = response.content.decode()
    assert len(mail_server.messages()) == mailed
    if ending == "expired":
        assert EXPIRED in page and REAUTH_KEY not in client.session
    else:
        assert "confirmed in another window" in page and REAUTH_KEY in client.session
