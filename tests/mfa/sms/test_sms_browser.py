"""SMS codes in a real browser against a real server, with fake providers speaking the real APIs."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Person, admin_signs_in, sign_in, sign_out
from tests.mfa.sms.conftest import PRIMARY, SECOND
from tests.sms.fakes import TWILIO_SID, TWILIO_TOKEN, FakeProviderServer, FakeSet, provider_options

pytestmark = pytest.mark.browser

USER_PASSWORD = "dana has a long passphrase 9"


def configure_by_cli(server: Any, fake: FakeProviderServer, sender: str) -> None:
    name, options, secrets = provider_options(fake)
    args = ["sms", "configure", name, "--sender", sender]
    for key, value in options.items():
        args += ["--option", f"{key}={value}"]
    stdin = "".join(f"{key}={value}\n" for key, value in secrets.items())
    server.cli(*args, "--secrets-stdin", input=stdin)


def add_user(server: Any) -> None:
    server.cli(
        "users", "add", "dana", "--phone", PRIMARY, "--phone", SECOND, "--password-stdin", input=USER_PASSWORD + "\n"
    )


def enrol_in_browser(person: Person, fake: FakeProviderServer, number: str) -> None:
    page = person.page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Security").click()
    sms = page.get_by_role("region", name="SMS codes")
    sms.get_by_role("link", name="Set up SMS codes").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Set up SMS codes")
    person.shot("pick-number")
    # The user's own numbers, on their own page, in full: masks are for the sign-in page.
    page.get_by_label(number).check()
    page.get_by_role("button", name="Send code").click()
    expect(page.get_by_role("status")).to_contain_text(f"We sent a code to {number}")
    person.shot("enter-code")
    received = fake.wait_for(1)
    page.get_by_label(f"Enter the code sent to {number}").fill(fake.last_code(received[-1].to))
    page.get_by_role("button", name="Turn on").click()
    expect(page).to_have_url(re.compile(r"/account/security$"))
    # The user's own Security page shows their own number in full, as it does their email address.
    expect(page.get_by_role("region", name="SMS codes")).to_contain_text(f"Codes go to {number}")
    person.shot("sms-on")


@pytest.mark.parametrize("provider", ["twilio", "vonage", "webhook"])
def test_enrol_and_sign_in_with_each_provider(
    provider: str,
    fakes: FakeSet,
    live_server_factory: Callable[..., Any],
    open_browser: Callable[..., Person],
) -> None:
    """A user picks their second number, confirms the code the provider received, then signs in with SMS."""
    fake: FakeProviderServer = getattr(fakes, provider)()
    server = live_server_factory()
    configure_by_cli(server, fake, "+15550001111" if provider != "vonage" else "twostep")
    server.cli("settings", "set", "two_factor.enabled", "true")
    server.cli("settings", "set", "two_factor.methods", "totp,sms")
    add_user(server)

    dana = open_browser("dana", server.url)
    sign_in(dana, "dana", USER_PASSWORD)
    expect(dana.page).to_have_url(re.compile(r"/account$"))
    enrol_in_browser(dana, fake, SECOND)
    assert [message.to for message in fake.received] == [SECOND]
    sign_out(dana)

    sign_in(dana, "dana", USER_PASSWORD)
    page = dana.page
    expect(page).to_have_url(re.compile(r"/login/verify$"))
    prompt = page.get_by_label("Enter the code sent to +1 ••• ••• 4321")
    expect(prompt).to_be_visible()
    expect(page.get_by_role("button", name="Send a new code")).to_be_disabled()
    dana.shot("verify")
    received = fake.wait_for(2)
    assert received[-1].to == SECOND
    prompt.fill(fake.last_code(SECOND))
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(r"/account$"))
    dana.assert_fits_width()


def test_admin_sets_up_twilio_and_user_survives_an_outage(
    fakes: FakeSet, live_server_factory: Callable[..., Any], open_browser: Callable[..., Person]
) -> None:
    """The admin configures Twilio and sends a test SMS in the console; a provider outage at sign-in is explained and recoverable."""
    fake = fakes.twilio()
    server = live_server_factory()
    add_user(server)
    admin = open_browser("admin", server.url)
    admin_signs_in(admin, server)
    page = admin.page
    page.goto("/admin/authentication")
    expect(page.locator("#sms-method-problem")).to_contain_text("SMS codes need an SMS provider")
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="SMS").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("SMS")
    page.get_by_label("Provider", exact=True).select_option("twilio")
    page.get_by_role("button", name="Choose").click()
    page.get_by_label("Account SID (required)").fill(TWILIO_SID)
    page.get_by_label("Auth token (required)").fill(TWILIO_TOKEN)
    page.get_by_label("API base URL").fill(fake.url)
    page.get_by_label("Sender number or name").fill("+15550001111")
    admin.shot("twilio-settings")
    page.get_by_role("button", name="Save provider").click()
    expect(page.get_by_role("status")).to_contain_text("SMS provider saved: Twilio.")
    expect(page.get_by_label("Auth token (required)")).to_have_value("")
    assert TWILIO_TOKEN not in page.content()
    page.get_by_label("Phone number").fill("+15559870000")
    page.get_by_role("button", name="Send test SMS").click()
    expect(page.get_by_role("status")).to_contain_text("Test SMS handed to twilio for +1 ••• ••• 0000")
    assert [message.to for message in fake.received] == ["+15559870000"]
    admin.shot("sms-page")

    page.goto("/admin/authentication")
    page.get_by_label("Enable two-factor authentication").check()
    page.get_by_label("SMS code").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Authentication settings saved.")
    sign_out(admin)

    dana = open_browser("dana", server.url)
    sign_in(dana, "dana", USER_PASSWORD)
    enrol_in_browser(dana, fake, PRIMARY)
    sign_out(dana)

    fake.fail(503, {"code": 20500, "message": "Service Unavailable", "status": 503})
    sign_in(dana, "dana", USER_PASSWORD)
    page = dana.page
    expect(page).to_have_url(re.compile(r"/login/verify$"))
    expect(page.get_by_role("alert")).to_have_text("We could not send the code. Try again in a moment.")
    dana.shot("provider-down")
    fake.recover()
    page.get_by_role("button", name="Send a new code").click()
    expect(page.get_by_role("status")).to_contain_text("We sent a new code to +1 ••• ••• 4567")
    page.get_by_label("Enter the code sent to +1 ••• ••• 4567").fill(fake.last_code(PRIMARY))
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(re.compile(r"/account$"))
