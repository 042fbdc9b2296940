"""Two production servers on one PostgreSQL database, set up as the README says: one sign-in spans both."""

from __future__ import annotations

import os
import secrets
import shutil
import time
import tomllib
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from tests.live import LiveServer, bearer, create_server, free_port
from twostep.factors import totp

pytestmark = pytest.mark.live

PASSWORD = "bob's passphrase for two instances"


@pytest.fixture
def database_url() -> Iterator[str]:
    """A new, empty database on the suite's PostgreSQL server (``createdb``), dropped afterwards."""
    server_url = os.environ.get("TWOSTEP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        connection = psycopg.connect(server_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError:
        if os.environ.get("TWOSTEP_CI"):
            raise
        pytest.skip("no PostgreSQL server for the suite")
    name = f"twostep_live_{secrets.token_hex(4)}"
    with connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield server_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def two_instances(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, LiveServer]]:
    """``twostep init`` on the first; the second gets only copies of its two key files."""
    first = create_server(tmp_path_factory.mktemp("first"), {"TWOSTEP_DATABASE__URL": database_url})
    first.cli("users", "add", "bob", "--email", "bob@example.com", "--password-stdin", input=PASSWORD + "\n")
    first.cli("settings", "set", "two_factor.enabled", "true")
    assert not (first.data_dir / "twostep.db").exists()  # the database is PostgreSQL
    # init kept the URL it was given in the configuration file: later commands need no variable.
    written = tomllib.loads((first.data_dir / "config.toml").read_text())
    assert written["database"]["url"] == database_url
    second_dir = tmp_path_factory.mktemp("second") / "data"
    second_dir.mkdir(mode=0o700)
    for name in ("secret.key", "encryption.keys"):
        shutil.copy2(first.data_dir / name, second_dir / name)
    second = LiveServer(
        data_dir=second_dir,
        port=free_port(),
        admin_password=first.admin_password,
        env={**first.env, "TWOSTEP_DATA_DIR": str(second_dir)},
    )
    try:
        first.start()
        second.start()
        yield first, second
    finally:
        first.stop()
        second.stop()


def test_a_sign_in_spans_two_instances(two_instances: tuple[LiveServer, LiveServer]) -> None:
    """Tokens, enrolment, pending sign-ins and the replay guard are shared; a sign-out on one holds on the other."""
    first, second = two_instances
    with (
        httpx.Client(base_url=f"{first.url}/api/v1", timeout=30) as one,
        httpx.Client(base_url=f"{second.url}/api/v1", timeout=30) as other,
    ):
        token = one.post("/auth/login", json={"username": "bob", "password": PASSWORD}).json()["access_token"]
        start = other.post("/me/factors/totp", headers=bearer(token))
        assert start.status_code == 200, start.text
        key = totp.decode_secret(start.json()["secret"])
        # The previous step's code confirms, leaving the current one unused for the sign-in.
        confirm = one.post(
            "/me/factors/totp/confirm", headers=bearer(token), json={"code": totp.totp(key, time.time() - 30)}
        )
        assert confirm.status_code == 201, confirm.text

        begun = other.post("/auth/login", json={"username": "bob", "password": PASSWORD}).json()
        assert begun["status"] == "second_step_required" and begun["method"] == "totp"
        code = totp.totp(key, time.time())
        finished = one.post("/auth/login/verify", json={"login_token": begun["login_token"], "code": code})
        assert finished.status_code == 200, finished.text
        signed_in = finished.json()["access_token"]

        again = one.post("/auth/login", json={"username": "bob", "password": PASSWORD}).json()["login_token"]
        replay = other.post("/auth/login/verify", json={"login_token": again, "code": code})
        assert replay.status_code == 401 and replay.json()["error"]["code"] == "second_step_failed"

        assert other.get("/me", headers=bearer(signed_in)).status_code == 200
        assert one.post("/auth/logout", headers=bearer(signed_in)).status_code == 204
        assert other.get("/me", headers=bearer(signed_in)).status_code == 401
