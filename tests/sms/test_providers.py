"""The built-in providers against fake servers speaking their real request formats."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.sms.contract import MESSAGE, HTTPProviderContract, SMSProviderContract
from tests.sms.fakes import (
    TWILIO_SID,
    TWILIO_TOKEN,
    VONAGE_KEY,
    VONAGE_SECRET,
    WEBHOOK_SECRET,
    FakeTwilio,
    FakeVonage,
    FakeWebhook,
)
from twostep.sms.base import ConfigurationError, SMSDeliveryError, SMSMessage
from twostep.sms.console import ConsoleProvider
from twostep.sms.twilio import TwilioProvider
from twostep.sms.vonage import VonageProvider
from twostep.sms.webhook import WebhookProvider, signature


class TestTwilio(HTTPProviderContract):
    provider_cls = TwilioProvider

    @pytest.fixture
    def fake(self) -> Iterator[FakeTwilio]:
        server = FakeTwilio(TWILIO_SID, TWILIO_TOKEN, api_key=("SK" + "ab" * 16, "key-secret"))
        yield server
        server.stop()

    @pytest.fixture
    def options(self, fake: FakeTwilio) -> dict[str, str]:
        return {
            "account_sid": TWILIO_SID,
            "auth_token": TWILIO_TOKEN,
            "sender": "+15550001111",
            "base_url": fake.url,
            "timeout": "5",
        }

    def wrong_credentials(self, options: dict[str, str]) -> dict[str, str]:
        return {**options, "auth_token": "not-the-token"}

    def test_request_has_twilios_shape(self, provider: Any, fake: FakeTwilio) -> None:
        """Path with the account SID, basic auth, form fields To/From/Body; the receipt holds the SM sid."""
        receipt = provider.send(MESSAGE)
        request = fake.requests[-1]
        assert request["path"] == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
        assert request["headers"]["content-type"].startswith("application/x-www-form-urlencoded")
        assert fake.received[0].fields == {"To": MESSAGE.to, "From": MESSAGE.sender, "Body": MESSAGE.body}
        assert receipt.message_id is not None and receipt.message_id.startswith("SM")

    @pytest.mark.parametrize(("valid_for", "sent"), [(600, "600"), (0, "1"), (86_400, "36000")])
    def test_a_code_is_dropped_from_the_queue_when_it_expires(
        self, provider: Any, fake: FakeTwilio, valid_for: int, sent: str
    ) -> None:
        """A code's lifetime becomes ValidityPeriod, within the range Twilio accepts."""
        provider.send(SMSMessage(to="+15551234567", body="code 123456", valid_for=valid_for))
        assert fake.received[0].fields["ValidityPeriod"] == sent

    def test_sender_falls_back_to_configured_sender(self, provider: Any, fake: FakeTwilio) -> None:
        """A message without its own sender goes From the configured sender."""
        provider.send(SMSMessage(to="+15551234567", body="hello 123456"))
        assert fake.received[0].fields["From"] == "+15550001111"

    def test_messaging_service_replaces_from(self, options: dict[str, str], fake: FakeTwilio) -> None:
        """With a messaging service SID, MessagingServiceSid is sent and From is not."""
        service_sid = "MG" + "cd" * 16
        built = TwilioProvider.from_options({**options, "sender": "", "messaging_service_sid": service_sid})
        built.send(SMSMessage(to="+15551234567", body="hello 123456"))
        built.close()
        assert fake.received[0].fields["MessagingServiceSid"] == service_sid
        assert "From" not in fake.received[0].fields

    def test_api_key_authenticates_instead_of_account(self, options: dict[str, str], fake: FakeTwilio) -> None:
        """An API key SID and its secret are the basic-auth credentials; the URL keeps the account SID."""
        built = TwilioProvider.from_options({**options, "api_key_sid": "SK" + "ab" * 16, "auth_token": "key-secret"})
        built.send(MESSAGE)
        built.close()
        assert len(fake.received) == 1
        assert TWILIO_SID in fake.requests[-1]["path"]

    def test_twilio_error_code_reaches_the_admin(self, provider: Any, fake: FakeTwilio) -> None:
        """Twilio's error code and message are in the error text, and a 4xx is final."""
        with pytest.raises(SMSDeliveryError) as caught:
            provider.send(SMSMessage(to="+1555", body="x 123456", sender="+15550001111"))
        assert "21211" in str(caught.value)
        assert caught.value.retryable is False and caught.value.status == 400

    @pytest.mark.parametrize(
        ("change", "setting"),
        [
            ({"account_sid": "AC123"}, "account_sid"),
            ({"messaging_service_sid": "MGxyz"}, "messaging_service_sid"),
            ({"api_key_sid": "SK1"}, "api_key_sid"),
            ({"sender": ""}, "sender"),
            ({"base_url": "http://api.example.com"}, "base_url"),
            ({"base_url": "ftp://127.0.0.1"}, "base_url"),
        ],
    )
    def test_bad_options_are_refused_at_start(
        self, options: dict[str, str], change: dict[str, str], setting: str
    ) -> None:
        """Malformed SIDs, no sender and no service, or a plain-http remote URL are configuration errors."""
        with pytest.raises(ConfigurationError) as caught:
            TwilioProvider.from_options({**options, **change})
        assert caught.value.setting == setting


class TestVonage(HTTPProviderContract):
    provider_cls = VonageProvider

    @pytest.fixture
    def fake(self) -> Iterator[FakeVonage]:
        server = FakeVonage(VONAGE_KEY, VONAGE_SECRET)
        yield server
        server.stop()

    @pytest.fixture
    def options(self, fake: FakeVonage) -> dict[str, str]:
        return {
            "api_key": VONAGE_KEY,
            "api_secret": VONAGE_SECRET,
            "sender": "twostep",
            "base_url": fake.url,
            "timeout": "5",
        }

    def wrong_credentials(self, options: dict[str, str]) -> dict[str, str]:
        return {**options, "api_secret": "wrong"}

    def test_request_has_vonages_shape(self, provider: Any, fake: FakeVonage) -> None:
        """POST /sms/json, form fields api_key/api_secret/from/to/text, to without '+'; message-id returned."""
        receipt = provider.send(MESSAGE)
        fields = fake.received[0].fields
        assert fake.requests[-1]["path"] == "/sms/json"
        assert fields["to"] == "15551234567"
        assert fields["from"] == "15550001111"
        assert fields["text"] == MESSAGE.body
        assert (fields["api_key"], fields["api_secret"]) == (VONAGE_KEY, VONAGE_SECRET)
        assert "type" not in fields and "ttl" not in fields  # a message without a code does not expire
        assert receipt.message_id

    @pytest.mark.parametrize(("valid_for", "sent"), [(600, "600000"), (5, "20000"), (10**7, "604800000")])
    def test_a_code_is_not_delivered_after_it_expires(
        self, provider: Any, fake: FakeVonage, valid_for: int, sent: str
    ) -> None:
        """A code's lifetime becomes ttl in milliseconds, within the range Vonage accepts."""
        provider.send(SMSMessage(to="+15551234567", body="code 123456", valid_for=valid_for))
        assert fake.received[0].fields["ttl"] == sent

    def test_non_ascii_text_is_sent_as_unicode(self, provider: Any, fake: FakeVonage) -> None:
        """Text outside ASCII is flagged type=unicode so it is not mangled."""
        provider.send(SMSMessage(to="+15551234567", body="Código 123456"))
        assert fake.received[0].fields["type"] == "unicode"

    @pytest.mark.parametrize(("status", "retryable"), [("1", True), ("5", True), ("7", False), ("29", False)])
    def test_status_codes_map_to_retryable(self, provider: Any, fake: FakeVonage, status: str, retryable: bool) -> None:
        """Vonage's per-message status decides: throttled/internal error retryable; barred/not allowed final."""
        fake.fail(200, FakeVonage.failed(status, "Some reason"))
        with pytest.raises(SMSDeliveryError) as caught:
            provider.send(MESSAGE)
        assert caught.value.retryable is retryable
        assert f"status {status}: Some reason" in str(caught.value)

    def test_a_text_sent_in_parts_is_sent_when_every_part_is(self, provider: Any, fake: FakeVonage) -> None:
        """A unicode text over 70 characters goes in two parts, each with status "0": sent, the first part's id."""
        receipt = provider.send(SMSMessage(to="+15551234567", body="Código de inicio de sesión: 123456. " * 2))
        assert receipt.message_id and len(fake.received) == 1

    @pytest.mark.parametrize(
        ("statuses", "possibly_sent"), [(("0", "5"), True), (("1", "0"), True), (("1", "1"), False)]
    )
    def test_a_part_refused_is_not_a_success(
        self, provider: Any, fake: FakeVonage, statuses: tuple[str, str], possibly_sent: bool
    ) -> None:
        """Every part's status counts, not only the first: a refused part fails the send, and when another part
        went out the text (and its code) may be read, so it is possibly sent; none accepted, certainly not."""
        parts = [
            {"status": status, "message-id": f"ID{n}"} if status == "0" else {"status": status, "error-text": "Nope"}
            for n, status in enumerate(statuses)
        ]
        fake.fail(200, {"message-count": "2", "messages": parts})
        with pytest.raises(SMSDeliveryError) as caught:
            provider.send(MESSAGE)
        assert caught.value.possibly_sent is possibly_sent
        assert ("1 of 2 parts accepted" in str(caught.value)) is possibly_sent

    def test_sender_is_required(self, options: dict[str, str]) -> None:
        """Vonage needs a from: a missing sender is a configuration error."""
        with pytest.raises(ConfigurationError) as caught:
            VonageProvider.from_options({**options, "sender": ""})
        assert caught.value.setting == "sender"

    def test_answer_without_messages_is_an_error(self, provider: Any, fake: FakeVonage) -> None:
        """An unexpected 200 answer is never taken as success."""
        fake.fail(200, {"unexpected": True})
        with pytest.raises(SMSDeliveryError) as caught:
            provider.send(MESSAGE)
        assert caught.value.retryable is False


class TestWebhook(HTTPProviderContract):
    provider_cls = WebhookProvider

    @pytest.fixture
    def fake(self) -> Iterator[FakeWebhook]:
        server = FakeWebhook(WEBHOOK_SECRET, authorization="Bearer hook-token")
        yield server
        server.stop()

    @pytest.fixture
    def options(self, fake: FakeWebhook) -> dict[str, str]:
        return {
            "url": fake.hook_url,
            "signing_secret": WEBHOOK_SECRET,
            "authorization": "Bearer hook-token",
            "sender": "twostep",
            "timeout": "5",
        }

    def wrong_credentials(self, options: dict[str, str]) -> dict[str, str]:
        return {**options, "signing_secret": "another-secret"}

    def test_payload_and_signature(self, provider: Any, fake: FakeWebhook) -> None:
        """JSON {id, to, body, sender}; the signature is HMAC-SHA256 over '<timestamp>.<body>' and is fresh."""
        receipt = provider.send(MESSAGE)
        request = fake.requests[-1]
        payload = json.loads(request["raw"])
        assert payload == {
            "id": payload["id"],
            "to": MESSAGE.to,
            "body": MESSAGE.body,
            "sender": MESSAGE.sender,
            "valid_for": None,
        }
        timestamp = request["headers"]["x-twostep-timestamp"]
        assert abs(int(timestamp) - time.time()) < 60
        expected = hmac.new(WEBHOOK_SECRET.encode(), timestamp.encode() + b"." + request["raw"], hashlib.sha256)
        assert request["headers"]["x-twostep-signature"] == f"sha256={expected.hexdigest()}"
        assert request["headers"]["x-twostep-signature"] == signature(WEBHOOK_SECRET, timestamp, request["raw"])
        assert receipt.message_id is not None and receipt.message_id.startswith("hook-")

    def test_a_codes_lifetime_is_sent(self, provider: Any, fake: FakeWebhook) -> None:
        """valid_for tells the receiver how long the code in the message works."""
        provider.send(SMSMessage(to="+15551234567", body="code 123456", valid_for=600))
        assert fake.received[0].fields["valid_for"] == 600

    def test_unsigned_without_secret(self, options: dict[str, str]) -> None:
        """Without a signing secret no signature headers are sent."""
        receiver = FakeWebhook()
        try:
            built = WebhookProvider.from_options({**options, "url": receiver.hook_url, "signing_secret": ""})
            built.send(MESSAGE)
            built.close()
            assert "x-twostep-signature" not in receiver.requests[-1]["headers"]
            assert len(receiver.received) == 1
        finally:
            receiver.stop()

    @pytest.mark.parametrize(
        "url", ["http://sms.example.com/hook", "file:///etc/passwd", "https://user:pw@example.com/hook", "not a url"]
    )
    def test_url_must_be_https_unless_local(self, options: dict[str, str], url: str) -> None:
        """Plain http to another machine, other schemes and URLs with credentials are refused."""
        with pytest.raises(ConfigurationError) as caught:
            WebhookProvider.from_options({**options, "url": url})
        assert caught.value.setting == "url"

    def test_https_url_is_accepted(self, options: dict[str, str]) -> None:
        """An https URL to any host is fine."""
        built = WebhookProvider.from_options({**options, "url": "https://sms.example.com/hook"})
        built.close()


class TestConsole(SMSProviderContract):
    provider_cls = ConsoleProvider
    debug = True

    @pytest.fixture
    def options(self) -> dict[str, str]:
        return {"sender": ""}

    @pytest.fixture
    def inbox(self, caplog: pytest.LogCaptureFixture) -> Callable[[], list[tuple[str, str]]]:
        caplog.set_level(logging.WARNING, logger="twostep.sms.console")

        def read() -> list[tuple[str, str]]:
            return [
                (record.args[1], record.args[3])  # type: ignore[index]
                for record in caplog.records
                if record.name == "twostep.sms.console"
            ]

        return read

    def test_refused_outside_debug_mode(self) -> None:
        """The console provider prints codes, so it cannot even be built unless debug is on."""
        with pytest.raises(ConfigurationError):
            ConsoleProvider.from_options({}, debug=False)


def test_injected_client_is_used_and_not_closed() -> None:
    """An httpx client passed in is used for the request and left open by close()."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "mock-1"})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    provider = WebhookProvider.from_options({"url": "https://sms.example.com/hook"}, http=client)
    receipt = provider.send(MESSAGE)
    provider.close()
    assert receipt.message_id == "mock-1"
    assert str(seen[0].url) == "https://sms.example.com/hook"
    assert not client.is_closed
    client.close()


def test_message_repr_hides_the_body() -> None:
    """repr() of a message (as in tracebacks and logs) shows neither the code nor the full number."""
    text = repr(MESSAGE)
    assert "424242" not in text and "5551234567" not in text
