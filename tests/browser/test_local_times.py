"""Times on a user's pages read in the user's own time zone, with UTC kept in the tooltip."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Person, admin_signs_in

pytestmark = pytest.mark.browser


@pytest.mark.parametrize(("zone", "offset"), [("Asia/Kolkata", timedelta(hours=5, minutes=30)), ("UTC", timedelta())])
def test_session_times_in_the_readers_zone(
    live_server_factory: Callable[..., Any], open_browser: Callable[..., Person], zone: str, offset: timedelta
) -> None:
    """In Kolkata "signed in" shows UTC+5:30 and says the zone; in UTC the page's own UTC text stays."""
    server = live_server_factory()
    admin = open_browser(f"admin-{zone}", server.url, timezone_id=zone)
    admin_signs_in(admin, server)
    page = admin.page
    page.goto("/account/security")
    shown = page.get_by_role("region", name="Where you're signed in").locator("time").first
    expect(shown).to_be_visible()
    stamp = datetime.fromisoformat(shown.get_attribute("datetime") or "")
    utc_text = stamp.strftime("%Y-%m-%d %H:%M") + " UTC"
    if offset:
        local = (stamp + offset).strftime("%Y-%m-%d %H:%M")
        expect(shown).to_have_text(f"{local} GMT+5:30")
        assert shown.get_attribute("title") == utc_text
    else:
        expect(shown).to_have_text(utc_text)
        assert shown.get_attribute("title") is None
