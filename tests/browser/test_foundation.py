"""Issue 2 in a real browser: the administrator creates a user who then signs in."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PHONE, Person, admin_signs_in, choose_password, sign_in, sign_out

pytestmark = pytest.mark.browser

USER_PASSWORD = "set by the admin 12345"
USER_OWN_PASSWORD = "carol picks her own passphrase"


def test_admin_creates_user_who_signs_in(
    live_server_factory: Callable[..., Any], open_browser: Callable[..., Person]
) -> None:
    """Admin: first sign-in, console, new user with two addresses and a phone; the user sees them."""
    server = live_server_factory()
    admin = open_browser("admin", server.url)
    admin_signs_in(admin, server)
    page = admin.page
    admin.shot("account")

    page.get_by_role("link", name="Admin").click()
    expect(page).to_have_url(re.compile(r"/admin/users$"))
    admin.shot("users")
    page.get_by_role("link", name="New user").click()
    page.get_by_label("Username").fill("carol")
    page.get_by_label("Display name").fill("Carol Example")
    page.get_by_label("Password").fill(USER_PASSWORD)
    page.get_by_label("Email addresses").fill("carol@example.com\ncarol.backup@example.org")
    page.get_by_label("Phone numbers").fill("+15551234567")
    admin.shot("new-user")
    page.get_by_role("button", name="Create user").click()

    expect(page).to_have_url(re.compile(r"/admin/users/carol$"))
    expect(page.get_by_role("status")).to_contain_text("User carol created.")
    emails = page.locator("#emails li")
    expect(emails).to_have_count(2)
    expect(emails.nth(0)).to_contain_text("carol@example.com")
    expect(emails.nth(0)).to_contain_text("primary")
    expect(emails.nth(1)).to_contain_text("carol.backup@example.org")
    expect(page.locator("#phones li")).to_have_text([re.compile(r"\+15551234567\s+primary")])
    admin.shot("user-page")
    sign_out(admin)

    # The user, on a phone: the admin set the password, so they choose their own first.
    user = open_browser("carol", server.url, viewport=PHONE)
    sign_in(user, "carol", USER_PASSWORD)
    choose_password(user, USER_PASSWORD, USER_OWN_PASSWORD)
    page = user.page
    expect(page.get_by_role("heading", level=1)).to_have_text("Hello, Carol Example")
    account = page.get_by_role("region", name="Your account")
    expect(account.get_by_role("listitem")).to_have_text(
        [
            re.compile(r"^carol@example\.com\s+primary$"),
            re.compile(r"^carol\.backup@example\.org$"),
            re.compile(r"^\+15551234567\s+primary$"),
        ]
    )
    user.assert_fits_width()
    user.shot("account")
    sign_out(user)

    # The old (admin-set) password no longer works; the chosen one does.
    sign_in(user, "carol", USER_PASSWORD)
    expect(page.get_by_role("alert")).to_have_text("Your username or password is incorrect.")
    sign_in(user, "carol", USER_OWN_PASSWORD)
    expect(page).to_have_url(re.compile(r"/account$"))


def test_wrong_password_and_unknown_user_get_the_same_generic_error(
    live_server_factory: Callable[..., Any], open_browser: Callable[..., Person]
) -> None:
    """A wrong password and an unknown username show one generic message and stay signed out."""
    server = live_server_factory()
    visitor = open_browser("visitor", server.url, viewport=PHONE)
    page = visitor.page
    texts = []
    for username, password in [("admin", "not the password"), ("nobody", server.admin_password)]:
        sign_in(visitor, username, password)
        expect(page).to_have_url(re.compile(r"/login$"))
        alert = page.get_by_role("alert")
        expect(alert).to_be_visible()
        texts.append(alert.inner_text())
        # The username stays filled in, the password does not.
        expect(page.get_by_label("Username")).to_have_value(username)
        expect(page.get_by_label("Password")).to_have_value("")
    assert texts == ["Your username or password is incorrect."] * 2
    visitor.assert_fits_width()
    visitor.shot("error")
    page.goto("/account")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Faccount$"))
