"""The break-glass switch is in one instance's configuration: every instance's console learns of it
from the auth log (its start and each sign-in it lets through), for a day."""

from __future__ import annotations

import logging

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from tests.conftest import sign_in
from tests.mfa.recovery_codes.helpers import enrol_totp
from twostep.accounts.models import User
from twostep.audit.models import AuthEvent
from twostep.config import load_config
from twostep.core import clock
from twostep.core.instance import instance_name
from twostep.core.management.commands.serve import Command
from twostep.mfa.policy import FORCED_OFF, recent_break_glass

pytestmark = pytest.mark.django_db

BANNER = "an instance sharing this database ran with two-factor authentication forced off"


def forced_off() -> override_settings:
    """This process as an instance whose configuration has the break-glass switch on."""
    return override_settings(CONFIG=load_config(settings.DATA_DIR, {"TWOSTEP_TWO_FACTOR__ENABLED": "false"}))


def console_page(admin: User, path: str = "/admin/users") -> str:
    client = Client()
    sign_in(client, admin.username)
    return client.get(path).content.decode()


def test_a_sign_in_let_through_shows_on_every_console_for_a_day(
    user: User, admin: User, two_factor_on: None, frozen_clock: clock.FrozenClock
) -> None:
    """Another instance let an enrolled user in by password: this one's console names that instance, the
    time and the count, on every page; a day later it is gone."""
    enrol_totp(user)
    with forced_off():
        assert sign_in(Client(), user.username)["Location"] == "/account"
    event = AuthEvent.objects.get(kind="login.second_step", reason=FORCED_OFF)
    assert event.detail == {"instance": instance_name()}
    for path in ("/admin/users", "/admin/authentication", "/admin/audit"):
        page = console_page(admin, path)
        assert BANNER in page, path
        assert f"(<code>{instance_name()}</code>)" in page
        assert "let 1 sign-in through by the password alone" in page
        assert f"last at {event.created_at:%Y-%m-%d %H:%M} UTC" in page
    frozen_clock.advance(24 * 3600 + 60)
    assert BANNER not in console_page(admin)
    assert recent_break_glass() is None


def test_an_instance_started_with_the_switch_is_told(admin: User, caplog: pytest.LogCaptureFixture) -> None:
    """`twostep serve` with the switch on warns in its log and records its start; the other consoles say
    so before anyone signs in there."""
    with forced_off(), caplog.at_level(logging.WARNING):
        Command().check_deployment(dev=False, port=8123)
    assert any("forced off by this instance's configuration" in r.getMessage() for r in caplog.records)
    started = AuthEvent.objects.get(kind="server.two_factor_forced_off")
    assert started.reason == FORCED_OFF and started.detail["instance"].endswith(":8123")
    page = console_page(admin)
    assert BANNER in page and f"(<code>{started.detail['instance']}</code>)" in page
    assert "sign-in" not in page.split(BANNER, 1)[1].split("</p>", 1)[0]  # none let through yet


def test_nothing_without_the_switch(admin: User, caplog: pytest.LogCaptureFixture) -> None:
    """A normal start records nothing, and the console has no such banner."""
    with caplog.at_level(logging.WARNING):
        Command().check_deployment(dev=False, port=8123)
    assert not AuthEvent.objects.filter(reason=FORCED_OFF).exists()
    assert not [r for r in caplog.records if "forced off" in r.getMessage()]
    assert BANNER not in console_page(admin)


def test_the_instance_with_the_switch_shows_its_own_banner_only(admin: User) -> None:
    """Where the switch is on, the console's own break-glass banner says it all."""
    with forced_off():
        Command().check_deployment(dev=False, port=8123)
        page = console_page(admin)
    assert "forced off by the server configuration" in page and BANNER not in page


def test_only_the_console_looks(user: User, admin: User) -> None:
    """Users' pages do not pay for the console's look at the auth log."""
    client = Client()
    sign_in(client, user.username)
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/account/security").status_code == 200
    assert not [q for q in queries if FORCED_OFF in q["sql"]]


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's plan; PostgreSQL picks by table size")
def test_the_look_uses_the_partial_index() -> None:
    """However long the auth log, the console reads only the break-glass events."""
    since = clock.now()
    query = AuthEvent.objects.filter(reason=FORCED_OFF, created_at__gte=since).order_by("-created_at", "-id")
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        plan = " ".join(str(row) for row in cursor.fetchall())
    assert "audit_break_glass" in plan, plan
