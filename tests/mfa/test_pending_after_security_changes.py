"""Sign-ins waiting at the second step when the account's credentials change under them (audit).

A pending sign-in (an API login token, or the browser's pending state) is
half a session: whoever holds it already passed the password.  SECURITY.md
says sessions end "when the password changes, the account is disabled, or
an administrator resets the user's second factors", and a factor added or
replaced ends the user's other sessions and tokens.  A sign-in begun with
the old password, or with a code sent to the old address, must not be
completed after such a change either.
"""

from __future__ import annotations

from functools import partial

import pytest
from django.test import Client

from tests.api.conftest import Api, error_code
from tests.concurrency import at_once
from tests.conftest import PASSWORD
from tests.mail.smtp_server import SmtpServer, certificates, mail_server, smtp_server
from tests.mfa.email.conftest import BACKUP, email_on, enrolled
from tests.mfa.races import attempt, code_check, removal, trust_a_browser, two_factor_reset
from tests.mfa.recovery_codes.helpers import enrol_totp, next_code, signed_in_with_totp
from twostep.accounts.models import User
from twostep.api.models import AccessToken
from twostep.audit.services import CLI
from twostep.core import clock
from twostep.factors import totp
from twostep.mfa import login as second_step
from twostep.mfa.email import flows as email_flows
from twostep.mfa.models import Authenticator, OneTimeCode
from twostep.mfa.services import reset_two_factor
from twostep.mfa.totp import flows as totp_flows

__all__ = ["certificates", "email_on", "enrolled", "mail_server", "smtp_server"]

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a completely different passphrase 7"


def start_api_sign_in(api: Api, username: str, password: str = PASSWORD) -> str:
    response = api.post("/auth/login", {"username": username, "password": password})
    assert response.status_code == 200 and response.json()["status"] == "second_step_required", response.content
    return str(response.json()["login_token"])


def test_password_change_ends_sign_ins_waiting_at_the_second_step(user: User, two_factor_on: None) -> None:
    """Someone with the phished password opens a sign-in through the API; the owner then changes the
    password on the page ("Your other sessions were signed out").  The half-done sign-in begun with the
    old password must be over: completing it now would hand out a token the password change should
    have prevented."""
    key = enrol_totp(user)
    attacker = Api(Client())
    login_token = start_api_sign_in(attacker, user.username)

    owner = Client()
    assert signed_in_with_totp(owner, user, key).status_code == 302
    changed = owner.post(
        "/account/password",
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "repeat_password": NEW_PASSWORD},
    )
    assert changed.status_code == 302, changed.content
    tokens_before = AccessToken.objects.filter(user=user).count()

    finished = attacker.post("/auth/login/verify", {"login_token": login_token, "code": next_code(key)})
    assert finished.status_code == 401 and error_code(finished) == "login_expired", finished.content
    assert AccessToken.objects.filter(user=user).count() == tokens_before


def test_ending_other_sessions_ends_the_browser_sign_in_waiting_at_the_second_step(
    user: User, two_factor_on: None
) -> None:
    """ "Sign out other sessions" on the Security page leaves a browser that is at /login/verify able to
    finish signing in: the pending state is not ended with the sessions."""
    key = enrol_totp(user)
    attacker = Client()
    response = attacker.post("/login", {"username": user.username, "password": PASSWORD})
    assert response["Location"] == "/login/verify"

    owner = Client()
    assert signed_in_with_totp(owner, user, key).status_code == 302
    assert owner.post("/account/sessions/end-others").status_code == 302

    finished = attacker.post("/login/verify", {"code": next_code(key)})
    assert not (finished.status_code == 302 and finished["Location"] == "/account"), "signed in after sign-out"
    assert attacker.get("/account").status_code != 200


def test_replacing_the_email_factor_ends_codes_sent_to_the_old_address(
    user: User, enrolled: Authenticator, mail_server: SmtpServer
) -> None:
    """The old mailbox is compromised: a sign-in mails its code there.  The owner moves email codes to
    another address (which ends their other sessions and tokens).  The code in the old mailbox must no
    longer complete the sign-in waiting for it; it does, because the code is bound to the pending
    sign-in only, never to the address the factor now sends to."""
    attacker = Api(Client())
    login_token = start_api_sign_in(attacker, user.username)
    old_code = mail_server.last_code(BACKUP)

    primary = user.email_addresses.get(email="alice@example.com")
    email_flows.start_enrolment(user, primary.pk, CLI)
    email_flows.confirm_enrolment(user, mail_server.last_code("alice@example.com"), CLI)
    assert Authenticator.objects.get(user=user, method="email", confirmed_at__isnull=False).destination == (
        "alice@example.com"
    )

    finished = attacker.post("/auth/login/verify", {"login_token": login_token, "code": old_code})
    assert finished.status_code == 401, finished.content
    assert not AccessToken.objects.filter(user=user).exists()


def test_ending_waiting_sign_ins_keeps_their_codes_counted(
    user: User, enrolled: Authenticator, mail_server: SmtpServer
) -> None:
    """Ending the sign-ins (here by a 2FA reset) must not give back the sends they used: the daily,
    per-account and per-address limits count the codes sent, and deleting the sign-ins deleted those."""
    attacker = Api(Client())
    login_token = start_api_sign_in(attacker, user.username)
    code = mail_server.last_code(BACKUP)
    sent = OneTimeCode.objects.filter(user=user, sent_at__isnull=False)
    before = sent.count()
    assert sent.filter(pending_login__isnull=False).count() == 1

    reset_two_factor(user, origin=CLI)

    assert sent.count() == before
    finished = attacker.post("/auth/login/verify", {"login_token": login_token, "code": code})
    assert finished.status_code == 401, finished.content


@pytest.mark.django_db(transaction=True)
def test_a_reset_while_a_code_is_checked_does_not_deadlock(user: User, two_factor_on: None) -> None:
    """An administrator resets the user's second factors at the moment a code of theirs is checked.

    The reset must lock the account's row before the factors', as the
    code's check does: on PostgreSQL, a reset that deleted the factor first
    and wrote the account's row last deadlocked with a check holding the
    account's row and updating the factor, and one of the two failed.
    """
    for _ in range(25):
        key = enrol_totp(user)
        factor = Authenticator.objects.get(user=user, method="totp", confirmed_at__isnull=False)
        pending, _ = second_step.start(user, factor, CLI)
        code = next_code(key)

        outcomes = sorted(at_once([code_check(pending, code), two_factor_reset(user)]))
        assert outcomes in (["refused", "reset"], ["reset", "signed in"])
        assert not Authenticator.objects.filter(user=user).exists()


@pytest.mark.django_db(transaction=True)
def test_removing_the_app_while_its_code_is_checked_does_not_deadlock(user: User, two_factor_on: None) -> None:
    """The user turns the authenticator app off at the moment a code of it is checked (another tab, an API client).

    Removing must lock the account's row before the factor's, as the code's
    check does: on PostgreSQL, a removal that deleted the factor first and
    then logged the trusted browsers' revocation (which waits for the
    account's row) deadlocked with a check holding the account's row and
    updating the factor, and one of the two failed.
    """
    for _ in range(25):
        key = enrol_totp(user)
        trust_a_browser(user)
        factor = Authenticator.objects.get(user=user, method="totp", confirmed_at__isnull=False)
        pending, _ = second_step.start(user, factor, CLI)
        remove = removal(partial(totp_flows.remove, user, CLI))
        outcomes = sorted(at_once([code_check(pending, next_code(key)), remove]))
        assert outcomes in (["refused", "removed"], ["removed", "signed in"])


@pytest.mark.django_db(transaction=True)
def test_replacing_the_app_while_its_code_is_checked_does_not_deadlock(user: User, two_factor_on: None) -> None:
    """The user confirms a new authenticator app at the moment a code of the old one is checked.

    As for a removal: confirming deletes the old factor, then logs the
    trusted browsers' revocation, so it must lock the account's row first.
    """
    for _ in range(25):
        old = enrol_totp(user)
        trust_a_browser(user)
        factor = Authenticator.objects.get(user=user, method="totp", confirmed_at__isnull=False)
        pending, _ = second_step.start(user, factor, CLI)
        new = totp.decode_secret(totp_flows.provisioning_for(user).secret)
        new_code = totp.hotp(new, totp.time_step(clock.timestamp()))

        def confirm(code: str = new_code) -> str:
            totp_flows.confirm(user, code, CLI)
            return "replaced"

        outcomes = sorted(at_once([code_check(pending, next_code(old)), confirm]))
        assert outcomes in (["refused", "replaced"], ["replaced", "signed in"])
        totp_flows.remove(user, CLI)


@pytest.mark.django_db(transaction=True)
def test_replacing_the_app_while_an_admin_resets_does_not_deadlock(user: User, two_factor_on: None) -> None:
    """The user confirms a new authenticator app at the moment an administrator resets their second factors.

    Confirming locks the new app's row, then deletes the old one's; the
    reset deletes both in one statement, in its own order.  Confirming must
    lock the account's row first, as the reset does, or the two deadlock on
    PostgreSQL.
    """
    for _ in range(25):
        enrol_totp(user)
        new = totp.decode_secret(totp_flows.provisioning_for(user).secret)
        new_code = totp.hotp(new, totp.time_step(clock.timestamp()))

        confirm = attempt(partial(totp_flows.confirm, user, new_code, CLI), "replaced", totp_flows.EnrolmentError)
        assert sorted(at_once([confirm, two_factor_reset(user)])) in (["refused", "reset"], ["replaced", "reset"])
        reset_two_factor(user, origin=CLI)


@pytest.mark.django_db(transaction=True)
def test_removing_email_codes_while_one_is_checked_does_not_deadlock(
    user: User, mail_server: SmtpServer, email_on: None, frozen_clock: clock.FrozenClock
) -> None:
    """The user turns email codes off at the moment an emailed code is checked.

    As for the authenticator app: the check updates the factor after
    locking the account's row, so removing must lock the account's row first.
    """
    backup = user.email_addresses.get(email=BACKUP).pk
    for _ in range(25):
        frozen_clock.advance(16 * 60)  # past the resend wait and the send caps of the previous round
        email_flows.start_enrolment(user, backup, CLI)
        factor = email_flows.confirm_enrolment(user, mail_server.last_code(BACKUP), CLI)
        trust_a_browser(user)
        pending, _ = second_step.start(user, factor, CLI)
        remove = removal(partial(email_flows.remove, user, CLI))
        outcomes = sorted(at_once([code_check(pending, mail_server.last_code(BACKUP)), remove]))
        assert outcomes in (["refused", "removed"], ["removed", "signed in"])
