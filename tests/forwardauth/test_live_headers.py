"""Identity headers as the real server writes them: UTF-8 bytes, under granian (the default) and gunicorn.

The two servers disagree on how to write a header value's text (granian as
UTF-8, gunicorn byte for byte as PEP 3333 says), so only the bytes on the
wire show whether a proxy receives the right name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.live import LiveServer, create_server

pytestmark = pytest.mark.live

PASSWORD = "a long passphrase for the header test"
APP_HOST = "wiki.example.test"
#: In latin-1 ("Ä"), beyond it ("Ł", two UTF-8 bytes) and CJK ("日本", three bytes each).
DISPLAY_NAME = "Änne Łukasz 日本"


@pytest.fixture(scope="module")
def data_dir_with_zoe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """An initialised, stopped server with user zoe, whose display name is not ASCII; both engines share it."""
    env = {
        "TWOSTEP_SERVER__TRUSTED_PROXIES": '["127.0.0.1"]',
        "TWOSTEP_FORWARD_AUTH__RULES": json.dumps([{"host": APP_HOST, "policy": "signed_in"}]),
    }
    server = create_server(tmp_path_factory.mktemp("headers"), env)
    server.cli("users", "add", "zoe", "--display-name", DISPLAY_NAME, "--password-stdin", input=PASSWORD)
    yield server
    server.stop()


def raw_header(response: httpx.Response, name: str) -> bytes:
    """The header's value exactly as the bytes arrived."""
    values = [value for key, value in response.headers.raw if key.lower() == name.lower().encode()]
    assert len(values) == 1, response.headers.raw
    return values[0]


@pytest.mark.parametrize("engine", ["granian", "gunicorn"])
def test_non_ascii_display_name_is_utf8_on_the_wire(data_dir_with_zoe: LiveServer, engine: str) -> None:
    """Remote-Name carries the display name's UTF-8 bytes (Ä as C3 84), not encoded twice, whatever the server."""
    server = data_dir_with_zoe
    server.restart({"TWOSTEP_SERVER__ENGINE": engine})
    with httpx.Client(base_url=server.url) as client:
        page = client.get("/login")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token is not None
        signed_in = client.post(
            "/login", data={"csrfmiddlewaretoken": token.group(1), "username": "zoe", "password": PASSWORD}
        )
        assert signed_in.status_code == 302, signed_in.text
        response = client.get("/auth/request", headers={"X-Original-URL": f"https://{APP_HOST}/page"})
    assert response.status_code == 200
    assert engine in response.headers["server"]
    assert raw_header(response, "Remote-Name") == DISPLAY_NAME.encode("utf-8")
    assert raw_header(response, "Remote-User") == b"zoe"
    assert raw_header(response, "Remote-Groups") == b"user"
