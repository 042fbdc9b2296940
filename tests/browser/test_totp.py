"""Issue 3 in a real browser: enrolling an authenticator app from the QR code, signing in with it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ADMIN_PASSWORD, PHONE, Person, admin_signs_in, sign_in, sign_out
from tests.browser.totp_helpers import KeyURI, scan_qr
from twostep.factors import totp

pytestmark = pytest.mark.browser

USERNAME = "dave"
PASSWORD = "dave's long enough passphrase"
#: The shortest re-authentication window the config allows, so the test can outlast it.
REAUTH_MAX_AGE = 30
GENERIC_CODE_ERROR = "That code didn't work. Check it and try again."


def enable_two_factor(admin: Person) -> None:
    """On the Authentication page, switch 2FA on with the authenticator app allowed."""
    page = admin.page
    page.goto("/admin/authentication")
    expect(page.get_by_role("heading", name="Server clock")).to_be_visible()
    shown = page.locator("time").get_attribute("datetime")
    assert shown is not None
    server_time = datetime.fromisoformat(shown)
    assert server_time.utcoffset() == timedelta(0), shown
    assert abs(server_time.timestamp() - time.time()) < 60, f"server clock shown as {shown}"
    page.get_by_label("Enable two-factor authentication").check()
    totp_box = page.get_by_label("Authenticator app (TOTP)")
    expect(totp_box).to_be_checked()  # the default allowed method
    admin.shot("authentication")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Authentication settings saved.")
    expect(page.get_by_label("Enable two-factor authentication")).to_be_checked()


def enrol_from_qr(user: Person, png: Path) -> tuple[KeyURI, int]:
    """On the set-up page: scan the QR code, check it, confirm with the current code.

    Returns the decoded URI and the time step the confirming code belonged to.
    """
    page = user.page
    expect(page.get_by_role("heading", name="Set up an authenticator app")).to_be_visible()
    uri = scan_qr(page, png)
    assert uri.kind == "totp"
    assert uri.label == f"twostep:{USERNAME}"
    assert uri.params["issuer"] == "twostep"
    assert re.fullmatch(r"[A-Z2-7]{32}", uri.params["secret"]), "a 160-bit Base32 secret without padding"
    assert len(uri.key) == 20
    assert uri.params.get("digits", "6") == "6"
    assert uri.params.get("period", "30") == "30"
    assert uri.params.get("algorithm", "SHA1") == "SHA1"
    manual = page.locator("#manual-key").inner_text()
    assert totp.decode_secret(manual) == uri.key, "the manual key is the QR code's secret"
    user.assert_fits_width()
    user.shot("qr")

    # A wrong code is refused and the key stays the one already scanned.
    code_box = page.get_by_label("Enter the 6-digit code the app shows now")
    now = time.time()
    wrong = next(c for c in ("000000", "111111", "222222") if c not in {uri.code(now + d) for d in (-30, 0, 30)})
    code_box.fill(wrong)
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_role("alert")).to_contain_text("That code didn't match")
    assert scan_qr(page, png).raw == uri.raw, "a wrong code must not replace the pending secret"

    now = time.time()
    page.get_by_label("Enter the 6-digit code the app shows now").fill(uri.code(now))
    page.get_by_role("button", name="Turn on").click()
    expect(page).to_have_url(re.compile(r"/account/security$"))
    expect(page.get_by_role("status")).to_contain_text("Your authenticator app is now required")
    panel = page.get_by_role("region", name="Authenticator app")
    expect(panel).to_contain_text("On since")
    # The secret is never shown again once confirmed.
    assert uri.params["secret"] not in page.content()
    user.shot("enrolled")
    return uri, totp.time_step(now)


def second_step(person: Person, code: str) -> None:
    """On /login/verify, check the code field is the phone-friendly one and submit ``code``, pasted as
    apps show it ("053 243"): the page's script takes the space out."""
    page = person.page
    expect(page).to_have_url(re.compile(r"/login/verify$"))
    field = page.get_by_label("Enter the 6-digit code from your authenticator app.")
    expect(field).to_have_attribute("autocomplete", "one-time-code")
    expect(field).to_have_attribute("inputmode", "numeric")
    expect(field).to_be_focused()
    expect(page.get_by_role("button", name="Back to sign in")).to_be_visible()
    field.fill(f"{code[:3]} {code[3:]}")
    expect(field).to_have_value(code)
    person.shot("verify")
    page.get_by_role("button", name="Verify").click()


def test_user_enrols_from_qr_and_signs_in_with_codes(
    live_server_factory: Callable[..., Any], open_browser: Callable[..., Person], tmp_path: Path
) -> None:
    """Admin enables 2FA; the user enrols by scanning; password + code signs in; replay refused; admin reset."""
    server = live_server_factory({"TWOSTEP_SECURITY__REAUTH_MAX_AGE": str(REAUTH_MAX_AGE)})
    server.cli("users", "add", USERNAME, "--email", "dave@example.com", "--password-stdin", input=PASSWORD + "\n")

    # The user signs in first, so that their sign-in is too old to count as a
    # recent password by the time they change their security settings.
    user = open_browser(USERNAME, server.url, viewport=PHONE)
    sign_in(user, USERNAME, PASSWORD)
    signed_in_at = time.monotonic()
    page = user.page
    expect(page).to_have_url(re.compile(r"/account$"))

    admin = open_browser("admin", server.url)
    admin_signs_in(admin, server)
    enable_two_factor(admin)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Security").click()
    panel = page.get_by_role("region", name="Authenticator app")
    expect(panel.get_by_text("Off", exact=True)).to_be_visible()
    user.assert_fits_width()
    user.shot("security")
    time.sleep(max(0.0, signed_in_at + REAUTH_MAX_AGE + 1 - time.monotonic()))
    panel.get_by_role("link", name="Set up authenticator app").click()

    # Asked for the password again; a wrong one is refused.
    expect(page).to_have_url(re.compile(r"/account/reauthenticate\?next="))
    expect(page.get_by_role("heading", name="Confirm it's you")).to_be_visible()
    page.get_by_label("Password").fill("not my password")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_text("That password is incorrect.")).to_be_visible()
    user.shot("reauthenticate")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(r"/account/security/totp$"))

    uri, enrolled_step = enrol_from_qr(user, tmp_path / "qr.png")
    sign_out(user)

    sign_in(user, USERNAME, PASSWORD)
    page.goto("/account")  # forced browsing past the second step goes back to sign-in
    expect(page).to_have_url(re.compile(r"/login"))
    sign_in(user, USERNAME, PASSWORD)
    # The confirming code's step is spent, so use the next step's code if the
    # clock has not moved on yet (steps T-1..T+1 are accepted): no waiting.
    used_step = max(enrolled_step + 1, totp.time_step(time.time()))
    code = totp.hotp(uri.key, used_step)
    second_step(user, code)
    expect(page).to_have_url(re.compile(r"/account$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Hello, {USERNAME}")

    # The same code again, from another browser in the same time step: refused.
    thief = open_browser("replay", server.url, viewport=PHONE)
    sign_in(thief, USERNAME, PASSWORD)
    second_step(thief, code)
    expect(thief.page).to_have_url(re.compile(r"/login/verify$"))
    expect(thief.page.get_by_role("alert")).to_have_text(GENERIC_CODE_ERROR)
    # Refused as a replay, not as a stale code: it was still inside the window.
    assert totp.time_step(time.time()) <= used_step + 1, "too slow: the replayed code had expired"
    thief.assert_fits_width()
    thief.shot("replay-refused")
    thief.page.goto("/account")
    expect(thief.page).to_have_url(re.compile(r"/login"))

    # Lost phone: the admin resets the user's 2FA, which also ends their sessions.
    admin.page.goto(f"/admin/users/{USERNAME}")
    twofa = admin.page.get_by_role("region", name="Two-factor authentication")
    expect(twofa).to_contain_text("Authenticator app")
    twofa.get_by_role("button", name="Reset two-factor authentication").click()
    # The admin's password is older than the re-authentication window: asked
    # again, then the reset asks to be confirmed, naming the user.
    expect(admin.page.get_by_role("heading", name="Confirm it's you")).to_be_visible()
    admin.page.get_by_label("Password").fill(ADMIN_PASSWORD)
    admin.page.get_by_role("button", name="Continue").click()
    expect(admin.page.get_by_role("heading", name=f"Reset two-factor authentication of {USERNAME}?")).to_be_visible()
    admin.page.get_by_role("button", name=f"Reset two-factor authentication of {USERNAME}").click()
    expect(admin.page).to_have_url(re.compile(rf"/admin/users/{USERNAME}$"))
    expect(admin.page.get_by_role("status")).to_contain_text(f"Two-factor authentication of {USERNAME} reset")
    expect(admin.page.get_by_role("region", name="Two-factor authentication")).to_contain_text(
        "No second factor enrolled."
    )
    admin.shot("after-reset")

    page.goto("/account")
    expect(page).to_have_url(re.compile(r"/login"))
    sign_in(user, USERNAME, PASSWORD)
    expect(page).to_have_url(re.compile(r"/account$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Hello, {USERNAME}")
