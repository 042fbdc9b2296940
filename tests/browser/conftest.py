"""Fixtures for the real-browser tests: Debian's Chromium driven by Playwright.

Each test gets its own production server (``live_server_factory``) and opens
one fresh browser context per person, so cookies never leak between them.
Set ``TWOSTEP_BROWSER_SHOTS=/some/dir`` to keep a screenshot of every page the
tests visit (for looking at the layout; nothing is asserted on them).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 740}
#: The password the administrator chooses at first sign-in.
ADMIN_PASSWORD = "admin chooses a long passphrase 1"


@pytest.fixture(scope="session")
def browser(browser: Browser) -> Browser:
    """The shared Chromium of tests/conftest.py, once zbarimg (for QR codes) is known to be there."""
    if shutil.which("zbarimg") is None:
        pytest.fail("zbar-tools is needed: run scripts/ensure-system-deps")
    return browser


@dataclass
class Person:
    """One person at one browser: a context, its page and what went wrong in it."""

    name: str
    context: BrowserContext
    page: Page
    shots: Path | None
    console_errors: list[str] = field(default_factory=list)
    _shot_count: int = 0

    def shot(self, label: str) -> None:
        """Keep a full-page screenshot when TWOSTEP_BROWSER_SHOTS is set."""
        if self.shots is None:
            return
        self._shot_count += 1
        name = re.sub(r"[^a-z0-9]+", "-", f"{self.name}-{self._shot_count:02d}-{label}".lower())
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    def assert_fits_width(self) -> None:
        """The page needs no sideways scrolling at the context's viewport width."""
        overflow = self.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{self.page.url} is {overflow}px wider than the viewport"


@pytest.fixture
def open_browser(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Callable[..., Person]]:
    """Open a fresh browser context for one person; fails the test on console errors (e.g. CSP)."""
    people: list[Person] = []
    shots_root = os.environ.get("TWOSTEP_BROWSER_SHOTS")
    shots = Path(shots_root) / request.node.name if shots_root else None
    if shots is not None:
        shots.mkdir(parents=True, exist_ok=True)

    def open_one(
        name: str,
        base_url: str,
        viewport: dict[str, int] | None = None,
        color_scheme: str = "light",
        timezone_id: str | None = None,
    ) -> Person:
        context = browser.new_context(
            base_url=base_url,
            viewport=viewport or DESKTOP,  # type: ignore[arg-type]
            color_scheme=color_scheme,  # type: ignore[arg-type]
            timezone_id=timezone_id,
        )
        context.set_default_timeout(10_000)
        page = context.new_page()
        person = Person(name, context, page, shots)

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                person.console_errors.append(f"{page.url}: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: person.console_errors.append(f"{page.url}: {error}"))
        people.append(person)
        return person

    yield open_one
    for person in people:
        person.context.close()
    errors = [error for person in people for error in person.console_errors]
    assert not errors, f"browser console errors: {errors}"


def sign_in(person: Person, username: str, password: str) -> None:
    """Fill and submit the sign-in form."""
    page = person.page
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def choose_password(person: Person, current: str, new: str) -> None:
    """On the forced password-change page, replace ``current`` with ``new``."""
    page = person.page
    expect(page).to_have_url(re.compile(r"/account/password$"))
    expect(page.get_by_text("Choose your own to continue")).to_be_visible()
    person.shot("choose-password")
    page.get_by_label("Current password").fill(current)
    page.get_by_label("New password").fill(new)
    page.get_by_label("Repeat password").fill(new)
    page.get_by_role("button", name="Change password").click()
    expect(page).to_have_url(re.compile(r"/account$"))


def sign_out(person: Person) -> None:
    """Use the header's sign-out button and land on the sign-in page."""
    page = person.page
    page.get_by_role("navigation", name="Main").get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def admin_signs_in(person: Person, server: Any) -> None:
    """First sign-in of the administrator: one-time password, then their own."""
    sign_in(person, "admin", server.admin_password)
    choose_password(person, server.admin_password, ADMIN_PASSWORD)
