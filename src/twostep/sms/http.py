"""Shared plumbing of the providers that speak HTTP: one bounded POST, errors mapped.

Every request has a timeout (connect and read), follows no redirect (a
redirect would re-send credentials and the code to a place nobody chose) and
turns every transport failure into ``SMSDeliveryError`` with the right
``retryable`` flag.  Response bodies quoted in errors are cut short.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

import httpx

from twostep.sms.base import ConfigurationError, SMSDeliveryError

#: How much of a provider's error answer is kept for the administrator.
MAX_ERROR_TEXT = 300
#: Statuses that mean "try again later" although they are 4xx.
RETRYABLE_4XX = frozenset({408, 425, 429})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(value: str, *, setting: str, label: str) -> str:
    """Return ``value`` without a trailing slash if it is an https URL (http only to this machine).

    Raises:
        ConfigurationError: not an absolute http(s) URL, or plain http to another host.
    """
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigurationError(f"{label} must be an absolute https:// URL.", setting=setting)
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigurationError(
            f"{label} must use https:// (plain http is allowed only to this machine).", setting=setting
        )
    if parts.username or parts.password:
        raise ConfigurationError(f"{label} must not contain a user name or password.", setting=setting)
    return value.rstrip("/")


def new_client() -> httpx.Client:
    """A client for one provider: no redirects, timeouts passed per request."""
    return httpx.Client(follow_redirects=False, headers={"User-Agent": "twostep-sms/1"})


def short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 1] + "…"


def post(
    client: httpx.Client,
    url: str,
    *,
    provider: str,
    timeout: float,
    data: Mapping[str, str] | None = None,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    auth: tuple[str, str] | None = None,
) -> httpx.Response:
    """POST once and return the response, whatever its status.

    Raises:
        SMSDeliveryError: timeout or connection failure (retryable), or any
            other transport error (retryable).
    """
    kwargs: dict[str, Any] = {
        "timeout": httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        "headers": dict(headers or {}),
        "follow_redirects": False,
    }
    if data is not None:
        kwargs["data"] = dict(data)
    if content is not None:
        kwargs["content"] = content
    if auth is not None:
        kwargs["auth"] = auth
    try:
        return client.post(url, **kwargs)
    except httpx.TimeoutException:
        raise SMSDeliveryError(
            f"{provider}: no answer within {timeout:g} seconds", retryable=True, provider=provider
        ) from None
    except httpx.ConnectError as exc:
        raise SMSDeliveryError(
            f"{provider}: cannot connect ({short(str(exc))})", retryable=True, provider=provider
        ) from None
    except httpx.HTTPError as exc:
        raise SMSDeliveryError(
            f"{provider}: {type(exc).__name__} ({short(str(exc))})", retryable=True, provider=provider
        ) from None


def without_body(text: str, body: str) -> str:
    """``text`` with the message body cut out, for a provider that echoes its request in an error.

    The body is cut out as sent (form-encoded, JSON-escaped) as well as in clear.
    """
    if not body:
        return text
    for form in sorted({body, quote_plus(body), quote(body), json.dumps(body)[1:-1]}, key=len, reverse=True):
        text = text.replace(form, "[message]")
    return text


def status_error(provider: str, response: httpx.Response, body: str, detail: str = "") -> SMSDeliveryError:
    """The error for a non-success HTTP status: 5xx and 408/425/429 may be retried.

    ``body`` is the message body, cut out of whatever the provider answered.
    """
    status = response.status_code
    retryable = status >= 500 or status in RETRYABLE_4XX
    text = short(without_body(detail or response.text, body)) or response.reason_phrase
    return SMSDeliveryError(f"{provider}: HTTP {status}: {text}", retryable=retryable, provider=provider, status=status)


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The response body as a JSON object, or {} when it is not one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
