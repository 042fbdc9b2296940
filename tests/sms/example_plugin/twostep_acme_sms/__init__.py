"""The ACME SMS gateway as a twostep SMS provider (the worked example of docs/sms.md).

ACME's API: ``POST {base_url}/v1/messages`` with a bearer token and the JSON
body ``{"recipient", "text", "originator"}``; it answers 202 ``{"id": ...}``,
or an error status with ``{"error": ...}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import ClassVar, Self

import httpx

from twostep.sms import http as sms_http
from twostep.sms.base import (
    ConfigurationError,
    DeliveryReceipt,
    Option,
    SMSMessage,
    option_value,
    required_option,
    timeout_option,
)


class AcmeProvider:
    name: ClassVar[str] = "acme"  # must equal the entry-point name
    label: ClassVar[str] = "ACME SMS gateway"
    options: ClassVar[tuple[Option, ...]] = (
        Option("api_token", "API token", required=True, secret=True),
        Option("base_url", "API base URL", endpoint=True, default="https://api.acme.example"),
        Option("timeout", "Timeout (seconds)", default="10"),
    )

    def __init__(self, token: str, base_url: str, sender: str, timeout: float, http: httpx.Client, owns: bool) -> None:
        self._token = token
        self._url = base_url.rstrip("/") + "/v1/messages"
        self._sender = sender
        self._timeout = timeout
        self._http = http
        self._owns = owns

    @classmethod
    def from_options(cls, options: Mapping[str, str], *, http: httpx.Client | None = None, debug: bool = False) -> Self:
        token = required_option(options, "api_token", "API token")
        base_url = option_value(options, "base_url", "https://api.acme.example")
        if not base_url.startswith(("https://", "http://127.0.0.1")):
            raise ConfigurationError("API base URL must be https://.", setting="base_url")
        client = http or httpx.Client(follow_redirects=False)
        return cls(token, base_url, option_value(options, "sender"), timeout_option(options), client, http is None)

    def send(self, message: SMSMessage) -> DeliveryReceipt:
        payload = {"recipient": message.to, "text": message.body, "originator": message.sender or self._sender}
        # One POST within the timeout in all; a transport failure raises SMSDeliveryError,
        # saying whether the message may have gone out.
        response = sms_http.post(
            self._http,
            self._url,
            provider=self.name,
            timeout=self._timeout,
            content=json.dumps(payload).encode(),
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"},
        )
        if response.status_code != 202:
            # Refused (4xx, 503), or possibly taken before the error (500, 502, 504):
            # status_error sets retryable and possibly_sent, and leaves the body out.
            raise sms_http.status_error(self.name, response, message.body)
        return DeliveryReceipt(self.name, str(response.json().get("id") or "") or None)

    def close(self) -> None:
        if self._owns:
            self._http.close()
