"""SMS as a second factor through the pages: enrolment on a chosen number, sign-in, resend, removal."""

from __future__ import annotations

import re
from datetime import timedelta
from functools import partial

import pytest
from django.conf import settings
from django.test import Client, override_settings

from tests.concurrency import at_once
from tests.conftest import asked_for_password, prove_second_factor, sign_in
from tests.mfa.races import attempt, code_check, just_before, removal, sent_or_ended, trust_a_browser, two_factor_reset
from tests.mfa.sms.conftest import PRIMARY, SECOND
from tests.sms.fakes import FakeTwilio
from twostep.accounts import services
from twostep.accounts.models import PhoneNumber, User
from twostep.accounts.views import PENDING_KEY
from twostep.audit.models import AuthEvent
from twostep.audit.services import CLI
from twostep.config import load_config
from twostep.core import clock
from twostep.core.runtime import set_setting
from twostep.mfa import login as second_step
from twostep.mfa.models import Authenticator, OneTimeCode
from twostep.mfa.services import reset_two_factor
from twostep.mfa.sms import flows
from twostep.sms import service as sms_service
from twostep.sms.service import NotSent

DAY = timedelta(days=1)

pytestmark = pytest.mark.django_db


def signed_in(user: User) -> Client:
    client = Client()
    response = sign_in(client, user.username)
    assert response.status_code == 302 and response["Location"] == "/account", response
    return client


def phone_id(user: User, number: str) -> int:
    return PhoneNumber.objects.get(user=user, number=number).pk


def enrol(client: Client, user: User, fake: FakeTwilio, number: str = SECOND) -> Authenticator:
    response = client.post("/account/security/sms", {"action": "send", "phone": phone_id(user, number)})
    assert response.status_code == 302, response.content
    response = client.post("/account/security/sms", {"action": "confirm", "code": fake.last_code(number)})
    assert response.status_code == 302 and response["Location"] == "/account/security", response
    return Authenticator.objects.get(user=user, method="sms", confirmed_at__isnull=False)


def test_enrol_on_the_chosen_number_and_sign_in_with_it(phone_user: User, twilio: FakeTwilio) -> None:
    """The number picked at enrolment (not the primary) receives the sign-in codes, and its code signs in."""
    client = signed_in(phone_user)
    page = client.get("/account/security/sms").content.decode()
    # The user's own numbers, in full on their own page (as their addresses are).
    assert PRIMARY in page and SECOND in page and "•••" not in page
    factor = enrol(client, phone_user, twilio, SECOND)
    assert factor.destination == SECOND
    assert [m.to for m in twilio.received] == [SECOND]

    browser = Client()
    response = sign_in(browser, phone_user.username)
    assert response["Location"] == "/login/verify"
    assert [m.to for m in twilio.received] == [SECOND, SECOND]
    page = browser.get("/login/verify").content.decode()
    assert "Enter the code sent to +1 ••• ••• 4321" in page
    assert "Send a new code" in page
    assert browser.get("/account").status_code == 302
    response = browser.post("/login/verify", {"code": twilio.last_code(SECOND)})
    assert response.status_code == 302 and response["Location"] == "/account"
    assert browser.get("/account").status_code == 200
    assert "sign-in code" in twilio.received[-1].body
    # Twilio drops a message still queued once its code has expired (10 minutes).
    assert [m.fields["ValidityPeriod"] for m in twilio.received] == ["600", "600"]


def test_a_sign_in_code_is_announced_as_long_as_its_sign_in_lasts(
    phone_user: User, twilio: FakeTwilio, frozen_clock: clock.FrozenClock
) -> None:
    """With sign-ins that last two minutes, the code's message may wait two minutes, and a new code sent a
    minute later one: no longer than the code can still be used."""
    enrol(signed_in(phone_user), phone_user, twilio)
    short = load_config(settings.DATA_DIR, {"TWOSTEP_SECURITY__PENDING_LOGIN_TTL": "120"})
    with override_settings(CONFIG=short):
        browser = Client()
        sign_in(browser, phone_user.username)
        frozen_clock.advance(61)
        assert browser.post("/login/verify/sms/resend").status_code == 302
    assert [m.fields["ValidityPeriod"] for m in twilio.received[-2:]] == ["120", "59"]


def test_the_first_factor_brings_the_first_recovery_codes(phone_user: User, twilio: FakeTwilio) -> None:
    """Confirming SMS codes as the first factor proves it: the Security page then shows the first codes."""
    client = signed_in(phone_user)
    enrol(client, phone_user, twilio)
    page = client.get("/account/security").content.decode()
    assert len(re.findall(r"<li><code>[0-9A-Z-]{19}</code></li>", page)) == 10


def test_security_page_shows_the_users_own_number_in_full(phone_user: User, twilio: FakeTwilio) -> None:
    """Signed in, on their own Security page, the user sees the number their codes go to, as they see the
    address of email codes; masking is for the sign-in page, before the second step."""
    client = signed_in(phone_user)
    enrol(client, phone_user, twilio, SECOND)
    client.get("/account/security")  # the one-time message of the set-up
    page = client.get("/account/security").content.decode()
    assert f"Codes go to <strong>{SECOND}</strong>" in page and "••• 4321" not in page


def test_sign_in_code_works_once_and_enrolment_code_never(phone_user: User, twilio: FakeTwilio) -> None:
    """A used sign-in code is dead; the enrolment code was bound to the enrolment and cannot sign in."""
    enrol(signed_in(phone_user), phone_user, twilio, PRIMARY)
    enrolment_code = twilio.codes()[0]
    first = Client()
    sign_in(first, phone_user.username)
    code = twilio.last_code()
    if code == enrolment_code:  # one chance in a million: make the enrolment-code check meaningful
        pytest.skip("codes collided")
    assert first.post("/login/verify", {"code": enrolment_code}).status_code == 200
    assert first.post("/login/verify", {"code": code})["Location"] == "/account"
    second = Client()
    sign_in(second, phone_user.username)
    assert second.post("/login/verify", {"code": code}).status_code == 200
    assert second.get("/account").status_code == 302


def test_numbers_of_other_users_cannot_be_chosen(phone_user: User, make_user, twilio: FakeTwilio) -> None:  # type: ignore[no-untyped-def]
    """Enrolment takes only an id of one of the user's own numbers; nothing is sent otherwise."""
    other = make_user("mallory", phones=["+15559990000"])
    client = signed_in(phone_user)
    for value in (phone_id(other, "+15559990000"), "+15559990000", "0"):
        response = client.post("/account/security/sms", {"action": "send", "phone": value})
        assert response.status_code == 200
        assert "Choose one of the phone numbers on your account." in response.content.decode()
    assert twilio.received == []
    assert not Authenticator.objects.filter(user=phone_user, method="sms").exists()


def test_wrong_confirmation_code_does_not_enable(
    phone_user: User, twilio: FakeTwilio, frozen_clock: clock.FrozenClock
) -> None:
    """A wrong code is refused; after five wrong tries the right code no longer works."""
    client = signed_in(phone_user)
    client.post("/account/security/sms", {"action": "send", "phone": phone_id(phone_user, PRIMARY)})
    right = twilio.last_code()
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    for _ in range(5):
        response = client.post("/account/security/sms", {"action": "confirm", "code": wrong})
        assert response.status_code == 200 and "That code didn" in response.content.decode()
    frozen_clock.advance(2)  # the account's delay after five wrong codes
    client.post("/account/security/sms", {"action": "confirm", "code": right})
    assert not Authenticator.objects.filter(user=phone_user, method="sms", confirmed_at__isnull=False).exists()
    assert AuthEvent.objects.filter(kind="sms.enrol", reason="code_exhausted").exists()


def test_an_empty_or_malformed_confirmation_code_is_said_and_not_checked(phone_user: User, twilio: FakeTwilio) -> None:
    """An empty field, spaces, full-width digits or five digits are told what a code looks like (not "didn't
    work"), as many times as typed; nothing is counted and the right code still confirms."""
    client = signed_in(phone_user)
    client.post("/account/security/sms", {"action": "send", "phone": phone_id(phone_user, PRIMARY)})
    typings = [
        ("", "Enter the code."),
        ("123 456", "digits only"),
        ("\uff11" * 6, "digits only"),
        ("12345", "digits only"),
    ]
    for typed, said in typings * 2:
        page = client.post("/account/security/sms", {"action": "confirm", "code": typed}).content.decode()
        assert said in page and "didn" not in page, typed
    phone_user.refresh_from_db()
    assert phone_user.second_step_failures == 0
    assert not AuthEvent.objects.filter(kind="sms.enrol", outcome="failure").exists()
    response = client.post("/account/security/sms", {"action": "confirm", "code": twilio.last_code()})
    assert response.status_code == 302 and response["Location"] == "/account/security"


def test_code_for_one_number_does_not_confirm_another(
    phone_user: User, twilio: FakeTwilio, frozen_clock: clock.FrozenClock
) -> None:
    """Switching numbers kills the code sent to the first: only the new number's code confirms it."""
    client = signed_in(phone_user)
    client.post("/account/security/sms", {"action": "send", "phone": phone_id(phone_user, PRIMARY)})
    first = twilio.last_code(PRIMARY)
    client.post("/account/security/sms", {"action": "change"})
    frozen_clock.advance(61)
    client.post("/account/security/sms", {"action": "send", "phone": phone_id(phone_user, SECOND)})
    second = twilio.last_code(SECOND)
    if first == second:
        pytest.skip("codes collided")
    response = client.post("/account/security/sms", {"action": "confirm", "code": first})
    assert response.status_code == 200
    assert not Authenticator.objects.filter(user=phone_user, method="sms", confirmed_at__isnull=False).exists()
    assert client.post("/account/security/sms", {"action": "confirm", "code": second}).status_code == 302
    assert Authenticator.objects.get(user=phone_user, method="sms", confirmed_at__isnull=False).destination == SECOND


def test_switching_numbers_does_not_reset_the_cooldown(phone_user: User, twilio: FakeTwilio) -> None:
    """Alternating numbers cannot be used to send more often than once a minute."""
    client = signed_in(phone_user)
    client.post("/account/security/sms", {"action": "send", "phone": phone_id(phone_user, PRIMARY)})
    client.post("/account/security/sms", {"action": "change"})
    response = client.post("/account/security/sms", {"action": "send", "phone": phone_id(phone_user, SECOND)})
    assert re.search(r"Wait \d+ seconds", response.content.decode())
    assert len(twilio.received) == 1


def test_setup_needs_a_recent_password(phone_user: User, twilio: FakeTwilio, frozen_clock: clock.FrozenClock) -> None:
    """The setup page asks for the password again when the last entry is older than 5 minutes."""
    client = signed_in(phone_user)
    frozen_clock.advance(301)
    response = client.post("/account/security/sms", {"action": "send", "phone": phone_id(phone_user, PRIMARY)})
    assert asked_for_password(response)
    assert twilio.received == []


def test_setup_refused_when_sms_not_allowed(phone_user: User, twilio: FakeTwilio) -> None:
    """With SMS not among the allowed methods, the setup page sends nothing."""
    set_setting("two_factor.methods", ["totp"])
    client = signed_in(phone_user)
    response = client.post("/account/security/sms", {"action": "send", "phone": phone_id(phone_user, PRIMARY)})
    assert response.status_code == 302 and response["Location"] == "/account/security"
    assert twilio.received == []


def test_new_number_replaces_old_only_when_confirmed(
    phone_user: User, twilio: FakeTwilio, frozen_clock: clock.FrozenClock
) -> None:
    """Moving to another number keeps the old one working until the new one is confirmed (AZ-02)."""
    client = signed_in(phone_user)
    enrol(client, phone_user, twilio, PRIMARY)
    frozen_clock.advance(61)
    prove_second_factor(client)
    client.post("/account/security/sms", {"action": "send", "phone": phone_id(phone_user, SECOND)})
    assert Authenticator.objects.get(user=phone_user, method="sms", confirmed_at__isnull=False).destination == PRIMARY
    client.post("/account/security/sms", {"action": "confirm", "code": twilio.last_code(SECOND)})
    factors = Authenticator.objects.filter(user=phone_user, method="sms")
    assert [(f.destination, f.confirmed_at is not None) for f in factors] == [(SECOND, True)]


def test_turn_off(phone_user: User, twilio: FakeTwilio) -> None:
    """Turning SMS off removes the factor: the next sign-in needs only the password."""
    client = signed_in(phone_user)
    enrol(client, phone_user, twilio)
    prove_second_factor(client)
    assert "Turn off SMS codes?" in client.post("/account/security/sms/remove").content.decode()
    response = client.post("/account/security/sms/remove", {"confirm": "yes"})
    assert response.status_code == 302
    assert not Authenticator.objects.filter(user=phone_user, method="sms").exists()
    assert sign_in(Client(), phone_user.username)["Location"] == "/account"
    assert AuthEvent.objects.filter(kind="sms.disabled").exists()


def test_turning_sms_on_or_off_ends_the_other_sessions(phone_user: User, twilio: FakeTwilio) -> None:
    """A factor added or removed signs the user out everywhere else; the browser that made the change stays."""
    elsewhere = signed_in(phone_user)
    client = signed_in(phone_user)
    enrol(client, phone_user, twilio, SECOND)
    assert elsewhere.get("/account").status_code == 302
    assert client.get("/account").status_code == 200

    again = Client()
    assert sign_in(again, phone_user.username)["Location"] == "/login/verify"
    assert again.post("/login/verify", {"code": twilio.last_code(SECOND)})["Location"] == "/account"
    prove_second_factor(client)
    assert client.post("/account/security/sms/remove", {"confirm": "yes"}).status_code == 302
    assert again.get("/account").status_code == 302
    assert client.get("/account").status_code == 200


def test_code_for_the_previous_number_dies_when_enrolment_moves(phone_user: User, twilio: FakeTwilio) -> None:
    """Pointing an enrolment at another number kills the code sent to the first, even when no new code goes out.

    Here the cooldown refuses the new number's code: the enrolment points at
    it all the same, and the first number's code must not confirm it.
    """
    flows.start_enrolment(phone_user, phone_id(phone_user, PRIMARY), CLI)
    first = twilio.last_code(PRIMARY)
    with pytest.raises(NotSent, match="cooldown"):
        flows.start_enrolment(phone_user, phone_id(phone_user, SECOND), CLI)
    assert [m.to for m in twilio.received] == [PRIMARY]
    with pytest.raises(flows.EnrolmentError):
        flows.confirm(phone_user, first, CLI)
    assert not Authenticator.objects.filter(user=phone_user, method="sms", confirmed_at__isnull=False).exists()


def test_no_new_enrolment_code_goes_to_a_removed_number(
    phone_user: User, twilio: FakeTwilio, frozen_clock: clock.FrozenClock
) -> None:
    """Once an admin removes the number being confirmed, "send again" sends nothing and says why."""
    flows.start_enrolment(phone_user, phone_id(phone_user, SECOND), CLI)
    services.remove_phone(phone_user, phone_id(phone_user, SECOND), origin=CLI)
    frozen_clock.advance(61)
    sent = len(twilio.received)
    with pytest.raises(flows.EnrolmentError, match="number_removed"):
        flows.resend_enrolment_code(phone_user, CLI)
    assert len(twilio.received) == sent


def test_removed_number_stops_the_method(phone_user: User, twilio: FakeTwilio) -> None:
    """When an admin removes the factor's number, sign-in sends nothing and says to contact an admin."""
    enrol(signed_in(phone_user), phone_user, twilio, SECOND)
    services.remove_phone(phone_user, phone_id(phone_user, SECOND), origin=CLI)
    sent = len(twilio.received)
    browser = Client()
    assert sign_in(browser, phone_user.username)["Location"] == "/login/verify"
    response = browser.get("/login/verify")
    assert response.status_code == 409
    assert "Contact an administrator" in response.content.decode()
    assert len(twilio.received) == sent
    assert AuthEvent.objects.filter(kind="sms.not_sent", reason="destination_removed").exists()
    assert browser.post("/login/verify", {"code": "123456"}).status_code == 409
    assert browser.get("/account").status_code == 302
    security = signed_in_again_page(phone_user)
    assert "no longer on your account" in security


def signed_in_again_page(user: User) -> str:
    """The Security page of a user whose only factor is unusable (2FA switched off to reach it)."""
    set_setting("two_factor.enabled", False)
    return signed_in(user).get("/account/security").content.decode()


def test_removed_number_kills_a_code_already_sent(phone_user: User, twilio: FakeTwilio) -> None:
    """A code sent before the number was removed no longer signs in."""
    enrol(signed_in(phone_user), phone_user, twilio, SECOND)
    browser = Client()
    sign_in(browser, phone_user.username)
    code = twilio.last_code(SECOND)
    services.remove_phone(phone_user, phone_id(phone_user, SECOND), origin=CLI)
    browser.post("/login/verify", {"code": code})
    assert browser.get("/account").status_code == 302


def test_number_removed_during_the_check_is_refused(phone_user: User, twilio: FakeTwilio) -> None:
    """Second guard: the number removed after the page found the factor usable, before the code was checked."""
    enrol(signed_in(phone_user), phone_user, twilio, SECOND)
    browser = Client()
    sign_in(browser, phone_user.username)
    code = twilio.last_code(SECOND)
    pending = second_step.resolve(browser.session[PENDING_KEY])
    assert pending is not None and second_step.authenticator_for(pending) is not None
    services.remove_phone(phone_user, phone_id(phone_user, SECOND), origin=CLI)
    with pytest.raises(second_step.SecondStepError, match="method_unavailable"):
        second_step.verify(pending, code, CLI)


def test_resend_at_sign_in(phone_user: User, twilio: FakeTwilio, frozen_clock: clock.FrozenClock) -> None:
    """'Send a new code' waits for the cooldown, then sends; the older code stops working."""
    enrol(signed_in(phone_user), phone_user, twilio, PRIMARY)
    frozen_clock.advance(61)
    browser = Client()
    sign_in(browser, phone_user.username)
    old = twilio.last_code()
    page = browser.get("/login/verify").content.decode()
    assert 'data-cooldown="60"' in page and "You can ask for a new code in" in page
    response = browser.post("/login/verify/sms/resend", follow=True)
    assert re.search(r"Wait \d+ seconds? before asking for a new code", response.content.decode())
    assert len(twilio.received) == 2
    frozen_clock.advance(60)
    response = browser.post("/login/verify/sms/resend", follow=True)
    assert "We sent a new code to +1 ••• ••• 4567" in response.content.decode()
    new = twilio.last_code()
    assert len(twilio.received) == 3
    if new != old:
        assert browser.post("/login/verify", {"code": old}).status_code == 200
    assert browser.post("/login/verify", {"code": new})["Location"] == "/account"


def test_resend_without_pending_sign_in_goes_to_login(twilio: FakeTwilio) -> None:
    """The resend endpoint sends nothing for a browser with no pending sign-in."""
    response = Client().post("/login/verify/sms/resend")
    assert response.status_code == 302 and response["Location"] == "/login"
    assert twilio.received == []


def test_failed_attempt_counters_cover_sms(phone_user: User, twilio: FakeTwilio) -> None:
    """Wrong SMS codes count like any second-step failure: five end the pending sign-in."""
    enrol(signed_in(phone_user), phone_user, twilio)
    browser = Client()
    sign_in(browser, phone_user.username)
    right = twilio.last_code()
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    for _ in range(5):
        browser.post("/login/verify", {"code": wrong})
    browser.post("/login/verify", {"code": right})
    assert browser.get("/account").status_code == 302
    assert User.objects.get(pk=phone_user.pk).second_step_failures == 5


def test_locked_account_gets_no_sms(phone_user: User, twilio: FakeTwilio) -> None:
    """A second step locked after too many failures spends no message."""
    enrol(signed_in(phone_user), phone_user, twilio)
    User.objects.filter(pk=phone_user.pk).update(second_step_locked_at=clock.now())
    sent = len(twilio.received)
    browser = Client()
    sign_in(browser, phone_user.username)
    assert len(twilio.received) == sent
    assert AuthEvent.objects.filter(kind="sms.not_sent", reason="locked").exists()
    assert "locked" in browser.get("/login/verify").content.decode()


def test_setup_reset_while_its_code_is_being_sent_says_start_again(
    phone_user: User, twilio: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An administrator resets the user's 2FA between the set-up being saved and its code being made.

    The code's row would refer to a set-up that no longer exists: the page
    must say so, send nothing and keep working, not fail with a server error.
    """
    client = signed_in(phone_user)
    just_before(monkeypatch, sms_service, "preflight", partial(reset_two_factor, phone_user, origin=CLI))
    response = client.post("/account/security/sms", {"action": "send", "phone": phone_id(phone_user, SECOND)})
    assert response.status_code == 200
    assert "Your SMS set-up ended while the code was being sent" in response.content.decode()
    assert twilio.received == []
    assert not OneTimeCode.objects.filter(user=phone_user).exists()
    assert AuthEvent.objects.filter(user=phone_user, kind="sms.not_sent", reason="ended").exists()
    assert not Authenticator.objects.filter(user=phone_user).exists()
    # The reset ended the user's sessions; signed in again, starting again works.
    enrol(signed_in(phone_user), phone_user, twilio, SECOND)


def test_enrolment_codes_survive_factor_removal_for_the_caps(phone_user: User, twilio: FakeTwilio) -> None:
    """Turning SMS off keeps its codes' send history, so caps cannot be reset by re-enrolling."""
    client = signed_in(phone_user)
    enrol(client, phone_user, twilio)
    prove_second_factor(client)
    client.post("/account/security/sms/remove", {"confirm": "yes"})
    assert OneTimeCode.objects.filter(user=phone_user, method="sms").count() == 1
    assert flows.active_factor(phone_user) is None


def test_sms_code_confirms_a_change_and_says_so(phone_user: User, twilio: FakeTwilio) -> None:
    """Removing the SMS method asks for a code texted for that purpose, not a sign-in code (AZ-01)."""
    client = signed_in(phone_user)
    enrol(client, phone_user, twilio)
    twilio.received.clear()
    asked = client.post("/account/security/sms/remove", {"confirm": "yes"})
    assert "mfa/step_up.html" in [t.name for t in asked.templates]
    assert "confirm a change to your sign-in security" in twilio.received[-1].body
    assert twilio.received[-1].to == SECOND
    form = {"confirm": "yes", "stepup-action": "code", "stepup-code": twilio.last_code(SECOND)}
    assert client.post("/account/security/sms/remove", form).status_code == 302
    assert flows.active_factor(phone_user) is None


@pytest.mark.django_db(transaction=True)
def test_confirming_while_an_admin_resets_does_not_deadlock(
    phone_user: User, twilio: FakeTwilio, frozen_clock: clock.FrozenClock
) -> None:
    """The user types the set-up code at the moment an administrator resets their second factors.

    As for email codes: confirming must lock the account's row before the
    number being set up, as the reset does, or the two deadlock on PostgreSQL.
    """
    second = phone_id(phone_user, SECOND)
    for _ in range(25):
        frozen_clock.advance(16 * 60)  # past the resend wait and the send caps of the previous round
        flows.start_enrolment(phone_user, second, CLI)
        confirm = attempt(
            partial(flows.confirm, phone_user, twilio.last_code(SECOND), CLI), "enabled", flows.EnrolmentError
        )
        assert sorted(at_once([confirm, two_factor_reset(phone_user)])) in (["enabled", "reset"], ["refused", "reset"])
        reset_two_factor(phone_user, origin=CLI)


@pytest.mark.django_db(transaction=True)
def test_removing_sms_while_a_code_is_checked_does_not_deadlock(
    phone_user: User, twilio: FakeTwilio, frozen_clock: clock.FrozenClock
) -> None:
    """The user turns SMS codes off at the moment a texted code is checked.

    The check updates the factor after locking the account's row; a removal
    that deleted the factor first, then logged the trusted browsers'
    revocation (which waits for the account's row), deadlocked with it on
    PostgreSQL.
    """
    second = phone_id(phone_user, SECOND)
    for _ in range(25):
        frozen_clock.advance(16 * 60)  # past the resend wait and the send caps of the previous round
        flows.start_enrolment(phone_user, second, CLI)
        factor = flows.confirm(phone_user, twilio.last_code(SECOND), CLI)
        trust_a_browser(phone_user)
        pending, _ = second_step.start(phone_user, factor, CLI)
        remove = removal(partial(flows.remove, phone_user, CLI))
        assert sorted(at_once([code_check(pending, twilio.last_code(SECOND)), remove])) in (
            ["refused", "removed"],
            ["removed", "signed in"],
        )


@pytest.mark.django_db(transaction=True)
def test_changing_the_number_while_an_admin_resets_does_not_deadlock(
    phone_user: User, twilio: FakeTwilio, frozen_clock: clock.FrozenClock
) -> None:
    """The user picks another number for the SMS set-up at the moment an administrator resets their second factors.

    Moving the set-up locks its row, then ends its codes; the reset's
    deletion of the set-up detaches its codes first.  Moving must lock the
    account's row first, as the reset does, or the two deadlock on PostgreSQL.
    A reset that lands between the move and its code's making ends the
    set-up: the user is told to start again (no code refers to a deleted set-up).
    """
    primary, second = phone_id(phone_user, PRIMARY), phone_id(phone_user, SECOND)
    for _ in range(25):
        frozen_clock.advance(16 * 60)  # past the resend wait and the send caps of the previous round
        flows.start_enrolment(phone_user, primary, CLI)
        frozen_clock.advance(61)  # past the resend wait: the move sends a code
        move = sent_or_ended(partial(flows.start_enrolment, phone_user, second, CLI), "moved", flows.EnrolmentError)
        assert sorted(at_once([move, two_factor_reset(phone_user)])) in (["moved", "reset"], ["ended", "reset"])
        reset_two_factor(phone_user, origin=CLI)
