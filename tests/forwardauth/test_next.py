"""/login?next=...: back to a protected application after sign-in, never anywhere else."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from tests.conftest import PASSWORD
from tests.mfa.recovery_codes.helpers import enrol_totp
from twostep.accounts.models import User
from twostep.config.loader import TwostepConfig
from twostep.core import clock
from twostep.factors import totp

pytestmark = pytest.mark.django_db

ACCOUNT = "/account"

REFUSED = [
    "//evil.com",
    "///evil.com",
    "//evil.com/https://wiki.example.com/",
    "https://evil.com",
    "https://evil.com/wiki.example.com",
    "https://wiki.example.com.evil.com/",
    "https://evilwiki.example.com/",
    "https://wiki.example.com@evil.com/",
    "https://evil.com\\@wiki.example.com/",
    "https://evil.com\\wiki.example.com/",
    "https:/\\evil.com",
    "https://user:pw@wiki.example.com/",
    "javascript:alert(1)",
    "JaVaScRiPt://wiki.example.com/%0aalert(1)",
    "data:text/html,<script>alert(1)</script>",
    "ftp://wiki.example.com/",
    "https://wiki.example.com:99999/",
    "https://wiki.example.com/\r\nSet-Cookie:x=1",
    " https://wiki.example.com/",
    "https://closed.example.com/",
    "https://unknown.example.com/",
]


def sign_in_with_next(client: Client, username: str, next_url: str, *, secure: bool = False) -> str:
    response = client.post("/login", {"username": username, "password": PASSWORD, "next": next_url}, secure=secure)
    assert response.status_code == 302, response.content
    return str(response["Location"])


@pytest.mark.parametrize(
    "next_url",
    [
        "https://wiki.example.com/",
        "https://wiki.example.com/page?a=1&b=%2F",
        "https://grafana.example.com:8443/admin",
    ],
)
def test_protected_application_is_a_valid_next(
    client: Client, user: User, forward_config: Callable[..., TwostepConfig], next_url: str
) -> None:
    """A URL on a host that a forward-auth rule protects is where sign-in ends."""
    assert sign_in_with_next(client, user.username, next_url) == next_url


def test_an_https_public_address_means_https_even_without_trusted_proxies(
    client: Client, user: User, forward_config: Callable[..., TwostepConfig]
) -> None:
    """Behind a TLS proxy left out of trusted_proxies (no believed X-Forwarded-Proto), a request to an
    https service is https: an http:// next is refused as a downgrade, and Django sees a secure request."""
    forward_config(trusted_proxies=[], public_url="https://testserver")
    response = client.post(
        "/login", {"username": user.username, "password": PASSWORD, "next": "http://wiki.example.com/"}
    )
    assert response["Location"] == ACCOUNT
    assert response.wsgi_request.is_secure()
    # Another name (an SSH tunnel to the port) is left as it came.
    assert not Client().get("/login", HTTP_HOST="127.0.0.1:8000").wsgi_request.is_secure()
    # The same name written otherwise is the same: a port 443 said or not, a trailing dot, capitals.
    forward_config(trusted_proxies=[], public_url="https://testserver:443")
    for host in ("testserver", "TESTSERVER.", "testserver:443"):
        assert Client().get("/login", HTTP_HOST=host).wsgi_request.is_secure(), host
    # A proxy that is trusted and says plain http is believed.
    forward_config(trusted_proxies=["127.0.0.1"], public_url="https://testserver")
    told = Client().get("/login", HTTP_X_FORWARDED_PROTO="http")
    assert not told.wsgi_request.is_secure()


def test_plain_http_next_is_fine_when_twostep_is_plain_http_too(
    client: Client, user: User, forward_config: Callable[..., TwostepConfig]
) -> None:
    """Served at an http:// address, twostep may send the browser on to a protected app's http:// URL."""
    forward_config(public_url="http://login.example.com")
    assert sign_in_with_next(client, user.username, "http://wiki.example.com/x") == "http://wiki.example.com/x"


@pytest.mark.parametrize("next_url", REFUSED)
def test_open_redirects_are_refused(
    client: Client, user: User, forward_config: Callable[..., TwostepConfig], next_url: str
) -> None:
    """Other hosts, look-alikes, scheme-relative URLs, javascript:, user-info and backslash tricks land on /account."""
    assert sign_in_with_next(client, user.username, next_url) == ACCOUNT


def test_no_rules_means_no_other_hosts(
    client: Client, user: User, forward_config: Callable[..., TwostepConfig]
) -> None:
    """Without forward-auth rules only twostep's own pages are valid destinations."""
    forward_config(rules=[])
    assert sign_in_with_next(client, user.username, "https://wiki.example.com/") == ACCOUNT
    assert (
        Client().post("/login", {"username": user.username, "password": PASSWORD, "next": "/account/security"})[
            "Location"
        ]
        == "/account/security"
    )


def test_https_twostep_refuses_plain_http_destinations(
    client: Client, user: User, forward_config: Callable[..., TwostepConfig]
) -> None:
    """When twostep is served over https, a protected app's http:// URL is refused (no downgrade)."""
    assert sign_in_with_next(client, user.username, "http://wiki.example.com/", secure=True) == ACCOUNT
    other = Client()
    assert (
        sign_in_with_next(other, user.username, "https://wiki.example.com/x", secure=True)
        == "https://wiki.example.com/x"
    )


def test_next_survives_the_second_step(
    client: Client, user: User, two_factor_on: None, forward_config: Callable[..., TwostepConfig]
) -> None:
    """With an authenticator app, the browser returns to the app after the code, not before."""
    key = enrol_totp(user)
    assert sign_in_with_next(client, user.username, "https://wiki.example.com/x") == "/login/verify"
    response = client.post("/login/verify", {"code": totp.totp(key, clock.timestamp())})
    assert response["Location"] == "https://wiki.example.com/x"


def test_signed_in_visit_to_login_goes_straight_back(
    client: Client, user: User, forward_config: Callable[..., TwostepConfig]
) -> None:
    """An already signed-in browser sent to /login?next=... returns at once, still only to protected hosts."""
    sign_in_with_next(client, user.username, "")
    assert client.get("/login", {"next": "https://wiki.example.com/x"})["Location"] == "https://wiki.example.com/x"
    for bad in ("https://evil.com/", "//evil.com", "https://wiki.example.com.evil.com/"):
        assert client.get("/login", {"next": bad})["Location"] == ACCOUNT
