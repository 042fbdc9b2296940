"""Email codes end to end in Chromium, against the production server and a real SMTP server.

The server is started with ``twostep init`` + ``twostep serve`` and sends
through the test's aiosmtpd server with STARTTLS, trusting the test CA
(``TWOSTEP_EMAIL__*``); the test reads each code from the received message.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import PASSWORD
from tests.mail.smtp_server import Certificates, SmtpServer
from tests.mfa.email.live_helpers import CODES_ADDRESS, prepare, smtp_env
from twostep.factors import totp

pytestmark = [pytest.mark.browser, pytest.mark.live]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def chromium(browser: Browser) -> Browser:
    return browser


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    """A fresh browser context; any console error (a CSP violation, a script error) fails the test."""
    context = chromium.new_context()
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == []


def shot(page: Page, name: str) -> None:
    """Keep a screenshot when TWOSTEP_BROWSER_SHOTS names a folder (for looking at the layout)."""
    folder = os.environ.get("TWOSTEP_BROWSER_SHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        page.screenshot(path=os.path.join(folder, f"email-{name}.png"), full_page=True)


def password_step(page: Page, base: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_enrol_sign_in_and_survive_smtp_down(
    page: Page,
    live_server_factory: Callable[..., Any],
    smtp_server: SmtpServer,
    certificates: Certificates,
    closed_port: int,
) -> None:
    """Enrol a non-primary address, sign in with the mailed code; with SMTP down: the clear error, then a retry."""
    server = live_server_factory(smtp_env(certificates, smtp_server.port))
    prepare(server)
    base = server.url

    password_step(page, base)
    expect(page).to_have_url(re.compile(r"/account$"))
    page.goto(f"{base}/account/security")
    expect(page.get_by_text("we recommend one other than your primary address")).to_be_visible()
    page.get_by_role("link", name="Set up email codes").click()
    expect(page).to_have_url(re.compile(r"/account/security/email$"))
    expect(page.get_by_label(re.compile(re.escape(CODES_ADDRESS)))).to_be_checked()
    expect(page.get_by_text("Not recommended: your primary address")).to_be_visible()
    shot(page, "1-pick-address")
    page.get_by_role("button", name="Send code").click()

    enrolment = smtp_server.wait_for_match(subject="Confirm this address")
    assert enrolment.rcpt_tos == [CODES_ADDRESS] and enrolment.over_tls
    shot(page, "2-confirm")
    page.get_by_label(f"Enter the code sent to {CODES_ADDRESS}").fill(enrolment.code())
    page.get_by_role("button", name="Turn on email codes").click()
    expect(page).to_have_url(re.compile(r"/account/security$"))
    expect(page.get_by_text("Email codes are on.")).to_be_visible()
    shot(page, "3-security")

    page.get_by_role("navigation", name="Main").get_by_role("button", name="Sign out").click()
    sent = len(smtp_server.messages())
    password_step(page, base)
    expect(page).to_have_url(re.compile(r"/login/verify$"))
    code_box = page.get_by_label("Enter the code sent to bo•••s@example.org.")
    expect(code_box).to_be_visible()
    # The static countdown script holds the resend button during the cooldown.
    expect(page.get_by_role("button", name="Send a new code")).to_be_disabled()
    expect(page.get_by_text(re.compile(r"You can ask for a new code in \d+ seconds?\."))).to_be_visible()
    shot(page, "4-verify")
    login = smtp_server.wait_for_match(subject="sign-in code", since=sent)
    assert login.rcpt_tos == [CODES_ADDRESS]
    code_box.fill(login.code())
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(r"/account$"))

    # The mail server goes down: a clear error, nobody let in, the sign-in kept for a retry.
    page.get_by_role("navigation", name="Main").get_by_role("button", name="Sign out").click()
    server.cli("settings", "set", "email.port", str(closed_port))
    password_step(page, base)
    expect(page).to_have_url(re.compile(r"/login/verify$"))
    expect(page.get_by_role("alert")).to_have_text("We could not send the code. Try again in a moment.")
    shot(page, "5-smtp-down")
    page.goto(f"{base}/account")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.goto(f"{base}/login/verify")
    server.cli("settings", "set", "email.port", str(smtp_server.port))
    sent = len(smtp_server.messages())
    page.get_by_role("button", name="Send a new code").click()
    expect(page.get_by_text("We sent a new code to bo•••s@example.org")).to_be_visible()
    retry = smtp_server.wait_for_match(to=CODES_ADDRESS, subject="sign-in code", since=sent)
    page.get_by_label("Enter the code sent to bo•••s@example.org.").fill(retry.code())
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(r"/account$"))


def test_admin_sends_a_test_email(
    page: Page, live_server_factory: Callable[..., Any], smtp_server: SmtpServer, certificates: Certificates
) -> None:
    """The admin saves the SMTP server on /admin/email and "Send test email" reports success, then the SMTP error."""
    server = live_server_factory(smtp_env(certificates, smtp_server.port))
    new_password = "admin chooses a long passphrase 1"
    page.goto(f"{server.url}/login")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(server.admin_password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Current password").fill(server.admin_password)
    page.get_by_label("New password").fill(new_password)
    page.get_by_label("Repeat password").fill(new_password)
    page.get_by_role("button", name="Change password").click()
    expect(page).to_have_url(re.compile(r"/account$"))

    page.goto(f"{server.url}/admin/email")
    page.get_by_label("Password", exact=True).fill("relay-secret")
    page.get_by_label("From address").fill("Sign-in <login@example.test>")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Outgoing mail settings saved.")).to_be_visible()
    assert "relay-secret" not in page.content()
    expect(page.get_by_text("stored (encrypted)")).to_be_visible()

    page.get_by_label("Send a test email to").fill("ops@example.com")
    page.get_by_role("button", name="Send test email").click()
    expect(page.get_by_text("The test email was sent to ops@example.com")).to_be_visible()
    received = smtp_server.wait_for_match(to="ops@example.com", subject="test email")
    assert received.mail_from == "login@example.test"

    smtp_server.rcpt_reply = "550 5.7.1 Relaying denied"
    page.get_by_label("Send a test email to").fill("ops@example.com")
    page.get_by_role("button", name="Send test email").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("The test email could not be sent.")
    expect(alert).to_contain_text("550 5.7.1 Relaying denied")
    shot(page, "6-admin-test-failed")


def test_email_check_before_a_first_authenticator(
    page: Page, live_server_factory: Callable[..., Any], smtp_server: SmtpServer, certificates: Certificates
) -> None:
    """Required to enrol, with the email check on: the mailed code opens the authenticator set-up, then the account."""
    server = live_server_factory(smtp_env(certificates, smtp_server.port))
    prepare(server)
    server.cli("settings", "set", "two_factor.required", "everyone")
    server.cli("settings", "set", "two_factor.enrolment_email_check", "true")
    base = server.url

    password_step(page, base)
    expect(page).to_have_url(re.compile(r"/account/security/enrol$"))
    expect(page.get_by_text("we will send a code to one of your email addresses")).to_be_visible()
    page.get_by_role("link", name="Set up an authenticator app").click()
    expect(page).to_have_url(re.compile(r"/account/security/enrol/email-check\?method=totp$"))
    expect(page.get_by_role("heading", name="Confirm your email address")).to_be_visible()
    expect(page.get_by_label(re.compile(re.escape(CODES_ADDRESS)))).to_be_checked()
    shot(page, "check-1-pick")
    page.get_by_role("button", name="Send code").click()

    message = smtp_server.wait_for_match(subject="to confirm it's you")
    assert message.rcpt_tos == [CODES_ADDRESS] and message.over_tls
    code = message.code()
    wrong = "000000" if code != "000000" else "111111"
    page.get_by_label(f"Enter the code sent to {CODES_ADDRESS}").fill(wrong)
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("alert")).to_have_text("That code didn't match. Check the newest message and try again.")
    page.goto(f"{base}/account/security/totp")
    expect(page).to_have_url(re.compile(r"/email-check\?method=totp$"))
    shot(page, "check-2-code")
    page.get_by_label(f"Enter the code sent to {CODES_ADDRESS}").fill(code)
    page.get_by_role("button", name="Confirm").click()

    expect(page).to_have_url(re.compile(r"/account/security/totp$"))
    key = totp.decode_secret(page.locator("#manual-key").inner_text())
    page.get_by_label("Enter the 6-digit code the app shows now").fill(totp.totp(key, time.time()))
    page.get_by_role("button", name="Turn on").click()
    expect(page).to_have_url(re.compile(r"/account/security$"))
    expect(page.get_by_role("status")).to_contain_text("Your authenticator app is now required")
    page.goto(f"{base}/account")
    expect(page).to_have_url(re.compile(r"/account$"))
