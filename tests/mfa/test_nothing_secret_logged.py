"""No secret, code or password reaches the Python log or the auth log, over every enrolment and sign-in (SEC-07)."""

from __future__ import annotations

import json
import logging
import re

import pytest
from django.conf import settings
from django.test import Client

from tests.conftest import PASSWORD, sign_in
from tests.mail.smtp_server import SmtpServer, certificates, mail_server, smtp_server
from tests.mfa.email.conftest import BACKUP, email_on
from tests.mfa.recovery_codes.helpers import fresh_codes
from tests.sms.conftest import fakes, twilio
from tests.sms.fakes import FakeTwilio
from twostep.accounts.models import PhoneNumber, User
from twostep.audit.models import AuthEvent
from twostep.core import clock
from twostep.core.runtime import set_setting
from twostep.factors import totp
from twostep.mfa.models import Authenticator

__all__ = ["certificates", "email_on", "fakes", "mail_server", "smtp_server", "twilio"]

pytestmark = pytest.mark.django_db(transaction=True)

#: Loggers of the test's own servers, which see the messages they receive.
TEST_SERVERS = ("mail.log", "asyncio")
WRONG_CODE = "864213"


def appears(secret: str, text: str) -> bool:
    """True when ``secret`` occurs in ``text`` on its own (a code inside a longer number does not count)."""
    return re.search(rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])", text) is not None


def test_no_secret_in_any_log(
    user: User, email_on: None, mail_server: SmtpServer, twilio: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    """Enrolling each method, signing in with each, wrong codes included: the Python log at DEBUG and every
    auth-log entry hold no password, TOTP secret, emailed or texted code, recovery code, typed code or
    session key."""
    set_setting("two_factor.methods", ["totp", "email", "sms"])
    caplog.set_level(logging.DEBUG)
    secrets: list[str] = [PASSWORD, WRONG_CODE]
    client = Client()
    assert sign_in(client, user.username)["Location"] == "/account"

    page = client.get("/account/security/totp").content.decode()
    match = re.search(r'id="manual-key">([A-Z2-7 ]+)<', page)
    assert match
    secret = match.group(1).replace(" ", "")
    key = totp.decode_secret(secret)
    assert client.post("/account/security/totp", {"code": WRONG_CODE}).status_code == 200
    secrets += [secret, key.hex()]
    for _ in range(2):  # the previous step's code; once more if the step turned meanwhile
        code = totp.totp(key, clock.timestamp() - 30)
        secrets.append(code)
        if client.post("/account/security/totp", {"code": code}).status_code == 302:
            break
    assert Authenticator.objects.filter(user=user, method="totp", confirmed_at__isnull=False).exists()

    # Adding a second method asks first for a code of the first (the step-up), carried through.
    address = user.email_addresses.get(email=BACKUP).pk
    send = {"action": "send", "address": address}
    assert client.post("/account/security/email", send).status_code == 200
    step_up_code = totp.totp(key, clock.timestamp())
    if step_up_code == code:  # the step set-up used: the next one, which the server also accepts
        step_up_code = totp.totp(key, clock.timestamp() + 30)
    secrets.append(step_up_code)
    proven = client.post("/account/security/email", {**send, "stepup-action": "code", "stepup-code": step_up_code})
    assert proven.status_code == 302
    emailed = mail_server.last_code(BACKUP)
    assert client.post("/account/security/email", {"action": "confirm", "code": emailed}).status_code == 302
    secrets.append(emailed)

    phone = PhoneNumber.objects.get(user=user).pk
    assert client.post("/account/security/sms", {"action": "send", "phone": phone}).status_code == 302
    texted = twilio.last_code()
    assert client.post("/account/security/sms", {"action": "confirm", "code": texted}).status_code == 302
    secrets.append(texted)

    recovery = fresh_codes(client)
    assert recovery
    secrets += recovery + [c.replace("-", "") for c in recovery]

    for typed in (WRONG_CODE, totp.hotp(key, totp.time_step(clock.timestamp()) + 1)):
        browser = Client()
        assert sign_in(browser, user.username)["Location"] == "/login/verify"
        browser.post("/login/verify/method", {"method": "totp"})
        browser.post("/login/verify", {"code": typed})
    secrets.append(typed)
    browser = Client()
    sign_in(browser, user.username)
    response = browser.post("/login/recovery", {"recovery_code": recovery[0]})
    assert response.status_code == 302, response.content.decode()[-3000:]
    # The session keys too: whoever reads a log must not be able to take over a session.
    secrets += [c.cookies[settings.SESSION_COOKIE_NAME].value for c in (client, browser)]

    logged = "\n".join(
        f"{record.name} {record.getMessage()} {record.args!r} {record.exc_text or ''}"
        for record in caplog.records
        if not record.name.startswith(TEST_SERVERS)
    )
    audited = "\n".join(
        json.dumps([e.kind, e.reason, e.username, e.user_agent, e.detail]) for e in AuthEvent.objects.all()
    )
    # Signed in three times: password alone, then with the app, then with a recovery code.
    assert AuthEvent.objects.filter(kind="login", outcome="success").count() == 3
    for value in secrets:
        assert not appears(value, logged), value
        assert not appears(value, audited), value
