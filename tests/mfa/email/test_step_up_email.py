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
from twostep.mfa import codes
from twostep.mfa.models import Authenticator, PendingLogin, Purpose
from twostep.mfa.step_up_views import EXPIRED

pytestmark = pytest.mark.django_db


def test_email_code_confirms(user: User, mail_server: SmtpServer, enrolled: Authenticator) -> None:
    """An email factor confirms with a code mailed for this purpose (real SMTP), not a sign-in code."""
    client = Client()
    sign_in(client, user.username)
    assert client.post("/login/verify", {"code": mail_server.last_code(BACKUP)})["Location"] == "/account"
    forget_second_factor_proof(client)  # the sign-in's code proved the factor just now
    mail_server.received.clear()
    prompt = client.get("/account/security/totp")
    assert asked_for_code(prompt)
    message = mail_server.received[-1]
    assert "confirm a security change" in message.subject
    done = client.post(
        "/account/security/totp",
        {"stepup-get": "1", "stepup-action": "code", "stepup-code": mail_server.last_code(BACKUP)},
    )
    assert done.status_code == 302 and done["Location"] == "/account/security/totp"


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
    assert asked_for_code(client.get("/account/security/totp"))
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
