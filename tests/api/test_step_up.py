"""A code of a factor, after the password, before a change to the second step through the API (AZ-01).

``POST /me/step-up`` opens a step-up (``mfa.step_up``) whose token goes with
a code (or a recovery code) to ``/me/step-up/verify``; a right one marks the
access token, and for ``security.reauth_max_age`` seconds it may turn factors
on, off or over and make new recovery codes.  Which operations ask for it is
held to docs/api.md by tests/api/test_reauthentication.py.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from django.conf import settings

from tests.api.conftest import Api, enrol_totp, error_code
from tests.authenticator_app import a_wrong_code
from tests.conftest import PASSWORD
from tests.mail.smtp_server import SmtpServer, certificates, mail_server, smtp_server
from tests.mfa.email.conftest import BACKUP, email_on, enrolled
from tests.mfa.races import just_before
from tests.mfa.recovery_codes.helpers import next_code
from tests.sms.conftest import fakes, twilio
from tests.sms.fakes import FakeTwilio
from twostep.accounts.models import User
from twostep.api.models import AccessToken
from twostep.audit.models import AuthEvent
from twostep.audit.services import CLI
from twostep.core import clock
from twostep.factors import totp
from twostep.mfa import codes
from twostep.mfa.models import Authenticator, Method, PendingLogin, Purpose
from twostep.mfa.recovery_codes import services as recovery_codes
from twostep.mfa.sms import flows as sms_flows

__all__ = ["certificates", "email_on", "enrolled", "fakes", "mail_server", "smtp_server", "twilio"]

pytestmark = pytest.mark.django_db

PHONE = "+15551234567"  # the `user` fixture's number
NO_PROOF = "second_factor_required"


def has_factor(user: User, method: str = Method.TOTP) -> bool:
    return Authenticator.objects.filter(user=user, method=method, confirmed_at__isnull=False).exists()


def begin(api: Api, token: str, **body: Any) -> dict[str, Any]:
    response = api.post("/me/step-up", body, token=token)
    assert response.status_code == 200, response.content
    answer: dict[str, Any] = response.json()
    return answer


def verify(api: Api, token: str, step_up_token: str, **body: Any) -> Any:
    return api.post("/me/step-up/verify", {"step_up_token": step_up_token, **body}, token=token)


def proof_of(api: Api, token: str) -> str | None:
    """``second_factor_until`` as GET /me shows it."""
    value: str | None = api.get("/me", token=token).json()["second_factor_until"]
    return value


def step_up_mail(server: SmtpServer) -> list[Any]:
    """The messages that carry a step-up's code (others, such as notices of a new factor, may come too)."""
    return [m for m in server.messages() if "confirm a security change" in m.subject]


def reauthenticate(api: Api, token: str) -> None:
    """Enter the password again: after a step-up used up or expired a new one asks for it, as the page does."""
    assert api.post("/me/reauthenticate", {"password": PASSWORD}, token=token).status_code == 200


def refused_for_want_of_proof(response: Any) -> bool:
    return response.status_code == 403 and error_code(response) == NO_PROOF


@pytest.fixture
def totp_key(user: User, two_factor_on: None) -> bytes:
    """Alice signs in with an authenticator app (2FA on, TOTP allowed)."""
    return enrol_totp(user)


def test_password_alone_does_not_change_the_second_step(
    api: Api, user: User, totp_key: bytes, token_for: Callable[[User], str]
) -> None:
    """A token (the session) with the password just entered again, but no code of a factor, cannot remove
    the app, replace it or print new recovery codes: 403 second_factor_required, nothing changes (AZ-01)."""
    assert recovery_codes.create_first_set(user, CLI) is not None
    codes_before = recovery_codes.status(user)
    token = token_for(user)  # a sign-in counts as a password entry: it is recent
    reauthenticate(api, token)

    removal = api.delete("/me/factors/totp", token=token)
    assert refused_for_want_of_proof(removal)
    assert "POST /api/v1/me/step-up" in removal.json()["error"]["message"]
    assert refused_for_want_of_proof(api.post("/me/factors/totp", token=token))
    assert refused_for_want_of_proof(api.post("/me/recovery-codes", token=token))
    assert has_factor(user)
    assert recovery_codes.status(user) == codes_before
    assert proof_of(api, token) is None


def test_a_stale_session_is_asked_for_the_password_first(
    api: Api, user: User, totp_key: bytes, frozen_clock: clock.FrozenClock, token_for: Callable[[User], str]
) -> None:
    """With neither a recent password nor a proof, the password is asked first, and a step-up needs it too (AZ-01)."""
    token = token_for(user)
    frozen_clock.advance(settings.CONFIG.security.reauth_max_age + 1)
    removal = api.delete("/me/factors/totp", token=token)
    assert removal.status_code == 403 and error_code(removal) == "reauthentication_required"
    started = api.post("/me/step-up", {}, token=token)
    assert started.status_code == 403 and error_code(started) == "reauthentication_required"
    assert has_factor(user)


def test_a_right_code_proves_the_factor_for_this_token_only(
    api: Api, user: User, totp_key: bytes, token_for: Callable[[User], str]
) -> None:
    """The app's code proves the factor: this token may then remove it; another token of the same user may not."""
    token, other = token_for(user), token_for(user)
    step = begin(api, token)
    assert step["method"] == "totp" and step["methods"] == ["totp"]
    assert step["code_sent"] is None and step["prompt"] and step["expires_at"]
    assert "login_token" not in step and "status" not in step

    proved = verify(api, token, step["step_up_token"], code=next_code(totp_key))
    assert proved.status_code == 200, proved.content
    until = proved.json()["second_factor_until"]
    assert until == proof_of(api, token)
    assert proved.json()["recovery_codes_left"] is None
    assert AuthEvent.objects.filter(kind="reauthenticate.second_step", outcome="success", user=user).exists()

    assert refused_for_want_of_proof(api.delete("/me/factors/totp", token=other))
    assert has_factor(user)
    assert api.delete("/me/factors/totp", token=token).status_code == 204
    assert not has_factor(user)
    # A step-up token works once.
    again = verify(api, token, step["step_up_token"], code=next_code(totp_key))
    assert again.status_code == 401 and error_code(again) == "step_up_expired"


@pytest.mark.parametrize("switched", [False, True], ids=["as-begun", "method-switched"])
def test_only_the_token_that_began_a_step_up_may_answer_it(
    api: Api, user: User, totp_key: bytes, enrolled: Authenticator, token_for: Callable[[User], str], switched: bool
) -> None:
    """A step-up token is the secret of the access token that began it: another token of the same user
    (another device, another script) neither proves nor resends with it, also after a switch of method."""
    token, other, third = token_for(user), token_for(user), token_for(user)
    step = begin(api, token, method="email" if switched else "totp")
    if switched:
        answer = api.post("/me/step-up/method", {"step_up_token": step["step_up_token"], "method": "totp"}, token=token)
        assert answer.status_code == 200, answer.content
    code = next_code(totp_key)
    for response in (
        verify(api, other, step["step_up_token"], code=code),
        api.post("/me/step-up/resend", {"step_up_token": step["step_up_token"]}, token=third),
    ):
        assert response.status_code == 401 and error_code(response) == "step_up_expired", response.content
    assert proof_of(api, other) is None and proof_of(api, third) is None and proof_of(api, token) is None
    # Still the beginner's to answer (the other token's tries were no guesses at it).
    assert verify(api, token, step["step_up_token"], code=code).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"code": ""},
        {"recovery_code": ""},
        {"code": None},
        {"code": "123456", "recovery_code": "AAAA-AAAA-AAAA-AAAA"},
    ],
    ids=["nothing", "empty-code", "empty-recovery-code", "null-code", "both"],
)
def test_an_empty_or_ambiguous_body_proves_nothing(
    api: Api, user: User, totp_key: bytes, token_for: Callable[[User], str], body: dict[str, Any]
) -> None:
    """Without a code (or with two kinds at once) nothing is proved and the factor stays (AZ-01)."""
    token = token_for(user)
    step = begin(api, token)
    response = verify(api, token, step["step_up_token"], **body)
    assert response.status_code in {400, 401}, response.content
    assert error_code(response) in {"invalid_request", "second_step_failed"}
    assert proof_of(api, token) is None
    assert refused_for_want_of_proof(api.delete("/me/factors/totp", token=token))
    assert has_factor(user)


def test_no_body_at_all_proves_nothing(api: Api, user: User, totp_key: bytes, token_for: Callable[[User], str]) -> None:
    """An empty request to the verify operation is malformed, and proves nothing (AZ-01)."""
    token = token_for(user)
    begin(api, token)
    response = api.post("/me/step-up/verify", raw=b"", token=token)
    assert response.status_code == 400 and error_code(response) == "invalid_request"
    assert proof_of(api, token) is None
    assert refused_for_want_of_proof(api.delete("/me/factors/totp", token=token))


def test_a_stale_code_proves_nothing(api: Api, user: User, totp_key: bytes) -> None:
    """A code already used (here, to sign in) and a code of a step long past are refused alike (AZ-01)."""
    code = next_code(totp_key)
    login_token = api.post("/auth/login", {"username": "alice", "password": PASSWORD}).json()["login_token"]
    signed_in = api.post("/auth/login/verify", {"login_token": login_token, "code": code})
    assert signed_in.status_code == 200
    token = signed_in.json()["access_token"]
    assert proof_of(api, token) is not None  # the sign-in's code is a proof of the factor...
    AccessToken.objects.filter(user=user).update(second_factor_at=None)  # ...which has run out

    step = begin(api, token)
    replayed = verify(api, token, step["step_up_token"], code=code)
    old = verify(api, token, step["step_up_token"], code=totp.hotp(totp_key, totp.time_step(clock.timestamp()) - 4))
    for response in (replayed, old):
        assert response.status_code == 401 and error_code(response) == "second_step_failed"
    assert replayed.content == old.content
    assert proof_of(api, token) is None
    assert refused_for_want_of_proof(api.delete("/me/factors/totp", token=token))
    assert has_factor(user)


def test_repeating_a_request_that_worked_keeps_the_password_entry(
    api: Api, user: User, totp_key: bytes, token_for: Callable[[User], str]
) -> None:
    """A client that sends its verify again (an answer lost on the way) or a made-up step-up token gets
    401 step_up_expired, and keeps its proof and its password entry: nothing was guessed."""
    token = token_for(user)
    step = begin(api, token)
    code = next_code(totp_key)
    assert verify(api, token, step["step_up_token"], code=code).status_code == 200
    for step_up_token in (step["step_up_token"], "made-up"):
        again = verify(api, token, step_up_token, code=code)
        assert again.status_code == 401 and error_code(again) == "step_up_expired"
    me = api.get("/me", token=token).json()
    assert me["reauthenticated_until"] is not None and me["second_factor_until"] is not None
    assert api.delete("/me/factors/totp", token=token).status_code == 204


def test_wrong_codes_count_against_the_account_and_end_the_step_up(
    api: Api, user: User, totp_key: bytes, token_for: Callable[[User], str]
) -> None:
    """Each wrong code counts as at sign-in; the fifth ends the step-up, and then the password is asked again."""
    token = token_for(user)
    step = begin(api, token)
    answers = [verify(api, token, step["step_up_token"], code=a_wrong_code(totp_key)) for _ in range(5)]
    assert [error_code(r) for r in answers[:4]] == ["second_step_failed"] * 4
    assert answers[0].json()["error"]["message"] == answers[3].json()["error"]["message"]
    assert error_code(answers[4]) == "step_up_expired" and answers[4].status_code == 401
    user.refresh_from_db()
    assert user.second_step_failures == 5
    failures = AuthEvent.objects.filter(kind="reauthenticate.second_step", outcome="failure", user=user)
    assert failures.count() == 5

    # As on the page: once the step-up is over, the password is asked again, and the right code is too late.
    again = api.post("/me/step-up", {}, token=token)
    assert again.status_code == 403 and error_code(again) == "reauthentication_required"
    reauthenticate(api, token)
    right = verify(api, token, step["step_up_token"], code=next_code(totp_key))
    assert right.status_code == 401 and error_code(right) == "step_up_expired"
    assert proof_of(api, token) is None
    reauthenticate(api, token)
    assert api.post("/me/step-up", {}, token=token).status_code == 200


def test_enough_wrong_codes_lock_the_account_and_then_a_right_one_looks_wrong(
    api: Api, user: User, totp_key: bytes, frozen_clock: clock.FrozenClock, token_for: Callable[[User], str]
) -> None:
    """Step-ups spend the account's budget of wrong codes up to the lock; locked, a right code gets the
    same answer as a wrong one and proves nothing (AZ-01)."""
    limit = settings.CONFIG.security.second_step_lock_after
    token = token_for(user)
    for _ in range(limit):
        frozen_clock.advance(901)  # past any growing delay: only the lock stops this loop
        reauthenticate(api, token)
        step = begin(api, token)
        assert verify(api, token, step["step_up_token"], code=a_wrong_code(totp_key)).status_code == 401
    user.refresh_from_db()
    assert user.second_step_failures == limit and user.second_step_locked_at is not None

    frozen_clock.advance(901)
    reauthenticate(api, token)
    step = begin(api, token)
    wrong = verify(api, token, step["step_up_token"], code=a_wrong_code(totp_key))
    right = verify(api, token, step["step_up_token"], code=totp.totp(totp_key, clock.timestamp()))
    assert right.status_code == 401 and error_code(right) == "second_step_failed"
    assert right.content == wrong.content and "Retry-After" not in right
    assert proof_of(api, token) is None
    assert refused_for_want_of_proof(api.delete("/me/factors/totp", token=token))


def test_an_email_code_through_real_mail_proves_the_factor(
    api: Api,
    user: User,
    enrolled: Authenticator,
    mail_server: SmtpServer,
    frozen_clock: clock.FrozenClock,
    token_for: Callable[[User], str],
) -> None:
    """Email codes: the step-up mails a code of its own, resent after the cooldown; the newest one proves
    the factor, and email codes can then be turned off."""
    token = token_for(user)
    step = begin(api, token)
    assert step["method"] == "email" and step["code_sent"] is True
    [message] = step_up_mail(mail_server)
    assert message.rcpt_tos == [BACKUP]
    first = message.code()
    assert first not in str(step)

    held = api.post("/me/step-up/resend", {"step_up_token": step["step_up_token"]}, token=token)
    assert held.status_code == 429 and error_code(held) == "rate_limited" and int(held["Retry-After"]) >= 1
    frozen_clock.advance(int(held["Retry-After"]))
    resent = api.post("/me/step-up/resend", {"step_up_token": step["step_up_token"]}, token=token)
    assert resent.status_code == 200, resent.content
    assert resent.json()["step_up_token"] == step["step_up_token"] and resent.json()["code_sent"] is True
    second = step_up_mail(mail_server)[-1].code()
    if first != second:
        assert verify(api, token, step["step_up_token"], code=first).status_code == 401

    proved = verify(api, token, step["step_up_token"], code=second)
    assert proved.status_code == 200, proved.content
    assert api.delete("/me/factors/email", token=token).status_code == 204
    assert not has_factor(user, Method.EMAIL)


def test_an_sms_code_proves_the_factor(
    api: Api, user: User, twilio: FakeTwilio, token_for: Callable[[User], str]
) -> None:
    """SMS codes: asked for by name, sent through the provider with the step-up's own wording."""
    enrol_totp(user)
    sms_flows.start_enrolment(user, user.phone_numbers.get().pk, CLI)
    sms_flows.confirm(user, twilio.last_code(PHONE), CLI)
    twilio.received.clear()
    token = token_for(user)

    step = begin(api, token, method="sms")
    assert step["method"] == "sms" and step["code_sent"] is True and set(step["methods"]) == {"totp", "sms"}
    assert "confirm a change" in twilio.received[-1].body
    proved = verify(api, token, step["step_up_token"], code=twilio.last_code(PHONE))
    assert proved.status_code == 200, proved.content
    assert api.delete("/me/factors/sms", token=token).status_code == 204


def test_a_recovery_code_proves_the_factor(
    api: Api, user: User, totp_key: bytes, token_for: Callable[[User], str]
) -> None:
    """A recovery code stands in for the factor, once; the answer says how many are left."""
    codes = recovery_codes.create_first_set(user, CLI)
    assert codes is not None
    token = token_for(user)
    step = begin(api, token)
    proved = verify(api, token, step["step_up_token"], recovery_code=codes.formatted[0])
    assert proved.status_code == 200, proved.content
    assert proved.json()["recovery_codes_left"] == len(codes.formatted) - 1
    assert api.post("/me/recovery-codes", token=token).status_code == 201

    other = token_for(user)
    step = begin(api, other)
    reused = verify(api, other, step["step_up_token"], recovery_code=codes.formatted[0])
    assert reused.status_code == 401 and error_code(reused) == "second_step_failed"
    assert proof_of(api, other) is None


def test_a_step_up_token_signs_nobody_in_and_a_login_token_proves_nothing(
    api: Api, user: User, totp_key: bytes, token_for: Callable[[User], str]
) -> None:
    """The two kinds of pending second step stay apart, each answered as an unknown token of its own kind;
    neither is spent or counted by the other's operation (AZ-01)."""
    token = token_for(user)
    step = begin(api, token)
    tokens_before = AccessToken.objects.filter(user=user).count()
    as_login = api.post("/auth/login/verify", {"login_token": step["step_up_token"], "code": next_code(totp_key)})
    assert as_login.status_code == 401 and error_code(as_login) == "login_expired"
    assert "access_token" not in as_login.content.decode()
    assert AccessToken.objects.filter(user=user).count() == tokens_before
    as_recovery = api.post(
        "/auth/login/recovery", {"login_token": step["step_up_token"], "code": "AAAA-AAAA-AAAA-AAAA"}
    )
    assert as_recovery.status_code == 401 and error_code(as_recovery) == "login_expired"

    login_token = api.post("/auth/login", {"username": "alice", "password": PASSWORD}).json()["login_token"]
    code = next_code(totp_key)
    as_step_up = verify(api, token, login_token, code=code)
    reauthenticate(api, token)
    made_up = verify(api, token, "made-up", code=code)
    assert as_step_up.status_code == 401 and error_code(as_step_up) == "step_up_expired"
    assert as_step_up.content == made_up.content
    assert proof_of(api, token) is None
    # The sign-in was neither spent nor counted against: its code still signs in.
    assert PendingLogin.objects.get(purpose="sign_in", user=user, completed_at__isnull=True).failures == 0
    assert api.post("/auth/login/verify", {"login_token": login_token, "code": code}).status_code == 200


def test_another_users_step_up_token_is_refused(
    api: Api, user: User, totp_key: bytes, make_user: Callable[..., User], token_for: Callable[[User], str]
) -> None:
    """Alice cannot use Bob's step-up, even with Bob's right code: she gets the answer to a made-up token,
    no proof, and Bob's step-up is untouched (AZ-01)."""
    bob = make_user("bob")
    bob_key = enrol_totp(bob)
    bobs_token = token_for(bob)
    bobs_step = begin(api, bobs_token)

    mine = token_for(user)
    code = next_code(bob_key)
    stolen = verify(api, mine, bobs_step["step_up_token"], code=code)
    reauthenticate(api, mine)
    made_up = verify(api, mine, "made-up", code=code)
    assert stolen.status_code == 401 and error_code(stolen) == "step_up_expired"
    assert stolen.content == made_up.content
    assert proof_of(api, mine) is None
    for method, path, body in [
        ("POST", "/me/step-up/resend", {}),
        ("POST", "/me/step-up/method", {"method": "totp"}),
    ]:
        reauthenticate(api, mine)
        response = api.call(method, path, {"step_up_token": bobs_step["step_up_token"], **body}, token=mine)
        assert response.status_code == 401 and error_code(response) == "step_up_expired", path

    assert PendingLogin.objects.get(user=bob, purpose="step_up").failures == 0
    assert verify(api, bobs_token, bobs_step["step_up_token"], code=code).status_code == 200


def test_switching_methods_keeps_a_step_up_a_step_up(
    api: Api, user: User, enrolled: Authenticator, mail_server: SmtpServer, token_for: Callable[[User], str]
) -> None:
    """Another method for the same step-up token: it is still no login token, and the new method's code proves."""
    key = enrol_totp(user)
    token = token_for(user)
    step = begin(api, token, method="totp")
    assert set(step["methods"]) == {"totp", "email"} and not step_up_mail(mail_server)
    switched = api.post("/me/step-up/method", {"step_up_token": step["step_up_token"], "method": "email"}, token=token)
    assert switched.status_code == 200, switched.content
    assert switched.json()["method"] == "email" and switched.json()["code_sent"] is True
    [message] = step_up_mail(mail_server)
    code = message.code()

    as_login = api.post("/auth/login/verify", {"login_token": step["step_up_token"], "code": code})
    assert as_login.status_code == 401 and error_code(as_login) == "login_expired"
    totp_code = verify(api, token, step["step_up_token"], code=next_code(key))
    assert totp_code.status_code == 401 and error_code(totp_code) == "second_step_failed"
    assert verify(api, token, step["step_up_token"], code=code).status_code == 200

    nothing_to_resend = begin(api, token, method="totp")
    resend = api.post("/me/step-up/resend", {"step_up_token": nothing_to_resend["step_up_token"]}, token=token)
    assert resend.status_code == 409 and error_code(resend) == "method_unavailable"


def test_the_proof_lasts_as_long_as_a_password_entry(
    api: Api, user: User, totp_key: bytes, frozen_clock: clock.FrozenClock, token_for: Callable[[User], str]
) -> None:
    """A proof counts for security.reauth_max_age seconds, then a change asks for a code again (AZ-01)."""
    assert recovery_codes.create_first_set(user, CLI) is not None
    max_age = settings.CONFIG.security.reauth_max_age
    token = token_for(user)
    step = begin(api, token)
    assert verify(api, token, step["step_up_token"], code=totp.totp(totp_key, clock.timestamp())).status_code == 200

    frozen_clock.advance(max_age)
    assert api.post("/me/recovery-codes", token=token).status_code == 201
    frozen_clock.advance(1)
    reauthenticate(api, token)
    assert refused_for_want_of_proof(api.post("/me/recovery-codes", token=token))
    assert refused_for_want_of_proof(api.delete("/me/factors/totp", token=token))
    assert has_factor(user)


def test_a_first_factor_needs_no_step_up_but_a_second_one_does(
    api: Api, user: User, two_factor_on: None, token_for: Callable[[User], str]
) -> None:
    """With no factor the password is all that signs the user in, and all a first app needs; once it signs
    them in, adding another factor asks for a code of it (AZ-01)."""
    token = token_for(user)
    nothing_to_prove = api.post("/me/step-up", {}, token=token)
    assert nothing_to_prove.status_code == 409 and error_code(nothing_to_prove) == "conflict"

    key = totp.decode_secret(api.post("/me/factors/totp", token=token).json()["secret"])
    confirmed = api.post("/me/factors/totp/confirm", {"code": totp.totp(key, clock.timestamp())}, token=token)
    assert confirmed.status_code == 201, confirmed.content
    assert refused_for_want_of_proof(api.post("/me/factors/totp", token=token))
    assert refused_for_want_of_proof(
        api.post("/me/factors/sms", {"phone_id": user.phone_numbers.get().pk}, token=token)
    )


def test_a_method_that_is_not_the_users_starts_nothing(
    api: Api, user: User, totp_key: bytes, token_for: Callable[[User], str]
) -> None:
    """Asking for a method the user has not set up answers 409 method_unavailable with theirs, and opens nothing."""
    response = api.post("/me/step-up", {"method": "sms"}, token=token_for(user))
    assert response.status_code == 409 and error_code(response) == "method_unavailable"
    assert response.json()["error"]["methods"] == ["totp"]
    assert not PendingLogin.objects.filter(user=user, purpose="step_up").exists()


def test_an_admin_with_a_factor_proves_it_before_a_reset(
    api: Api, user: User, admin: User, totp_key: bytes, token_for: Callable[[User], str]
) -> None:
    """With a sign-in token, an administrator whom an app signs in needs a proof to reset 2FA, theirs
    included, as in the console: the password alone turns no second step off (AZ-01)."""
    admin_key = enrol_totp(admin)
    token = token_for(admin)
    for target in (user, admin):
        refused = api.post(f"/admin/users/{target.username}/reset-2fa", token=token)
        assert refused_for_want_of_proof(refused)
        assert has_factor(target)
    step = begin(api, token)
    assert verify(api, token, step["step_up_token"], code=next_code(admin_key)).status_code == 200
    assert api.post(f"/admin/users/{user.username}/reset-2fa", token=token).status_code == 200
    assert not has_factor(user)


def test_a_new_personal_token_needs_a_proof(
    api: Api, user: User, totp_key: bytes, token_for: Callable[[User], str]
) -> None:
    """A personal token reaches the API without a second step: making one needs a code as well (AZ-01)."""
    token = token_for(user)
    body = {"name": "backup script", "scopes": ["read"], "expires_in_days": 30}
    assert refused_for_want_of_proof(api.post("/me/tokens", body, token=token))
    assert not AccessToken.objects.filter(user=user, name="backup script").exists()
    step = begin(api, token)
    assert verify(api, token, step["step_up_token"], code=next_code(totp_key)).status_code == 200
    assert api.post("/me/tokens", body, token=token).status_code == 201


def test_switching_2fa_off_by_api_needs_the_admins_proof(
    api: Api, admin: User, two_factor_on: None, token_for: Callable[[User], str]
) -> None:
    """PATCH /admin/settings that stops asking users (the administrator among them) for their code needs the
    administrator's proof with a sign-in token, even once the number affected is confirmed (AZ-01)."""
    from twostep.core.runtime import get_setting

    key = enrol_totp(admin)
    token = token_for(admin)
    body: dict[str, Any] = {"values": {"two_factor.enabled": False}, "confirm_affected": 1}
    assert refused_for_want_of_proof(api.patch("/admin/settings", body, token=token))
    assert get_setting("two_factor.enabled") is True
    step = begin(api, token)
    assert verify(api, token, step["step_up_token"], code=next_code(key)).status_code == 200
    assert api.patch("/admin/settings", body, token=token).status_code == 200
    assert get_setting("two_factor.enabled") is False


def test_a_resend_as_the_step_up_ends_answers_step_up_expired(
    api: Api,
    user: User,
    enrolled: Authenticator,
    mail_server: SmtpServer,
    frozen_clock: clock.FrozenClock,
    token_for: Callable[[User], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The step-up completes elsewhere just as a resend makes its code: 401 step_up_expired, nothing mailed."""
    token = token_for(user)
    step = begin(api, token)
    mailed = len(step_up_mail(mail_server))
    frozen_clock.advance(61)
    waiting = PendingLogin.objects.filter(user=user, purpose=Purpose.STEP_UP, completed_at__isnull=True)
    just_before(monkeypatch, codes, "issue", partial(waiting.update, completed_at=clock.now()))
    response = api.post("/me/step-up/resend", {"step_up_token": step["step_up_token"]}, token=token)
    assert response.status_code == 401 and error_code(response) == "step_up_expired", response.content
    assert len(step_up_mail(mail_server)) == mailed
