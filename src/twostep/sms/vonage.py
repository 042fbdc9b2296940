"""The ``vonage`` provider: Vonage's (formerly Nexmo's) SMS API.

``POST {base_url}/sms/json`` with the form fields ``api_key``, ``api_secret``,
``from``, ``to`` (E.164 without the ``+``), ``text`` and, for a code, ``ttl``
(milliseconds Vonage may go on trying to deliver it).  Vonage answers 200
with ``{"message-count": "1", "messages": [{"status": "0", "message-id": ...}]}``;
a non-zero ``status`` is an error explained by ``error-text``.  A text longer
than one SMS (160 GSM characters, 70 in ``unicode``) is sent in parts, each
with its own entry and status: the message went out whole only when every
part's status is "0", and not at all only when none is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Self

import httpx

from twostep.sms import http as sms_http
from twostep.sms.base import (
    ConfigurationError,
    DeliveryReceipt,
    Option,
    SMSDeliveryError,
    SMSMessage,
    option_value,
    required_option,
    timeout_option,
)

DEFAULT_BASE_URL = "https://rest.nexmo.com"
#: Statuses after which the same message may go through later: throttled,
#: internal error, communication failure.
RETRYABLE_STATUSES = frozenset({"1", "5", "13"})
#: The range Vonage accepts for ``ttl``, in milliseconds (20 seconds to 7 days).
TTL = (20_000, 604_800_000)


class VonageProvider:
    name: ClassVar[str] = "vonage"
    label: ClassVar[str] = "Vonage (SMS API)"
    options: ClassVar[tuple[Option, ...]] = (
        Option("api_key", "API key", required=True, help="On the Vonage API dashboard."),
        Option("api_secret", "API secret", required=True, secret=True),
        Option(
            "base_url", "API base URL", endpoint=True, default=DEFAULT_BASE_URL, help="Change only for a test double."
        ),
        Option("timeout", "Timeout (seconds)", default="10", help="1 to 30 seconds."),
    )

    def __init__(
        self, *, api_key: str, api_secret: str, sender: str, base_url: str, timeout: float, http: httpx.Client
    ) -> None:
        self._api_key = api_key
        self._api_secret = api_secret
        self._sender = sender
        self._url = f"{base_url}/sms/json"
        self._timeout = timeout
        self._http = http
        self._owns_client = False

    @classmethod
    def from_options(cls, options: Mapping[str, str], *, http: httpx.Client | None = None, debug: bool = False) -> Self:
        """Raises ConfigurationError for a missing key, secret or sender, or a bad URL."""
        sender = option_value(options, "sender")
        if not sender:
            raise ConfigurationError("Vonage needs a sender number or name.", setting="sender")
        provider = cls(
            api_key=required_option(options, "api_key", "API key"),
            api_secret=required_option(options, "api_secret", "API secret"),
            sender=sender,
            base_url=sms_http.check_url(
                option_value(options, "base_url", DEFAULT_BASE_URL), setting="base_url", label="API base URL"
            ),
            timeout=timeout_option(options),
            http=http or sms_http.new_client(),
        )
        provider._owns_client = http is None
        return provider

    def send(self, message: SMSMessage) -> DeliveryReceipt:
        fields = {
            "api_key": self._api_key,
            "api_secret": self._api_secret,
            "from": (message.sender or self._sender).lstrip("+"),
            "to": message.to.lstrip("+"),
            "text": message.body,
        }
        if not message.body.isascii():
            fields["type"] = "unicode"
        if message.valid_for is not None:
            low, high = TTL
            fields["ttl"] = str(min(max(message.valid_for * 1000, low), high))
        response = sms_http.post(
            self._http,
            self._url,
            provider=self.name,
            timeout=self._timeout,
            data=fields,
            headers={"Accept": "application/json"},
        )
        if not response.is_success:
            raise sms_http.status_error(self.name, response, message.body)
        answer = sms_http.json_object(response)
        parts = answer.get("messages")
        if not isinstance(parts, list) or not parts or not all(isinstance(part, dict) for part in parts):
            # A success status without the per-message outcome: Vonage may have taken it.
            raise SMSDeliveryError(
                f"{self.name}: unexpected answer without messages",
                retryable=False,
                provider=self.name,
                possibly_sent=True,
            )
        refused = [part for part in parts if str(part.get("status", "")) != "0"]
        if refused:
            status = str(refused[0].get("status", ""))
            text = sms_http.without_body(str(refused[0].get("error-text") or "no error text"), message.body)
            taken = len(parts) - len(refused)
            # Some parts went out: the text (and the code it carries) may be read.
            also = f" ({taken} of {len(parts)} parts accepted)" if taken else ""
            raise SMSDeliveryError(
                f"{self.name}: status {status or '?'}: {sms_http.short(text)}{also}",
                retryable=status in RETRYABLE_STATUSES,
                provider=self.name,
                status=response.status_code,
                possibly_sent=bool(taken),
            )
        message_id = parts[0].get("message-id")
        return DeliveryReceipt(self.name, str(message_id) if message_id else None)

    def close(self) -> None:
        if self._owns_client:
            self._http.close()
