"""Shared plumbing of the providers that speak HTTP: one bounded POST, errors mapped.

Every request ends within its timeout, from connecting to the last byte of
the answer (see ``Deadline``), follows no redirect (a redirect would re-send
credentials and the code to a place nobody chose) and turns every transport
failure into ``SMSDeliveryError`` with the right ``retryable`` and
``possibly_sent`` flags.  Response bodies quoted in errors are cut short.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

import httpcore
import httpx

from twostep.core import lookup
from twostep.core.wording import seconds
from twostep.sms.base import ConfigurationError, SMSDeliveryError

#: How much of a provider's error answer is kept for the administrator.
MAX_ERROR_TEXT = 300
#: Seconds to open a connection (the host name lookup included), within the request's own deadline.
CONNECT_TIMEOUT = 5.0
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
    """A client for one provider: no redirects, timeouts passed per request, host name lookups bounded."""
    transport = httpx.HTTPTransport()
    # httpx has no public way to choose httpcore's network backend; the pool
    # it builds for direct connections takes one.  Should httpx build another
    # kind, lookups go unbounded again (tests/sms/test_http.py notices).
    pool = getattr(transport, "_pool", None)
    if isinstance(pool, httpcore.ConnectionPool):
        pool._network_backend = _BoundedLookups()
    return httpx.Client(transport=transport, follow_redirects=False, headers={"User-Agent": "twostep-sms/1"})


class _BoundedLookups(httpcore.SyncBackend):
    """httpcore's sockets, with the host name lookup held to the connect timeout (``core.lookup``).

    httpx's timeouts and ``Deadline`` bound every socket operation, but not
    ``getaddrinfo``: a DNS server that does not answer would hold the request
    for as long as the system's resolver waits.  Each address found is then
    tried in turn with what is left of the connect timeout.
    """

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        budget = CONNECT_TIMEOUT if timeout is None else timeout
        ends = time.monotonic() + budget
        try:
            found = lookup.addresses(host, port, budget)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc)) from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from None
        failure: Exception | None = None
        for *_, address in found:
            left = ends - time.monotonic()
            if left <= 0:
                raise httpcore.ConnectTimeout(f"no connection to {host} within {budget:g} seconds")
            try:
                return super().connect_tcp(address[0], port, left, local_address, socket_options)
            except httpcore.ConnectError as exc:
                failure = exc
        raise failure or httpcore.ConnectError(f"no address for {host}")


def short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 1] + "…"


#: httpx errors raised before any of the request can have reached the provider.
_BEFORE_SENDING: tuple[type[httpx.HTTPError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
)


def possibly_sent(exc: BaseException | None) -> bool:
    """Whether a send that failed with ``exc`` may still have handed the message over.

    True for an httpx error raised once the request could have gone out (no
    answer in time, the connection broke, a garbled answer); False for one
    raised before (no connection) and for anything that is not an httpx error.
    """
    return isinstance(exc, httpx.HTTPError) and not isinstance(exc, _BEFORE_SENDING)


def _shut(sock: socket.socket) -> None:
    # Already closed by either side: nothing is left to end.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class Deadline:
    """Ends one request's network exchange ``seconds`` after it starts, whatever the server does.

    httpx's timeouts apply to each network operation, so a server that sends
    a byte just before every read times out holds a request for as long as
    it likes.  httpcore reports every connection it opens through the
    ``trace`` request extension (``trace`` below); at the deadline a timer
    shuts that connection's socket down, which ends the read or write
    waiting on it at once, a TLS handshake included.  Opening the connection,
    the host name lookup included (``_BoundedLookups``), is bounded by the
    connect timeout.

    Use as a context manager around one request made with
    ``extensions={"trace": deadline.trace}``.  A connection taken from the
    pool is not reported, so the request must not reuse one (``post`` sends
    ``Connection: close``).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        #: The timer went off (the request's connections were shut down then).
        self.expired = False
        #: The request started going out before the deadline: the provider may have it.
        self.sending = False
        #: httpcore reported at least one event (a transport without trace events reports none).
        self.traced = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        """The ``trace`` extension's callback; httpcore calls it in the requesting thread."""
        self.traced = True
        if event.endswith(".connect_tcp.complete"):
            stream = info.get("return_value")
            raw = stream.get_extra_info("socket") if stream is not None else None
            if not isinstance(raw, socket.socket):
                return
            try:
                # A second descriptor of the same connection: shutting it down ends the
                # connection even after TLS has taken over the original socket object, and
                # it stays ours, so it can never be a later, unrelated socket's number.
                own = raw.dup()
            except OSError:  # out of descriptors: the per-operation timeouts still apply
                return
            with self._lock:
                self._sockets.append(own)
                if self.expired:
                    _shut(own)
        elif event.endswith(".send_request_headers.started"):
            with self._lock:
                # Once expired the socket is shut: whatever is written now reaches nobody.
                self.sending = not self.expired

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def transport_error(provider: str, timeout: float, exc: httpx.HTTPError, deadline: Deadline) -> SMSDeliveryError:
    """The retryable SMSDeliveryError for a request that failed with ``exc`` under ``deadline``."""
    sent = possibly_sent(exc) and (deadline.sending or not deadline.traced)
    timed_out = deadline.expired or isinstance(exc, httpx.TimeoutException)
    detail = short(str(exc)) or type(exc).__name__
    if sent and timed_out:
        text = f"no answer within {seconds(timeout)} after the request was sent"
    elif sent:
        text = f"the connection broke after the request was sent ({type(exc).__name__}: {detail})"
    elif timed_out:
        text = f"cannot connect within {seconds(timeout)}"
    elif isinstance(exc, httpx.ConnectError):
        text = f"cannot connect ({detail})"
    else:
        text = f"{type(exc).__name__} ({detail})"
    return SMSDeliveryError(f"{provider}: {text}", retryable=True, provider=provider, possibly_sent=sent)


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
    """POST once and return the response, whatever its status, within ``timeout`` seconds in all.

    Connecting, sending, and receiving the headers and the body all count
    against one deadline (``Deadline``); a response complete in time is
    returned even if the timer goes off just after.

    Raises:
        SMSDeliveryError: retryable, for every transport failure:
            ``possibly_sent=False`` when no connection was made (refused,
            unreachable, TLS failure, connect timeout), True when the request
            went out and no whole answer came back in time or the connection
            broke.
    """
    deadline = Deadline(timeout)
    kwargs: dict[str, Any] = {
        "timeout": httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)),
        # A kept-alive connection would be reused without being reported to
        # the deadline, which could then not cut it off: one connection per
        # message (messages are few).
        "headers": {**dict(headers or {}), "Connection": "close"},
        "follow_redirects": False,
        "extensions": {"trace": deadline.trace},
    }
    if data is not None:
        kwargs["data"] = dict(data)
    if content is not None:
        kwargs["content"] = content
    if auth is not None:
        kwargs["auth"] = auth
    try:
        with deadline:
            return client.post(url, **kwargs)
    except httpx.HTTPError as exc:
        raise transport_error(provider, timeout, exc, deadline) from None


def without_body(text: str, body: str) -> str:
    """``text`` with the message body cut out, for a provider that echoes its request in an error.

    The body is cut out as sent (form-encoded, JSON-escaped) as well as in clear.
    """
    if not body:
        return text
    for form in sorted({body, quote_plus(body), quote(body), json.dumps(body)[1:-1]}, key=len, reverse=True):
        text = text.replace(form, "[message]")
    return text


#: Answers that may come after the provider took the message: its own fault while
#: handling it (500), or a gateway in front of it that lost or timed out waiting for
#: its answer (502, 504).  As unsure as a read timeout.
AFTER_THE_FACT = frozenset({500, 502, 504})


def status_error(provider: str, response: httpx.Response, body: str, detail: str = "") -> SMSDeliveryError:
    """The error for a non-success HTTP status: 5xx and 408/425/429 may be retried.

    A 4xx, or a 503 (not available now), refuses the message: it was not sent.
    After a 500, 502 or 504 it may have been (``AFTER_THE_FACT``): the code it
    carried must count as sent, else every such answer would give back the
    cooldown and the send limits, and a provider that delivers while its
    gateway times out would send texts without end.  ``body`` is the message
    body, cut out of whatever the provider answered.
    """
    status = response.status_code
    retryable = status >= 500 or status in RETRYABLE_4XX
    text = short(without_body(detail or response.text, body)) or response.reason_phrase
    return SMSDeliveryError(
        f"{provider}: HTTP {status}: {text}",
        retryable=retryable,
        provider=provider,
        status=status,
        possibly_sent=status in AFTER_THE_FACT,
    )


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The response body as a JSON object, or {} when it is not one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
