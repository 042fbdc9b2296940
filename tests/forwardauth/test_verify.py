"""/auth/request (nginx) and /auth/forward (Traefik, Caddy): who passes, who must sign in, who is refused."""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from tests.conftest import PASSWORD, sign_in
from tests.forwardauth.conftest import PUBLIC_URL
from tests.mfa.recovery_codes.helpers import enrol_totp
from twostep.accounts.models import Role, User
from twostep.config.loader import TwostepConfig
from twostep.core import clock
from twostep.factors import totp

pytestmark = pytest.mark.django_db

REQUEST = "/auth/request"  # nginx auth_request
FORWARD = "/auth/forward"  # Traefik ForwardAuth, Caddy forward_auth
NGINX_WIKI = {"HTTP_X_ORIGINAL_URL": "https://wiki.example.com/page?a=1&b=2"}
TRAEFIK_WIKI = {
    "HTTP_X_FORWARDED_PROTO": "https",
    "HTTP_X_FORWARDED_HOST": "wiki.example.com",
    "HTTP_X_FORWARDED_URI": "/page?a=1&b=2",
    "HTTP_X_FORWARDED_METHOD": "GET",
}
IDENTITY = ("Remote-User", "Remote-Name", "Remote-Email", "Remote-Groups")


def nginx(url: str) -> dict[str, str]:
    return {"HTTP_X_ORIGINAL_URL": url}


def next_of(location: str) -> str:
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{PUBLIC_URL}/login"
    return parse_qs(parts.query)["next"][0]


def test_anonymous_nginx_gets_401_with_the_sign_in_location(
    client: Client, forward_config: Callable[..., TwostepConfig]
) -> None:
    """nginx style: 401 whose Location is twostep's sign-in page with the original URL as next; no identity."""
    response = client.get(REQUEST, **NGINX_WIKI)
    assert response.status_code == 401
    assert next_of(response["Location"]) == "https://wiki.example.com/page?a=1&b=2"
    assert not any(name in response for name in IDENTITY)
    assert not response.cookies  # no session is created for the proxy's question


def test_anonymous_traefik_gets_302_to_sign_in(client: Client, forward_config: Callable[..., TwostepConfig]) -> None:
    """Traefik/Caddy style (X-Forwarded-*): a 302 the proxy hands to the browser, same next."""
    response = client.get(FORWARD, **TRAEFIK_WIKI)
    assert response.status_code == 302
    assert next_of(response["Location"]) == "https://wiki.example.com/page?a=1&b=2"
    assert not any(name in response for name in IDENTITY)


def test_signed_in_user_passes_with_identity_headers(
    client: Client, user: User, forward_config: Callable[..., TwostepConfig]
) -> None:
    """A signed-in user gets 200 with Remote-User/Name/Email (primary)/Groups (role), in both styles."""
    user.display_name = "Alice Liddell"
    user.save()
    sign_in(client, user.username)
    for endpoint, headers in ((REQUEST, NGINX_WIKI), (FORWARD, TRAEFIK_WIKI)):
        response = client.get(endpoint, **headers)
        assert response.status_code == 200
        assert response["Remote-User"] == "alice"
        assert response["Remote-Name"] == "Alice Liddell"
        assert response["Remote-Email"] == "alice@example.com"
        assert response["Remote-Groups"] == "user"
        assert "Location" not in response


def test_pending_second_step_is_not_signed_in(
    client: Client, user: User, two_factor_on: None, forward_config: Callable[..., TwostepConfig]
) -> None:
    """After the password but before the code the proxy must not let the request through; after the code it does (FB-02)."""
    key = enrol_totp(user)
    assert sign_in(client, user.username)["Location"] == "/login/verify"
    response = client.get(REQUEST, **NGINX_WIKI)
    assert response.status_code == 401 and "Remote-User" not in response
    assert client.post("/login/verify", {"code": totp.totp(key, clock.timestamp())}).status_code == 302
    assert client.get(REQUEST, **NGINX_WIKI)["Remote-User"] == "alice"


def test_role_rule(client: Client, user: User, admin: User, forward_config: Callable[..., TwostepConfig]) -> None:
    """A path for admins: a user gets 403, an admin 200 with Remote-Groups admin, anonymous must sign in."""
    admin_area = nginx("https://grafana.example.com/admin/users")
    assert Client().get(REQUEST, **admin_area).status_code == 401
    sign_in(client, user.username)
    assert client.get(REQUEST, **admin_area).status_code == 403
    assert client.get(REQUEST, **nginx("https://grafana.example.com/dashboards")).status_code == 200
    admin_client = Client()
    sign_in(admin_client, admin.username)
    response = admin_client.get(REQUEST, **admin_area)
    assert response.status_code == 200 and response["Remote-Groups"] == Role.ADMIN


def test_deny_rule_and_unknown_hosts(client: Client, admin: User, forward_config: Callable[..., TwostepConfig]) -> None:
    """A deny rule, and a host no rule names, give 403 to everyone, without a detour through sign-in."""
    for url in ("https://closed.example.com/", "https://unknown.example.com/", "https://wiki.example.com.evil.com/"):
        assert Client().get(REQUEST, **nginx(url)).status_code == 403
    sign_in(client, admin.username)
    for url in ("https://closed.example.com/", "https://unknown.example.com/"):
        assert client.get(REQUEST, **nginx(url)).status_code == 403


def test_spelled_out_path_cannot_dodge_the_role_rule(
    client: Client, user: User, forward_config: Callable[..., TwostepConfig]
) -> None:
    """/dashboards/..%2Fadmin and friends reach the admin rule: 403 for a plain user."""
    sign_in(client, user.username)
    for path in ("/dashboards/..%2Fadmin", "//admin", "/ADMIN/", "/%61dmin", "/admin;x=1"):
        assert client.get(REQUEST, **nginx(f"https://grafana.example.com{path}")).status_code == 403, path


def test_headers_from_an_untrusted_peer_are_ignored(
    client: Client, user: User, forward_config: Callable[..., TwostepConfig]
) -> None:
    """When the caller is not a trusted proxy its X-Original-URL/X-Forwarded-* are not believed: denied."""
    sign_in(client, user.username)
    forward_config(trusted_proxies=[])
    assert client.get(REQUEST, **NGINX_WIKI).status_code == 403
    assert client.get(FORWARD, **TRAEFIK_WIKI).status_code == 403
    # Claiming to come through a trusted proxy changes nothing: only the peer address counts.
    forward_config(trusted_proxies=["10.0.0.1"])
    spoofed = {**NGINX_WIKI, "HTTP_X_FORWARDED_FOR": "10.0.0.1", "HTTP_FORWARDED": "for=10.0.0.1"}
    assert client.get(REQUEST, **spoofed).status_code == 403
    assert client.get(REQUEST, **NGINX_WIKI, REMOTE_ADDR="10.0.0.1").status_code == 200


@pytest.mark.parametrize("peer", ["", "unix:/run/twostep.sock", "localhost", "127.0.0.1.evil"])
def test_a_peer_address_that_is_not_an_ip_is_never_trusted(
    client: Client, user: User, forward_config: Callable[..., TwostepConfig], peer: str
) -> None:
    """A peer twostep cannot place (empty, a socket path, a name) is no trusted proxy, whatever the list holds."""
    sign_in(client, user.username)
    assert client.get(REQUEST, **NGINX_WIKI).status_code == 200
    assert client.get(REQUEST, **NGINX_WIKI, REMOTE_ADDR=peer).status_code == 403
    assert client.get(FORWARD, **TRAEFIK_WIKI, REMOTE_ADDR=peer).status_code == 403


def test_trusted_proxy_without_target_headers_is_denied(
    client: Client, user: User, forward_config: Callable[..., TwostepConfig]
) -> None:
    """A trusted proxy that sends neither header set (a misconfiguration) gets 403, never a pass."""
    sign_in(client, user.username)
    assert client.get(REQUEST).status_code == 403
    assert client.get(FORWARD).status_code == 403


def test_any_method_without_csrf_token(user: User, forward_config: Callable[..., TwostepConfig]) -> None:
    """nginx asks with the original method: POST, PUT, DELETE get the same answer, no CSRF failure."""
    client = Client(enforce_csrf_checks=True)
    token = client.get("/login").cookies["twostep_csrf"].value
    # The browser's Origin, as over https (the public address is https): Django checks it there.
    signed = client.post(
        "/login",
        {"username": user.username, "password": PASSWORD, "csrfmiddlewaretoken": token},
        secure=True,
        HTTP_ORIGIN="https://testserver",
    )
    assert signed.status_code == 302
    for method in ("post", "put", "delete", "head", "options"):
        answer = getattr(client, method)(REQUEST, **NGINX_WIKI)
        assert answer.status_code == 200, method
        assert answer["Remote-User"] == "alice"


def test_user_who_must_change_password_is_sent_there(
    client: Client, make_user: Callable[..., User], forward_config: Callable[..., TwostepConfig]
) -> None:
    """A user with an admin-set password is sent to choose their own before reaching any app."""
    make_user("temp", must_change_password=True)
    sign_in(client, "temp")
    response = client.get(REQUEST, **NGINX_WIKI)
    assert response.status_code == 401
    assert response["Location"] == f"{PUBLIC_URL}/account/password"


def test_disabled_user_session_does_not_pass(
    client: Client, user: User, forward_config: Callable[..., TwostepConfig]
) -> None:
    """Even if a disabled user's session survived, it no longer passes."""
    sign_in(client, user.username)
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert client.get(REQUEST, **NGINX_WIKI).status_code == 401


def test_identity_headers_cannot_be_split(
    client: Client, make_user: Callable[..., User], forward_config: Callable[..., TwostepConfig]
) -> None:
    """A display name with line breaks cannot add headers; non-ASCII names travel as UTF-8.

    Names are checked when they are set (no control characters), so the name
    is written straight to the database, as one stored before that check was.
    """
    zoe = make_user("zoe")
    User.objects.filter(pk=zoe.pk).update(display_name="Zoë Łukasz\r\nRemote-Groups: admin")
    sign_in(client, "zoe")
    response = client.get(REQUEST, **NGINX_WIKI)
    assert response.status_code == 200
    raw = response["Remote-Name"]
    assert "\r" not in raw and "\n" not in raw
    assert raw.encode("latin-1").decode("utf-8") == "Zoë ŁukaszRemote-Groups: admin"
    assert response["Remote-Groups"] == "user"
    assert response["Remote-Email"] == ""  # always sent, empty without an address


@pytest.mark.parametrize(
    ("server_software", "expected"),
    [
        # PEP 3333: UTF-8 bytes as latin-1 code points, which gunicorn writes byte for byte.
        ("gunicorn/27.0.1", "Änne Łukasz 日本".encode().decode("latin-1")),
        ("WSGIServer/0.2 CPython/3.11", "Änne Łukasz 日本".encode().decode("latin-1")),
        # granian writes a value's text as UTF-8 itself: it gets the text.
        ("Granian", "Änne Łukasz 日本"),
        ("granian/2.8.9", "Änne Łukasz 日本"),
    ],
)
def test_identity_headers_reach_each_server_in_the_form_it_writes_as_utf8(
    client: Client,
    make_user: Callable[..., User],
    forward_config: Callable[..., TwostepConfig],
    server_software: str,
    expected: str,
) -> None:
    """What Django hands the WSGI server (``response.items()``) is the value that server turns into UTF-8 bytes."""
    make_user("zoe", display_name="Änne Łukasz 日本")
    sign_in(client, "zoe")
    response = client.get(REQUEST, **NGINX_WIKI, SERVER_SOFTWARE=server_software)
    assert response.status_code == 200
    handed_over = {name: value for name, value in response.items() if name.startswith("Remote-")}
    assert handed_over == {
        "Remote-User": "zoe",
        "Remote-Name": expected,
        "Remote-Email": "",
        "Remote-Groups": "user",
    }


def test_each_endpoint_ignores_the_other_conventions_headers(
    client: Client, user: User, forward_config: Callable[..., TwostepConfig]
) -> None:
    """A client-sent X-Original-URL cannot steer /auth/forward, nor X-Forwarded-* steer /auth/request.

    Traefik and Caddy pass client headers through and only overwrite X-Forwarded-*; nginx only sets
    X-Original-URL.  Reading the other set would let a user name an allowed page while asking for /admin.
    """
    sign_in(client, user.username)
    admin_via_traefik = {
        "HTTP_X_FORWARDED_PROTO": "https",
        "HTTP_X_FORWARDED_HOST": "grafana.example.com",
        "HTTP_X_FORWARDED_URI": "/admin",
    }
    assert client.get(FORWARD, **admin_via_traefik, **NGINX_WIKI).status_code == 403
    admin_via_nginx = nginx("https://grafana.example.com/admin")
    assert client.get(REQUEST, **admin_via_nginx, **TRAEFIK_WIKI).status_code == 403
    # Only the endpoint's own headers count: without them there is nothing to allow.
    assert client.get(FORWARD, **NGINX_WIKI).status_code == 403
    assert client.get(REQUEST, **TRAEFIK_WIKI).status_code == 403


def test_backslash_in_the_query_passes(
    client: Client, user: User, forward_config: Callable[..., TwostepConfig]
) -> None:
    """?q=a\\b is an ordinary query: a signed-in user passes, and an anonymous one comes back to it after sign-in."""
    url = "https://wiki.example.com/x?q=a\\b"
    via_traefik = {"HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_HOST": "wiki.example.com"}
    anonymous = Client().get(REQUEST, **nginx(url))
    assert anonymous.status_code == 401
    next_url = next_of(anonymous["Location"])
    assert next_url == "https://wiki.example.com/x?q=a%5Cb"
    sign_in(client, user.username)
    assert client.get(REQUEST, **nginx(url)).status_code == 200
    assert client.get(FORWARD, **via_traefik, HTTP_X_FORWARDED_URI="/x?q=a\\b").status_code == 200
    # The escaped URL is a destination the sign-in form returns to.
    response = client.post("/login", {"username": user.username, "password": PASSWORD, "next": next_url})
    assert response["Location"] == next_url


def test_backslash_in_the_path_is_refused_and_logged_as_such(
    client: Client, user: User, forward_config: Callable[..., TwostepConfig], caplog: pytest.LogCaptureFixture
) -> None:
    """A backslash in the path gets 403; the log names the host and the backslash, and does not blame the proxy."""
    sign_in(client, user.username)
    with caplog.at_level(logging.INFO, logger="twostep.forwardauth"):
        assert client.get(REQUEST, **nginx("https://wiki.example.com/a\\b?q=1")).status_code == 403
        assert (
            client.get(
                FORWARD,
                HTTP_X_FORWARDED_PROTO="https",
                HTTP_X_FORWARDED_HOST="wiki.example.com",
                HTTP_X_FORWARDED_URI="/a\\b",
            ).status_code
            == 403
        )
    messages = [record.getMessage() for record in caplog.records if record.name.startswith("twostep.forwardauth")]
    refusals = [message for message in messages if "refused a request for wiki.example.com" in message]
    assert len(refusals) == 2 and all("backslash" in message for message in refusals)
    assert not any("no usable" in message for message in messages)


@pytest.mark.parametrize("path", ["/dashboards#/../admin/users", "/dashboards/#/../../admin/"])
def test_a_fragment_in_the_original_url_cannot_dodge_the_role_rule(
    client: Client, user: User, forward_config: Callable[..., TwostepConfig], path: str
) -> None:
    """nginx passes a request target such as ``/dashboards#/../admin/users`` on unchanged, both to the
    application and in ``X-Original-URL`` ($request_uri).  twostep's urlsplit drops ``#/../admin/users``
    as a fragment and judges ``/dashboards``, but applications that clean the path (Go's net/http behind
    Caddy's file_server or path matchers, measured) serve ``/admin/users``.  The Traefik endpoint keeps
    ``#`` in the path and refuses; the nginx one must too (audit)."""
    sign_in(client, user.username)
    forwarded = {
        "HTTP_X_FORWARDED_PROTO": "https",
        "HTTP_X_FORWARDED_HOST": "grafana.example.com",
        "HTTP_X_FORWARDED_URI": path,
    }
    assert client.get(FORWARD, **forwarded).status_code == 403
    assert client.get(REQUEST, **nginx(f"https://grafana.example.com{path}")).status_code == 403, path
