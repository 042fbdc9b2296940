"""Break-glass in a real browser: the config switch forces 2FA off whatever the console says."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PHONE, Person, sign_in, sign_out
from tests.browser.totp_helpers import scan_qr
from twostep.factors import totp

pytestmark = pytest.mark.browser

USERNAME = "erin"
PASSWORD = "erin's long enough passphrase"
ADMIN_PASSWORD = "the admin's scripted passphrase"
FORCED_OFF = "Two-factor authentication is forced off by the server configuration"


def test_config_switch_forces_password_only_sign_in(
    live_server_factory: Callable[..., Any], open_browser: Callable[..., Person], tmp_path: Path
) -> None:
    """With TWOSTEP_TWO_FACTOR__ENABLED=false an enrolled user signs in with the password alone, and admins are told."""
    server = live_server_factory()
    server.cli("users", "add", USERNAME, "--password-stdin", input=PASSWORD + "\n")
    server.cli("users", "set-password", "admin", "--password-stdin", input=ADMIN_PASSWORD + "\n")
    server.cli("settings", "set", "two_factor.enabled", "true")

    # Enrol through the pages (the sign-in itself counts as a fresh password).
    user = open_browser(USERNAME, server.url, viewport=PHONE)
    page = user.page
    sign_in(user, USERNAME, PASSWORD)
    page.goto("/account/security")
    page.get_by_role("link", name="Set up authenticator app").click()
    uri = scan_qr(page, tmp_path / "qr.png")
    enrolled_at = time.time()
    page.get_by_label("Enter the 6-digit code the app shows now").fill(uri.code(enrolled_at))
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_role("region", name="Authenticator app")).to_contain_text("On since")
    sign_out(user)
    sign_in(user, USERNAME, PASSWORD)
    expect(page).to_have_url(re.compile(r"/login/verify$"))
    page.get_by_role("button", name="Back to sign in").click()
    expect(page).to_have_url(re.compile(r"/login$"))

    server.restart(extra_env={"TWOSTEP_TWO_FACTOR__ENABLED": "false"})

    sign_in(user, USERNAME, PASSWORD)
    expect(page).to_have_url(re.compile(r"/account$"))
    page.goto("/account/security")
    expect(page.get_by_text("switched off for everyone by the server configuration")).to_be_visible()
    user.assert_fits_width()
    user.shot("security-forced-off")

    admin = open_browser("admin", server.url, viewport=PHONE)
    sign_in(admin, "admin", ADMIN_PASSWORD)
    expect(admin.page).to_have_url(re.compile(r"/account$"))
    for path in ("/admin/users", "/admin/authentication", f"/admin/users/{USERNAME}"):
        admin.page.goto(path)
        banner = admin.page.get_by_role("alert").filter(has_text=FORCED_OFF)
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("TWOSTEP_TWO_FACTOR__ENABLED=false")
        admin.assert_fits_width()
        admin.shot(path)
    # The console setting itself is untouched: removing the override restores 2FA.
    admin.page.goto("/admin/authentication")
    expect(admin.page.get_by_label("Enable two-factor authentication")).to_be_checked()

    server.restart()
    sign_out(user)
    sign_in(user, USERNAME, PASSWORD)
    expect(page).to_have_url(re.compile(r"/login/verify$"))
    # The enrolment's step is spent: the next one, or the current one if later.
    page.get_by_label("Enter the 6-digit code from your authenticator app.").fill(
        totp.hotp(uri.key, max(totp.time_step(enrolled_at) + 1, totp.time_step(time.time())))
    )
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(r"/account$"))
