"""Issue 8 in a real browser: several methods, recovery codes, trusted browsers, and 2FA required by policy.

Each test runs the production server (``twostep init`` + ``twostep serve``)
and drives Debian's Chromium.  Where a step is not what a test is about
(enrolling an authenticator app), it goes through the JSON API instead of
the pages, to keep the tests short; the pages for it are covered in test_totp.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.authenticator_app import AuthenticatorApp
from tests.browser.conftest import PHONE, Person, admin_signs_in, sign_in, sign_out
from tests.browser.totp_helpers import scan_qr
from tests.mail.smtp_server import Certificates, SmtpServer, certificates, smtp_server
from tests.mfa.email.live_helpers import smtp_env
from twostep.factors import totp

__all__ = ["certificates", "smtp_server"]

pytestmark = pytest.mark.browser

PASSWORD = "frank's long enough passphrase"
CODES_ADDRESS = "frank.codes@example.org"
RECOVERY_CODE = re.compile(r"^[0-9A-Z]{4}(-[0-9A-Z]{4}){3}$")


def add_user(server: Any, name: str, *emails: str) -> None:
    args = ["users", "add", name, *[part for email in emails for part in ("--email", email)], "--password-stdin"]
    server.cli(*args, input=PASSWORD + "\n")


def api_enrol_totp(server: Any, username: str) -> tuple[AuthenticatorApp, list[str]]:
    """Sign in through the API and set up an authenticator app; return the 'phone' and the recovery codes shown."""
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=10) as api:
        login = api.post("/auth/login", json={"username": username, "password": PASSWORD})
        assert login.status_code == 200 and login.json()["status"] == "signed_in", login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        secret = api.post("/me/factors/totp", headers=headers).json()["secret"]
        phone = AuthenticatorApp(totp.decode_secret(secret))
        confirmed = api.post("/me/factors/totp/confirm", json={"code": phone.code()}, headers=headers)
        assert confirmed.status_code == 201, confirmed.text
        return phone, confirmed.json()["recovery_codes"]


def second_step_with_app(person: Person, phone: AuthenticatorApp, *, trust: bool = False) -> None:
    page = person.page
    expect(page).to_have_url(re.compile(r"/login/verify$"))
    if trust:
        page.get_by_label("Trust this browser for 30 days").check()
    page.get_by_label("Enter the 6-digit code from your authenticator app.").fill(phone.code())
    page.get_by_role("button", name="Verify").click()


def shown_recovery_codes(page: Page) -> list[str]:
    codes = page.get_by_role("list", name="Your recovery codes").locator("li").all_inner_texts()
    assert len(codes) == 10 and all(RECOVERY_CODE.match(code.strip()) for code in codes), codes
    return [code.strip() for code in codes]


def test_several_methods_and_use_another_method(
    live_server_factory: Callable[..., Any],
    open_browser: Callable[..., Person],
    smtp_server: SmtpServer,
    certificates: Certificates,
    tmp_path: Path,
) -> None:
    """Enrol the app (QR) and email codes; the app is asked first; "Use another method" mails a code that signs in;
    after "Make default" email is asked first."""
    server = live_server_factory(smtp_env(certificates, smtp_server.port))
    server.cli("settings", "set", "two_factor.enabled", "true")
    server.cli("settings", "set", "two_factor.methods", "totp,email")
    add_user(server, "frank", "frank@example.com", CODES_ADDRESS)

    frank = open_browser("frank", server.url, viewport=PHONE)
    page = frank.page
    sign_in(frank, "frank", PASSWORD)
    expect(page).to_have_url(re.compile(r"/account$"))

    # The authenticator app, from the QR code; the first factor brings the recovery codes, shown once.
    page.goto("/account/security")
    page.get_by_role("link", name="Set up authenticator app").click()
    uri = scan_qr(page, tmp_path / "qr.png")
    phone = AuthenticatorApp(uri.key)
    page.get_by_label("Enter the 6-digit code the app shows now").fill(phone.code())
    page.get_by_role("button", name="Turn on").click()
    expect(page).to_have_url(re.compile(r"/account/security$"))
    codes = shown_recovery_codes(page)
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download as text").click()
    download = download_info.value
    assert download.suggested_filename == "frank-recovery-codes.txt"
    saved = Path(download.path()).read_text()
    assert all(code in saved for code in codes)
    copy = page.get_by_role("button", name="Copy codes")
    expect(copy).to_be_visible()  # the static script shows it; without JavaScript it stays hidden
    frank.context.grant_permissions(["clipboard-read", "clipboard-write"])
    copy.click()
    expect(page.get_by_text("Copied.")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()").split() == codes
    frank.assert_fits_width()
    frank.shot("recovery-codes")
    page.reload()
    expect(page.get_by_role("list", name="Your recovery codes")).to_have_count(0)
    expect(page.get_by_text("10 codes left")).to_be_visible()

    # Email codes as a second method: the app confirms it first (a password alone adds no method).
    page.get_by_role("link", name="Set up email codes").click()
    expect(page.get_by_role("heading", name="Confirm with your second step")).to_be_visible()
    frank.assert_fits_width()
    frank.shot("step-up")
    page.get_by_label("Enter the 6-digit code from your authenticator app.").fill(phone.code())
    page.get_by_role("button", name="Confirm", exact=True).click()
    page.get_by_role("button", name="Send code").click()
    enrolment = smtp_server.wait_for_match(to=CODES_ADDRESS, subject="Confirm this address")
    page.get_by_label(f"Enter the code sent to {CODES_ADDRESS}").fill(enrolment.code())
    page.get_by_role("button", name="Turn on email codes").click()
    methods = page.get_by_role("region", name="Your sign-in methods")
    expect(methods).to_contain_text("Authenticator app")
    # The user's own Security page shows their own address in full (masked only at sign-in).
    expect(methods).to_contain_text(f"Email to {CODES_ADDRESS}")
    frank.shot("methods")
    sign_out(frank)

    # The app is asked first and no mail goes out for a method not chosen.
    sent = len(smtp_server.messages())
    sign_in(frank, "frank", PASSWORD)
    expect(page).to_have_url(re.compile(r"/login/verify$"))
    expect(page.get_by_label("Enter the 6-digit code from your authenticator app.")).to_be_visible()
    other = page.get_by_role("region", name="Use another method")
    frank.shot("verify-choice")
    time.sleep(1)
    assert len(smtp_server.messages()) == sent, "no code may be sent for a method the user did not choose"
    other.get_by_role("button", name="Email a code to fr•••s@example.org").click()
    mailed = smtp_server.wait_for_match(to=CODES_ADDRESS, subject="sign-in code", since=sent)
    page.get_by_label("Enter the code sent to fr•••s@example.org.").fill(mailed.code())
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(r"/account$"))

    # Email as the default: asked first next time.
    page.goto("/account/security")
    page.get_by_role("button", name=f"Make default: Email to {CODES_ADDRESS}").click()
    expect(page.get_by_role("status")).to_contain_text("is now asked for first")
    # Back where the button was (#methods), with the message there, not out of view at the top.
    expect(page.get_by_role("region", name="Your sign-in methods").get_by_role("status")).to_be_in_viewport()
    sign_out(frank)
    sent = len(smtp_server.messages())
    sign_in(frank, "frank", PASSWORD)
    expect(page.get_by_label("Enter the code sent to fr•••s@example.org.")).to_be_visible()
    smtp_server.wait_for_match(to=CODES_ADDRESS, subject="sign-in code", since=sent)
    page.get_by_role("region", name="Use another method").get_by_role(
        "button", name="Use your authenticator app"
    ).click()
    second_step_with_app(frank, phone)
    expect(page).to_have_url(re.compile(r"/account$"))


def test_recovery_code_signs_in_once(
    live_server_factory: Callable[..., Any], open_browser: Callable[..., Person]
) -> None:
    """A saved recovery code completes the second step once; the same code is refused the next time."""
    server = live_server_factory()
    server.cli("settings", "set", "two_factor.enabled", "true")
    add_user(server, "grace")
    _, codes = api_enrol_totp(server, "grace")

    person = open_browser("grace", server.url, viewport=PHONE)
    page = person.page
    sign_in(person, "grace", PASSWORD)
    expect(page).to_have_url(re.compile(r"/login/verify$"))
    page.get_by_text("Use a recovery code").click()
    page.get_by_label("Recovery code").fill(codes[4].lower().replace("-", " "))
    person.shot("recovery-form")
    page.get_by_role("button", name="Sign in with recovery code").click()
    expect(page).to_have_url(re.compile(r"/account/security$"))
    expect(page.get_by_role("status")).to_contain_text("You signed in with a recovery code")
    expect(page.get_by_role("region", name="Recovery codes")).to_contain_text("9 codes left")
    person.assert_fits_width()
    sign_out(person)

    sign_in(person, "grace", PASSWORD)
    page.get_by_text("Use a recovery code").click()
    page.get_by_label("Recovery code").fill(codes[4])
    page.get_by_role("button", name="Sign in with recovery code").click()
    expect(page.get_by_role("alert")).to_have_text("That recovery code didn't work. Check it and try again.")
    page.goto("/account")
    expect(page).to_have_url(re.compile(r"/login"))
    person.shot("recovery-reused")


def test_trusted_browser_skips_then_revoked(
    live_server_factory: Callable[..., Any], open_browser: Callable[..., Person]
) -> None:
    """ "Trust this browser" skips the second step on that browser only; "Stop trusting" brings it back."""
    server = live_server_factory()
    server.cli("settings", "set", "two_factor.enabled", "true")
    add_user(server, "henry")
    phone, _ = api_enrol_totp(server, "henry")

    laptop = open_browser("laptop", server.url)
    sign_in(laptop, "henry", PASSWORD)
    second_step_with_app(laptop, phone, trust=True)
    expect(laptop.page).to_have_url(re.compile(r"/account$"))
    cookie = next(c for c in laptop.context.cookies() if c["name"] == "twostep_trusted")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["expires"] > time.time() + 29 * 86400
    sign_out(laptop)
    sign_in(laptop, "henry", PASSWORD)
    expect(laptop.page).to_have_url(re.compile(r"/account$"))

    # Another browser is still asked.
    kiosk = open_browser("kiosk", server.url, viewport=PHONE)
    sign_in(kiosk, "henry", PASSWORD)
    second_step_with_app(kiosk, phone)
    expect(kiosk.page).to_have_url(re.compile(r"/account$"))

    # The laptop is listed on the Security page; stopping its trust from the phone works.
    kiosk.page.goto("/account/security")
    trusted = kiosk.page.get_by_role("region", name="Trusted browsers")
    expect(trusted).to_contain_text("Chrome on Linux")
    expect(trusted).to_contain_text("127.0.0.1")
    kiosk.shot("trusted-browsers")
    kiosk.assert_fits_width()
    trusted.get_by_role("button", name=re.compile(r"^Stop trusting Chrome on Linux")).click()
    expect(kiosk.page.get_by_role("status")).to_contain_text("will ask for your second step again")
    expect(trusted.get_by_role("status")).to_be_in_viewport()
    sign_out(laptop)
    sign_in(laptop, "henry", PASSWORD)
    expect(laptop.page).to_have_url(re.compile(r"/login/verify$"))


def test_required_enrolment_with_and_without_grace(
    live_server_factory: Callable[..., Any], open_browser: Callable[..., Person], tmp_path: Path
) -> None:
    """The admin requires 2FA of users with one grace sign-in: "Not now" once, then nothing but enrolment,
    the API refused too, until an app is set up."""
    server = live_server_factory()
    server.cli("settings", "set", "two_factor.enabled", "true")
    add_user(server, "ivy")
    add_user(server, "jack")

    admin = open_browser("admin", server.url)
    admin_signs_in(admin, server)
    admin.page.goto("/admin/two-factor")
    admin.page.get_by_role("radio", name="Chosen roles").check()
    admin.page.get_by_role("checkbox", name="User", exact=True).check()
    admin.page.get_by_label("Grace period in sign-ins").fill("1")
    admin.shot("policy")
    admin.page.get_by_role("button", name="Save policy").click()
    expect(admin.page.get_by_role("status")).to_contain_text("Two-step policy saved.")
    expect(admin.page.get_by_role("region", name="Compliance")).to_contain_text("2 in their grace period")

    # First sign-in: in the grace period, "Not now" leads on.
    ivy = open_browser("ivy", server.url, viewport=PHONE)
    page = ivy.page
    sign_in(ivy, "ivy", PASSWORD)
    expect(page).to_have_url(re.compile(r"/account/security/enrol$"))
    expect(page.get_by_text("This is your last sign-in without it.")).to_be_visible()
    ivy.shot("enrol-grace")
    page.get_by_role("link", name="Not now").click()
    expect(page).to_have_url(re.compile(r"/account$"))
    sign_out(ivy)

    # Second sign-in: the grace is used up.  No page, no API, until enrolled.
    sign_in(ivy, "ivy", PASSWORD)
    expect(page).to_have_url(re.compile(r"/account/security/enrol$"))
    expect(page.get_by_role("link", name="Not now")).to_have_count(0)
    ivy.shot("enrol-required")
    for path in ["/account", "/account/security", "/admin/users"]:
        page.goto(path)
        expect(page).to_have_url(re.compile(r"/account/security/enrol$"))
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=10) as api:
        token = api.post("/auth/login", json={"username": "ivy", "password": PASSWORD}).json()["access_token"]
        refused = api.get("/me", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "enrolment_required"
    expect(admin.page.get_by_role("region", name="Compliance")).to_be_visible()
    admin.page.goto("/admin/two-factor?status=overdue")
    expect(admin.page.get_by_role("table")).to_contain_text("ivy")
    expect(admin.page.get_by_role("table")).not_to_contain_text("jack")

    page.get_by_role("link", name="Set up an authenticator app").click()
    uri = scan_qr(page, tmp_path / "qr.png")
    page.get_by_label("Enter the 6-digit code the app shows now").fill(uri.code(time.time()))
    page.get_by_role("button", name="Turn on").click()
    expect(page).to_have_url(re.compile(r"/account/security$"))
    shown_recovery_codes(page)
    page.goto("/account")
    expect(page).to_have_url(re.compile(r"/account$"))
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=10) as api:
        step = api.post("/auth/login", json={"username": "ivy", "password": PASSWORD}).json()
        assert step["status"] == "second_step_required"

    # Without a grace period: the next user goes straight to enrolment on the first sign-in.
    server.cli("settings", "set", "two_factor.grace_sign_ins", "0")
    jack = open_browser("jack", server.url)
    sign_in(jack, "jack", PASSWORD)
    expect(jack.page).to_have_url(re.compile(r"/account/security/enrol$"))
    expect(jack.page.get_by_text("Set one up now to continue")).to_be_visible()
    jack.page.goto("/account")
    expect(jack.page).to_have_url(re.compile(r"/account/security/enrol$"))
