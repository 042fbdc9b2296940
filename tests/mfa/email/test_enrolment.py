"""Turning email codes on from the Security page: only one's own addresses, confirmed by a real email."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial

import pytest
from django.test import Client

from tests.concurrency import at_once
from tests.conftest import prove_second_factor, sign_in
from tests.mail.smtp_server import Certificates, SmtpServer, configure_twostep
from tests.mfa.email.conftest import BACKUP, sign_in_with_email_code
from tests.mfa.races import attempt, just_before, sent_or_ended, two_factor_reset
from twostep.accounts.models import User
from twostep.audit.models import AuthEvent
from twostep.audit.services import CLI
from twostep.core import clock
from twostep.mfa import codes
from twostep.mfa.email import flows
from twostep.mfa.models import Authenticator, OneTimeCode
from twostep.mfa.services import reset_two_factor

pytestmark = pytest.mark.django_db

SETUP = "/account/security/email"


def signed_in(client: Client, user: User) -> Client:
    assert sign_in(client, user.username).status_code == 302
    return client


def address_id(user: User, email: str) -> int:
    return int(user.email_addresses.get(email=email).pk)


def test_security_page_recommends_a_non_primary_address(client: Client, user: User, email_on: None) -> None:
    """The panel offers email codes and recommends an address other than the primary one."""
    page = signed_in(client, user).get("/account/security").content.decode()
    assert "Email codes" in page and "weakest method" in page
    assert "we recommend one other than your primary address" in page
    assert f'href="{SETUP}"' in page


def test_setup_preselects_the_non_primary_and_warns_on_the_primary(client: Client, user: User, email_on: None) -> None:
    """The picker lists only the user's addresses, preselects the non-primary, and warns next to the primary."""
    page = signed_in(client, user).get(SETUP).content.decode()
    backup, primary = address_id(user, BACKUP), address_id(user, "alice@example.com")
    assert f'value="{backup}" checked' in page
    assert f'value="{primary}" aria-describedby="primary-warning"' in page
    assert "Not recommended: your primary address is where password resets" in page
    assert 'type="email"' not in page and 'name="email"' not in page


def test_only_address_says_an_admin_can_add_another(
    client: Client, make_user: Callable[..., User], email_on: None
) -> None:
    """With a single address both the panel and the picker say that an admin can add another."""
    solo = make_user("solo", emails=["solo@example.com"])
    signed_in(client, solo)
    assert (
        "an administrator can add another address to your account" in client.get("/account/security").content.decode()
    )
    assert "an administrator can add another address to your account" in client.get(SETUP).content.decode()


def test_no_address_no_setup(client: Client, make_user: Callable[..., User], email_on: None) -> None:
    """A user without any address is told that an admin must add one; there is nothing to pick."""
    bare = make_user("bare")
    signed_in(client, bare)
    assert "There is no email address on your account" in client.get("/account/security").content.decode()
    page = client.get(SETUP).content.decode()
    assert "An administrator can add one." in page and 'name="address"' not in page


def test_an_administrator_without_an_address_is_sent_to_their_user_page(
    client: Client, make_user: Callable[..., User], email_on: None
) -> None:
    """An administrator reads where to add an address themselves, on the Security page and the set-up page."""
    boss = make_user("boss", role="admin")
    signed_in(client, boss)
    for page in (client.get("/account/security"), client.get(SETUP)):
        text = page.content.decode()
        assert 'on <a href="/admin/users/boss">your user page</a> in the console' in text
        assert "An administrator can add one" not in text


def test_enrol_through_a_real_email(client: Client, user: User, mail_server: SmtpServer, email_on: None) -> None:
    """Pick the backup address, receive the code over SMTP+STARTTLS, confirm: email codes are on for it."""
    signed_in(client, user)
    response = client.post(SETUP, {"action": "send", "address": address_id(user, BACKUP)})
    assert response.status_code == 302
    [received] = mail_server.wait_for(1)
    assert received.rcpt_tos == [BACKUP] and received.over_tls
    code = received.code()
    assert code not in received.subject
    page = client.get(SETUP).content.decode()
    assert f"Enter the code sent to {BACKUP}" in page
    assert "You chose your primary address" not in page
    response = client.post(SETUP, {"action": "confirm", "code": code})
    assert response.status_code == 302 and response["Location"] == "/account/security"
    factor = Authenticator.objects.get(user=user, method="email")
    assert factor.destination == BACKUP and factor.confirmed_at is not None
    assert AuthEvent.objects.filter(kind="email.enabled", user=user).exists()
    assert f"Codes go to <strong>{BACKUP}</strong>" in client.get("/account/security").content.decode()


def test_picking_the_primary_shows_a_warning(
    client: Client, user: User, mail_server: SmtpServer, email_on: None
) -> None:
    """Choosing the primary address works but the code step warns about it."""
    signed_in(client, user)
    client.post(SETUP, {"action": "send", "address": address_id(user, "alice@example.com")})
    assert mail_server.wait_for(1)[0].rcpt_tos == ["alice@example.com"]
    assert "You chose your primary address" in client.get(SETUP).content.decode()


def test_cannot_send_to_someone_elses_address(
    client: Client, user: User, make_user: Callable[..., User], mail_server: SmtpServer, email_on: None
) -> None:
    """Another user's address id (or a typed address) sends nothing and enrols nothing."""
    other = make_user("mallory", emails=["mallory@example.net"])
    signed_in(client, user)
    response = client.post(
        SETUP, {"action": "send", "address": address_id(other, "mallory@example.net"), "email": "evil@example.net"}
    )
    assert "Choose one of the addresses on your account." in response.content.decode()
    assert mail_server.messages() == []
    assert not Authenticator.objects.filter(user=user).exists()


def test_wrong_code_then_right_code(client: Client, user: User, mail_server: SmtpServer, email_on: None) -> None:
    """A wrong confirmation code is refused with a clear message; the right one still works after it."""
    signed_in(client, user)
    client.post(SETUP, {"action": "send", "address": address_id(user, BACKUP)})
    code = mail_server.wait_for(1)[0].code()
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    response = client.post(SETUP, {"action": "confirm", "code": wrong})
    assert "That code didn&#x27;t match" in response.content.decode()
    assert not Authenticator.objects.filter(user=user, confirmed_at__isnull=False).exists()
    assert client.post(SETUP, {"action": "confirm", "code": code}).status_code == 302
    assert Authenticator.objects.filter(user=user, method="email", confirmed_at__isnull=False).exists()


def test_five_wrong_codes_kill_the_enrolment_code(
    client: Client, user: User, mail_server: SmtpServer, email_on: None, frozen_clock: clock.FrozenClock
) -> None:
    """After five wrong tries the right code is refused: a new code must be sent."""
    signed_in(client, user)
    client.post(SETUP, {"action": "send", "address": address_id(user, BACKUP)})
    code = mail_server.wait_for(1)[0].code()
    for _ in range(5):
        client.post(SETUP, {"action": "confirm", "code": f"{(int(code) + 1) % 10**6:06d}"})
    waiting = client.post(SETUP, {"action": "confirm", "code": code})
    assert "Too many wrong codes. Wait a moment" in waiting.content.decode()
    frozen_clock.advance(2)  # the account's delay after five wrong codes
    response = client.post(SETUP, {"action": "confirm", "code": code})
    assert "tried too many times" in response.content.decode()
    assert not Authenticator.objects.filter(user=user, confirmed_at__isnull=False).exists()


def test_smtp_failure_during_enrolment(
    client: Client,
    user: User,
    mail_server: SmtpServer,
    closed_port: int,
    certificates: Certificates,
    monkeypatch: pytest.MonkeyPatch,
    email_on: None,
) -> None:
    """With the mail server down the page says so, the error is logged, and no code is left behind."""
    configure_twostep(monkeypatch, certificates, closed_port)
    signed_in(client, user)
    response = client.post(SETUP, {"action": "send", "address": address_id(user, BACKUP)})
    assert "We could not send the code. Try again in a moment." in response.content.decode()
    assert not OneTimeCode.objects.filter(user=user).exists()
    event = AuthEvent.objects.get(kind="email.code_sent", reason="delivery_failed")
    assert "connection refused" in event.detail["error"]
    # Coming back, the page does not ask for a code that never went out: it offers the addresses again.
    page = client.get(SETUP).content.decode()
    assert "Enter the code sent to" not in page
    assert f"No code could be sent to {BACKUP}. Try again, or choose another address." in page
    assert re.search(rf'value="{address_id(user, BACKUP)}" checked', page), "the address tried is preselected"


def test_turn_off(client: Client, user: User, enrolled: Authenticator, mail_server: SmtpServer) -> None:
    """Turning email codes off removes the factor."""
    sign_in_with_email_code(client, user, mail_server)
    prove_second_factor(client)
    # The only method: the page asks first, saying what it leaves, and nothing changes yet.
    asked = client.post("/account/security/email/remove")
    assert asked.status_code == 200 and "your password alone signs in" in asked.content.decode()
    assert Authenticator.objects.filter(user=user, method="email").exists()
    assert client.post("/account/security/email/remove", {"confirm": "yes"}).status_code == 302
    assert not Authenticator.objects.filter(user=user, method="email").exists()


def test_not_allowed_by_the_admin(client: Client, user: User, two_factor_on: None) -> None:
    """When the admin does not allow email codes, setup is refused."""
    signed_in(client, user)
    response = client.get(SETUP)
    assert response.status_code == 302 and response["Location"] == "/account/security"


@pytest.mark.parametrize("how", ["switching", "cancelling"])
def test_starting_over_does_not_reset_the_send_limits(
    client: Client, user: User, mail_server: SmtpServer, email_on: None, frozen_clock: clock.FrozenClock, how: str
) -> None:
    """Alternating addresses, or cancelling and starting again, sends no more than 5 codes in 15 minutes.

    Each start makes a new enrolment with its own cooldown; if the old codes
    went with the old enrolment, the account's limit would count nothing and
    every start would mail a fresh code with five more tries.
    """
    signed_in(client, user)
    ids = [address_id(user, "alice@example.com"), address_id(user, BACKUP)]
    for round_ in range(8):
        if how == "cancelling":
            client.post(SETUP, {"action": "cancel"})
        client.post(SETUP, {"action": "send", "address": ids[round_ % 2]})
        frozen_clock.advance(5)
    assert len(mail_server.messages()) == 5
    refused = client.post(SETUP, {"action": "send", "address": ids[0]}).content.decode()
    assert "Too many codes were sent to your account." in refused
    assert [e.reason for e in AuthEvent.objects.filter(kind="email.code_sent", outcome="failure")][
        -1
    ] == "account_limit"


@pytest.mark.django_db(transaction=True)
def test_confirming_while_an_admin_resets_does_not_deadlock(
    user: User, mail_server: SmtpServer, email_on: None, frozen_clock: clock.FrozenClock
) -> None:
    """The user types the set-up code at the moment an administrator resets their second factors.

    Confirming must lock the account's row before the address being set up,
    as the reset does: on PostgreSQL, a confirmation that locked the set-up
    first deadlocked with a reset holding the account's row and deleting
    that set-up, and one of the two failed.
    """
    backup = address_id(user, BACKUP)
    for _ in range(25):
        frozen_clock.advance(16 * 60)  # past the resend wait and the send caps of the previous round
        flows.start_enrolment(user, backup, CLI)
        confirm = attempt(
            partial(flows.confirm_enrolment, user, mail_server.last_code(BACKUP), CLI), "enabled", flows.EnrolmentError
        )
        assert sorted(at_once([confirm, two_factor_reset(user)])) in (["enabled", "reset"], ["refused", "reset"])
        reset_two_factor(user, origin=CLI)


def test_setup_cancelled_while_its_code_is_being_sent_says_start_again(
    client: Client, user: User, mail_server: SmtpServer, email_on: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second tab cancels the set-up between the first tab saving it and making its code.

    The code's row would refer to a set-up that no longer exists: the page
    says so and sends nothing, instead of failing with a server error.
    """
    signed_in(client, user)
    just_before(monkeypatch, codes, "issue", partial(flows.cancel_enrolment, user))
    response = client.post(SETUP, {"action": "send", "address": address_id(user, BACKUP)})
    assert response.status_code == 200
    assert "Your setup changed while the code was being sent" in response.content.decode()
    assert mail_server.messages() == [] and not OneTimeCode.objects.filter(user=user).exists()
    assert AuthEvent.objects.filter(user=user, kind="email.code_sent", reason="ended").exists()
    assert client.post(SETUP, {"action": "send", "address": address_id(user, BACKUP)}).status_code == 302
    assert mail_server.wait_for(1)[0].rcpt_tos == [BACKUP]


@pytest.mark.django_db(transaction=True)
def test_two_tabs_choosing_different_addresses_at_once(
    user: User, mail_server: SmtpServer, email_on: None, frozen_clock: clock.FrozenClock
) -> None:
    """Two tabs start the set-up on different addresses at the same moment.

    Each start replaces the other's set-up; whichever loses the race is told
    its set-up ended (nothing sent), and the winner's code confirms.  Before,
    the loser's code could refer to a deleted set-up: a server error, and on
    PostgreSQL sometimes the winner's failure too.
    """
    primary, backup = address_id(user, "alice@example.com"), address_id(user, BACKUP)

    def start(address: int) -> Callable[[], str]:
        return sent_or_ended(partial(flows.start_enrolment, user, address, CLI), "sent", flows.EnrolmentError)

    for _ in range(20):
        frozen_clock.advance(16 * 60)  # past the send caps of the previous round
        outcomes = at_once([start(primary), start(backup)])
        assert "sent" in outcomes and set(outcomes) <= {"sent", "ended"}
        pending = flows.pending_enrolment(user)
        assert pending is not None
        flows.confirm_enrolment(user, mail_server.last_code(pending.destination), CLI)
        reset_two_factor(user, origin=CLI)
