"""The production server starts from `twostep init` and answers, with either engine."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.authenticator_app import a_wrong_code
from tests.live import bearer
from twostep.factors import totp

pytestmark = pytest.mark.live


@pytest.mark.parametrize("engine", ["granian", "gunicorn"])
def test_server_serves_sign_in(live_server_factory: Callable[..., Any], engine: str) -> None:
    """`twostep serve` runs the configured engine; a form post and the next request share a connection."""
    server = live_server_factory({"TWOSTEP_SERVER__ENGINE": engine})
    with httpx.Client(base_url=server.url) as client:
        page = client.get("/login")
        assert page.status_code == 200
        assert engine in page.headers.get("server", "")
        assert 'name="password"' in page.text
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token is not None
        wrong = client.post(
            "/login",
            data={"csrfmiddlewaretoken": token.group(1), "username": "admin", "password": "not the password"},
        )
        assert wrong.status_code == 200
        assert "Your username or password is incorrect." in wrong.text
        assert client.get("/healthz").json() == {"status": "ok"}


def test_the_port_given_to_serve_is_the_one_links_name(live_server_factory: Callable[..., Any]) -> None:
    """``serve --port`` without a ``public_url``: mails, redirects and the API's description name that port.

    The workers read the configuration again, and found the configured port
    (8000) in the default public URL: every link in a mail was dead.
    """
    server = live_server_factory()
    document = httpx.get(f"{server.url}/api/v1/openapi.json").json()
    assert document["servers"][0]["url"] == server.url


def test_a_used_code_and_the_failure_count_outlive_a_restart(live_server_factory: Callable[..., Any]) -> None:
    """The failure count and the replay guard live in the database, not in the server's memory: a wrong code
    still counts after a restart, and after another the code that signed in is still refused (RR-10, FLT-06)."""
    server = live_server_factory()
    password = "carol's passphrase for the restart"
    server.cli("users", "add", "carol", "--password-stdin", input=password + "\n")
    server.cli("settings", "set", "two_factor.enabled", "true")

    def failures() -> int:
        return int(json.loads(server.cli("users", "show", "carol", "--json").stdout)["second_step_failures"])

    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=30) as api:

        def sign_in() -> str:
            answer = api.post("/auth/login", json={"username": "carol", "password": password}).json()
            return str(answer.get("login_token") or answer["access_token"])

        token = sign_in()
        key = totp.decode_secret(api.post("/me/factors/totp", headers=bearer(token)).json()["secret"])
        # The previous step confirms, leaving the current one for the sign-in.
        previous = totp.totp(key, time.time() - 30)
        confirm = api.post("/me/factors/totp/confirm", headers=bearer(token), json={"code": previous})
        assert confirm.status_code == 201, confirm.text
        assert (
            api.post("/auth/login/verify", json={"login_token": sign_in(), "code": a_wrong_code(key)}).status_code
            == 401
        )
        server.restart()
        assert failures() == 1

        code = totp.totp(key, time.time())
        assert api.post("/auth/login/verify", json={"login_token": sign_in(), "code": code}).status_code == 200
        server.restart()
        replayed = api.post("/auth/login/verify", json={"login_token": sign_in(), "code": code})
        assert replayed.status_code == 401 and replayed.json()["error"]["code"] == "second_step_failed"
    assert failures() == 1  # the replay, counted as the wrong code before it was
