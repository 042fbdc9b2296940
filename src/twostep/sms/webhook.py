"""The ``webhook`` provider: POSTs each message as JSON to a URL the administrator runs.

Body: ``{"id": ..., "to": "+15551234567", "body": "...", "sender": "...", "valid_for": 600}``,
where ``valid_for`` is how many seconds the code in the message works (null
for a message without a code): a receiver that queues should drop the
message after that.
With a signing secret, the request carries ``X-Twostep-Timestamp`` (Unix
seconds) and ``X-Twostep-Signature: sha256=<hex>``, the HMAC-SHA256 of
``<timestamp>.<raw body>`` under the secret, so the receiver can check both
origin and freshness.  Any 2xx answer means accepted; a JSON answer's
``id`` or ``message_id`` becomes the receipt's message id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from typing import ClassVar, Self

import httpx

from twostep.core import clock
from twostep.sms import http as sms_http
from twostep.sms.base import (
    DeliveryReceipt,
    Option,
    SMSMessage,
    option_value,
    required_option,
    timeout_option,
)

SIGNATURE_HEADER = "X-Twostep-Signature"
TIMESTAMP_HEADER = "X-Twostep-Timestamp"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The value of the signature header for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookProvider:
    name: ClassVar[str] = "webhook"
    label: ClassVar[str] = "Webhook (your own HTTP endpoint)"
    options: ClassVar[tuple[Option, ...]] = (
        Option(
            "url",
            "Webhook URL",
            required=True,
            endpoint=True,
            help="https:// endpoint that receives a JSON POST per message.",
        ),
        Option(
            "signing_secret",
            "Signing secret",
            secret=True,
            help="Optional. Signs each request: X-Twostep-Signature = sha256=HMAC-SHA256(secret, timestamp + '.' + body).",
        ),
        Option(
            "authorization",
            "Authorization header",
            secret=True,
            help="Optional. Sent as the Authorization header, e.g. 'Bearer <token>'.",
        ),
        Option("timeout", "Timeout (seconds)", default="10", help="1 to 30 seconds."),
    )

    def __init__(
        self, url: str, *, sender: str, signing_secret: str, authorization: str, timeout: float, http: httpx.Client
    ) -> None:
        self._url = url
        self._sender = sender
        self._signing_secret = signing_secret
        self._authorization = authorization
        self._timeout = timeout
        self._http = http
        self._owns_client = False

    @classmethod
    def from_options(cls, options: Mapping[str, str], *, http: httpx.Client | None = None, debug: bool = False) -> Self:
        """Raises ConfigurationError for a missing or non-https URL or a bad timeout."""
        url = sms_http.check_url(required_option(options, "url", "Webhook URL"), setting="url", label="Webhook URL")
        provider = cls(
            url,
            sender=option_value(options, "sender"),
            signing_secret=option_value(options, "signing_secret"),
            authorization=option_value(options, "authorization"),
            timeout=timeout_option(options),
            http=http or sms_http.new_client(),
        )
        provider._owns_client = http is None
        return provider

    def send(self, message: SMSMessage) -> DeliveryReceipt:
        message_id = secrets.token_hex(12)
        payload = {
            "id": message_id,
            "to": message.to,
            "body": message.body,
            "sender": message.sender or self._sender,
            "valid_for": message.valid_for,
        }
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._signing_secret:
            timestamp = str(int(clock.timestamp()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = signature(self._signing_secret, timestamp, body)
        if self._authorization:
            headers["Authorization"] = self._authorization
        response = sms_http.post(
            self._http, self._url, provider=self.name, timeout=self._timeout, content=body, headers=headers
        )
        if not response.is_success:
            raise sms_http.status_error(self.name, response, message.body)
        answer = sms_http.json_object(response)
        remote_id = answer.get("message_id") or answer.get("id")
        return DeliveryReceipt(self.name, str(remote_id) if remote_id else message_id)

    def close(self) -> None:
        if self._owns_client:
            self._http.close()
