"""The production server stays responsive while a mail server hangs, and the sign-in fails cleanly."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD
from tests.mail.smtp_server import Certificates, SmtpServer
from tests.mfa.email.live_helpers import CODES_ADDRESS, prepare, smtp_env

pytestmark = pytest.mark.live

TIMEOUT = 3


def submit(client: httpx.Client, url: str, data: dict[str, str]) -> httpx.Response:
    """GET the page for its CSRF token, then POST the form."""
    page = client.get(url).text
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match is not None, page
    return client.post(url, data={**data, "csrfmiddlewaretoken": match.group(1)})


def test_hanging_smtp_does_not_block_the_server(
    live_server_factory: Callable[..., Any], smtp_server: SmtpServer, certificates: Certificates, hanging_port: int
) -> None:
    """While one sign-in waits on a silent SMTP server, other requests are served; it ends within the timeout (FLT-02)."""
    server = live_server_factory(smtp_env(certificates, smtp_server.port, timeout=TIMEOUT))
    prepare(server)
    credentials = {"username": "bob", "password": PASSWORD}
    with httpx.Client(base_url=server.url, timeout=30) as bob:
        assert submit(bob, "/login", credentials).headers["location"] == "/account"
        setup = bob.get("/account/security/email").text
        match = re.search(r'value="(\d+)"[^>]*>\s*' + re.escape(CODES_ADDRESS), setup)
        assert match is not None, setup
        submit(bob, "/account/security/email", {"action": "send", "address": match.group(1)})
        code = smtp_server.wait_for_match(subject="Confirm this address").code()
        assert submit(bob, "/account/security/email", {"action": "confirm", "code": code}).status_code == 302
        submit(bob, "/logout", {})

        server.cli("settings", "set", "email.port", str(hanging_port))
        result: dict[str, Any] = {}

        def sign_in() -> None:
            started = time.monotonic()
            result["response"] = submit(bob, "/login", credentials)
            result["seconds"] = time.monotonic() - started

        waiting = threading.Thread(target=sign_in)
        waiting.start()
        time.sleep(0.5)
        for _ in range(5):
            started = time.monotonic()
            assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
            assert httpx.get(f"{server.url}/login", timeout=5).status_code == 200
            assert time.monotonic() - started < 1
        assert waiting.is_alive(), "the sign-in should still be waiting for the mail server"
        waiting.join(30)

        assert result["response"].headers["location"] == "/login/verify"
        assert TIMEOUT - 0.5 < result["seconds"] < TIMEOUT + 3
        page = bob.get("/login/verify").text
        assert "We could not send the code. Try again in a moment." in page
        assert bob.get("/account").status_code == 302
