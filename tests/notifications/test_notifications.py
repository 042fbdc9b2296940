"""Security notifications by email: sent for each security change, retried when mail fails."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client

from tests.conftest import sign_in
from twostep.accounts import services
from twostep.accounts.models import User
from twostep.audit.services import CLI, Origin
from twostep.core import clock
from twostep.factors import totp
from twostep.mail import config
from twostep.mail.base import MailDeliveryError, OutgoingMessage
from twostep.mail.service import use_mailer
from twostep.mfa.totp import flows
from twostep.notifications.models import Notification
from twostep.notifications.services import retry_pending

pytestmark = pytest.mark.django_db(transaction=True)


class RecordingMailer:
    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []
        self.failing = False

    def send(self, message: OutgoingMessage) -> None:
        if self.failing:
            raise MailDeliveryError("The mail server refused the message.", "550 no")
        self.sent.append(message)


@pytest.fixture
def outbox() -> Iterator[RecordingMailer]:
    config.save(host="smtp.example.test", port=25, security="none", username="", from_address="twostep@example.test")
    mailer = RecordingMailer()
    with use_mailer(mailer):
        yield mailer


def test_factor_added_notifies_every_address(user: User, two_factor_on: None, outbox: RecordingMailer) -> None:
    """Enrolling an authenticator app mails all the user's addresses with time, IP and browser."""
    key = totp.decode_secret(flows.provisioning_for(user).secret)
    flows.confirm(
        user, totp.totp(key, clock.timestamp()), Origin("192.0.2.7", "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0")
    )
    assert sorted(m.to for m in outbox.sent) == ["alice.backup@example.org", "alice@example.com"]
    message = outbox.sent[0]
    assert "authenticator app was added" in message.text
    assert "192.0.2.7" in message.text and "Firefox on Linux" in message.text
    assert totp.encode_secret(key) not in message.text + message.html + message.subject


def test_password_change_and_admin_reset_notify(user: User, admin: User, outbox: RecordingMailer) -> None:
    """Password changes and admin resets are told to the user."""
    services.set_password(user, "a brand new password", origin=CLI, actor=admin, must_change=True)
    from twostep.mfa.services import reset_two_factor

    reset_two_factor(user, origin=CLI, actor=admin)
    texts = [m.text for m in outbox.sent]
    assert any("administrator set a new password" in t for t in texts)
    assert any("administrator removed all your second-step methods" in t for t in texts)
    assert all("a brand new password" not in t for t in texts)


def test_lock_notifies(
    user: User, two_factor_on: None, outbox: RecordingMailer, frozen_clock: clock.FrozenClock
) -> None:
    """Locking the second step after 20 failures sends one notice."""
    key = totp.decode_secret(flows.provisioning_for(user).secret)
    flows.confirm(user, totp.totp(key, clock.timestamp()), CLI)
    outbox.sent.clear()
    for _ in range(20):
        frozen_clock.advance(901)
        client = Client()
        sign_in(client, user.username)
        client.post("/login/verify", {"code": "abcdef"})
    locked = [m for m in outbox.sent if "locked" in m.text]
    assert len(locked) == 2  # one per address
    # The usual "if this was you, there is nothing to do" would mislead: it says what to do instead.
    assert "recovery codes" in locked[0].text and "nothing to do" not in locked[0].text
    assert "recovery codes" in locked[0].html and "nothing to do" not in locked[0].html


def test_ways_to_skip_the_second_step_are_told(
    user: User, two_factor_on: None, outbox: RecordingMailer, frozen_clock: clock.FrozenClock
) -> None:
    """A personal API token and a trusted browser both let their holder past the second step: both are told."""
    from twostep.api.tokens import create_personal_token

    create_personal_token(user, name="laptop script", scopes=["read"], origin=CLI)
    assert len([m for m in outbox.sent if "personal API token was created" in m.text]) == 2  # one per address
    key = totp.decode_secret(flows.provisioning_for(user).secret)
    flows.confirm(user, totp.totp(key, clock.timestamp()), CLI)
    frozen_clock.advance(30)
    client = Client()
    sign_in(client, user.username)
    client.post("/login/verify", {"code": totp.totp(key, clock.timestamp()), "trust": "1"})
    assert len([m for m in outbox.sent if "trusted to skip the second sign-in step" in m.text]) == 2


def test_failed_delivery_is_retried_not_lost(user: User, two_factor_on: None, outbox: RecordingMailer) -> None:
    """When mail fails, the change still happens and the notice waits in the outbox for a retry."""
    outbox.failing = True
    key = totp.decode_secret(flows.provisioning_for(user).secret)
    flows.confirm(user, totp.totp(key, clock.timestamp()), CLI)
    pending = Notification.objects.get(kind="totp.enabled")
    assert pending.sent_at is None and pending.attempts == 1 and "refused" in pending.last_error
    outbox.failing = False
    assert retry_pending() == 1
    assert Notification.objects.get(kind="totp.enabled").sent_at is not None
    assert len(outbox.sent) == 2


def test_no_address_means_nothing_to_send(make_user: object, outbox: RecordingMailer) -> None:
    """A user without addresses gets no mail and nothing stays queued."""
    loner = make_user("loner")  # type: ignore[operator]
    services.set_password(loner, "another long password", origin=CLI)
    assert outbox.sent == []
    assert not Notification.objects.filter(sent_at=None).exists()
