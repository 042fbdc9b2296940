"""Every page readable in the light and the dark colour scheme the visitor's system asks for."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PHONE, Person, admin_signs_in, sign_in
from tests.browser.contrast import page_background_luminance, poorly_contrasted

pytestmark = pytest.mark.browser

#: Pages an administrator meets, with text in most of the styles the pages use (tags, banners, hints).
PAGES = [
    "/account",
    "/account/security",
    "/admin/users",
    "/admin/users/admin",
    "/admin/authentication",
    "/admin/audit",
    "/api/v1/docs",
]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_pages_readable_in_each_colour_scheme(
    live_server_factory: Callable[..., Any], open_browser: Callable[..., Person], scheme: str
) -> None:
    """4.5:1 for text on every page (WCAG 1.4.3), no sideways scrolling on a phone (1.4.10), and the dark
    scheme really is dark."""
    server = live_server_factory()
    admin = open_browser(f"admin-{scheme}", server.url, viewport=PHONE, color_scheme=scheme)
    page = admin.page

    sign_in(admin, "admin", "not the password")
    expect(page.get_by_role("alert")).to_be_visible()
    problems = {"/login (refused)": poorly_contrasted(page)}
    luminance = page_background_luminance(page)
    assert (luminance < 0.05) if scheme == "dark" else (luminance > 0.8), f"{scheme} page background {luminance:.3f}"

    admin_signs_in(admin, server)
    for path in PAGES:
        page.goto(path)
        expect(page).to_have_url(re.compile(re.escape(path) + "$"))
        admin.shot(path)
        problems[path] = poorly_contrasted(page)
        admin.assert_fits_width()
    assert not any(problems.values()), {path: found for path, found in problems.items() if found}
