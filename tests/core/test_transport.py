"""HTTP-level behaviour: bad Host headers, bodies left unread on keep-alive connections."""

from __future__ import annotations

import io
import socket
from collections.abc import Callable
from typing import Any

import pytest
from django.core.handlers.wsgi import LimitedStream
from django.http import HttpResponse
from django.test import Client, RequestFactory

from twostep.core.middleware import DrainRequestBodyMiddleware

pytestmark = pytest.mark.django_db


def test_unknown_host_gets_json_under_api_and_html_elsewhere() -> None:
    """A request for a host twostep does not serve is a 400, in the API's error shape under /api/."""
    client = Client(HTTP_HOST="evil.example")
    api = client.get("/api/v1/me")
    assert api.status_code == 400 and api.json()["error"]["code"] == "invalid_request"
    page = client.get("/login")
    assert page.status_code == 400 and b"Bad request" in page.content


@pytest.mark.live
@pytest.mark.parametrize(
    ("path", "size"),
    [("/account/security/totp/remove", 5000), ("/api/v1/auth/login", 200_000), ("/login", 200_000)],
)
def test_unread_body_does_not_break_the_next_keepalive_request(
    live_server_factory: Callable[..., Any], path: str, size: int
) -> None:
    """A POST answered without reading its body leaves the connection usable for the next request."""
    server = live_server_factory()
    body = b"x" * size
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n".encode()
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
        + b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.count(b"HTTP/1.1 ") == 2, received[:500]
    assert b'{"status": "ok"}' in received


class CountingBody(io.BytesIO):
    """A request body that counts the bytes read from it."""

    taken = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.taken += len(data)
        return data


@pytest.mark.parametrize(("size", "drained"), [(200_000, True), (DrainRequestBodyMiddleware.LIMIT + 1, False)])
def test_unread_bodies_are_drained_up_to_a_limit(size: int, drained: bool) -> None:
    """A body a view left unread is read to its end, unless it is larger than any form: then reading it
    would hold a worker for as long as the sender cares to send."""
    body = CountingBody(b"x" * size)
    request = RequestFactory().post("/login", content_type="text/plain")
    request.META.update({"CONTENT_LENGTH": str(size), "wsgi.input": body})
    request._stream = LimitedStream(body, size)  # as WSGIRequest sets it up
    DrainRequestBodyMiddleware(lambda _: HttpResponse())(request)
    assert body.taken == (size if drained else 0)
