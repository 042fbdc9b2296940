"""A provider that does not confirm a message it may have sent: the code stays usable and counts.

When the request reached the provider but its answer did not come in time
(or the connection broke), the message may well arrive.  Its code must then
work, and the send must count against the cooldown, the per-account and
per-number caps and the daily limit: otherwise every "Send a new code" while
the provider is slow sends another SMS, unlimited, to anyone who has the
password.  A failure that certainly sent nothing (refused connection, an
error answer) still discards the code and counts nothing
(test_sms_failures).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from tests.api.conftest import Api, api, error_code
from tests.conftest import PASSWORD, sign_in
from tests.mfa.sms.conftest import SECOND
from tests.mfa.sms.test_sms_factor import enrol, phone_id, signed_in
from tests.sms.fakes import FakeSet, FakeTwilio
from tests.sms.helpers import allow_sms, configure
from twostep.accounts.models import User
from twostep.audit.models import AuthEvent
from twostep.audit.services import CLI
from twostep.core import clock
from twostep.mfa.models import Authenticator, OneTimeCode
from twostep.mfa.sms import flows
from twostep.sms import service

__all__ = ["api"]

pytestmark = pytest.mark.django_db

UNCONFIRMED = "The SMS provider did not confirm the message; if a code arrives, enter it; otherwise ask for a new one"
#: The provider answers this long after the request; the configured timeout is 1 second.
SLOW = 2.5


@pytest.fixture
def slow_twilio(fakes: FakeSet) -> FakeTwilio:
    """A fake Twilio configured with a 1-second timeout (fast until a test slows it down)."""
    fake = fakes.twilio()
    configure(fake, timeout="1")
    allow_sms()
    return fake


def start_sign_in(user: User) -> Client:
    browser = Client()
    assert sign_in(browser, user.username)["Location"] == "/login/verify"
    return browser


def resend(browser: Client) -> str:
    return str(browser.post("/login/verify/sms/resend", follow=True).content.decode())


def test_late_sms_at_sign_in_still_signs_in(
    phone_user: User, slow_twilio: FakeTwilio, frozen_clock: clock.FrozenClock
) -> None:
    """The answer comes after the timeout: the user is told it may arrive, and the code that arrives works."""
    enrol(signed_in(phone_user), phone_user, slow_twilio)
    frozen_clock.advance(61)
    slow_twilio.fail(delay=SLOW)
    started = time.monotonic()
    browser = start_sign_in(phone_user)
    assert time.monotonic() - started < SLOW
    page = browser.get("/login/verify").content.decode()
    assert f"{UNCONFIRMED} in 60 seconds." in page
    assert "Enter the code sent to +1 ••• ••• 4321" in page
    assert "could not send" not in page and "No code was sent" not in page
    event = AuthEvent.objects.get(kind="sms.unconfirmed")
    assert event.reason == "delivery_unconfirmed" and event.outcome == "failure"
    assert "no answer within 1 second after the request was sent" in event.detail["error"]
    assert event.detail["to"] == "+1 ••• ••• 4321" and event.detail["purpose"] == "sign_in"
    assert not AuthEvent.objects.filter(kind="sms.not_sent").exists()
    slow_twilio.wait_for(2)  # the message did arrive, late
    assert browser.post("/login/verify", {"code": slow_twilio.last_code()})["Location"] == "/account"
    assert not AuthEvent.objects.filter(kind="login.second_step", reason="wrong_code").exists()


def test_resends_while_the_provider_is_slow_are_held(
    phone_user: User, slow_twilio: FakeTwilio, frozen_clock: clock.FrozenClock
) -> None:
    """Pressing "Send a new code" during a slow provider: the cooldown and the caps hold, and the count is right (FLT-03)."""
    enrol(signed_in(phone_user), phone_user, slow_twilio)  # message 1
    frozen_clock.advance(61)
    slow_twilio.fail(delay=SLOW)
    browser = start_sign_in(phone_user)  # message 2, unconfirmed
    for _ in range(8):
        assert "Wait 60 seconds before asking for a new code." in resend(browser)
    assert len(slow_twilio.requests) == 2
    for sent in (3, 4, 5):
        frozen_clock.advance(61)
        page = resend(browser)
        assert f"{UNCONFIRMED} in 60 seconds." in page and "We sent a new code" not in page
        assert len(slow_twilio.requests) == sent
    frozen_clock.advance(61)
    assert "Too many codes were sent" in resend(browser)
    assert len(slow_twilio.requests) == 5
    assert AuthEvent.objects.filter(kind="sms.unconfirmed").count() == 4
    # What the administrator sees counts every message that may have cost money.
    assert service.sent_in_window() == 5
    out = StringIO()
    call_command("sms", "status", stdout=out)
    assert "sent in the last 24 hours: 5 of 500" in out.getvalue()
    # Each new code replaced the one before: the last one to arrive works.
    slow_twilio.wait_for(5)
    assert browser.post("/login/verify", {"code": slow_twilio.last_code()})["Location"] == "/account"


def test_unconfirmed_send_counts_against_the_daily_limit(
    make_user: Callable[..., User], slow_twilio: FakeTwilio, frozen_clock: clock.FrozenClock
) -> None:
    """The service-wide daily limit counts unconfirmed messages: a slow provider does not lift it."""
    service.save_limits("2", "", origin=CLI)
    user = make_user("carol", phones=["+15550100001"])
    enrol(signed_in(user), user, slow_twilio, "+15550100001")  # 1 of 2
    frozen_clock.advance(61)
    slow_twilio.fail(delay=SLOW)
    browser = start_sign_in(user)  # 2 of 2, unconfirmed
    frozen_clock.advance(61)
    assert "daily limit" in resend(browser)
    assert len(slow_twilio.requests) == 2
    assert AuthEvent.objects.filter(kind="sms.not_sent", reason="daily_limit").exists()


def test_unconfirmed_enrolment_code_still_turns_sms_on(
    phone_user: User, slow_twilio: FakeTwilio, frozen_clock: clock.FrozenClock
) -> None:
    """At enrolment too: the user is told the code may arrive, the late code confirms, resends wait."""
    client = signed_in(phone_user)
    slow_twilio.fail(delay=SLOW)
    response = client.post(
        "/account/security/sms", {"action": "send", "phone": phone_id(phone_user, SECOND)}, follow=True
    )
    page = response.content.decode()
    assert f"{UNCONFIRMED} in 60 seconds." in page and "We sent a code" not in page
    assert f"Enter the code sent to {SECOND}" in page
    event = AuthEvent.objects.get(kind="sms.unconfirmed")
    assert event.detail["purpose"] == "enrol"
    page = client.post("/account/security/sms", {"action": "resend"}, follow=True).content.decode()
    assert "Wait 60 seconds before asking for a new code." in page
    assert len(slow_twilio.requests) == 1
    slow_twilio.wait_for(1)
    client.post("/account/security/sms", {"action": "confirm", "code": slow_twilio.last_code(SECOND)})
    assert Authenticator.objects.filter(user=phone_user, method="sms", confirmed_at__isnull=False).exists()


def test_confirmed_code_after_an_unconfirmed_one_is_plain_sent(
    phone_user: User, slow_twilio: FakeTwilio, frozen_clock: clock.FrozenClock
) -> None:
    """Once a later code is confirmed by the provider, the page no longer warns about the earlier one."""
    enrol(signed_in(phone_user), phone_user, slow_twilio)
    frozen_clock.advance(61)
    slow_twilio.fail(delay=SLOW)
    browser = start_sign_in(phone_user)
    slow_twilio.wait_for(2)
    slow_twilio.recover()
    frozen_clock.advance(61)
    page = resend(browser)
    assert "We sent a new code to +1 ••• ••• 4321." in page and UNCONFIRMED not in page


def test_api_sign_in_says_the_code_may_arrive(
    api: Api, make_user: Callable[..., User], slow_twilio: FakeTwilio, frozen_clock: clock.FrozenClock
) -> None:
    """The API's second-step answer: code_sent with the provider's silence explained; 429 until the cooldown ends."""
    user = make_user("dave", phones=["+15550100002"])
    flows.start_enrolment(user, user.phone_numbers.get().pk, CLI)
    flows.confirm(user, slow_twilio.last_code(), CLI)
    frozen_clock.advance(61)
    slow_twilio.fail(delay=SLOW)
    step = api.post("/auth/login", {"username": "dave", "password": PASSWORD}).json()
    assert step["code_sent"] is True
    assert step["prompt"] == f"{UNCONFIRMED} in 60 seconds."
    held = api.post("/auth/login/resend", {"login_token": step["login_token"]})
    assert held.status_code == 429 and error_code(held) == "rate_limited"
    assert len(slow_twilio.requests) == 2
    slow_twilio.wait_for(2)
    verified = api.post("/auth/login/verify", {"login_token": step["login_token"], "code": slow_twilio.last_code()})
    assert verified.status_code == 200 and verified.json()["status"] == "signed_in"


def test_unconfirmed_rows_are_the_codes_sent(
    phone_user: User, slow_twilio: FakeTwilio, frozen_clock: clock.FrozenClock
) -> None:
    """The unconfirmed code is an ordinary sent code in the database (live, counted), nothing more."""
    enrol(signed_in(phone_user), phone_user, slow_twilio)
    frozen_clock.advance(61)
    slow_twilio.fail(delay=SLOW)
    start_sign_in(phone_user)
    code = OneTimeCode.objects.filter(pending_login__isnull=False).get()
    assert code.sent_at is not None and code.superseded_at is None and code.consumed_at is None
    assert AuthEvent.objects.get(kind="sms.unconfirmed").detail["code_id"] == code.pk


def test_api_enrolment_says_the_code_may_arrive(
    api: Api, phone_user: User, slow_twilio: FakeTwilio, frozen_clock: clock.FrozenClock
) -> None:
    """POST /me/factors/sms answers 200 with `problem` set; the late code confirms the factor."""
    from twostep.api import tokens

    token = tokens.issue_sign_in_token(phone_user, origin=CLI).secret
    slow_twilio.fail(delay=SLOW)
    started = api.post("/me/factors/sms", {"phone_id": phone_id(phone_user, SECOND)}, token=token)
    assert started.status_code == 200, started.content
    assert started.json()["problem"] == f"{UNCONFIRMED} in 60 seconds."
    slow_twilio.wait_for(1)
    confirmed = api.post("/me/factors/sms/confirm", {"code": slow_twilio.last_code(SECOND)}, token=token)
    assert confirmed.status_code == 201, confirmed.content
