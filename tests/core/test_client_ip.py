"""The client IP: proxy headers believed only from trusted proxies (BF-08)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, override_settings

from twostep.config.loader import ConfigError, load_config
from twostep.core.client import client_ip, parse_networks, proxy_chain
from twostep.core.middleware import ClientInfoMiddleware

PROXY = parse_networks(["10.0.0.0/8"])


def xff(value: str) -> list[str]:
    return proxy_chain("x-forwarded-for", value)


def test_direct_client_ignores_spoofed_headers() -> None:
    """Without trusted proxies, X-Forwarded-For changes nothing; nor from a peer that is not a proxy."""
    assert client_ip("203.0.113.9", xff("1.2.3.4"), []) == "203.0.113.9"
    assert client_ip("203.0.113.9", xff("1.2.3.4"), PROXY) == "203.0.113.9"


def test_trusted_proxy_chain_walked_from_the_right() -> None:
    """Behind a trusted proxy, the right-most untrusted hop is the client, not a spoofed left one."""
    assert client_ip("10.0.0.2", xff("6.6.6.6, 198.51.100.7"), PROXY) == "198.51.100.7"
    assert client_ip("10.0.0.2", xff("198.51.100.7, 10.0.0.5"), PROXY) == "198.51.100.7"


def test_forwarded_header() -> None:
    """RFC 7239 Forwarded with quoted IPv6 and ports."""
    assert client_ip("10.0.0.2", proxy_chain("forwarded", 'for="[2001:db8::1]:4711"'), PROXY) == "2001:db8::1"
    assert client_ip("10.0.0.2", proxy_chain("forwarded", "for=192.0.2.60:8080;proto=https"), PROXY) == "192.0.2.60"


def test_ipv4_mapped_addresses_are_ipv4() -> None:
    """A dual-stack socket shows IPv4 peers as ``::ffff:a.b.c.d``: they are named, and trusted, as IPv4."""
    assert client_ip("::ffff:203.0.113.9", [], []) == "203.0.113.9"
    assert client_ip("::ffff:10.0.0.2", xff("198.51.100.7"), PROXY) == "198.51.100.7"
    assert client_ip("10.0.0.2", xff("::ffff:198.51.100.7"), PROXY) == "198.51.100.7"


def test_garbage_header_stops_at_the_proxy() -> None:
    """An unparsable hop is not believed; the proxy itself is reported."""
    assert client_ip("10.0.0.2", xff("not-an-ip"), PROXY) == "10.0.0.2"


def test_only_the_configured_header_is_read() -> None:
    """A proxy that writes X-Forwarded-For passes a client's own Forwarded header on untouched.

    Reading that one (as twostep did whenever it was present) let any client pick the address
    the per-IP limits and the auth log see.
    """
    factory = RequestFactory()
    seen: list[str] = []

    def view(request: HttpRequest) -> HttpResponse:
        seen.append(request.client_ip)  # type: ignore[attr-defined]
        return HttpResponse()

    spoofed = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "198.51.100.7", "HTTP_FORWARDED": "for=6.6.6.6"}
    for header in ("x-forwarded-for", "forwarded"):
        config = load_config(settings.DATA_DIR, {"TWOSTEP_SERVER__CLIENT_IP_HEADER": header})
        with override_settings(CONFIG=config):
            middleware = ClientInfoMiddleware(view)
        middleware.trusted = PROXY
        middleware(factory.get("/", **spoofed))
    assert seen == ["198.51.100.7", "6.6.6.6"]


def test_unknown_proxy_header_is_refused() -> None:
    """A typo in server.client_ip_header is a configuration error, not a silent fallback."""
    with pytest.raises(ConfigError, match="client_ip_header"):
        load_config(settings.DATA_DIR, {"TWOSTEP_SERVER__CLIENT_IP_HEADER": "x-real-ip"})


def test_a_proxy_that_is_not_trusted_is_told_of_once(caplog: pytest.LogCaptureFixture) -> None:
    """Requests forwarded by a proxy on this machine while server.trusted_proxies is empty: one warning saying
    what to set, since every client then shares the proxy's per-address limits. None for a peer elsewhere,
    which anyone could be."""
    factory = RequestFactory()
    middleware = ClientInfoMiddleware(lambda request: HttpResponse())
    assert middleware.trusted == []
    # A public address (documentation ranges count as private for Python): never contacted.
    middleware(factory.get("/", REMOTE_ADDR="8.8.8.8", HTTP_X_FORWARDED_FOR="198.51.100.7"))
    assert not [r for r in caplog.records if r.name == "twostep.proxy"]
    for _ in range(3):
        middleware(factory.get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7"))
    told = [r.getMessage() for r in caplog.records if r.name == "twostep.proxy"]
    assert len(told) == 1 and "server.trusted_proxies is empty" in told[0] and "127.0.0.1" in told[0]
