"""Times on a user's pages read in the user's own time zone, with UTC kept in the tooltip."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.template import Context, Template
from playwright.sync_api import Page, expect

import twostep
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


SCRIPT = Path(twostep.__file__).parent / "core" / "static" / "twostep" / "localtime.js"
DEADLINE = datetime(2026, 12, 10, 3, 0, tzinfo=UTC)


def painted(person: Person) -> Page:
    """A page with a deadline's day, its time, and a button whose label names the time, as the templates
    write them, after localtime.js has run."""
    markup = Template(
        "{% load twostep_time %}<p id=day>{{ when|local_date }}</p><p id=time>{{ when|local_time }}</p>"
        "<button aria-label=\"Sign out Firefox, signed in {{ when|date:'Y-m-d H:i' }} UTC\">Sign out</button>"
    ).render(Context({"when": DEADLINE}))
    page = person.page
    page.set_content(f"<!doctype html><html><body>{markup}</body></html>")
    page.add_script_tag(content=SCRIPT.read_text())
    return page


def test_days_times_and_labels_in_new_york(open_browser: Callable[..., Person]) -> None:
    """03:00 UTC on the 10th is 22:00 on the 9th in New York: the day, the time and the button's label say
    so; the tooltips keep UTC."""
    page = painted(open_browser("new-york", "http://127.0.0.1:9", timezone_id="America/New_York"))
    expect(page.locator("#day time")).to_have_text("2026-12-09")
    assert page.locator("#day time").get_attribute("title") == "2026-12-10 03:00 UTC"
    expect(page.locator("#time time")).to_have_text("2026-12-09 22:00 EST")
    assert page.locator("#time time").get_attribute("title") == "2026-12-10 03:00 UTC"
    expect(page.get_by_role("button", name="Sign out Firefox, signed in 2026-12-09 22:00 EST")).to_be_visible()


def test_days_times_and_labels_stay_in_utc_for_a_utc_reader(open_browser: Callable[..., Person]) -> None:
    """A reader in UTC reads what the server wrote."""
    page = painted(open_browser("utc", "http://127.0.0.1:9", timezone_id="UTC"))
    expect(page.locator("#day time")).to_have_text("2026-12-10")
    expect(page.locator("#time time")).to_have_text("2026-12-10 03:00 UTC")
    expect(page.get_by_role("button", name="Sign out Firefox, signed in 2026-12-10 03:00 UTC")).to_be_visible()
