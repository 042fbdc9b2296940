"""Wrong set-up codes (email and SMS enrolment) spend the account's budget of wrong codes, like sign-in codes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.concurrency import at_once
from tests.mail.smtp_server import SmtpServer, certificates, mail_server, smtp_server
from tests.mfa.email.conftest import BACKUP, email_on
from tests.sms.conftest import fakes, twilio
from tests.sms.fakes import FakeTwilio
from twostep.accounts.models import User
from twostep.audit.services import CLI
from twostep.core import clock
from twostep.mfa.email import flows as email_flows
from twostep.mfa.sms import flows as sms_flows

__all__ = ["certificates", "email_on", "fakes", "mail_server", "smtp_server", "twilio"]

pytestmark = pytest.mark.django_db

PHONE = "+15551234567"


def other_than(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def guess_until_refused(confirm: Callable[[str], object], code: str, error: type[Exception]) -> list[str]:
    reasons = []
    for _ in range(6):
        with pytest.raises(error) as refused:  # type: ignore[call-overload]
            confirm(other_than(code))
        reasons.append(refused.value.reason)  # type: ignore[attr-defined]
    return reasons


def test_email_enrolment(user: User, mail_server: SmtpServer, email_on: None, frozen_clock: clock.FrozenClock) -> None:
    """Five wrong codes, then even the right one waits; after the wait a new code works and clears the count."""
    email_flows.start_enrolment(user, user.email_addresses.get(email=BACKUP).pk, CLI)
    code = mail_server.last_code(BACKUP)

    def confirm(typed: str) -> object:
        return email_flows.confirm_enrolment(user, typed, CLI)

    assert guess_until_refused(confirm, code, email_flows.EnrolmentError) == ["wrong_code"] * 5 + ["throttled"]
    with pytest.raises(email_flows.EnrolmentError, match="throttled"):
        confirm(code)
    assert User.objects.get(pk=user.pk).second_step_failures == 5
    frozen_clock.advance(60)
    email_flows.start_enrolment(user, user.email_addresses.get(email=BACKUP).pk, CLI)
    assert confirm(mail_server.last_code(BACKUP))
    assert User.objects.get(pk=user.pk).second_step_failures == 0


def test_sms_enrolment(make_user: Callable[..., User], twilio: FakeTwilio, frozen_clock: clock.FrozenClock) -> None:
    """The same budget for the code texted to confirm a phone number."""
    bob = make_user("bob", phones=[PHONE])
    sms_flows.start_enrolment(bob, bob.phone_numbers.get().pk, CLI)
    code = twilio.last_code(PHONE)

    def confirm(typed: str) -> object:
        return sms_flows.confirm(bob, typed, CLI)

    assert guess_until_refused(confirm, code, sms_flows.EnrolmentError) == ["wrong_code"] * 5 + ["throttled"]
    assert User.objects.get(pk=bob.pk).second_step_failures == 5
    frozen_clock.advance(60)
    sms_flows.start_enrolment(bob, bob.phone_numbers.get().pk, CLI)
    assert confirm(twilio.last_code(PHONE))
    assert User.objects.get(pk=bob.pk).second_step_failures == 0


def guess_together(user: User, count: int) -> list[str]:
    """``count`` wrong set-up codes checked at the same moment, each in its own transaction."""
    from django.db import transaction

    from twostep.mfa import guesses

    def guess() -> str:
        with transaction.atomic():
            return str(guesses.check_code(user, CLI, lambda: "wrong_code"))

    return at_once([guess] * count)


@pytest.mark.django_db(transaction=True)
def test_parallel_set_up_guesses_queue_on_the_account(user: User) -> None:
    """With one guess left before the wait, eight at once get one check: the others find the wait the first
    one set (the account's row is locked for each check; real PostgreSQL in its run) (BF-04)."""
    from django.conf import settings

    User.objects.filter(pk=user.pk).update(second_step_failures=settings.CONFIG.security.second_step_delay_after - 1)
    outcomes = guess_together(user, 8)
    assert sorted(outcomes) == ["throttled"] * 7 + ["wrong_code"], outcomes
