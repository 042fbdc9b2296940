"""End to end through real proxies: Chromium → nginx (auth_request) → twostep on a sub-domain → the app.

Caddy (forward_auth, the 302 style that Traefik uses too) guards the same app on another port.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.authenticator_app import AuthenticatorApp
from tests.forwardauth.stack import (
    APP_HOST,
    DOMAIN,
    LOGIN_HOST,
    OTHER_HOST,
    caddy,
    echo_app,
    free_port,
    nginx,
)
from tests.live import LiveServer, create_server
from twostep.factors import totp

pytestmark = [pytest.mark.browser, pytest.mark.live]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "a long passphrase for the proxy test"
RULES = [
    {"host": APP_HOST, "path_prefix": "/admin", "policy": ["admin"]},
    {"host": APP_HOST, "policy": "signed_in"},
    # Another application, open to every signed-in user: a name a client might put in Host.
    {"host": OTHER_HOST, "policy": "signed_in"},
]


@dataclass
class Stack:
    server: LiveServer
    port: int
    caddy_port: int

    @property
    def login(self) -> str:
        return f"http://{LOGIN_HOST}:{self.port}"

    @property
    def app(self) -> str:
        return f"http://{APP_HOST}:{self.port}"

    @property
    def caddy_app(self) -> str:
        return f"http://{APP_HOST}:{self.caddy_port}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """twostep (2FA on; alice and dave users, carol an admin) and the echo app behind nginx, and behind Caddy."""
    port = free_port()
    env = {
        "TWOSTEP_SERVER__PUBLIC_URL": f"http://{LOGIN_HOST}:{port}",
        "TWOSTEP_SERVER__TRUSTED_PROXIES": '["127.0.0.1"]',
        "TWOSTEP_FORWARD_AUTH__SESSION_COOKIE_DOMAIN": DOMAIN,
        "TWOSTEP_FORWARD_AUTH__RULES": json.dumps(RULES),
    }
    server = create_server(tmp_path_factory.mktemp("twostep"), env)
    server.cli("settings", "set", "two_factor.enabled", "true")
    server.cli(
        "users",
        "add",
        "alice",
        "--email",
        "alice@example.test",
        "--display-name",
        "Alice Liddell",
        "--password-stdin",
        input=PASSWORD,
    )
    server.cli("users", "add", "carol", "--admin", "--password-stdin", input=PASSWORD)
    server.cli("users", "add", "dave", "--password-stdin", input=PASSWORD)
    server.start()
    try:
        with (
            echo_app() as app_port,
            nginx(tmp_path_factory.mktemp("nginx"), port, server.port, app_port),
            caddy(tmp_path_factory.mktemp("caddy"), free_port(), server.port, app_port) as caddy_port,
        ):
            yield Stack(server, port, caddy_port)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(playwright_instance: Any) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is needed: run scripts/ensure-system-deps")
    args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP *.{DOMAIN} 127.0.0.1"]
    chromium = playwright_instance.chromium.launch(executable_path=CHROMIUM, args=args)
    yield chromium
    chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context()
    context.set_default_timeout(10_000)
    yield context
    context.close()


@pytest.fixture(scope="module")
def alice_app(stack: Stack, browser: Browser) -> AuthenticatorApp:
    """Alice enrols an authenticator app on the Security page, reading the key shown under the QR code."""
    context = browser.new_context()
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto(f"{stack.login}/login")
    submit_password(page, "alice")
    page.goto(f"{stack.login}/account/security/totp")
    app = AuthenticatorApp(totp.decode_secret(page.locator("#manual-key").inner_text().replace(" ", "").strip()))
    page.fill("#id_code", app.code())
    page.press("#id_code", "Enter")
    page.wait_for_url(f"{stack.login}/account/security")
    context.close()
    return app


def submit_password(page: Page, username: str) -> None:
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.press("#id_password", "Enter")


def identity(page: Page) -> dict[str, str]:
    return dict(json.loads(page.locator("#identity").inner_text()))


#: Identity headers a client sends itself, hoping the application believes them.
FORGED_IDENTITY = {
    "Remote-User": "carol",
    "Remote-Groups": "admin",
    "Remote-Email": "x@evil.example.org",
    # Look-alikes an application server would read as Remote-User and Remote-Groups.
    "Remote_User": "carol",
    "Remote_Groups": "admin",
}


def echoed(html: str) -> dict[str, str | None]:
    """What the echo app saw, from its page."""
    return dict(json.loads(html.split('<pre id="identity">', 1)[1].split("</pre>", 1)[0]))


def test_sign_in_with_second_step_returns_to_the_app(
    stack: Stack, context: BrowserContext, alice_app: AuthenticatorApp
) -> None:
    """Unauthenticated → twostep's sign-in → password + TOTP → back at the original URL as alice."""
    original = f"{stack.app}/notes/today?sort=new&tag=a%20b"
    page = context.new_page()
    page.goto(original)
    assert page.url.startswith(f"{stack.login}/login?")
    assert parse_qs(urlsplit(page.url).query)["next"] == [original]

    submit_password(page, "alice")
    page.wait_for_url(f"{stack.login}/login/verify")
    # Between the two steps the browser is not signed in: the app is still closed.
    other = context.new_page()
    other.goto(f"{stack.app}/notes/today")
    assert other.url.startswith(f"{stack.login}/login?")
    other.close()

    page.fill("#id_code", alice_app.code())
    page.press("#id_code", "Enter")
    page.wait_for_url(original)
    assert identity(page) == {
        "path": "/notes/today?sort=new&tag=a%20b",
        "Remote-User": "alice",
        "Remote-Name": "Alice Liddell",
        "Remote-Email": "alice@example.test",
        "Remote-Groups": "user",
    }
    cookie = next(c for c in context.cookies() if c["name"] == "twostep_session")
    assert cookie["domain"] in (DOMAIN, f".{DOMAIN}") and cookie["httpOnly"]

    # alice is a user; /admin is for admins: nginx answers 403 and the app is never reached.
    response = page.goto(f"{stack.app}/admin/settings")
    assert response is not None and response.status == 403
    assert "identity" not in page.content()


def test_admin_passes_the_role_rule(stack: Stack, context: BrowserContext) -> None:
    """An admin (no second factor enrolled) goes from /admin to sign-in and back, seen as carol/admin."""
    page = context.new_page()
    page.goto(f"{stack.app}/admin/settings")
    submit_password(page, "carol")
    page.wait_for_url(f"{stack.app}/admin/settings")
    seen = identity(page)
    assert (seen["Remote-User"], seen["Remote-Groups"]) == ("carol", "admin")


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example.org/",
        "//evil.example.org/",
        "http://{app}.evil.example.org/",
        "http://evil.{domain}:{port}/",
        "javascript:alert(document.cookie)",
    ],
)
def test_open_redirects_are_refused(stack: Stack, context: BrowserContext, next_url: str) -> None:
    """Signing in with a next outside the protected hosts ends on twostep's account page, not elsewhere."""
    next_url = next_url.format(app=APP_HOST, domain=DOMAIN, port=stack.port)
    page = context.new_page()
    page.goto(f"{stack.login}/login?{httpx.QueryParams({'next': next_url})}")
    submit_password(page, "carol")
    page.wait_for_url(f"{stack.login}/account")
    # Signed in already: /login?next=... redirects at once, with the same check.
    page.goto(f"{stack.login}/login?{httpx.QueryParams({'next': next_url})}")
    assert page.url == f"{stack.login}/account"


def test_clients_cannot_forge_identity_or_target(stack: Stack) -> None:
    """nginx replaces client-sent Remote-* and X-Original-URL headers; no session means no pass."""
    with httpx.Client(
        base_url=f"http://127.0.0.1:{stack.port}", headers={"Host": f"{APP_HOST}:{stack.port}"}
    ) as client:
        response = client.get("/notes", headers=FORGED_IDENTITY)
        assert response.status_code == 302
        assert response.headers["location"].startswith(f"{stack.login}/login?next=")

        client.cookies.set("twostep_session", password_session(stack, "dave"))
        seen = echoed(client.get("/notes", headers=FORGED_IDENTITY).text)
        assert (seen["Remote-User"], seen["Remote-Groups"]) == ("dave", "user")
        assert "underscored" not in seen  # nginx drops headers with underscores
        assert seen["Remote-Email"] is None  # dave has no address: nginx sends none, not the forged one
        # dave may read /notes but not /admin; naming /notes in X-Original-URL does not help.
        assert client.get("/admin/x", headers={"X-Original-URL": f"{stack.app}/notes"}).status_code == 403
        # The question nginx asks twostep is internal: clients cannot call it through the app.
        assert client.get("/internal/twostep").status_code == 404


def raw_get(port: int, request_target: str, host: str, cookie: str, headers: str = "Connection: close\r\n") -> bytes:
    """Send one GET exactly as written (the request line's target and the Host header chosen apart); return the answer."""
    request = f"GET {request_target} HTTP/1.1\r\nHost: {host}\r\nCookie: twostep_session={cookie}\r\n{headers}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode())
        received = b""
        # Until the server closes, or the whole body is in (a kept-alive connection stays open).
        while chunk := sock.recv(65536):
            received += chunk
            head, separator, body = received.partition(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length: *(\d+)\r?$", head)
            if separator and length and len(body) >= int(length.group(1)):
                break
    return received


def test_a_forged_host_cannot_pick_the_rules(stack: Stack) -> None:
    """dave may use the other app but not the app's /admin: naming the other app's host does not open /admin.

    The app's server block is nginx's first, so without a default_server it would take requests for any
    name, and an X-Original-URL built from the client's Host would be judged by the other host's rule.
    """
    dave = password_session(stack, "dave")
    # The documented catch-all default_server closes the connection (444) on names no block carries.
    for host in (f"{OTHER_HOST}:{stack.port}", f"anything.{DOMAIN}:{stack.port}"):
        assert raw_get(stack.port, "/admin/users", host, dave) == b"", host
    # An absolute request target picks the server block by its own host, while $http_host is still the
    # forged Host header: X-Original-URL names the block's own server, so the app's rules decide.
    answer = raw_get(stack.port, f"{stack.app}/admin/users", f"{OTHER_HOST}:{stack.port}", dave)
    assert answer.startswith(b"HTTP/1.1 403 "), answer[:200]
    answer = raw_get(stack.port, f"{stack.app}/notes", f"{OTHER_HOST}:{stack.port}", dave)
    assert answer.startswith(b"HTTP/1.1 200 ") and b"dave" in answer, answer[:200]


def test_websocket_upgrade_reaches_the_app(stack: Stack) -> None:
    """The documented nginx app location passes a client's Upgrade on, so WebSocket applications work behind it."""
    upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    answer = raw_get(stack.port, "/live", f"{APP_HOST}:{stack.port}", password_session(stack, "dave"), upgrade)
    seen = echoed(answer.decode())
    assert (seen["Remote-User"], seen["Upgrade"], seen["Connection"]) == ("dave", "websocket", "upgrade")


def password_session(stack: Stack, username: str) -> str:
    """Sign ``username`` in through nginx with a plain HTTP client; return the session cookie's value."""
    with httpx.Client(
        base_url=f"http://127.0.0.1:{stack.port}", headers={"Host": f"{LOGIN_HOST}:{stack.port}"}
    ) as client:
        token = client.get("/login").cookies["twostep_csrf"]
        response = client.post(
            "/login", data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token}
        )
        assert response.status_code == 302, response.text
        # Set for Domain=example.test, so the jar of a client talking to 127.0.0.1 drops it: read the header.
        cookie = SimpleCookie()
        for header in response.headers.get_list("set-cookie"):
            cookie.load(header)
        assert cookie["twostep_session"]["domain"] == DOMAIN
        return cookie["twostep_session"].value


def test_caddy_forward_auth(stack: Stack) -> None:
    """Caddy: anonymous → 302 to sign-in with next; signed in → the app sees dave; /admin → 403; forged headers dropped."""
    with httpx.Client(
        base_url=f"http://127.0.0.1:{stack.caddy_port}", headers={"Host": f"{APP_HOST}:{stack.caddy_port}"}
    ) as client:
        response = client.get("/notes?a=1", headers={"Remote-User": "carol"})
        assert response.status_code == 302
        location = response.headers["location"]
        assert location.startswith(f"{stack.login}/login?")
        assert parse_qs(urlsplit(location).query)["next"] == [f"{stack.caddy_app}/notes?a=1"]

        client.cookies.set("twostep_session", password_session(stack, "dave"))
        # No "underscored" entry: Caddy removed the look-alikes (request_header -*_*).
        assert echoed(client.get("/notes?a=1", headers=FORGED_IDENTITY).text) == {
            "path": "/notes?a=1",
            "Remote-User": "dave",
            "Remote-Name": "dave",
            "Remote-Email": "",  # dave has no address: empty, never the forged one
            "Remote-Groups": "user",
        }
        # Naming an allowed page in client-sent headers does not open /admin: Caddy sets
        # X-Forwarded-* itself, and /auth/forward never reads X-Original-URL.
        steering = {
            "X-Original-URL": f"{stack.caddy_app}/notes",
            "X-Forwarded-Host": f"{APP_HOST}:{stack.caddy_port}",
            "X-Forwarded-Uri": "/notes",
            "X-Forwarded-Proto": "http",
        }
        assert client.get("/admin/x", headers=steering).status_code == 403

    # Caddy runs a site's forward_auth only for the site's own name, and tells twostep that same name
    # (an absolute request target sets both): no Host a client picks is judged by another host's rule.
    dave = password_session(stack, "dave")
    answer = raw_get(stack.caddy_port, "/admin/users", f"{OTHER_HOST}:{stack.caddy_port}", dave)
    assert b"identity" not in answer, answer[:300]
    answer = raw_get(stack.caddy_port, f"{stack.caddy_app}/admin/users", f"{OTHER_HOST}:{stack.caddy_port}", dave)
    assert answer.startswith(b"HTTP/1.1 403 "), answer[:300]
