"""sms.http.post against raw servers on 127.0.0.1: one deadline for the whole exchange, over TLS too.

The fake providers (fakes.py) cover plain HTTP through every built-in
provider (contract.py).  Here a bare socket server misbehaves in the ways a
provider can, and the webhook provider is pointed at it: a TLS handshake
that never ends, an answer trickled over TLS, a connection closed after the
request.  Each time the send ends within its timeout and says whether the
message may have gone out.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests import resolver
from tests.mail.smtp_server import Certificates, make_certificates
from tests.sms.contract import MARGIN, MESSAGE
from twostep.sms import http as sms_http
from twostep.sms.base import SMSDeliveryError
from twostep.sms.webhook import WebhookProvider

ANSWER = b'{"id":"hook-1"}'


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("sms-tls"))


class RawServer:
    """Accepts connections on 127.0.0.1 and hands each to ``serve`` in a thread (TLS first with ``tls``)."""

    def __init__(self, serve: Callable[[socket.socket], None], tls: ssl.SSLContext | None = None) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.requests: list[bytes] = []
        self._serve, self._tls = serve, tls
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, connection: socket.socket) -> None:
        with contextlib.suppress(OSError), connection:
            if self._tls is not None:
                connection = self._tls.wrap_socket(connection, server_side=True)
            self._serve(connection)

    def read_request(self, connection: socket.socket) -> None:
        """Read one whole request (headers and Content-Length body) and keep it."""
        data = b""
        while b"\r\n\r\n" not in data:
            data += connection.recv(4096)
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")),
            0,
        )
        while len(body) < length:
            body += connection.recv(4096)
        self.requests.append(head + b"\r\n\r\n" + body)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def servers() -> Iterator[list[RawServer]]:
    started: list[RawServer] = []
    yield started
    for server in started:
        server.close()


def answering_server(servers: list[RawServer]) -> RawServer:
    """A plain-HTTP server that reads each request and answers it at once, as a webhook that took the message."""

    def serve(connection: socket.socket) -> None:
        server.read_request(connection)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n" + ANSWER)

    server = RawServer(serve)
    servers.append(server)
    return server


def client_for(certificates: Certificates) -> httpx.Client:
    return httpx.Client(verify=ssl.create_default_context(cafile=str(certificates.ca_file)), follow_redirects=False)


def send_through(url: str, client: httpx.Client | None = None) -> tuple[SMSDeliveryError | None, float]:
    provider = WebhookProvider.from_options({"url": url, "timeout": "1"}, http=client)
    started = time.monotonic()
    try:
        provider.send(MESSAGE)
    except SMSDeliveryError as exc:
        return exc, time.monotonic() - started
    finally:
        provider.close()
        if client is not None:
            client.close()
    return None, time.monotonic() - started


def test_answer_trickled_over_tls_ends_at_the_timeout(certificates: Certificates, servers: list[RawServer]) -> None:
    """After the TLS handshake, an answer sent a byte at a time is cut off at the timeout: possibly sent."""

    def serve(connection: socket.socket) -> None:
        server.read_request(connection)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n")
        for byte in ANSWER:
            connection.sendall(bytes([byte]))
            time.sleep(0.2)

    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(certificates.cert_file, certificates.key_file)
    server = RawServer(serve, tls)
    servers.append(server)
    error, elapsed = send_through(f"https://127.0.0.1:{server.port}/hook", client_for(certificates))
    assert error is not None and elapsed < 1.0 + MARGIN
    assert error.possibly_sent is True and "no answer within 1 second after the request was sent" in str(error)
    assert len(server.requests) == 1


def test_tls_handshake_that_never_ends_sent_nothing(certificates: Certificates, servers: list[RawServer]) -> None:
    """A server that accepts the connection but never completes TLS: given up at the timeout, certainly not sent."""
    server = RawServer(lambda connection: time.sleep(5))
    servers.append(server)
    error, elapsed = send_through(f"https://127.0.0.1:{server.port}/hook", client_for(certificates))
    assert error is not None and elapsed < 1.0 + MARGIN
    assert error.possibly_sent is False and "cannot connect" in str(error)
    assert server.requests == []


def test_connection_closed_after_the_request(servers: list[RawServer]) -> None:
    """The request went out, then the connection closed without an answer: possibly sent."""

    def serve(connection: socket.socket) -> None:
        server.read_request(connection)

    server = RawServer(serve)
    servers.append(server)
    error, _ = send_through(f"http://127.0.0.1:{server.port}/hook")
    assert error is not None and error.possibly_sent is True
    assert "the connection broke after the request was sent" in str(error)


def test_each_message_asks_for_its_own_connection(servers: list[RawServer]) -> None:
    """Requests say Connection: close: a kept-alive connection would escape the deadline."""
    server = answering_server(servers)
    error, _ = send_through(f"http://127.0.0.1:{server.port}/hook")
    assert error is None
    assert b"\r\nconnection: close\r\n" in server.requests[0].lower()


@pytest.mark.parametrize(
    ("error", "sent"),
    [
        (httpx.ConnectError, False),
        (httpx.ConnectTimeout, False),
        (httpx.PoolTimeout, False),
        (httpx.ReadTimeout, True),
        (httpx.WriteTimeout, True),
        (httpx.ReadError, True),
        (httpx.RemoteProtocolError, True),
    ],
)
def test_possibly_sent_by_httpx_error(error: type[httpx.TransportError], sent: bool) -> None:
    """Errors before the request can have left say "not sent"; errors after it, "possibly sent"."""
    assert sms_http.possibly_sent(error("x")) is sent
    assert sms_http.possibly_sent(ValueError("not httpx")) is False
    assert sms_http.possibly_sent(None) is False


def test_a_resolver_that_does_not_answer_is_held_to_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host name lookup takes no socket timeout: one that hangs (a dead DNS server) ends at the request's
    timeout all the same, certainly not sent."""
    resolver.silence(monkeypatch, "sms.silent.test")
    error, elapsed = send_through("https://sms.silent.test/hook")
    assert error is not None and elapsed < 1.0 + MARGIN
    assert error.possibly_sent is False


def test_a_host_name_is_looked_up_and_each_address_tried(servers: list[RawServer]) -> None:
    """By name ("localhost", which may list ::1 first, where nothing listens here): delivered."""
    server = answering_server(servers)
    error, _ = send_through(f"http://localhost:{server.port}/hook")
    assert error is None
    assert len(server.requests) == 1
