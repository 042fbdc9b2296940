"""The client IP: proxy headers believed only from trusted proxies (BF-08)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, override_settings

from twostep.core.client import client_ip, parse_networks
from twostep.core.middleware import ClientInfoMiddleware

PROXY = parse_networks(["10.0.0.0/8"])


def test_direct_client_ignores_spoofed_headers() -> None:
    """Without trusted proxies, X-Forwarded-For and Forwarded change nothing."""
    assert client_ip("203.0.113.9", "for=1.2.3.4", "1.2.3.4", []) == "203.0.113.9"
    assert client_ip("203.0.113.9", "", "1.2.3.4", PROXY) == "203.0.113.9"


def test_trusted_proxy_chain_walked_from_the_right() -> None:
    """Behind a trusted proxy, the right-most untrusted hop is the client, not a spoofed left one."""
    assert client_ip("10.0.0.2", "", "6.6.6.6, 198.51.100.7", PROXY) == "198.51.100.7"
    assert client_ip("10.0.0.2", "", "198.51.100.7, 10.0.0.5", PROXY) == "198.51.100.7"


def test_forwarded_header() -> None:
    """RFC 7239 Forwarded with quoted IPv6 and ports."""
    assert client_ip("10.0.0.2", 'for="[2001:db8::1]:4711"', "", PROXY) == "2001:db8::1"
    assert client_ip("10.0.0.2", "for=192.0.2.60:8080;proto=https", "", PROXY) == "192.0.2.60"


def test_garbage_header_stops_at_the_proxy() -> None:
    """An unparsable hop is not believed; the proxy itself is reported."""
    assert client_ip("10.0.0.2", "", "not-an-ip", PROXY) == "10.0.0.2"


@override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))
def test_https_is_believed_only_from_a_trusted_proxy() -> None:
    """X-Forwarded-Proto from a client that reaches the port directly is dropped; from the proxy it counts."""
    seen: list[bool] = []

    def view(request: HttpRequest) -> HttpResponse:
        seen.append(request.is_secure())
        return HttpResponse()

    middleware = ClientInfoMiddleware(view)
    middleware.trusted = PROXY  # as with server.trusted_proxies = ["10.0.0.0/8"]
    factory = RequestFactory()
    middleware(factory.get("/", HTTP_X_FORWARDED_PROTO="https", REMOTE_ADDR="10.1.2.3"))
    middleware(factory.get("/", HTTP_X_FORWARDED_PROTO="https", REMOTE_ADDR="198.51.100.7"))
    assert seen == [True, False]
