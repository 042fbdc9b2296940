"""Security notifications by email: sent for each security change, retried when mail fails."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.test import Client

from tests.conftest import sign_in
from tests.mail.smtp_server import Certificates, certificates, configure_twostep, hanging_port
from twostep.accounts import services
from twostep.accounts.models import User
from twostep.audit.services import CLI, Origin
from twostep.core import background, clock
from twostep.factors import totp
from twostep.mail import config
from twostep.mail.base import MailDeliveryError, MailUnconfirmed, OutgoingMessage
from twostep.mail.service import use_mailer
from twostep.mfa.totp import flows
from twostep.notifications.models import Notification
from twostep.notifications.services import retry_pending

__all__ = ["certificates", "hanging_port"]

pytestmark = pytest.mark.django_db(transaction=True)

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"


class RecordingMailer:
    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []
        self.failing = False
        self.unconfirmed = False

    def send(self, message: OutgoingMessage) -> None:
        if self.failing:
            raise MailDeliveryError("The mail server refused the message.", "550 no")
        self.sent.append(message)
        if self.unconfirmed:
            raise MailUnconfirmed("The mail server received the message but did not confirm it.", "no answer")


@pytest.fixture
def outbox() -> Iterator[RecordingMailer]:
    config.save(host="smtp.example.test", port=25, security="none", username="", from_address="twostep@example.test")
    mailer = RecordingMailer()
    with use_mailer(mailer):
        yield mailer


def test_factor_added_notifies_every_address(user: User, two_factor_on: None, outbox: RecordingMailer) -> None:
    """Enrolling an authenticator app mails all the user's addresses with time, IP and browser (AZ-10)."""
    key = totp.decode_secret(flows.provisioning_for(user).secret)
    flows.confirm(user, totp.totp(key, clock.timestamp()), Origin("192.0.2.7", FIREFOX))
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
    # What an administrator did is not "this was you"; the owner is told whom to turn to.
    for message in outbox.sent:
        for body in (message.text, message.html):
            assert "If this was you" not in body and "If you asked an administrator for this" in body


def test_lock_notifies(
    user: User, two_factor_on: None, outbox: RecordingMailer, frozen_clock: clock.FrozenClock
) -> None:
    """Locking the second step after 20 failures sends one notice (BF-13)."""
    key = totp.decode_secret(flows.provisioning_for(user).secret)
    flows.confirm(user, totp.totp(key, clock.timestamp()), CLI)
    outbox.sent.clear()
    for _ in range(20):
        frozen_clock.advance(901)
        client = Client(REMOTE_ADDR="192.0.2.77", HTTP_USER_AGENT=FIREFOX)
        sign_in(client, user.username)
        right = totp.totp(key, clock.timestamp())
        client.post("/login/verify", {"code": f"{(int(right) + 500_000) % 10**6:06d}"})  # wrong, well-formed
    locked = [m for m in outbox.sent if "locked" in m.text]
    assert len(locked) == 2  # one per address
    # When, from where and with what: the owner can tell whether it was them.
    when = clock.now().strftime("%Y-%m-%d %H:%M UTC")
    assert when in locked[0].text and "192.0.2.77" in locked[0].text and "Firefox on Linux" in locked[0].text
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
    """When mail fails, the change still happens and the notice waits in the outbox for a retry (FLT-12)."""
    outbox.failing = True
    key = totp.decode_secret(flows.provisioning_for(user).secret)
    flows.confirm(user, totp.totp(key, clock.timestamp()), CLI)
    pending = Notification.objects.get(kind="totp.enabled")
    assert pending.sent_at is None and pending.attempts == 1 and "refused" in pending.last_error
    outbox.failing = False
    assert retry_pending() == 1
    assert Notification.objects.get(kind="totp.enabled").sent_at is not None
    assert len(outbox.sent) == 2


def test_unconfirmed_notice_is_not_sent_twice(user: User, two_factor_on: None, outbox: RecordingMailer) -> None:
    """A notice the mail server received without confirming it may arrive: it is not sent again."""
    outbox.unconfirmed = True
    key = totp.decode_secret(flows.provisioning_for(user).secret)
    flows.confirm(user, totp.totp(key, clock.timestamp()), CLI)
    assert Notification.objects.get(kind="totp.enabled").sent_at is not None
    assert retry_pending() == 0
    assert len(outbox.sent) == 2  # once to each of alice's two addresses


def test_a_notice_being_sent_is_left_alone_by_another_workers_retry(
    user: User, two_factor_on: None, outbox: RecordingMailer
) -> None:
    """While one server process sends a notice, another retries what waits (its own notice went out): once only.

    Every process retries after each notice it sends; without a claim on the
    row, the notice still being sent by the first was sent again by the
    second, and the user got every message twice.
    """
    retried: list[int] = []
    send = outbox.send

    def send_while_another_worker_retries(message: OutgoingMessage) -> None:
        if not retried:
            retried.append(retry_pending())
        send(message)

    outbox.send = send_while_another_worker_retries  # type: ignore[method-assign]
    key = totp.decode_secret(flows.provisioning_for(user).secret)
    flows.confirm(user, totp.totp(key, clock.timestamp()), CLI)
    assert retried == [0]
    assert len(outbox.sent) == 2  # once to each of alice's two addresses
    notice = Notification.objects.get(kind="totp.enabled")
    assert notice.sent_at is not None and notice.attempts == 1 and notice.claimed_until is None


def test_a_notice_claimed_by_a_worker_that_stopped_is_sent_later(
    user: User, two_factor_on: None, outbox: RecordingMailer
) -> None:
    """A claim lasts a while: a worker that stopped mid-send holds the notice back only until its claim runs out."""
    outbox.failing = True
    key = totp.decode_secret(flows.provisioning_for(user).secret)
    flows.confirm(user, totp.totp(key, clock.timestamp()), CLI)
    outbox.failing = False
    waiting = Notification.objects.filter(kind="totp.enabled")
    waiting.update(claimed_until=clock.now() + timedelta(minutes=1))
    assert retry_pending() == 0 and outbox.sent == []
    waiting.update(claimed_until=clock.now() - timedelta(seconds=1))
    assert retry_pending() == 1 and len(outbox.sent) == 2
    assert waiting.get().attempts == 2


def test_no_address_means_nothing_to_send(make_user: object, outbox: RecordingMailer) -> None:
    """A user without addresses gets no mail and nothing stays queued."""
    loner = make_user("loner")  # type: ignore[operator]
    services.set_password(loner, "another long password", origin=CLI)
    assert outbox.sent == []
    assert not Notification.objects.filter(sent_at=None).exists()


def test_unreadable_mail_settings_keep_the_notice_queued(user: User, outbox: RecordingMailer) -> None:
    """A mail configuration that cannot be used now (here: the password given for another server) is a failure
    to retry, not "no mail server": the notice goes out once it is fixed."""

    class SettingsReadingMailer(RecordingMailer):
        def send(self, message: OutgoingMessage) -> None:
            config.current()  # as the SMTP mailer does before connecting
            super().send(message)

    config.save(host="smtp.example.test", port=25, security="none", username="relay", from_address="")
    config.set_password("relay-password")
    config.save(host="smtp.elsewhere.test", port=25, security="none", username="relay", from_address="")
    mailer = SettingsReadingMailer()
    with use_mailer(mailer):
        services.set_password(user, "another long password", origin=CLI)
        waiting = Notification.objects.get(kind="password.changed")
        assert waiting.sent_at is None and "only sent there" in waiting.last_error
        config.set_password("relay-password")
        assert retry_pending() == 1
    assert len(mailer.sent) == 2


def test_waiting_notices_go_out_with_the_next_one_and_abandoned_ones_are_logged(
    user: User, outbox: RecordingMailer, frozen_clock: clock.FrozenClock
) -> None:
    """Mail back: the next notice also sends the waiting ones. One that waited too long is given up, in the auth log."""
    from twostep.audit.models import AuthEvent

    outbox.failing = True
    services.set_password(user, "another long password", origin=CLI)
    frozen_clock.advance(2 * 86400)
    services.set_password(user, "yet another long password", origin=CLI)
    stale, recent = Notification.objects.filter(kind="password.changed").order_by("created_at")
    outbox.failing = False
    services.add_email(user, "third@example.org", origin=CLI)
    stale.refresh_from_db()
    recent.refresh_from_db()
    assert recent.sent_at is not None and recent.last_error == ""
    assert stale.sent_at is not None and "refused" in stale.last_error
    assert Notification.objects.filter(sent_at=None).count() == 0
    (abandoned,) = AuthEvent.objects.filter(kind="notification.abandoned")
    assert abandoned.user_id == user.pk and abandoned.detail["notice"] == "password.changed"
    assert abandoned.reason == "delivery_failed" and abandoned.outcome == "failure"


def test_removed_address_is_told_and_no_stranger_words(make_user: object, outbox: RecordingMailer) -> None:
    """The removed address gets the notice too; an unrecognised User-Agent is not quoted in the message (AZ-02)."""
    bob = make_user("bob", emails=["bob@example.org", "old@example.org"])  # type: ignore[operator]
    outbox.sent.clear()
    origin = Origin("198.51.100.7", "IT helpdesk: call +1 555 0100 to unlock")
    services.remove_email(bob, bob.email_addresses.get(email="old@example.org").pk, origin=origin)
    assert sorted(m.to for m in outbox.sent) == ["bob@example.org", "old@example.org"]
    assert all("helpdesk" not in m.text and "Unknown device" in m.text for m in outbox.sent)


def test_in_the_server_a_hanging_mail_server_does_not_hold_up_the_change(
    user: User, admin: User, monkeypatch: pytest.MonkeyPatch, certificates: Certificates, hanging_port: int
) -> None:
    """The change returns at once; the notice waits beside it on the mail server and stays in the outbox."""
    configure_twostep(monkeypatch, certificates, hanging_port, timeout=2.0)
    monkeypatch.setattr(background, "_enabled", True)  # as the WSGI application does
    started = time.monotonic()
    services.set_password(user, "a brand new password", origin=CLI, actor=admin, must_change=True)
    assert time.monotonic() - started < 1.5  # two addresses at 2 s each, had it waited
    assert background.wait_until_idle(timeout=30)
    (notice,) = Notification.objects.filter(user=user)
    assert notice.sent_at is None and notice.attempts == 1 and notice.last_error


def test_background_jobs_run_in_order_and_survive_a_failing_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(background, "_enabled", True)
    ran: list[int] = []

    def failing() -> None:
        raise RuntimeError("boom")

    background.run(lambda: ran.append(1))
    background.run(failing)
    background.run(lambda: ran.append(2))
    assert background.wait_until_idle()
    assert ran == [1, 2]


def test_the_wsgi_application_sends_beside_the_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(background, "_enabled", False)
    import importlib

    import twostep.wsgi

    importlib.reload(twostep.wsgi)
    assert background._enabled


def test_each_security_change_is_told_without_its_secrets(
    user: User, admin: User, two_factor_on: None, outbox: RecordingMailer
) -> None:
    """Enrol, new recovery codes, removal, a contact added and an admin reset each mail a notice; none carries a code or key (AZ-10)."""
    from twostep.mfa.recovery_codes import services as recovery
    from twostep.mfa.services import reset_two_factor

    key = totp.decode_secret(flows.provisioning_for(user).secret)
    code = totp.totp(key, clock.timestamp())
    flows.confirm(user, code, CLI)
    new_codes = recovery.regenerate(user, CLI).codes
    flows.remove(user, CLI)
    services.add_phone(user, "+14155550123", origin=CLI)
    reset_two_factor(user, origin=CLI, actor=admin)
    kinds = list(Notification.objects.filter(user=user).values_list("kind", flat=True))
    for kind in ["totp.enabled", "recovery_codes.generated", "totp.disabled", "phone.added", "two_factor.reset"]:
        assert kind in kinds, kinds
    everything = " ".join(m.subject + m.text + m.html for m in outbox.sent)
    for secret in [totp.encode_secret(key), code, *new_codes]:
        assert secret not in everything
