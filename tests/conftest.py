"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client

from twostep.accounts import services
from twostep.accounts.models import Role, User
from twostep.audit.services import CLI
from twostep.core import clock
from twostep.core.runtime import set_setting

PASSWORD = "correct horse battery staple"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # On CI a missing PostgreSQL must fail the run, never skip it quietly.
    os.environ.setdefault("TWOSTEP_CI", os.environ.get("CI", ""))


@pytest.fixture(autouse=True)
def no_housekeeping_by_chance(monkeypatch: pytest.MonkeyPatch) -> None:
    """Housekeeping that one auth-log entry in 500 triggers would make tests that move the clock flaky.

    Its own tests (tests/audit/test_housekeeping_trigger.py) trigger it on purpose.
    """
    monkeypatch.setattr("twostep.audit.services.PRUNE_ONE_IN", 10**12)


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    counter = iter(range(1, 10_000))

    def make(username: str | None = None, *, role: str = Role.USER, password: str = PASSWORD, **kwargs: Any) -> User:
        name = username or f"user{next(counter)}"
        return services.create_user(name, password=password, role=role, origin=CLI, **kwargs)

    return make


@pytest.fixture
def user(make_user: Callable[..., User]) -> User:
    return make_user("alice", emails=["alice@example.com", "alice.backup@example.org"], phones=["+15551234567"])


@pytest.fixture
def admin(make_user: Callable[..., User]) -> User:
    return make_user("root", role=Role.ADMIN)


@pytest.fixture
def two_factor_on(db: None) -> None:
    set_setting("two_factor.enabled", True)
    set_setting("two_factor.methods", ["totp"])


@pytest.fixture
def frozen_clock() -> Iterator[clock.FrozenClock]:
    # Starts at the real time so that sessions opened before the fixture stay valid.
    frozen = clock.FrozenClock(float(int(clock.timestamp())))
    with clock.use_clock(frozen):
        yield frozen


def sign_in(client: Client, username: str, password: str = PASSWORD) -> Any:
    return client.post("/login", {"username": username, "password": password})


def focused_field(page: str) -> str:
    """The id of the one field of ``page`` (HTML) that asks for the focus; fails the test if several do."""
    ids = [
        re.search(r'\bid="([^"]+)"', tag).group(1)  # type: ignore[union-attr]
        for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*\bautofocus\b[^>]*>", page)
    ]
    assert len(ids) <= 1, f"several fields ask for the focus: {ids}"
    return ids[0] if ids else ""


def headers_and_cookies(response: Any) -> tuple[list[tuple[str, str]], list[str]]:
    """What a response says besides its body: each header, each cookie's name.

    Not the date, nor the length: a page repeats the name typed; compare
    the bodies apart.
    """
    headers = sorted(
        (name.lower(), value)
        for name, value in response.headers.items()
        if name.lower() not in {"date", "content-length"}
    )
    return headers, sorted(response.cookies)


def asked_for_password(response: Any) -> bool:
    """True when ``response`` is the password prompt standing in for a change posted with a stale password."""
    return response.status_code == 200 and "accounts/reauthenticate.html" in [t.name for t in response.templates]


def prove_second_factor(client: Client) -> None:
    """Mark ``client``'s session as having just confirmed a code (``mfa.step_up_views``).

    For tests of what a change does once allowed; tests/mfa/test_step_up.py
    proves the code is asked for.
    """
    from twostep.core.decorators import SECOND_FACTOR_KEY

    session = client.session
    session[SECOND_FACTOR_KEY] = clock.timestamp()
    session.save()


def forget_second_factor_proof(client: Client) -> None:
    """Age ``client``'s proof of a second factor past ``security.reauth_max_age`` (a sign-in with a code gives one)."""
    from django.conf import settings as django_settings

    from twostep.core.decorators import SECOND_FACTOR_KEY

    session = client.session
    session[SECOND_FACTOR_KEY] = clock.timestamp() - django_settings.CONFIG.security.reauth_max_age - 1
    session.save()


@pytest.fixture
def signed_in_client(client: Client, user: User) -> Client:
    response = sign_in(client, user.username)
    assert response.status_code == 302, response.content
    return client


@pytest.fixture
def live_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    """Start real twostep servers (``twostep init`` + ``twostep serve``); all stop at teardown."""
    from tests.live import create_server

    servers = []

    def start(extra_env: dict[str, str] | None = None) -> Any:
        server = create_server(tmp_path_factory.mktemp("live"), extra_env)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Any]:
    """The one Playwright driver of the run: its sync API allows one per thread."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_instance: Any) -> Iterator[Any]:
    """Debian's Chromium, headless, shared by every browser test."""
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is needed: run scripts/ensure-system-deps")
    chromium = playwright_instance.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()
