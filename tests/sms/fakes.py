"""Fake SMS provider servers: real HTTP on 127.0.0.1 speaking each provider's request format.

Each fake checks what the real API checks that matters here (path, method,
authentication, content type and required fields, as the providers' public
API references define them), answers in the provider's response format,
and records every message it accepted.  Tests switch a fake into failure
modes: an HTTP error status, a slow answer (for timeouts), an answer
trickled out a byte at a time after the message was accepted, or down.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

CODE = re.compile(r"\b(\d{6})\b")
# How often the server thread looks up from select() for a stop: teardown waits for it.
SHUTDOWN_POLL = 0.02


@dataclass
class Received:
    """One request the fake accepted as a message."""

    to: str
    body: str
    sender: str
    fields: dict[str, Any]
    headers: dict[str, str]


@dataclass
class Failure:
    """How the next requests fail: an HTTP status with a body, a delay before answering, or a trickled answer.

    With ``trickle`` the message is accepted as usual, then the answer goes
    out one byte every ``trickle`` seconds: the body only, or the status line
    and headers too with ``trickle_headers``.
    """

    status: int = 0
    body: Any = None
    delay: float = 0.0
    count: int = 1_000_000
    trickle: float = 0.0
    trickle_headers: bool = False


class FakeProviderServer:
    """Base: a threaded HTTP server on a free loopback port; subclasses speak one API."""

    name = "fake"

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.requests: list[dict[str, Any]] = []
        self.failure: Failure | None = None
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                fake._dispatch(self)

            def do_GET(self) -> None:
                self._reply(405, {"error": "method not allowed"})

            def _reply(self, status: int, payload: Any) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _trickle(self, status: int, payload: Any, interval: float, headers_too: bool) -> None:
                data = json.dumps(payload).encode()
                head = (
                    f"HTTP/1.1 {status} {self.responses[status][0]}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
                ).encode()
                self.close_connection = True
                try:
                    if not headers_too:
                        self.wfile.write(head)
                        head = b""
                    for byte in head + data:
                        self.wfile.write(bytes([byte]))
                        time.sleep(interval)
                except OSError:  # the client gave up
                    return

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(SHUTDOWN_POLL,), daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Close the socket: later requests get "connection refused"."""
        self._server.shutdown()
        self._server.server_close()

    def fail(self, status: int = 0, body: Any = None, *, delay: float = 0.0, count: int = 1_000_000) -> None:
        """Make the next ``count`` requests fail (status) or answer late (delay)."""
        self.failure = Failure(status, body, delay, count)

    def trickle(self, interval: float, *, headers: bool = False, count: int = 1_000_000) -> None:
        """Accept the next ``count`` messages, then send each answer one byte every ``interval`` seconds."""
        self.failure = Failure(count=count, trickle=interval, trickle_headers=headers)

    def recover(self) -> None:
        self.failure = None

    def codes(self) -> list[str]:
        """The 6-digit codes of the accepted messages, oldest first."""
        found = []
        for message in self.received:
            match = CODE.search(message.body)
            if match:
                found.append(match.group(1))
        return found

    def last_code(self, to: str | None = None) -> str:
        for message in reversed(self.received):
            match = CODE.search(message.body)
            if match and (to is None or message.to == to):
                return match.group(1)
        raise AssertionError(f"no code received{f' for {to}' if to else ''}: {self.received}")

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until ``count`` messages arrived (the server under test sends them)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        raise AssertionError(f"expected {count} message(s), got {len(self.received)}: {self.received}")

    # -- request handling

    def _dispatch(self, handler: Any) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        headers = {key.lower(): value for key, value in handler.headers.items()}
        with self._lock:
            self.requests.append({"path": handler.path, "headers": headers, "raw": raw})
            failure = self.failure
            if failure is not None:
                failure.count -= 1
                if failure.count <= 0:
                    self.failure = None
        if failure is not None and not failure.trickle:
            if failure.delay:
                time.sleep(failure.delay)
            if failure.status:
                body = failure.body
                if callable(body):
                    body = body(raw)
                handler._reply(failure.status, body if body is not None else {"error": "failure"})
                return
        status, payload, message = self.handle(handler.path, headers, raw)
        if message is not None:
            with self._lock:
                self.received.append(message)
        if failure is not None and failure.trickle:
            handler._trickle(status, payload, failure.trickle, failure.trickle_headers)
            return
        handler._reply(status, payload)

    def handle(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any, Received | None]:
        raise NotImplementedError


def _form(headers: dict[str, str], raw: bytes) -> dict[str, str] | None:
    if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return None
    parsed = parse_qs(raw.decode(), keep_blank_values=True)
    return {key: values[-1] for key, values in parsed.items()}


def _basic_auth(headers: dict[str, str]) -> tuple[str, str] | None:
    value = headers.get("authorization", "")
    if not value.startswith("Basic "):
        return None
    user, _, password = base64.b64decode(value[6:]).decode().partition(":")
    return user, password


class FakeTwilio(FakeProviderServer):
    """Twilio's Messages resource: ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``.

    Form-encoded ``To``, ``From`` or ``MessagingServiceSid``, ``Body``,
    optionally ``ValidityPeriod`` (whole seconds, 1 to 36 000); HTTP
    basic auth with the account SID (or an API key SID) and the auth token.
    Success is 201 with the message resource; errors are
    ``{"code", "message", "more_info", "status"}``.
    """

    name = "twilio"
    PATH = re.compile(r"^/2010-04-01/Accounts/(AC[0-9a-fA-F]{32})/Messages\.json$")

    def __init__(self, account_sid: str, auth_token: str, *, api_key: tuple[str, str] | None = None) -> None:
        self.account_sid = account_sid
        self.credentials = {(account_sid, auth_token)} | ({api_key} if api_key else set())
        super().__init__()

    @staticmethod
    def error(status: int, code: int, message: str) -> dict[str, Any]:
        return {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }

    def handle(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any, Received | None]:
        match = self.PATH.match(path)
        if match is None:
            return 404, self.error(404, 20404, "The requested resource was not found"), None
        if _basic_auth(headers) not in self.credentials or match.group(1) != self.account_sid:
            return 401, self.error(401, 20003, "Authenticate"), None
        form = _form(headers, raw)
        if form is None:
            return 400, self.error(400, 20001, "Content-Type must be application/x-www-form-urlencoded"), None
        if not form.get("To"):
            return 400, self.error(400, 21604, "A 'To' phone number is required."), None
        if not form.get("Body"):
            return 400, self.error(400, 21602, "Message body is required."), None
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return 400, self.error(400, 21603, "A 'From' phone number is required."), None
        if not re.fullmatch(r"\+[1-9]\d{6,14}", form["To"]):
            return 400, self.error(400, 21211, f"Invalid 'To' Phone Number: {form['To']}"), None
        validity = form.get("ValidityPeriod")
        if validity is not None and not (validity.isdigit() and 1 <= int(validity) <= 36_000):
            return 400, self.error(400, 21624, "Invalid validity period value"), None
        sid = "SM" + secrets.token_hex(16)
        resource = {
            "sid": sid,
            "account_sid": self.account_sid,
            "to": form["To"],
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "body": form["Body"],
            "status": "queued",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "error_code": None,
            "error_message": None,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
        sender = form.get("From") or form.get("MessagingServiceSid", "")
        return 201, resource, Received(form["To"], form["Body"], sender, form, headers)


class FakeVonage(FakeProviderServer):
    """Vonage's SMS API: ``POST /sms/json`` with ``api_key``, ``api_secret``, ``from``, ``to``, ``text``.

    Optionally ``ttl``, in milliseconds from 20 000 to 604 800 000.

    Always HTTP 200; the outcome is ``messages[0].status`` ("0" success,
    "2" missing parameters, "4" invalid credentials, ...) with ``error-text``.
    ``to`` is E.164 without the leading ``+``.
    """

    name = "vonage"

    def __init__(self, api_key: str, api_secret: str) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        super().__init__()

    @staticmethod
    def failed(status: str, text: str) -> dict[str, Any]:
        return {"message-count": "1", "messages": [{"status": status, "error-text": text}]}

    def handle(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any, Received | None]:
        if path != "/sms/json":
            return 404, {"error": "not found"}, None
        form = _form(headers, raw)
        if form is None:
            try:
                form = {k: str(v) for k, v in json.loads(raw or b"{}").items()}
            except ValueError:
                return 200, self.failed("3", "Invalid request body"), None
        missing = [name for name in ("api_key", "api_secret", "from", "to", "text") if not form.get(name)]
        if missing:
            return 200, self.failed("2", f"Missing {missing[0]}"), None
        if (form["api_key"], form["api_secret"]) != (self.api_key, self.api_secret):
            return 200, self.failed("4", "Bad Credentials"), None
        if not form["to"].isdigit():
            return 200, self.failed("3", "Invalid to address"), None
        ttl = form.get("ttl")
        if ttl is not None and not (ttl.isdigit() and 20_000 <= int(ttl) <= 604_800_000):
            return 200, self.failed("3", "Invalid ttl"), None
        # A long text goes in parts, each with its own entry: 160 characters fit in one
        # SMS (70 as unicode), 153 (67) in each part of a longer one.
        single, part = (70, 67) if form.get("type") == "unicode" else (160, 153)
        count = 1 if len(form["text"]) <= single else -(-len(form["text"]) // part)
        answer = {
            "message-count": str(count),
            "messages": [
                {
                    "to": form["to"],
                    "message-id": secrets.token_hex(8).upper(),
                    "status": "0",
                    "remaining-balance": "10.00000000",
                    "message-price": "0.03330000",
                    "network": "310004",
                }
                for _ in range(count)
            ],
        }
        return 200, answer, Received("+" + form["to"], form["text"], form["from"], form, headers)


class FakeWebhook(FakeProviderServer):
    """A webhook receiver: JSON ``{id, to, body, sender}`` at ``/hooks/sms``.

    With a signing secret it refuses (401) requests whose
    ``X-Twostep-Signature`` is not the HMAC-SHA256 of ``<timestamp>.<body>``.
    """

    name = "webhook"
    PATH = "/hooks/sms"

    def __init__(self, signing_secret: str = "", authorization: str = "") -> None:
        self.signing_secret = signing_secret
        self.authorization = authorization
        super().__init__()

    @property
    def hook_url(self) -> str:
        return self.url + self.PATH

    def handle(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any, Received | None]:
        if path.split("?", 1)[0] != self.PATH:  # a token in the query string is the receiver's business
            return 404, {"error": "not found"}, None
        if self.authorization and headers.get("authorization") != self.authorization:
            return 401, {"error": "bad authorization"}, None
        if self.signing_secret:
            timestamp = headers.get("x-twostep-timestamp", "")
            expected = (
                "sha256="
                + hmac.new(self.signing_secret.encode(), timestamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
            )
            if not hmac.compare_digest(headers.get("x-twostep-signature", ""), expected):
                return 401, {"error": "bad signature"}, None
        if not headers.get("content-type", "").startswith("application/json"):
            return 415, {"error": "JSON expected"}, None
        payload = json.loads(raw)
        if not payload.get("to") or not payload.get("body"):
            return 422, {"error": "to and body are required"}, None
        remote_id = "hook-" + secrets.token_hex(6)
        return (
            200,
            {"id": remote_id},
            Received(payload["to"], payload["body"], payload.get("sender", ""), payload, headers),
        )


#: Credentials the fakes and the tests share (shaped like the real ones).
TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "twilio-test-auth-token-0123456789"
VONAGE_KEY = "a1b2c3d4"
VONAGE_SECRET = "vonage-test-secret-42"
WEBHOOK_SECRET = "webhook-signing-secret-xyz"


@dataclass
class FakeSet:
    """Fakes started for one test (stopped at teardown)."""

    servers: list[FakeProviderServer] = field(default_factory=list)

    def twilio(self) -> FakeTwilio:
        return self._add(FakeTwilio(TWILIO_SID, TWILIO_TOKEN))

    def vonage(self) -> FakeVonage:
        return self._add(FakeVonage(VONAGE_KEY, VONAGE_SECRET))

    def webhook(self, signing_secret: str = WEBHOOK_SECRET) -> FakeWebhook:
        return self._add(FakeWebhook(signing_secret))

    def _add(self, server: Any) -> Any:
        self.servers.append(server)
        return server

    def stop(self) -> None:
        for server in self.servers:
            with contextlib.suppress(OSError):
                server.stop()


def provider_options(fake: FakeProviderServer, *, timeout: str = "5") -> tuple[str, dict[str, str], dict[str, str]]:
    """(provider name, non-secret options, secret options) that point a provider at ``fake``."""
    if isinstance(fake, FakeTwilio):
        return (
            "twilio",
            {"account_sid": TWILIO_SID, "base_url": fake.url, "timeout": timeout},
            {"auth_token": TWILIO_TOKEN},
        )
    if isinstance(fake, FakeVonage):
        return (
            "vonage",
            {"api_key": VONAGE_KEY, "base_url": fake.url, "timeout": timeout},
            {"api_secret": VONAGE_SECRET},
        )
    if isinstance(fake, FakeWebhook):
        secrets_ = {"signing_secret": fake.signing_secret} if fake.signing_secret else {}
        return "webhook", {"url": fake.hook_url, "timeout": timeout}, secrets_
    raise TypeError(fake)


class FakeAcme(FakeProviderServer):
    """The example third-party gateway of docs/sms.md: JSON to ``/v1/messages`` with a bearer token."""

    name = "acme"

    def __init__(self, token: str) -> None:
        self.token = token
        super().__init__()

    def handle(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any, Received | None]:
        if path != "/v1/messages":
            return 404, {"error": "not found"}, None
        if headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"error": "bad token"}, None
        payload = json.loads(raw)
        message_id = "acme-" + secrets.token_hex(4)
        return (
            202,
            {"id": message_id},
            Received(payload["recipient"], payload["text"], payload["originator"], payload, headers),
        )
