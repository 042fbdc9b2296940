"""The stored SMS configuration, the method rule, delivery and its audit trail."""

from __future__ import annotations

import json
import logging
from io import StringIO
from pathlib import Path

import httpx
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from tests.sms.fakes import TWILIO_TOKEN, VONAGE_SECRET, FakeSet, provider_options
from tests.sms.helpers import SENDER, allow_sms, configure
from twostep.accounts import services
from twostep.audit.models import AuthEvent
from twostep.audit.services import CLI
from twostep.core.keyring import rotate_keys, secret_box
from twostep.core.models import Setting
from twostep.core.runtime import SettingError, get_setting, set_setting, set_setting_from_text
from twostep.mfa.sms import flows
from twostep.sms import registry, service
from twostep.sms.base import ConfigurationError, DeliveryReceipt, SMSDeliveryError, SMSMessage

pytestmark = pytest.mark.django_db

NUMBER = "+15551234567"


def _all_settings_text() -> str:
    return json.dumps(list(Setting.objects.values_list("key", "value")))


def _all_events_text() -> str:
    return json.dumps([[e.kind, e.reason, e.detail] for e in AuthEvent.objects.all()])


def test_secrets_are_stored_encrypted(fakes: FakeSet) -> None:
    """The auth token is nowhere in the settings table in clear; it decrypts from sms.secrets."""
    configure(fakes.twilio())
    assert TWILIO_TOKEN not in _all_settings_text()
    token = get_setting(service.SECRETS)
    assert json.loads(secret_box().decrypt(token)) == {"auth_token": TWILIO_TOKEN}
    assert service.read_configuration().options["account_sid"].startswith("AC")


def test_blank_secret_keeps_the_stored_one(fakes: FakeSet) -> None:
    """Saving the same provider with the secret left blank (as the form shows it) keeps the secret."""
    fake = fakes.vonage()
    configure(fake)
    name, options, _ = provider_options(fake)
    service.save_configuration(name, {**options, "api_secret": ""}, SENDER, origin=CLI)
    assert service.read_configuration().secrets == {"api_secret": VONAGE_SECRET}
    assert service.send_test(NUMBER, origin=CLI).provider == "vonage"


@pytest.mark.parametrize("provider", ["twilio", "vonage", "webhook"])
def test_stored_secret_does_not_follow_a_new_endpoint(fakes: FakeSet, provider: str) -> None:
    """A new API or webhook URL with the secret left blank is refused: the secret never reaches the new address.

    Secrets are never shown back, but carrying them to whatever URL was typed let anyone who
    could edit the settings collect them with a test message.
    """
    legit = getattr(fakes, provider)()
    configure(legit)
    elsewhere = getattr(fakes, provider)()
    name, moved_options, secrets = provider_options(elsewhere)
    blank = {key: "" for key in secrets}
    with pytest.raises(ConfigurationError, match="only sent where it was entered for") as refused:
        service.save_configuration(name, {**moved_options, **blank}, SENDER, origin=CLI)
    assert refused.value.setting in secrets
    assert service.read_configuration().options == provider_options(legit)[1]
    service.send_test(NUMBER, origin=CLI)
    assert elsewhere.requests == [] and len(legit.requests) == 1
    # Entered again, the secrets go to the new address.
    service.save_configuration(name, {**moved_options, **secrets}, SENDER, origin=CLI)
    service.send_test(NUMBER, origin=CLI)
    assert len(elsewhere.requests) == 1


def test_provider_settings_are_changed_as_a_whole() -> None:
    """`settings set` and the API cannot change one part of the SMS configuration (e.g. its URL) on its own."""
    for key in service.CONFIG_KEYS:
        with pytest.raises(SettingError, match="twostep sms configure"):
            set_setting_from_text(key, '{"base_url": "http://127.0.0.1:9/"}')


def test_optional_secret_can_be_removed(fakes: FakeSet) -> None:
    """A stored optional secret (the webhook signing secret) is dropped when asked to."""
    fake = fakes.webhook()
    configure(fake)
    service.save_configuration(
        "webhook", {"url": fake.hook_url}, SENDER, origin=CLI, clear=frozenset({"signing_secret"})
    )
    assert service.read_configuration().secrets == {}


def test_switching_provider_forgets_the_old_secrets(fakes: FakeSet) -> None:
    """Secrets of the previous provider are not carried over to a new one."""
    configure(fakes.twilio())
    configure(fakes.webhook(signing_secret=""))
    configuration = service.read_configuration()
    assert configuration.provider == "webhook"
    assert configuration.secrets == {}


def test_invalid_configuration_stores_nothing(fakes: FakeSet) -> None:
    """A configuration the provider refuses is not stored; the previous one stays in force."""
    configure(fakes.twilio())
    before = _all_settings_text()
    with pytest.raises(ConfigurationError) as caught:
        service.save_configuration("webhook", {"url": "http://sms.example.com/hook"}, SENDER, origin=CLI)
    assert caught.value.setting == "url"
    with pytest.raises(ConfigurationError) as caught:
        service.save_configuration("twilio", {"account_sid": "AC1"}, SENDER, origin=CLI)
    assert _all_settings_text() == before
    assert service.status().provider == "twilio"


@pytest.mark.parametrize("sender", ["555", "+1", "a name that is too long", "bad!chars"])
def test_bad_sender_is_refused(fakes: FakeSet, sender: str) -> None:
    """The sender must be an E.164 number or an alphanumeric name of up to 11 characters."""
    with pytest.raises(ConfigurationError) as caught:
        configure(fakes.webhook(), sender=sender)
    assert caught.value.setting == "sender"


def test_console_provider_only_in_debug_mode() -> None:
    """The console provider (it prints codes) cannot be configured outside debug mode."""
    with pytest.raises(ConfigurationError):
        service.save_configuration("console", {}, "", origin=CLI)
    with override_settings(DEBUG=True):
        service.save_configuration("console", {}, "", origin=CLI)
        assert service.status().ready
    # Debug switched off later: the stored console provider stops working.
    status = service.status()
    assert not status.ready and "debug mode" in status.problem


def test_sms_cannot_be_allowed_without_a_provider(fakes: FakeSet) -> None:
    """two_factor.methods refuses sms while no working provider exists, and says where to fix it."""
    with pytest.raises(SettingError) as caught:
        set_setting("two_factor.methods", ["totp", "sms"])
    assert "/admin/sms" in str(caught.value)
    assert get_setting("two_factor.methods") == ["totp"]
    configure(fakes.webhook())
    assert set_setting("two_factor.methods", ["totp", "sms"]) == ["totp", "sms"]


def test_sms_cannot_be_allowed_with_a_broken_provider() -> None:
    """A provider that no longer builds counts as none, with its problem in the message."""
    with override_settings(DEBUG=True):
        service.save_configuration("console", {}, "", origin=CLI)
    with pytest.raises(SettingError) as caught:
        set_setting("two_factor.methods", ["sms"])
    assert "debug mode" in str(caught.value)


def test_provider_cannot_be_removed_while_sms_is_allowed(fakes: FakeSet) -> None:
    """Removing the provider under users' feet is refused until SMS is no longer allowed."""
    configure(fakes.webhook())
    allow_sms()
    with pytest.raises(ConfigurationError):
        service.clear_configuration(origin=CLI)
    set_setting("two_factor.methods", ["totp"])
    service.clear_configuration(origin=CLI)
    assert not service.status().provider
    assert get_setting(service.SECRETS) == ""


def test_key_rotation_reencrypts_provider_secrets(fakes: FakeSet) -> None:
    """`keys rotate --drop-old` re-encrypts sms.secrets; the provider still authenticates."""
    fake = fakes.twilio()
    configure(fake)
    old_token = get_setting(service.SECRETS)
    assert rotate_keys(drop_old=True) >= 1
    assert get_setting(service.SECRETS) != old_token
    service.send_test(NUMBER, origin=CLI)
    assert len(fake.received) == 1


def test_test_sms_is_logged_masked_without_body(fakes: FakeSet) -> None:
    """A sent message is in the auth log with the provider and masked number; never the text or full number."""
    fake = fakes.twilio()
    configure(fake)
    receipt = service.send_test(NUMBER, origin=CLI)
    assert isinstance(receipt, DeliveryReceipt)
    event = AuthEvent.objects.get(kind="sms.sent")
    assert event.detail["to"] == "+1 ••• ••• 4567"
    assert event.detail["provider"] == "twilio"
    assert event.detail["message_id"] == receipt.message_id
    assert fake.received[0].sender == SENDER
    text = _all_events_text()
    assert "5551234567" not in text and "test message" not in text


def test_provider_error_reaches_the_log_scrubbed(fakes: FakeSet) -> None:
    """The provider's error goes to the auth log for the admin, without the body or full number."""
    fake = fakes.twilio()
    configure(fake)
    fake.fail(400, lambda raw: {"code": 21610, "message": f"Refused: {raw.decode()} to +15551234567", "status": 400})
    with pytest.raises(service.NotSent) as caught:
        service.send_test(NUMBER, origin=CLI)
    assert caught.value.reason == "delivery_failed"
    event = AuthEvent.objects.get(kind="sms.not_sent")
    assert event.reason == "delivery_failed"
    assert "21610" in event.detail["error"] and event.detail["retryable"] is False
    assert "5551234567" not in _all_events_text()
    assert "test message" not in _all_events_text()
    assert "21610" in caught.value.admin_detail


def test_code_is_scrubbed_even_if_the_provider_reformats_it(fakes: FakeSet) -> None:
    """deliver() removes the code itself from errors, whatever encoding the provider echoed."""
    fake = fakes.webhook()
    configure(fake)
    fake.fail(400, lambda raw: {"error": "rejected code 987654"})
    with pytest.raises(service.NotSent):
        service.deliver(NUMBER, "your code is 987654", purpose="sign_in", origin=CLI, secret="987654")
    assert "987654" not in _all_events_text()


def test_unconfirmed_test_message(fakes: FakeSet, caplog: pytest.LogCaptureFixture) -> None:
    """A test SMS the provider took but did not answer in time: logged as unconfirmed, not as failed."""
    fake = fakes.webhook()
    configure(fake, timeout="1")
    fake.fail(delay=2.0, count=1)
    with pytest.raises(service.NotSent) as caught:
        service.send_test(NUMBER, origin=CLI)
    assert caught.value.reason == "delivery_unconfirmed"
    assert "no answer within 1 second after the request was sent" in caught.value.admin_detail
    event = AuthEvent.objects.get(kind="sms.unconfirmed")
    assert event.reason == "delivery_unconfirmed" and event.detail["purpose"] == "test"
    assert not AuthEvent.objects.filter(kind="sms.not_sent").exists()
    [warning] = [r for r in caplog.records if r.name == "twostep.sms"]
    assert warning.levelno == logging.WARNING and "was not confirmed (it may have been sent)" in warning.getMessage()


@pytest.mark.parametrize(
    ("error", "sent"),
    [
        (httpx.ReadTimeout, True),
        (httpx.RemoteProtocolError, True),
        (httpx.ConnectError, False),
        (httpx.ConnectTimeout, False),
    ],
)
def test_third_party_failure_is_judged_by_its_httpx_error(
    acme_plugin: Path, error: type[httpx.TransportError], sent: bool
) -> None:
    """The documented example, through ``twostep.sms.http.post``, says whether a failed message may have gone
    out; a provider that leaves ``possibly_sent`` out is judged by the httpx error behind its own."""

    def gateway(request: httpx.Request) -> httpx.Response:
        raise error("gateway trouble", request=request)

    provider = registry.load_provider(
        "acme", {"api_token": "t0ken"}, http=httpx.Client(transport=httpx.MockTransport(gateway))
    )
    with pytest.raises(SMSDeliveryError) as caught:
        provider.send(SMSMessage(to=NUMBER, body="code 123456"))
    assert caught.value.possibly_sent is sent and service.possibly_sent(caught.value) is sent

    def own_send() -> None:
        try:
            gateway(httpx.Request("POST", "https://api.acme.example/v1/messages"))
        except httpx.TransportError:
            raise SMSDeliveryError("acme: failed", retryable=True, provider="acme") from None

    with pytest.raises(SMSDeliveryError) as unflagged:
        own_send()
    assert unflagged.value.possibly_sent is None and service.possibly_sent(unflagged.value) is sent


def test_provider_bug_fails_closed(fakes: FakeSet, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected exception from a provider is a failed delivery, never a crash or a success."""
    configure(fakes.webhook())
    provider = service.configured_provider()

    def explode(message: object) -> None:
        raise RuntimeError("bug in the provider")

    monkeypatch.setattr(provider, "send", explode)
    with pytest.raises(service.NotSent) as caught:
        service.send_test(NUMBER, origin=CLI)
    assert caught.value.reason == "delivery_failed"
    assert "RuntimeError" in AuthEvent.objects.get(kind="sms.not_sent").detail["error"]


def test_provider_returning_no_receipt_is_a_failure(fakes: FakeSet, monkeypatch: pytest.MonkeyPatch) -> None:
    """A provider that returns without a receipt did not prove it sent anything."""
    configure(fakes.webhook())
    monkeypatch.setattr(service.configured_provider(), "send", lambda message: None)
    with pytest.raises(service.NotSent):
        service.send_test(NUMBER, origin=CLI)


def test_country_allowlist_blocks_other_countries(fakes: FakeSet) -> None:
    """With allowed calling codes set, a number elsewhere gets nothing and the log says why (FUZZ-09)."""
    fake = fakes.webhook()
    configure(fake)
    service.save_limits("100", "44, +33", origin=CLI)
    assert get_setting(service.COUNTRIES) == ["33", "44"]
    with pytest.raises(service.NotSent) as caught:
        service.send_test(NUMBER, origin=CLI)
    assert caught.value.reason == "country_not_allowed"
    assert fake.received == []
    assert AuthEvent.objects.get(kind="sms.not_sent").reason == "country_not_allowed"
    service.send_test("+447700900123", origin=CLI)
    assert len(fake.received) == 1


def test_test_messages_respect_the_daily_limit(fakes: FakeSet) -> None:
    """Once the service sent its daily limit of codes, an administrator's test message is not sent either."""
    fake = fakes.webhook()
    configure(fake)
    service.save_limits("1", "", origin=CLI)
    service.send_test(NUMBER, origin=CLI)  # a test message counts for nothing
    user = services.create_user("carol", password=None, phones=[NUMBER], origin=CLI)
    flows.start_enrolment(user, user.phone_numbers.get().pk, CLI)  # the one code of the day
    assert len(fake.received) == 2
    with pytest.raises(service.NotSent) as caught:
        service.send_test(NUMBER, origin=CLI)
    assert caught.value.reason == "daily_limit"
    assert len(fake.received) == 2
    assert AuthEvent.objects.filter(kind="sms.not_sent", reason="daily_limit").exists()


@pytest.mark.parametrize(
    ("limit", "countries"),
    [("0", ""), ("many", ""), ("10", "999"), ("10", "abc"), ("10", "1, \u00b2"), ("10", "4" * 4301), ("10", "0044")],
)
def test_invalid_limits_store_nothing(limit: str, countries: str) -> None:
    """A bad daily limit or an unknown calling code is refused; neither value is stored.  A superscript (a digit
    that int() refuses) or thousands of digits are refused like any other text, not a server error."""
    with pytest.raises(service.LimitsError):
        service.save_limits(limit, countries, origin=CLI)
    assert service.limits() == (service.DEFAULT_DAILY_LIMIT, [])


def test_calling_codes_in_other_scripts_are_kept_in_ascii() -> None:
    """Full-width or Arabic-Indic digits are read as the calling code they spell and kept in ASCII, the form
    numbers are compared in: full-width 44 allows +44 rather than silently blocking it."""
    service.save_limits("10", "\uff14\uff14, \u0661", origin=CLI)
    assert service.limits() == (10, ["1", "44"])


def test_settings_cli_refuses_provider_keys_but_takes_limits() -> None:
    """Provider settings go through `sms configure` (validated); limits can be set like any setting."""
    with pytest.raises(SettingError) as caught:
        set_setting_from_text(service.PROVIDER, "twilio")
    assert "sms configure" in str(caught.value)
    assert set_setting_from_text(service.DAILY_LIMIT, "25") == 25
    assert set_setting_from_text(service.COUNTRIES, "+1, 44") == ["1", "44"]


def test_sms_cli_configure_reads_secrets_from_stdin(fakes: FakeSet, monkeypatch: pytest.MonkeyPatch) -> None:
    """`sms configure` refuses secrets as arguments and takes them from standard input."""
    fake = fakes.twilio()
    with pytest.raises(CommandError) as caught:
        call_command("sms", "configure", "twilio", "--option", f"auth_token={TWILIO_TOKEN}")
    assert "standard input" in str(caught.value)
    monkeypatch.setattr("sys.stdin", StringIO(f"auth_token={TWILIO_TOKEN}\n"))
    out = StringIO()
    call_command(
        "sms", "configure", "twilio", "--sender", SENDER,
        "--option", "account_sid=AC" + "0123456789abcdef" * 2, "--option", f"base_url={fake.url}",
        "--secrets-stdin", stdout=out,
    )  # fmt: skip
    assert "twilio" in out.getvalue()
    # The natural mistake, the bare secret piped in: refused without echoing it.
    monkeypatch.setattr("sys.stdin", StringIO(f"{TWILIO_TOKEN}\n"))
    with pytest.raises(CommandError) as caught:
        call_command("sms", "configure", "twilio", "--sender", SENDER, "--secrets-stdin")
    assert "line 1 has no '='" in str(caught.value) and TWILIO_TOKEN not in str(caught.value)
    out = StringIO()
    call_command("sms", "test", NUMBER, stdout=out)
    assert "handed to twilio" in out.getvalue() and "+1 ••• ••• 4567" in out.getvalue()
    out = StringIO()
    call_command("sms", "status", stdout=out)
    assert "provider: twilio (ready)" in out.getvalue()
    assert TWILIO_TOKEN not in out.getvalue()


def test_sms_cli_test_reports_provider_failure(fakes: FakeSet) -> None:
    """`sms test` exits non-zero with the provider's error when delivery fails."""
    fake = fakes.vonage()
    configure(fake)
    fake.fail(200, {"message-count": "1", "messages": [{"status": "4", "error-text": "Bad Credentials"}]})
    with pytest.raises(CommandError) as caught:
        call_command("sms", "test", NUMBER)
    assert "Bad Credentials" in str(caught.value)
    with pytest.raises(CommandError):
        call_command("sms", "test", "not-a-number")


def test_configuration_change_is_audited_without_secrets(fakes: FakeSet) -> None:
    """Saving a provider is in the auth log with its options, never its secrets or a URL's query string."""
    fake = fakes.webhook()
    service.save_configuration(
        "webhook",
        {"url": fake.hook_url + "?token=in-the-url", "signing_secret": "s3cret-value"},
        SENDER,
        origin=CLI,
    )
    event = AuthEvent.objects.get(kind="sms.configured")
    assert event.detail["options"]["url"] == fake.hook_url
    assert event.detail["secrets_changed"] == ["signing_secret"]
    assert "s3cret-value" not in _all_events_text() and "in-the-url" not in _all_events_text()


def test_a_url_token_stays_out_of_the_logs(fakes: FakeSet, caplog: pytest.LogCaptureFixture) -> None:
    """Sending through a webhook whose URL carries a token logs nothing of that URL (httpx logs URLs at INFO)."""
    fake = fakes.webhook()
    service.save_configuration(
        "webhook",
        {"url": fake.hook_url + "?token=in-the-url", "signing_secret": fake.signing_secret},
        SENDER,
        origin=CLI,
    )
    caplog.set_level(logging.DEBUG)
    service.send_test(NUMBER, origin=CLI)
    assert fake.received and "in-the-url" not in caplog.text


def test_sender_goes_through_sms_configure() -> None:
    """The sender is validated with the provider, so `settings set sms.sender` points to `sms configure`."""
    with pytest.raises(SettingError) as caught:
        set_setting_from_text(service.SENDER, "+15550001111")
    assert "sms configure" in str(caught.value)
