"""The production server starts from `twostep init` and answers, with either engine."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

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
