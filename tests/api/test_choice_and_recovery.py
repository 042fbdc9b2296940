"""Through the API: email codes, choosing another method, recovery codes, and the enrolment requirement."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.api.conftest import Api, enrol_totp, error_code, prove_second_factor
from tests.conftest import PASSWORD
from tests.mail.smtp_server import SmtpServer, certificates, mail_server, smtp_server
from tests.mfa.email.conftest import BACKUP, email_on, enrolled
from twostep.accounts.models import User
from twostep.core import clock
from twostep.core.runtime import set_setting
from twostep.factors import totp
from twostep.mfa.models import Authenticator, RecoveryCode

__all__ = ["certificates", "email_on", "enrolled", "mail_server", "smtp_server"]

pytestmark = pytest.mark.django_db


def login(api: Api, username: str = "alice", **extra: object) -> dict:  # type: ignore[type-arg]
    response = api.post("/auth/login", {"username": username, "password": PASSWORD, **extra})
    assert response.status_code == 200, response.content
    return response.json()  # type: ignore[no-any-return]


def test_email_code_sign_in(api: Api, user: User, enrolled: Authenticator, mail_server: SmtpServer) -> None:
    """With email codes the password step sends a code to the chosen address; that code signs in, once."""
    step = login(api)
    assert step["status"] == "second_step_required" and step["method"] == "email"
    assert "alice.backup" not in step["prompt"]  # the address is masked
    code = mail_server.last_code(BACKUP)
    verified = api.post("/auth/login/verify", {"login_token": step["login_token"], "code": code})
    assert verified.status_code == 200 and verified.json()["status"] == "signed_in"
    again = login(api)
    replay = api.post("/auth/login/verify", {"login_token": again["login_token"], "code": code})
    assert replay.status_code == 401 and error_code(replay) == "second_step_failed"


def test_switch_method(api: Api, user: User, enrolled: Authenticator, mail_server: SmtpServer) -> None:
    """A user with TOTP and email codes switches to email mid sign-in; the emailed code completes it."""
    enrol_totp(user)
    mail_server.received.clear()
    step = login(api)
    assert step["method"] == "email" and set(step["methods"]) == {"totp", "email"}
    switched = api.post("/auth/login/method", {"login_token": step["login_token"], "method": "totp"})
    assert switched.status_code == 200 and switched.json()["method"] == "totp"
    assert switched.json()["login_token"] == step["login_token"]
    back = api.post("/auth/login/method", {"login_token": step["login_token"], "method": "email"})
    assert back.json()["method"] == "email"
    code = mail_server.last_code(BACKUP)
    done = api.post("/auth/login/verify", {"login_token": step["login_token"], "code": code})
    assert done.status_code == 200, done.content


def test_switch_to_a_method_not_set_up(api: Api, user: User, two_factor_on: None) -> None:
    """Switching to a method the user has not enrolled (or that is not allowed) answers 409."""
    enrol_totp(user)
    step = login(api)
    response = api.post("/auth/login/method", {"login_token": step["login_token"], "method": "sms"})
    assert response.status_code == 409 and error_code(response) == "method_unavailable"
    assert response.json()["error"]["methods"] == ["totp"]
    expired = api.post("/auth/login/method", {"login_token": "nope", "method": "totp"})
    assert expired.status_code == 401 and error_code(expired) == "login_expired"


def test_method_chosen_at_login(api: Api, user: User, enrolled: Authenticator, mail_server: SmtpServer) -> None:
    """Naming a method at the password step starts with it; an unusable one is refused, and nothing is sent."""
    enrol_totp(user)
    first = login(api, method="totp")
    assert first["method"] == "totp"
    usable = first["methods"]
    sent = len(mail_server.messages())
    refused = api.post("/auth/login", {"username": user.username, "password": PASSWORD, "method": "sms"})
    assert refused.status_code == 409 and error_code(refused) == "method_unavailable"
    message = refused.json()["error"]["message"]
    assert "email" in message and "totp" in message  # the methods that can be used
    # ... and the same for a program, as `methods` of the second-step answer lists them
    assert refused.json()["error"]["methods"] == usable and set(usable) == {"email", "totp"}
    assert len(mail_server.messages()) == sent  # the default (email) did not send a code instead


def test_first_factor_brings_recovery_codes(api: Api, user: User, two_factor_on: None, token_for) -> None:  # type: ignore[no-untyped-def]
    """Confirming the first factor through the API shows ten recovery codes once; they are stored hashed."""
    token = token_for(user)
    key = totp.decode_secret(api.post("/me/factors/totp", token=token).json()["secret"])
    confirmed = api.post("/me/factors/totp/confirm", {"code": totp.totp(key, clock.timestamp())}, token=token).json()
    codes = confirmed["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    stored = list(RecoveryCode.objects.filter(user=user).values_list("code_hash", flat=True))
    assert not any(code.replace("-", "") in h for code in codes for h in stored)
    status = api.get("/me/recovery-codes", token=token).json()
    assert status["remaining"] == 10 and status["exists"] is True
    assert codes[0] not in api.get("/me/recovery-codes", token=token).content.decode()


def test_recovery_code_sign_in(api: Api, user: User, two_factor_on: None, token_for) -> None:  # type: ignore[no-untyped-def]
    """A recovery code completes a sign-in once and lifts a lock; a reused one fails like a wrong code."""
    token = token_for(user)
    key = totp.decode_secret(api.post("/me/factors/totp", token=token).json()["secret"])
    codes = api.post("/me/factors/totp/confirm", {"code": totp.totp(key, clock.timestamp())}, token=token).json()[
        "recovery_codes"
    ]
    User.objects.filter(pk=user.pk).update(second_step_locked_at=clock.now())
    step = login(api)
    done = api.post("/auth/login/recovery", {"login_token": step["login_token"], "code": codes[0].lower()})
    assert done.status_code == 200, done.content
    assert done.json()["recovery_codes_left"] == 9
    user.refresh_from_db()
    assert user.second_step_locked_at is None
    again = login(api)
    reused = api.post("/auth/login/recovery", {"login_token": again["login_token"], "code": codes[0]})
    assert reused.status_code == 401 and error_code(reused) == "second_step_failed"


def test_regenerate_recovery_codes(
    api: Api,
    user: User,
    two_factor_on: None,
    token_for,
    frozen_clock: clock.FrozenClock,  # type: ignore[no-untyped-def]
) -> None:
    """New codes need a recent password, replace the old ones, and need a factor to protect."""
    token = token_for(user)
    none_yet = api.post("/me/recovery-codes", token=token)
    assert none_yet.status_code == 409 and error_code(none_yet) == "conflict"
    key = totp.decode_secret(api.post("/me/factors/totp", token=token).json()["secret"])
    old = api.post("/me/factors/totp/confirm", {"code": totp.totp(key, clock.timestamp())}, token=token).json()[
        "recovery_codes"
    ]
    frozen_clock.advance(301)
    stale = api.post("/me/recovery-codes", token=token)
    assert stale.status_code == 403 and error_code(stale) == "reauthentication_required"
    api.post("/me/reauthenticate", {"password": PASSWORD}, token=token)
    new = api.post("/me/recovery-codes", token=prove_second_factor(token))
    assert new.status_code == 201 and len(new.json()["codes"]) == 10
    step = login(api)
    response = api.post("/auth/login/recovery", {"login_token": step["login_token"], "code": old[0]})
    assert response.status_code == 401


def test_the_sign_in_answer_says_when_a_second_factor_must_be_set_up(api: Api, user: User, two_factor_on: None) -> None:
    """A user the policy covers, with no factor, learns it from the sign-in itself: by when during a grace
    period, "now" after it; a user not covered gets no `enrolment`."""

    def enrolment() -> Any:
        answer = api.post("/auth/login", {"username": user.username, "password": PASSWORD})
        assert answer.status_code == 200 and answer.json()["status"] == "signed_in", answer.content
        return answer.json()["enrolment"]

    assert enrolment() is None
    set_setting("two_factor.required", "everyone")
    set_setting("two_factor.grace_sign_ins", 1)
    assert enrolment() == {"now": False, "deadline": None, "sign_ins_left": 0}
    assert enrolment() == {"now": True, "deadline": None, "sign_ins_left": None}
    set_setting("two_factor.grace_sign_ins", 0)
    deadline = (clock.now() + timedelta(days=3)).date()
    set_setting("two_factor.grace_until", deadline.isoformat())
    assert enrolment() == {"now": False, "deadline": f"{deadline.isoformat()}T00:00:00Z", "sign_ins_left": None}


def test_enrolment_requirement_gates_the_api(api: Api, user: User, two_factor_on: None, token_for) -> None:  # type: ignore[no-untyped-def]
    """When the policy requires a factor now, a token reaches only sign-in, re-authentication and enrolment."""
    set_setting("two_factor.required", "everyone")
    token = token_for(user)
    blocked = api.get("/me", token=token)
    assert blocked.status_code == 403 and error_code(blocked) == "enrolment_required"
    assert api.get("/me/tokens", token=token).status_code == 403
    start = api.post("/me/factors/totp", token=token)
    assert start.status_code == 200
    key = totp.decode_secret(start.json()["secret"])
    assert (
        api.post("/me/factors/totp/confirm", {"code": totp.totp(key, clock.timestamp())}, token=token).status_code
        == 201
    )
    assert api.get("/me", token=token).status_code == 200
