"""The API end to end through the production server (`twostep init` + `twostep serve`, gunicorn) with httpx."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.live import bearer
from twostep.factors import totp

pytestmark = pytest.mark.live

USER_PASSWORD = "a user's long enough passphrase"
BOSS_PASSWORD = "the boss has a passphrase too"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One production server for the module (starting one takes seconds); each test uses its own users."""
    from tests.live import create_server

    server = create_server(tmp_path_factory.mktemp("api-live"))
    for name in ("bob", "dan"):
        server.cli(
            "users", "add", name, "--email", f"{name}@example.com", "--password-stdin", input=USER_PASSWORD + "\n"
        )
    server.cli("users", "add", "boss", "--admin", "--password-stdin", input=BOSS_PASSWORD + "\n")
    server.cli("settings", "set", "two_factor.enabled", "true")
    server.start()
    yield server
    server.stop()


def test_totp_sign_in_end_to_end(server: Any) -> None:
    """Enrol TOTP through the API, sign in with password and code, refuse the replay, use and end the token."""
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=30) as http:
        first = http.post("/auth/login", json={"username": "bob", "password": USER_PASSWORD})
        assert first.status_code == 200 and first.json()["status"] == "signed_in"
        assert first.headers["cache-control"] == "no-store"
        token = first.json()["access_token"]

        start = http.post("/me/factors/totp", headers=bearer(token))
        assert start.status_code == 200
        key = totp.decode_secret(start.json()["secret"])
        # Confirm with the previous step's code (still accepted), so that the
        # current step stays unused for the sign-in below.
        confirm = http.post(
            "/me/factors/totp/confirm", headers=bearer(token), json={"code": totp.totp(key, time.time() - 30)}
        )
        assert confirm.status_code == 201, confirm.text

        step = http.post("/auth/login", json={"username": "bob", "password": USER_PASSWORD})
        assert step.status_code == 200
        assert step.json()["status"] == "second_step_required" and step.json()["method"] == "totp"
        code = totp.totp(key, time.time())
        verified = http.post("/auth/login/verify", json={"login_token": step.json()["login_token"], "code": code})
        assert verified.status_code == 200, verified.text
        signed_in = verified.json()["access_token"]
        assert http.get("/me", headers=bearer(signed_in)).json()["factors"][0]["method"] == "totp"

        again = http.post("/auth/login", json={"username": "bob", "password": USER_PASSWORD}).json()["login_token"]
        replay = http.post("/auth/login/verify", json={"login_token": again, "code": code})
        assert replay.status_code == 401 and replay.json()["error"]["code"] == "second_step_failed"

        assert http.post("/auth/logout", headers=bearer(signed_in)).status_code == 204
        assert http.get("/me", headers=bearer(signed_in)).status_code == 401


def test_admin_surface_end_to_end(server: Any) -> None:
    """An admin signs in over HTTP, creates a user, resets a user's 2FA (ending their tokens) and reads the log."""
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=30) as http:
        boss = http.post("/auth/login", json={"username": "boss", "password": BOSS_PASSWORD}).json()["access_token"]
        dan = http.post("/auth/login", json={"username": "dan", "password": USER_PASSWORD}).json()["access_token"]
        forbidden = http.get("/admin/users", headers=bearer(dan))
        assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
        created = http.post(
            "/admin/users",
            headers=bearer(boss),
            json={"username": "carol", "password": "carol's first passphrase", "emails": ["carol@example.com"]},
        )
        assert created.status_code == 201 and created.json()["must_change_password"] is True
        users = http.get("/admin/users", headers=bearer(boss)).json()
        assert {u["username"] for u in users["items"]} >= {"bob", "dan", "boss", "carol"}
        assert http.post("/admin/users/dan/reset-2fa", headers=bearer(boss)).status_code == 200
        assert http.get("/me", headers=bearer(dan)).status_code == 401
        log = http.get("/admin/audit", headers=bearer(boss), params={"user": "dan", "kind": "two_factor.reset"}).json()
        assert log["total"] == 1 and log["items"][0]["actor"] == "boss"


def test_transport_rules_on_the_real_server(server: Any) -> None:
    """Through the server, on one kept-alive connection: form posts get 415, chunked bodies 411, huge bodies 413,
    junk JSON 400,
    unknown routes a JSON 404 (refused bodies are drained, so the connection stays usable)."""
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=30) as http:
        form = http.post("/auth/login", data={"username": "bob", "password": USER_PASSWORD})
        assert form.status_code == 415 and form.json()["error"]["code"] == "unsupported_media_type"
        huge = http.post(
            "/auth/login", content=b"{" + b" " * 100_000 + b"}", headers={"Content-Type": "application/json"}
        )
        assert huge.status_code == 413 and huge.json()["error"]["code"] == "payload_too_large"
        # httpx sends a body from an iterator chunked, without Content-Length.
        chunks = iter([b'{"username": "bob", ', b'"password": "' + USER_PASSWORD.encode() + b'"}'])
        chunked = http.post("/auth/login", content=chunks, headers={"Content-Type": "application/json"})
        assert chunked.status_code == 411 and chunked.json()["error"]["code"] == "length_required"
        junk = http.post("/auth/login", content=b"{oops", headers={"Content-Type": "application/json"})
        assert junk.status_code == 400 and junk.json()["error"]["code"] == "invalid_request"
        missing = http.get("/no/such/route")
        assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/json")
        spec = http.get("/openapi.json")
        assert spec.status_code == 200 and "/api/v1/auth/login" in spec.json()["paths"]
        docs = http.get("/docs")
        assert docs.status_code == 200 and "<script" not in docs.text
