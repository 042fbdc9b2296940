"""POST /api/v1/auth/login/resend: a new email or SMS code for a pending sign-in, with the cooldown."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from django.conf import settings

from tests.api.conftest import Api, allow_only, enrol_totp, error_code
from tests.conftest import PASSWORD
from tests.mail.smtp_server import SmtpServer, certificates, mail_server, smtp_server
from tests.mfa.email.conftest import BACKUP, email_on
from tests.mfa.races import just_before
from tests.sms.conftest import fakes, twilio
from tests.sms.fakes import FakeTwilio
from twostep.accounts.models import User
from twostep.audit.models import AuthEvent
from twostep.audit.services import CLI
from twostep.core import clock
from twostep.mfa import codes
from twostep.mfa.email import flows as email_flows
from twostep.mfa.sms import flows as sms_flows
from twostep.sms import service as sms_service
from twostep.usersessions.services import end_sessions

__all__ = ["certificates", "email_on", "fakes", "mail_server", "smtp_server", "twilio"]

PHONE = "+15551234567"


def login(api: Api, username: str) -> dict[str, Any]:
    response = api.post("/auth/login", {"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    assert body["status"] == "second_step_required"
    return body


def enrol_email_codes(user: User, server: SmtpServer) -> None:
    """Email codes to the backup address, confirmed; the mailbox emptied."""
    email_flows.start_enrolment(user, user.email_addresses.get(email=BACKUP).pk, CLI)
    email_flows.confirm_enrolment(user, server.last_code(BACKUP), CLI)
    server.received.clear()


def enrol_sms_codes(user: User, twilio: FakeTwilio) -> None:
    """SMS codes to the user's one number, confirmed; the provider's inbox emptied."""
    sms_flows.start_enrolment(user, user.phone_numbers.get().pk, CLI)
    sms_flows.confirm(user, twilio.last_code(PHONE), CLI)
    twilio.received.clear()


def test_email_resend_cooldown_then_new_code(
    api: Api, user: User, mail_server: SmtpServer, email_on: None, frozen_clock: clock.FrozenClock
) -> None:
    """Within the cooldown: 429 with Retry-After and no mail; after it, a new code that signs in (the old one dies)."""
    enrol_email_codes(user, mail_server)

    step = login(api, "alice")
    assert step["method"] == "email"
    first = mail_server.last_code(BACKUP)
    held = api.post("/auth/login/resend", {"login_token": step["login_token"]})
    assert held.status_code == 429 and error_code(held) == "rate_limited"
    assert 1 <= int(held["Retry-After"]) <= 60
    assert len(mail_server.messages()) == 1

    frozen_clock.advance(int(held["Retry-After"]))
    resent = api.post("/auth/login/resend", {"login_token": step["login_token"]})
    assert resent.status_code == 200, resent.content
    assert resent.json()["method"] == "email" and resent.json()["login_token"] == step["login_token"]
    assert len(mail_server.messages()) == 2
    second = mail_server.last_code(BACKUP)
    if first != second:
        old = api.post("/auth/login/verify", {"login_token": step["login_token"], "code": first})
        assert old.status_code == 401
    verified = api.post("/auth/login/verify", {"login_token": step["login_token"], "code": second})
    assert verified.status_code == 200 and verified.json()["status"] == "signed_in"


def test_sms_resend_cooldown_and_provider_failure(
    api: Api, make_user: Callable[..., User], twilio: FakeTwilio, frozen_clock: clock.FrozenClock
) -> None:
    """SMS: 429 within the cooldown; a provider failure answers 503 delivery_failed; then a new code signs in."""
    enrol_sms_codes(make_user("bob", phones=[PHONE]), twilio)

    step = login(api, "bob")
    assert step["method"] == "sms" and len(twilio.received) == 1
    held = api.post("/auth/login/resend", {"login_token": step["login_token"]})
    assert held.status_code == 429 and error_code(held) == "rate_limited" and int(held["Retry-After"]) >= 1

    frozen_clock.advance(61)
    twilio.fail(503, {"code": 20500, "message": "down"})
    failed = api.post("/auth/login/resend", {"login_token": step["login_token"]})
    assert failed.status_code == 503 and error_code(failed) == "delivery_failed"
    twilio.recover()
    # The failed delivery started no new cooldown.
    resent = api.post("/auth/login/resend", {"login_token": step["login_token"]})
    assert resent.status_code == 200, resent.content
    verified = api.post("/auth/login/verify", {"login_token": step["login_token"], "code": twilio.last_code(PHONE)})
    assert verified.status_code == 200


def test_login_says_when_no_code_could_be_sent(
    api: Api, make_user: Callable[..., User], twilio: FakeTwilio, frozen_clock: clock.FrozenClock
) -> None:
    """The provider down at the password step: the answer says no code is out (not "sent to ..."); resend fixes it."""
    enrol_sms_codes(make_user("bob", phones=[PHONE]), twilio)
    frozen_clock.advance(61)
    twilio.fail(503, {"code": 20500, "message": "down"})
    step = login(api, "bob")
    assert step["code_sent"] is False
    assert "could not send" in step["prompt"] and "sent to" not in step["prompt"]
    twilio.recover()
    resent = api.post("/auth/login/resend", {"login_token": step["login_token"]}).json()
    assert resent["code_sent"] is True and resent["prompt"].startswith("Enter the code sent to")
    verified = api.post("/auth/login/verify", {"login_token": step["login_token"], "code": twilio.last_code(PHONE)})
    assert verified.status_code == 200


def test_totp_has_nothing_to_resend(api: Api, user: User, two_factor_on: None) -> None:
    """An authenticator app's sign-in answers 409 method_unavailable, and the sign-in goes on."""
    enrol_totp(user)
    step = login(api, "alice")
    assert step["code_sent"] is None
    response = api.post("/auth/login/resend", {"login_token": step["login_token"]})
    assert response.status_code == 409 and error_code(response) == "method_unavailable"
    assert "no code to resend" in response.json()["error"]["message"]


def test_unknown_login_token(api: Api, db: None) -> None:
    """A login token that is unknown (or expired) answers 401 login_expired."""
    response = api.post("/auth/login/resend", {"login_token": "not-a-real-token"})
    assert response.status_code == 401 and error_code(response) == "login_expired"


def test_removed_address_sends_nothing(
    api: Api, user: User, mail_server: SmtpServer, email_on: None, frozen_clock: clock.FrozenClock
) -> None:
    """Once the factor's address is removed from the account, resend sends nothing anywhere (409)."""
    address = user.email_addresses.get(email=BACKUP)
    email_flows.start_enrolment(user, address.pk, CLI)
    email_flows.confirm_enrolment(user, mail_server.last_code(BACKUP), CLI)
    enrol_totp(user)
    step = api.post("/auth/login", {"username": "alice", "password": PASSWORD, "method": "email"}).json()
    assert step["method"] == "email"
    sent = len(mail_server.messages())
    address.delete()
    frozen_clock.advance(120)
    response = api.post("/auth/login/resend", {"login_token": step["login_token"]})
    assert response.status_code == 409 and error_code(response) == "method_unavailable"
    assert len(mail_server.messages()) == sent


def test_locked_second_step_sends_nothing(
    api: Api, user: User, mail_server: SmtpServer, email_on: None, frozen_clock: clock.FrozenClock
) -> None:
    """With the second step locked, resend mails nothing and answers the generic failure, like a code would."""
    enrol_email_codes(user, mail_server)
    User.objects.filter(pk=user.pk).update(second_step_failures=20, second_step_locked_at=clock.now())
    step = login(api, "alice")
    frozen_clock.advance(120)
    response = api.post("/auth/login/resend", {"login_token": step["login_token"]})
    assert response.status_code == 401 and error_code(response) == "second_step_failed"
    assert mail_server.messages() == []


def test_codes_reach_only_their_channel(
    api: Api, user: User, make_user: Callable[..., User], mail_server: SmtpServer, twilio: FakeTwilio,
    email_on: None, frozen_clock: clock.FrozenClock,
) -> None:  # fmt: skip
    """Sign-in and resend answers, pages, redirects and headers never carry the emailed or texted code (SEC-06)."""
    from django.test import Client

    allow_only("totp", "email", "sms")
    enrol_email_codes(user, mail_server)
    enrol_sms_codes(make_user("bob", phones=[PHONE]), twilio)
    answers: list[Any] = []
    sent: list[str] = []
    for name, last_code in (("alice", lambda: mail_server.last_code(BACKUP)), ("bob", lambda: twilio.last_code(PHONE))):
        step = api.post("/auth/login", {"username": name, "password": PASSWORD})
        sent.append(last_code())
        frozen_clock.advance(61)
        answers += [step, api.post("/auth/login/resend", {"login_token": step.json()["login_token"]})]
        sent.append(last_code())
        answers.append(api.post("/auth/login/verify", {"login_token": step.json()["login_token"], "code": "12345"}))
        browser = Client()
        answers.append(browser.post("/login", {"username": name, "password": PASSWORD}))
        sent.append(last_code())
        answers.append(browser.get("/login/verify"))
        frozen_clock.advance(61)
        answers.append(browser.post(f"/login/verify/{'email' if name == 'alice' else 'sms'}/resend"))
        sent.append(last_code())
        answers += [browser.get("/login/verify"), browser.post("/login/verify", {"code": "12345"})]
    assert len(set(sent)) >= 2 and all(re.fullmatch(r"[0-9]{6}", code) for code in sent)
    for response in answers:
        text = response.content.decode() + " ".join(f"{k}: {v}" for k, v in response.items())
        assert not [code for code in sent if code in text], (response.status_code, text[:300])


def test_whether_a_code_went_out_is_told_only_after_the_password(api: Api, user: User, twilio: FakeTwilio) -> None:
    """Before the right password nothing is sent and nothing tells whether a code could be: a wrong password
    answers alike with the provider up or down, and a resend answers alike for a made-up and a spent login
    token (ENUM-05).  Only the holder of a live sign-in (who typed the password) learns that the provider
    failed, so that they can try again or choose another method."""
    enrol_sms_codes(user, twilio)
    wrong = {"username": user.username, "password": "wrong password!"}
    up = api.post("/auth/login", wrong)
    twilio.fail(503)
    down = api.post("/auth/login", wrong)
    assert (up.status_code, up.content) == (down.status_code, down.content)
    assert twilio.received == []

    twilio.recover()
    spent = login(api, user.username)["login_token"]
    assert api.post("/auth/login/verify", {"login_token": spent, "code": twilio.last_code(PHONE)}).status_code == 200
    refusals = [api.post("/auth/login/resend", {"login_token": token}) for token in ("x" * 43, spent)]
    assert refusals[0].status_code == 401
    assert len({(r.status_code, r.content) for r in refusals}) == 1

    twilio.fail(503)
    assert login(api, user.username)["code_sent"] is False


@pytest.mark.parametrize("method", ["email", "sms"])
def test_resend_as_the_sign_in_ends_answers_login_expired(
    api: Api,
    user: User,
    make_user: Callable[..., User],
    mail_server: SmtpServer,
    twilio: FakeTwilio,
    email_on: None,
    frozen_clock: clock.FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
) -> None:
    """The user's sessions end just as a resend starts making its code: 401 login_expired, nothing sent."""
    if method == "sms":
        allow_only("totp", "email", "sms")
        signing_in = make_user("bob", phones=[PHONE])
        enrol_sms_codes(signing_in, twilio)
        outbox: Callable[[], int] = lambda: len(twilio.received)  # noqa: E731
        owner, name = sms_service, "preflight"  # before the sending transaction
    else:
        signing_in = user
        enrol_email_codes(user, mail_server)
        outbox = lambda: len(mail_server.messages())  # noqa: E731
        owner, name = codes, "issue"
    step = login(api, signing_in.username)
    assert step["method"] == method
    sent = outbox()
    frozen_clock.advance(61)
    just_before(monkeypatch, owner, name, partial(end_sessions, signing_in))
    response = api.post("/auth/login/resend", {"login_token": step["login_token"]})
    assert response.status_code == 401 and error_code(response) == "login_expired", response.content
    assert outbox() == sent


def test_codes_asked_for_from_one_address_are_capped(
    api: Api,
    make_user: Callable[..., User],
    mail_server: SmtpServer,
    twilio: FakeTwilio,
    email_on: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past ``security.codes_per_address`` codes from one client, email and SMS together, the next accounts'
    sign-ins send nothing; their resends answer 429 saying why, and the auth log records it (BF-09)."""
    allow_only("totp", "email", "sms")
    monkeypatch.setattr(settings.CONFIG.security, "codes_per_address", 2)
    for number, (name, method) in enumerate([("ann", "email"), ("ben", "sms"), ("cat", "sms"), ("dan", "email")]):
        phone = f"+1555000000{number}"
        member = make_user(name, emails=[f"{name}@example.com", f"{name}.backup@example.org"], phones=[phone])
        if method == "email":
            email_flows.start_enrolment(member, member.email_addresses.get(email=f"{name}.backup@example.org").pk, CLI)
            email_flows.confirm_enrolment(member, mail_server.last_code(f"{name}.backup@example.org"), CLI)
        else:
            sms_flows.start_enrolment(member, member.phone_numbers.get().pk, CLI)
            sms_flows.confirm(member, twilio.last_code(phone), CLI)
    mail_server.received.clear()
    twilio.received.clear()
    assert login(api, "ann")["code_sent"] and login(api, "ben")["code_sent"]
    held = {name: login(api, name) for name in ("cat", "dan")}
    assert [step["code_sent"] for step in held.values()] == [False, False]
    assert [m.rcpt_tos for m in mail_server.messages()] == [["ann.backup@example.org"]]
    assert [m.to for m in twilio.received] == ["+15550000001"]
    for step in held.values():
        resend = api.post("/auth/login/resend", {"login_token": step["login_token"]})
        assert resend.status_code == 429 and error_code(resend) == "rate_limited"
        assert "from your network" in resend.json()["error"]["message"]
        assert 1 <= int(resend["Retry-After"]) <= 15 * 60
    assert AuthEvent.objects.filter(kind="sms.not_sent", reason="address_limit", user__username="cat").count() == 2
    assert AuthEvent.objects.filter(kind="login.code_sent", reason="address_limit", user__username="dan").count() == 2
    assert len(mail_server.messages()) == 1 and len(twilio.received) == 1
