"""Provider failures and abuse limits at sign-in: clear errors, nobody let in, nothing consumed."""

from __future__ import annotations

import time
from functools import partial

import pytest
from django.test import Client

from tests.conftest import sign_in
from tests.mfa.races import just_before
from tests.mfa.sms.conftest import PRIMARY, SECOND
from tests.mfa.sms.test_sms_factor import enrol, phone_id, signed_in
from tests.sms.fakes import FakeSet, FakeTwilio, FakeVonage
from tests.sms.helpers import allow_sms, configure
from twostep.accounts.models import User
from twostep.audit.models import AuthEvent
from twostep.audit.services import CLI
from twostep.core import clock
from twostep.core.housekeeping import prune
from twostep.mfa.models import OneTimeCode
from twostep.sms import service
from twostep.usersessions.services import end_sessions

pytestmark = pytest.mark.django_db
# Tests whose threads race each other need commits: django_db(transaction=True).

COULD_NOT_SEND = "We could not send the code. Try again in a moment."


def start_sign_in(user: User) -> Client:
    browser = Client()
    assert sign_in(browser, user.username)["Location"] == "/login/verify"
    return browser


@pytest.mark.parametrize(
    ("status", "body", "retryable"),
    [(503, {"code": 20500, "message": "Service unavailable", "status": 503}, True), (401, None, False)],
)
def test_provider_error_at_sign_in(
    phone_user: User, twilio: FakeTwilio, status: int, body: object, retryable: bool
) -> None:
    """A 5xx or 4xx from the provider: the user sees a clear error, the admin the provider's, nobody gets in (FLT-03)."""
    enrol(signed_in(phone_user), phone_user, twilio)
    codes_before = OneTimeCode.objects.count()
    twilio.fail(status, body if body is not None else FakeTwilio.error(401, 20003, "Authenticate"))
    browser = start_sign_in(phone_user)
    page = browser.get("/login/verify").content.decode()
    assert COULD_NOT_SEND in page
    assert "Send a new code" in page
    # The field's label does not claim a code went to the number.
    assert "No code was sent for this sign-in yet" in page and "Enter the code sent to" not in page
    # Nothing to type yet: the focus is not put in the field, the alert above it is read out.
    assert "autofocus" not in page.split('id="id_code"')[1].split(">")[0]
    assert browser.get("/account").status_code == 302
    event = AuthEvent.objects.filter(kind="sms.not_sent", reason="delivery_failed").latest("id")
    assert f"HTTP {status}" in event.detail["error"]
    assert event.detail["retryable"] is retryable
    assert event.detail["provider"] == "twilio" and event.detail["to"] == "+1 ••• ••• 4321"
    # Nothing consumed: no code row, so no cooldown and no cap used up.
    assert OneTimeCode.objects.count() == codes_before
    assert browser.post("/login/verify", {"code": "000000"}).status_code == 200
    twilio.recover()
    response = browser.post("/login/verify/sms/resend", follow=True)
    assert "We sent a new code" in response.content.decode()
    assert browser.post("/login/verify", {"code": twilio.last_code()})["Location"] == "/account"


def test_provider_timeout_at_sign_in_is_bounded(phone_user: User, fakes: FakeSet) -> None:
    """A provider that hangs is given up after its timeout; the user is told, nobody gets in (FLT-03).

    The request had gone out, so the message may arrive: the user is told
    that, not that nothing was sent (see test_sms_unconfirmed).
    """
    fake = fakes.vonage()
    configure(fake, sender="twostep", timeout="1")
    allow_sms()
    enrol(signed_in(phone_user), phone_user, fake)  # type: ignore[arg-type]
    fake.fail(delay=4.0, count=1)
    started = time.monotonic()
    browser = start_sign_in(phone_user)
    assert time.monotonic() - started < 3.0
    page = browser.get("/login/verify").content.decode()
    assert "The SMS provider did not confirm the message" in page and COULD_NOT_SEND not in page
    event = AuthEvent.objects.filter(kind="sms.unconfirmed", reason="delivery_unconfirmed").latest("id")
    assert "no answer within 1 second" in event.detail["error"] and event.detail["retryable"] is True
    assert browser.get("/account").status_code == 302


def test_provider_unreachable_at_sign_in(phone_user: User, twilio: FakeTwilio, frozen_clock: clock.FrozenClock) -> None:
    """Connection refused is the same clear error for the user; nothing went out, so nothing is counted."""
    enrol(signed_in(phone_user), phone_user, twilio)
    frozen_clock.advance(61)
    codes_before, sent_before = OneTimeCode.objects.count(), service.sent_in_window()
    twilio.stop()
    browser = start_sign_in(phone_user)
    assert COULD_NOT_SEND in browser.get("/login/verify").content.decode()
    event = AuthEvent.objects.filter(reason="delivery_failed").latest("id")
    assert "cannot connect" in event.detail["error"]
    assert OneTimeCode.objects.count() == codes_before and service.sent_in_window() == sent_before
    assert not AuthEvent.objects.filter(kind="sms.unconfirmed").exists()
    # No cooldown either: asking again at once tries the provider again.
    response = browser.post("/login/verify/sms/resend", follow=True).content.decode()
    assert "Wait" not in response and COULD_NOT_SEND in response
    assert AuthEvent.objects.filter(reason="delivery_failed").count() == 2
    assert OneTimeCode.objects.count() == codes_before


def test_failed_resend_keeps_the_earlier_code(
    phone_user: User, twilio: FakeTwilio, frozen_clock: clock.FrozenClock
) -> None:
    """If a new code cannot be sent, the one sent before still works and the user is told so."""
    enrol(signed_in(phone_user), phone_user, twilio)
    frozen_clock.advance(61)
    browser = start_sign_in(phone_user)
    code = twilio.last_code()
    frozen_clock.advance(61)
    twilio.fail(503, {"message": "boom"})
    response = browser.post("/login/verify/sms/resend", follow=True)
    assert "The code we sent before still works" in response.content.decode()
    assert browser.post("/login/verify", {"code": code})["Location"] == "/account"


def test_destination_cap_at_sign_in(phone_user: User, twilio: FakeTwilio, frozen_clock: clock.FrozenClock) -> None:
    """After 5 codes to a number in 15 minutes, nothing more is sent; the user and the log say why (BF-09)."""
    enrol(signed_in(phone_user), phone_user, twilio, SECOND)  # code 1
    for _ in range(4):  # codes 2-5
        frozen_clock.advance(61)
        start_sign_in(phone_user)
    assert len(twilio.received) == 5
    frozen_clock.advance(61)
    browser = start_sign_in(phone_user)
    assert len(twilio.received) == 5
    page = browser.get("/login/verify").content.decode()
    assert "Too many codes were sent" in page and "Try again in" in page
    event = AuthEvent.objects.filter(kind="sms.not_sent").latest("id")
    assert event.reason in {"account_limit", "destination_limit"}
    assert event.detail["retry_after"] > 0
    # After the window, codes flow again.
    frozen_clock.advance(15 * 60)
    browser = start_sign_in(phone_user)
    assert len(twilio.received) == 6


def test_daily_limit_at_sign_in(make_user, twilio: FakeTwilio, frozen_clock: clock.FrozenClock) -> None:  # type: ignore[no-untyped-def]
    """The global daily limit stops all SMS once reached, across users, until the 24 hours roll on (BF-09)."""
    service.save_limits("3", "", origin=CLI)
    users = [make_user(f"u{i}", phones=[f"+1555000000{i}"]) for i in range(3)]
    for user in users:
        enrol(signed_in(user), user, twilio, f"+1555000000{users.index(user)}")
    assert len(twilio.received) == 3
    frozen_clock.advance(61)
    browser = start_sign_in(users[0])
    assert len(twilio.received) == 3
    assert "daily limit" in browser.get("/login/verify").content.decode()
    assert AuthEvent.objects.filter(kind="sms.not_sent", reason="daily_limit").exists()
    # Housekeeping does not forget codes inside the window (the count must not drop).
    prune()
    assert service.sent_in_window() == 3
    frozen_clock.advance(24 * 3600)
    start_sign_in(users[0])
    assert len(twilio.received) == 4


def test_country_not_allowed_at_sign_in(phone_user: User, twilio: FakeTwilio) -> None:
    """A number outside the allowed country codes gets nothing; the user is told to contact an admin."""
    enrol(signed_in(phone_user), phone_user, twilio, PRIMARY)
    service.save_limits("100", "44", origin=CLI)
    sent = len(twilio.received)
    browser = start_sign_in(phone_user)
    assert len(twilio.received) == sent
    assert "cannot be sent to this phone number" in browser.get("/login/verify").content.decode()
    assert AuthEvent.objects.filter(kind="sms.not_sent", reason="country_not_allowed").exists()


def test_enrolment_send_failure_is_explained(phone_user: User, fakes: FakeSet) -> None:
    """At enrolment too, a provider failure is a clear message and SMS stays off."""
    fake: FakeVonage = fakes.vonage()
    configure(fake, sender="twostep")
    allow_sms()
    fake.fail(200, FakeVonage.failed("5", "Internal Error"))
    client = signed_in(phone_user)
    response = client.post("/account/security/sms", {"action": "send", "phone": phone_id(phone_user, PRIMARY)})
    assert COULD_NOT_SEND in response.content.decode()
    assert not OneTimeCode.objects.exists()
    # Coming back, the page does not ask for a code that never went out.
    page = client.get("/account/security/sms").content.decode()
    assert "Enter the code sent to" not in page
    assert f"No code could be sent to {PRIMARY}. Try again, or choose another number." in page
    fake.recover()
    response = client.post("/account/security/sms", {"action": "resend"}, follow=True)
    assert "We sent a new code" in response.content.decode()
    client.post("/account/security/sms", {"action": "confirm", "code": fake.last_code()})
    assert AuthEvent.objects.filter(kind="sms.enabled").exists()


def test_no_code_or_body_in_logs_or_auth_log(
    phone_user: User, twilio: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    """Across enrolment, sign-in and a failure, no code, message body or full number is logged."""
    caplog.set_level("DEBUG")
    enrol(signed_in(phone_user), phone_user, twilio, SECOND)
    twilio.fail(503, lambda raw: {"message": raw.decode()}, count=1)
    start_sign_in(phone_user)
    start_sign_in(phone_user)
    codes = twilio.codes()
    assert codes
    logged = caplog.text + str([[e.kind, e.reason, e.detail, e.username] for e in AuthEvent.objects.all()])
    for code in codes:
        assert code not in logged
    assert SECOND not in logged and SECOND[1:] not in logged
    assert "sign-in code" not in logged


@pytest.mark.django_db(transaction=True)
def test_daily_limit_holds_under_concurrency(make_user, fakes: FakeSet) -> None:  # type: ignore[no-untyped-def]
    """Eight users asking for a code at the same moment with 3 slots left: exactly 3 messages go out."""
    import threading

    from django.db import connection

    from twostep.mfa.sms import flows

    fake = fakes.webhook()
    configure(fake)
    allow_sms()
    service.save_limits("3", "", origin=CLI)
    people = [make_user(f"c{i}", phones=[f"+1555010000{i}"]) for i in range(8)]
    phones = [user.phone_numbers.get().pk for user in people]
    barrier = threading.Barrier(len(people))
    outcomes: list[str] = []

    def ask(user: User, phone: int) -> None:
        try:
            barrier.wait()
            flows.start_enrolment(user, phone, CLI)
            outcomes.append("sent")
        except service.NotSent as exc:
            outcomes.append(exc.reason)
        finally:
            connection.close()

    threads = [threading.Thread(target=ask, args=pair) for pair in zip(people, phones, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["daily_limit"] * 5 + ["sent"] * 3
    assert len(fake.received) == 3


def test_resend_as_the_sign_in_ends_goes_back_to_the_form(
    phone_user: User, twilio: FakeTwilio, frozen_clock: clock.FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user's sessions end just as "Send a new code" starts to send: back to the sign-in form, no message
    sent, the auth log says why; not a server error."""
    enrol(signed_in(phone_user), phone_user, twilio)
    frozen_clock.advance(61)
    browser = start_sign_in(phone_user)
    sent = len(twilio.received)
    frozen_clock.advance(61)
    just_before(monkeypatch, service, "preflight", partial(end_sessions, phone_user))
    response = browser.post("/login/verify/sms/resend", follow=True)
    assert response.redirect_chain[-1][0] == "/login"
    assert "Your sign-in expired. Please sign in again." in response.content.decode()
    assert len(twilio.received) == sent
    assert AuthEvent.objects.filter(kind="sms.not_sent", reason="ended", user=phone_user).exists()
