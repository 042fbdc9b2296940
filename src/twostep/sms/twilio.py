"""The ``twilio`` provider: Twilio's Programmable Messaging REST API.

``POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json`` with the
form fields ``To``, ``From`` (or ``MessagingServiceSid``), ``Body`` and, for
a code, ``ValidityPeriod`` (seconds Twilio may keep the message queued),
authenticated with HTTP basic auth (Account SID, auth token).  Twilio answers
201 with the message resource (its ``sid``), or an error object
``{"code", "message", "more_info", "status"}``.
"""

from __future__ import annotations

import re
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

DEFAULT_BASE_URL = "https://api.twilio.com"
ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
API_KEY_SID = re.compile(r"SK[0-9a-fA-F]{32}")
#: The range Twilio accepts for ``ValidityPeriod``, in seconds.
VALIDITY_PERIOD = (1, 36_000)


class TwilioProvider:
    name: ClassVar[str] = "twilio"
    label: ClassVar[str] = "Twilio"
    options: ClassVar[tuple[Option, ...]] = (
        Option("account_sid", "Account SID", required=True, help="Starts with AC; on the Twilio console's front page."),
        Option(
            "auth_token",
            "Auth token",
            required=True,
            secret=True,
            help="The account's auth token or an API key secret.",
        ),
        Option(
            "api_key_sid",
            "API key SID",
            help="Optional. An API key (SK…) to authenticate with instead of the account SID; then the token above is its secret.",
        ),
        Option(
            "messaging_service_sid",
            "Messaging service SID",
            help="Optional. Starts with MG; used instead of the sender number.",
        ),
        Option(
            "base_url", "API base URL", endpoint=True, default=DEFAULT_BASE_URL, help="Change only for a test double."
        ),
        Option("timeout", "Timeout (seconds)", default="10", help="1 to 30 seconds."),
    )

    def __init__(
        self,
        *,
        account_sid: str,
        username: str,
        token: str,
        sender: str,
        service_sid: str,
        base_url: str,
        timeout: float,
        http: httpx.Client,
    ) -> None:
        self._account_sid = account_sid
        self._auth = (username, token)
        self._sender = sender
        self._service_sid = service_sid
        self._url = f"{base_url}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self._timeout = timeout
        self._http = http
        self._owns_client = False

    @classmethod
    def from_options(cls, options: Mapping[str, str], *, http: httpx.Client | None = None, debug: bool = False) -> Self:
        """Raises ConfigurationError for a malformed SID, a missing token, or no sender and no service."""
        account_sid = required_option(options, "account_sid", "Account SID")
        if not ACCOUNT_SID.fullmatch(account_sid):
            raise ConfigurationError("Account SID is AC followed by 32 hexadecimal digits.", setting="account_sid")
        token = required_option(options, "auth_token", "Auth token")
        api_key = option_value(options, "api_key_sid")
        if api_key and not API_KEY_SID.fullmatch(api_key):
            raise ConfigurationError("API key SID is SK followed by 32 hexadecimal digits.", setting="api_key_sid")
        service_sid = option_value(options, "messaging_service_sid")
        if service_sid and not SERVICE_SID.fullmatch(service_sid):
            raise ConfigurationError(
                "Messaging service SID is MG followed by 32 hexadecimal digits.", setting="messaging_service_sid"
            )
        sender = option_value(options, "sender")
        if not sender and not service_sid:
            raise ConfigurationError(
                "Twilio needs a sender number or name, or a messaging service SID.", setting="sender"
            )
        base_url = sms_http.check_url(
            option_value(options, "base_url", DEFAULT_BASE_URL), setting="base_url", label="API base URL"
        )
        provider = cls(
            account_sid=account_sid,
            username=api_key or account_sid,
            token=token,
            sender=sender,
            service_sid=service_sid,
            base_url=base_url,
            timeout=timeout_option(options),
            http=http or sms_http.new_client(),
        )
        provider._owns_client = http is None
        return provider

    def send(self, message: SMSMessage) -> DeliveryReceipt:
        fields = {"To": message.to, "Body": message.body}
        if self._service_sid:
            fields["MessagingServiceSid"] = self._service_sid
        else:
            fields["From"] = message.sender or self._sender
        if message.valid_for is not None:
            low, high = VALIDITY_PERIOD
            fields["ValidityPeriod"] = str(min(max(message.valid_for, low), high))
        response = sms_http.post(
            self._http,
            self._url,
            provider=self.name,
            timeout=self._timeout,
            data=fields,
            auth=self._auth,
            headers={"Accept": "application/json"},
        )
        answer = sms_http.json_object(response)
        if not response.is_success:
            detail = ""
            if answer.get("message"):
                detail = f"error {answer.get('code', '?')}: {answer['message']}"
            raise sms_http.status_error(self.name, response, message.body, detail)
        sid = answer.get("sid")
        if not isinstance(sid, str) or not sid:
            # A success status: Twilio may have queued the message all the same.
            raise SMSDeliveryError(
                f"{self.name}: HTTP {response.status_code} without a message sid",
                retryable=False,
                provider=self.name,
                status=response.status_code,
                possibly_sent=True,
            )
        return DeliveryReceipt(self.name, sid)

    def close(self) -> None:
        if self._owns_client:
            self._http.close()
