"""Setting up email and SMS codes through the API: a real SMTP server and a fake SMS provider.

Start (a code goes to one of the user's own addresses or numbers), confirm,
remove; re-authentication, the allowed methods, foreign ids, the send
cooldown and delivery failures.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.api.conftest import Api, enrol_totp, error_code, prove_second_factor
from tests.mail.smtp_server import (
    Certificates,
    SmtpServer,
    certificates,
    closed_port,
    configure_twostep,
    mail_server,
    smtp_server,
)
from tests.mfa.email.conftest import BACKUP, email_on
from tests.mfa.races import just_before, two_factor_reset
from tests.sms.conftest import fakes, twilio
from tests.sms.fakes import FakeTwilio
from twostep.accounts import services
from twostep.accounts.models import User
from twostep.audit.models import AuthEvent
from twostep.audit.services import CLI
from twostep.core import clock
from twostep.core.runtime import set_setting
from twostep.mfa import codes
from twostep.mfa.models import Authenticator, OneTimeCode
from twostep.mfa.recovery_codes import services as recovery_codes
from twostep.sms import service as sms_service

__all__ = ["certificates", "closed_port", "email_on", "fakes", "mail_server", "smtp_server", "twilio"]

SECOND_PHONE = "+15557654321"


def email_id(user: User, address: str) -> int:
    return int(user.email_addresses.get(email=address).pk)


def phone_id(user: User, number: str) -> int:
    return int(user.phone_numbers.get(number=number).pk)


# --- email --------------------------------------------------------------------


def test_email_enrolment_end_to_end(
    api: Api, user: User, mail_server: SmtpServer, email_on: None, token_for: Callable[[User], str]
) -> None:
    """A code goes to the chosen address; confirming it turns email on with recovery codes, once."""
    token = token_for(user)
    started = api.post("/me/factors/email", {"email_id": email_id(user, BACKUP)}, token=token)
    assert started.status_code == 200, started.content
    body = started.json()
    assert body["method"] == "email" and body["destination"] == BACKUP
    assert body["resend_after"] > 0 and body["expires_at"]
    code = mail_server.last_code(BACKUP)
    assert code not in started.content.decode()

    confirmed = api.post("/me/factors/email/confirm", {"code": code}, token=token)
    assert confirmed.status_code == 201, confirmed.content
    answer = confirmed.json()
    assert answer["method"] == "email" and answer["destination"] == BACKUP
    assert len(answer["recovery_codes"]) == recovery_codes.status(user).total
    assert Authenticator.objects.get(user=user, method="email").confirmed_at is not None
    # The confirming code was consumed: it cannot confirm again (even with the step-up a factor now asks).
    again = api.post("/me/factors/email/confirm", {"code": code}, token=prove_second_factor(token))
    assert again.status_code == 422 and error_code(again) == "invalid_code"


def test_a_factor_whose_address_was_removed_is_listed_as_unusable(
    api: Api, user: User, mail_server: SmtpServer, email_on: None, token_for: Callable[[User], str]
) -> None:
    """After an administrator removes the address email codes go to, /me/factors says the factor cannot sign in."""
    token = token_for(user)
    api.post("/me/factors/email", {"email_id": email_id(user, BACKUP)}, token=token)
    assert (
        api.post("/me/factors/email/confirm", {"code": mail_server.last_code(BACKUP)}, token=token).status_code == 201
    )
    token = token_for(user)  # the confirmation ended the user's other tokens
    listed = api.get("/me/factors", token=token).json()
    assert [(f["method"], f["usable"]) for f in listed] == [("email", True)]
    services.remove_email(user, email_id(user, BACKUP), origin=CLI)
    listed = api.get("/me/factors", token=token).json()
    assert [(f["method"], f["destination"], f["usable"]) for f in listed] == [("email", BACKUP, False)]


def test_email_wrong_code_and_removal(
    api: Api, user: User, mail_server: SmtpServer, email_on: None, token_for: Callable[[User], str]
) -> None:
    """A wrong code is refused with invalid_code; removal turns email off and then answers 404."""
    token = token_for(user)
    api.post("/me/factors/email", {"email_id": email_id(user, BACKUP)}, token=token)
    right = mail_server.last_code(BACKUP)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    refused = api.post("/me/factors/email/confirm", {"code": wrong}, token=token)
    assert refused.status_code == 422 and error_code(refused) == "invalid_code"
    assert not Authenticator.objects.filter(user=user, method="email", confirmed_at__isnull=False).exists()
    assert api.post("/me/factors/email/confirm", {"code": right}, token=token).status_code == 201

    removed = api.delete("/me/factors/email", token=prove_second_factor(token))
    assert removed.status_code == 204
    assert not Authenticator.objects.filter(user=user, method="email").exists()
    assert AuthEvent.objects.filter(kind="email.disabled", user=user).exists()
    gone = api.delete("/me/factors/email", token=token)
    assert gone.status_code == 404 and error_code(gone) == "not_found"


def test_email_start_refuses_someone_elses_address(
    api: Api,
    user: User,
    make_user: Callable[..., User],
    mail_server: SmtpServer,
    email_on: None,
    token_for: Callable[[User], str],
) -> None:
    """Another user's address id, or an unknown one, answers 404 and sends nothing (ENUM-07)."""
    bob = make_user("bob", emails=["bob@example.com"])
    token = token_for(user)
    for target in (email_id(bob, "bob@example.com"), 999_999):
        response = api.post("/me/factors/email", {"email_id": target}, token=token)
        assert response.status_code == 404 and error_code(response) == "not_found"
    assert mail_server.messages() == []
    assert not Authenticator.objects.filter(user=user).exists()


def test_email_start_cooldown(
    api: Api,
    user: User,
    mail_server: SmtpServer,
    email_on: None,
    token_for: Callable[[User], str],
    frozen_clock: clock.FrozenClock,
) -> None:
    """Asking again within the cooldown answers 429 with Retry-After; after it, a new code is sent."""
    token = token_for(user)
    target = {"email_id": email_id(user, BACKUP)}
    assert api.post("/me/factors/email", target, token=token).status_code == 200
    held = api.post("/me/factors/email", target, token=token)
    assert held.status_code == 429 and error_code(held) == "rate_limited"
    assert 1 <= int(held["Retry-After"]) <= 60
    assert len(mail_server.messages()) == 1
    frozen_clock.advance(int(held["Retry-After"]))
    assert api.post("/me/factors/email", target, token=token).status_code == 200
    assert len(mail_server.messages()) == 2


def test_email_delivery_failure(
    api: Api,
    user: User,
    mail_server: SmtpServer,
    closed_port: int,
    certificates: Certificates,
    monkeypatch: pytest.MonkeyPatch,
    email_on: None,
    token_for: Callable[[User], str],
) -> None:
    """With the mail server down: 503 delivery_failed, no code left usable, and no cooldown to wait out."""
    configure_twostep(monkeypatch, certificates, closed_port)
    token = token_for(user)
    target = {"email_id": email_id(user, BACKUP)}
    for _ in range(2):
        response = api.post("/me/factors/email", target, token=token)
        assert response.status_code == 503 and error_code(response) == "delivery_failed"
    assert not OneTimeCode.objects.filter(user=user).exists()
    assert AuthEvent.objects.filter(kind="email.code_sent", reason="delivery_failed").count() == 2


def test_email_not_allowed(
    api: Api, user: User, two_factor_on: None, mail_server: SmtpServer, token_for: Callable[[User], str]
) -> None:
    """When the administrator does not allow email codes, start and confirm answer 409 method_unavailable."""
    token = token_for(user)
    started = api.post("/me/factors/email", {"email_id": email_id(user, BACKUP)}, token=token)
    assert started.status_code == 409 and error_code(started) == "method_unavailable"
    assert started.json()["error"]["methods"] == ["totp"]
    confirmed = api.post("/me/factors/email/confirm", {"code": "123456"}, token=token)
    assert confirmed.status_code == 409 and error_code(confirmed) == "method_unavailable"
    assert mail_server.messages() == []


def test_code_factors_need_reauthentication(
    api: Api,
    user: User,
    mail_server: SmtpServer,
    email_on: None,
    token_for: Callable[[User], str],
    frozen_clock: clock.FrozenClock,
) -> None:
    """Start, confirm and remove answer 403 reauthentication_required once the password is not recent."""
    token = token_for(user)
    frozen_clock.advance(10 * 60)
    for method, path, body in [
        ("POST", "/me/factors/email", {"email_id": email_id(user, BACKUP)}),
        ("POST", "/me/factors/email/confirm", {"code": "123456"}),
        ("DELETE", "/me/factors/email", None),
        ("POST", "/me/factors/sms", {"phone_id": phone_id(user, "+15551234567")}),
        ("POST", "/me/factors/sms/confirm", {"code": "123456"}),
        ("DELETE", "/me/factors/sms", None),
    ]:
        response = api.call(method, path, body, token=token)
        assert response.status_code == 403 and error_code(response) == "reauthentication_required", path
    assert mail_server.messages() == []


def test_confirm_ends_other_tokens_but_not_this_one(
    api: Api, user: User, mail_server: SmtpServer, email_on: None, token_for: Callable[[User], str]
) -> None:
    """A new factor ends the user's other tokens; the one that made the change keeps working."""
    other, token = token_for(user), token_for(user)
    api.post("/me/factors/email", {"email_id": email_id(user, BACKUP)}, token=token)
    assert api.post("/me/factors/email/confirm", {"code": mail_server.last_code()}, token=token).status_code == 201
    assert api.get("/me", token=token).status_code == 200
    assert api.get("/me", token=other).status_code == 401


# --- SMS --------------------------------------------------------------------------


def test_sms_enrolment_end_to_end(api: Api, user: User, twilio: FakeTwilio, token_for: Callable[[User], str]) -> None:
    """A code goes to the chosen number through the provider; confirming it turns SMS on for that number."""
    services.add_phone(user, SECOND_PHONE, origin=CLI)
    token = token_for(user)
    started = api.post("/me/factors/sms", {"phone_id": phone_id(user, SECOND_PHONE)}, token=token)
    assert started.status_code == 200, started.content
    assert started.json()["method"] == "sms" and started.json()["destination"] == SECOND_PHONE
    code = twilio.last_code(SECOND_PHONE)
    assert code not in started.content.decode()

    confirmed = api.post("/me/factors/sms/confirm", {"code": code}, token=token)
    assert confirmed.status_code == 201, confirmed.content
    assert confirmed.json()["destination"] == SECOND_PHONE
    assert len(confirmed.json()["recovery_codes"]) == recovery_codes.status(user).total
    assert Authenticator.objects.get(user=user, method="sms", confirmed_at__isnull=False).destination == SECOND_PHONE

    assert api.delete("/me/factors/sms", token=prove_second_factor(token)).status_code == 204
    assert not Authenticator.objects.filter(user=user, method="sms").exists()
    assert api.delete("/me/factors/sms", token=token).status_code == 404


def test_sms_second_factor_gets_no_new_recovery_codes(
    api: Api, user: User, twilio: FakeTwilio, token_for: Callable[[User], str]
) -> None:
    """Recovery codes come with the first factor only: a second factor's answer carries none."""
    enrol_totp(user)
    assert recovery_codes.create_first_set(user, CLI) is not None
    token = prove_second_factor(token_for(user))
    api.post("/me/factors/sms", {"phone_id": phone_id(user, "+15551234567")}, token=token)
    confirmed = api.post("/me/factors/sms/confirm", {"code": twilio.last_code()}, token=token)
    assert confirmed.status_code == 201 and confirmed.json()["recovery_codes"] is None


def test_sms_foreign_number_and_wrong_code(
    api: Api, user: User, make_user: Callable[..., User], twilio: FakeTwilio, token_for: Callable[[User], str]
) -> None:
    """Another user's number answers 404 with no message sent; a wrong code answers 422 invalid_code."""
    bob = make_user("bob", phones=[SECOND_PHONE])
    token = token_for(user)
    foreign = api.post("/me/factors/sms", {"phone_id": phone_id(bob, SECOND_PHONE)}, token=token)
    assert foreign.status_code == 404 and error_code(foreign) == "not_found"
    assert twilio.received == []
    api.post("/me/factors/sms", {"phone_id": phone_id(user, "+15551234567")}, token=token)
    wrong = f"{(int(twilio.last_code()) + 1) % 1_000_000:06d}"
    refused = api.post("/me/factors/sms/confirm", {"code": wrong}, token=token)
    assert refused.status_code == 422 and error_code(refused) == "invalid_code"
    assert not Authenticator.objects.filter(user=user, method="sms", confirmed_at__isnull=False).exists()


def test_sms_provider_failure_and_cooldown(
    api: Api, user: User, twilio: FakeTwilio, token_for: Callable[[User], str], frozen_clock: clock.FrozenClock
) -> None:
    """A provider error answers 503 delivery_failed with nothing consumed; a sent code starts a 429 cooldown."""
    token = token_for(user)
    target = {"phone_id": phone_id(user, "+15551234567")}
    twilio.fail(503, {"code": 20500, "message": "down"})
    failed = api.post("/me/factors/sms", target, token=token)
    assert failed.status_code == 503 and error_code(failed) == "delivery_failed"
    assert not OneTimeCode.objects.filter(user=user, consumed_at__isnull=True, superseded_at__isnull=True).exists()
    twilio.recover()
    # A failed delivery started no cooldown.
    assert api.post("/me/factors/sms", target, token=token).status_code == 200
    held = api.post("/me/factors/sms", target, token=token)
    assert held.status_code == 429 and error_code(held) == "rate_limited" and int(held["Retry-After"]) >= 1
    assert len(twilio.received) == 1


def test_sms_not_allowed(api: Api, user: User, two_factor_on: None, token_for: Callable[[User], str]) -> None:
    """When the administrator does not allow SMS codes, start answers 409 method_unavailable."""
    response = api.post("/me/factors/sms", {"phone_id": phone_id(user, "+15551234567")}, token=token_for(user))
    assert response.status_code == 409 and error_code(response) == "method_unavailable"


# --- a set-up that ends while its code is being sent ---------------------------


@pytest.mark.parametrize("when", ["before the code is made", "while it is delivered"])
@pytest.mark.parametrize("method", ["email", "sms"])
def test_start_answers_conflict_when_a_reset_ends_the_set_up(
    api: Api,
    user: User,
    mail_server: SmtpServer,
    twilio: FakeTwilio,
    email_on: None,
    token_for: Callable[[User], str],
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    when: str,
) -> None:
    """An administrator's 2FA reset lands while a start request sends its code: 409 conflict, not a server error.

    Before the code is made, nothing is sent; during delivery (which may
    take seconds) the code goes out but the set-up it would confirm is gone.
    Either way the answer says to start again.
    """
    set_setting("two_factor.methods", ["totp", "email", "sms"])  # email_on allowed only the first two
    services.add_phone(user, SECOND_PHONE, origin=CLI)
    token = token_for(user)
    if when == "while it is delivered":
        just_before(monkeypatch, codes, "mark_sent", two_factor_reset(user))
    elif method == "sms":
        just_before(monkeypatch, sms_service, "preflight", two_factor_reset(user))
    else:
        just_before(monkeypatch, codes, "issue", two_factor_reset(user))
    body = {"email_id": email_id(user, BACKUP)} if method == "email" else {"phone_id": phone_id(user, SECOND_PHONE)}
    response = api.post(f"/me/factors/{method}", body, token=token)
    assert response.status_code == 409 and error_code(response) == "conflict", response.content
    assert "ended while its code was being sent" in response.json()["error"]["message"]
    assert not Authenticator.objects.filter(user=user).exists()
