"""The contract every SMS provider's tests inherit (a third party's too: copy this class).

``SMSProviderContract`` holds for every provider; ``HTTPProviderContract``
adds the failure behaviour of providers that talk to a server: errors are
``SMSDeliveryError`` with the right ``retryable`` and ``possibly_sent``
flags, the whole exchange ends within the timeout however the server
answers, and the message body never shows up in an error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.sms.fakes import FakeProviderServer
from twostep.sms import registry
from twostep.sms.base import ConfigurationError, DeliveryReceipt, Option, SMSDeliveryError, SMSMessage, SMSProvider

MESSAGE = SMSMessage(to="+15551234567", body="twostep: your sign-in code is 424242.", sender="+15550001111")
#: How much longer than its timeout a send may take to give up (thread wake-ups on a busy machine).
MARGIN = 0.75


class SMSProviderContract:
    """Subclasses set ``provider_cls`` and define the ``options`` and ``inbox`` fixtures."""

    provider_cls: type[Any]
    #: Passed to from_options as ``debug``.
    debug = False

    @pytest.fixture
    def options(self) -> dict[str, str]:
        raise NotImplementedError

    @pytest.fixture
    def inbox(self) -> Callable[[], list[tuple[str, str]]]:
        """What the carrier side received, as (to, body) pairs."""
        raise NotImplementedError

    @pytest.fixture
    def provider(self, options: dict[str, str]) -> Iterator[Any]:
        built = self.provider_cls.from_options(options, debug=self.debug)
        yield built
        built.close()

    def test_is_found_through_its_entry_point(self) -> None:
        """The provider is reachable by its name through the twostep.sms_providers group."""
        assert registry.provider_class(self.provider_cls.name) is self.provider_cls

    def test_has_the_protocol_shape(self, provider: Any) -> None:
        """It has a label, declared Option settings and the Protocol's methods."""
        assert isinstance(provider, SMSProvider)
        assert self.provider_cls.label.strip()
        assert all(isinstance(option, Option) for option in self.provider_cls.options)
        names = [option.name for option in self.provider_cls.options]
        assert len(names) == len(set(names)) and "sender" not in names

    def test_send_hands_over_exactly_the_message(
        self, provider: Any, inbox: Callable[[], list[tuple[str, str]]]
    ) -> None:
        """send() returns a receipt naming the provider, and the carrier got the same number and text."""
        receipt = provider.send(MESSAGE)
        assert isinstance(receipt, DeliveryReceipt)
        assert receipt.provider == self.provider_cls.name
        assert inbox() == [(MESSAGE.to, MESSAGE.body)]

    def test_every_required_option_is_checked_at_start(self, options: dict[str, str]) -> None:
        """Leaving out a required option fails in from_options, naming that option."""
        for option in self.provider_cls.options:
            if not option.required:
                continue
            incomplete = {key: value for key, value in options.items() if key != option.name}
            with pytest.raises(ConfigurationError) as caught:
                self.provider_cls.from_options(incomplete, debug=self.debug)
            assert caught.value.setting == option.name

    def test_close_twice_is_harmless(self, options: dict[str, str]) -> None:
        """close() releases resources and may be called again."""
        built = self.provider_cls.from_options(options, debug=self.debug)
        built.close()
        built.close()


class HTTPProviderContract(SMSProviderContract):
    """For providers that talk to a server; subclasses also define ``fake`` and ``wrong_credentials``."""

    @pytest.fixture
    def fake(self) -> Iterator[FakeProviderServer]:
        raise NotImplementedError

    @pytest.fixture
    def inbox(self, fake: FakeProviderServer) -> Callable[[], list[tuple[str, str]]]:
        return lambda: [(message.to, message.body) for message in fake.received]

    def wrong_credentials(self, options: dict[str, str]) -> dict[str, str]:
        raise NotImplementedError

    def test_server_error_is_retryable(self, provider: Any, fake: FakeProviderServer) -> None:
        """A 503 from the provider raises a retryable SMSDeliveryError; nothing was accepted."""
        fake.fail(503, {"error": "maintenance"})
        with pytest.raises(SMSDeliveryError) as caught:
            provider.send(MESSAGE)
        assert caught.value.retryable is True
        assert caught.value.status == 503
        assert caught.value.provider == self.provider_cls.name
        assert caught.value.possibly_sent is False
        assert fake.received == []

    @pytest.mark.parametrize("status", [500, 502, 504])
    def test_an_error_that_may_follow_acceptance_counts_as_possibly_sent(
        self, provider: Any, fake: FakeProviderServer, status: int
    ) -> None:
        """A 500, or a gateway's 502 or 504, may come after the provider took the message: retryable, and
        possibly sent, so that the code counts against the cooldown and limits rather than going back."""
        fake.fail(status, {"error": "upstream"})
        with pytest.raises(SMSDeliveryError) as caught:
            provider.send(MESSAGE)
        assert caught.value.retryable is True and caught.value.status == status
        assert caught.value.possibly_sent is True

    def test_throttling_is_retryable(self, provider: Any, fake: FakeProviderServer) -> None:
        """A 429 answer may succeed later: retryable."""
        fake.fail(429, {"error": "slow down"})
        with pytest.raises(SMSDeliveryError) as caught:
            provider.send(MESSAGE)
        assert caught.value.retryable is True

    def test_rejected_credentials_are_not_retryable(self, options: dict[str, str], fake: FakeProviderServer) -> None:
        """Wrong credentials: the provider's refusal comes back as a final (non-retryable) error."""
        built = self.provider_cls.from_options(self.wrong_credentials(options), debug=self.debug)
        try:
            with pytest.raises(SMSDeliveryError) as caught:
                built.send(MESSAGE)
        finally:
            built.close()
        assert caught.value.retryable is False
        assert caught.value.possibly_sent is False
        assert str(caught.value)
        assert fake.received == []

    def test_timeout_is_bounded(self, options: dict[str, str], fake: FakeProviderServer) -> None:
        """A provider that does not answer is given up after the configured timeout, retryably.

        The request went out, so the message may have been sent: ``possibly_sent``.
        """
        built = self.provider_cls.from_options({**options, "timeout": "1"}, debug=self.debug)
        fake.fail(delay=4.0, count=1)
        started = time.monotonic()
        try:
            with pytest.raises(SMSDeliveryError) as caught:
                built.send(MESSAGE)
        finally:
            built.close()
        assert time.monotonic() - started < 1.0 + MARGIN
        assert caught.value.retryable is True
        assert caught.value.possibly_sent is True
        assert "no answer within 1 second" in str(caught.value)

    @pytest.mark.parametrize("headers", [False, True], ids=["body", "status-line-and-headers"])
    def test_trickled_answer_ends_at_the_timeout(
        self, options: dict[str, str], fake: FakeProviderServer, headers: bool
    ) -> None:
        """An answer sent a byte at a time (each within the read timeout) is cut off at the timeout.

        The timeout is for the whole exchange, not for each read: otherwise a
        slow server holds the sign-in for as long as it keeps sending.
        """
        built = self.provider_cls.from_options({**options, "timeout": "1"}, debug=self.debug)
        fake.trickle(0.2, headers=headers, count=1)
        started = time.monotonic()
        try:
            with pytest.raises(SMSDeliveryError) as caught:
                built.send(MESSAGE)
        finally:
            built.close()
        assert time.monotonic() - started < 1.0 + MARGIN
        assert caught.value.retryable is True
        assert caught.value.possibly_sent is True
        assert "no answer within 1 second" in str(caught.value)
        assert [message.body for message in fake.received] == [MESSAGE.body]

    def test_unreachable_provider_is_retryable(self, provider: Any, fake: FakeProviderServer) -> None:
        """Connection refused is a retryable SMSDeliveryError, not a crash; the message certainly did not go."""
        fake.stop()
        with pytest.raises(SMSDeliveryError) as caught:
            provider.send(MESSAGE)
        assert caught.value.retryable is True
        assert caught.value.possibly_sent is False

    def test_error_never_contains_the_message_body(self, provider: Any, fake: FakeProviderServer) -> None:
        """A provider that echoes the request in its error: the code is cut out of the error text."""
        fake.fail(400, lambda raw: {"code": 1, "message": raw.decode(), "error": raw.decode()})
        with pytest.raises(SMSDeliveryError) as caught:
            provider.send(MESSAGE)
        assert "424242" not in str(caught.value)
        assert caught.value.retryable is False

    def test_redirect_is_not_followed(self, provider: Any, fake: FakeProviderServer) -> None:
        """A 3xx answer is an error: credentials and codes are never re-sent elsewhere."""
        fake.fail(307, {"moved": True}, count=1)
        with pytest.raises(SMSDeliveryError):
            provider.send(MESSAGE)
        assert len(fake.requests) == 1

    def test_timeout_option_is_bounded(self, options: dict[str, str]) -> None:
        """Timeouts outside 1-30 seconds, or not numbers, are refused at start."""
        for bad in ("0", "31", "soon"):
            with pytest.raises(ConfigurationError) as caught:
                self.provider_cls.from_options({**options, "timeout": bad}, debug=self.debug)
            assert caught.value.setting == "timeout"
