"""The break-glass switch is in one instance's configuration: every instance's console learns of it
from the auth log (its start and each sign-in it lets through), for a day."""

from __future__ import annotations

import logging
import socket

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
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
from twostep.core.management.commands import serve as serve_command
from twostep.mfa.policy import FORCED_OFF, note_break_glass_start, recent_break_glass

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


class Served(Exception):
    """Raised instead of exec'ing the WSGI server."""


def serve(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    """`twostep serve --port PORT` up to the moment it would start the WSGI server."""

    def instead_of_exec(*_: object) -> None:
        raise Served

    monkeypatch.setattr(serve_command.os, "execv", instead_of_exec)
    with pytest.raises(Served):
        call_command("serve", "--port", str(port))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_instance_started_with_the_switch_is_told(
    admin: User, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`twostep serve` with the switch on warns in its log and records its start; the other consoles say
    so before anyone signs in there."""
    port = free_port()
    with forced_off(), caplog.at_level(logging.WARNING):
        serve(monkeypatch, port)
    assert any("forced off by this instance's configuration" in r.getMessage() for r in caplog.records)
    started = AuthEvent.objects.get(kind="server.two_factor_forced_off")
    assert started.reason == FORCED_OFF and started.detail["instance"].endswith(f":{port}")
    page = console_page(admin)
    assert BANNER in page and f"(<code>{started.detail['instance']}</code>)" in page
    assert "sign-in" not in page.split(BANNER, 1)[1].split("</p>", 1)[0]  # none let through yet


def test_a_start_refused_records_nothing(admin: User, monkeypatch: pytest.MonkeyPatch) -> None:
    """The switch set on a second server beside the running one: refused (the address is in use), and no
    console is told of a start that did not happen."""
    with socket.socket() as running:
        running.bind(("127.0.0.1", 0))
        running.listen()
        with forced_off(), pytest.raises(CommandError, match="already in use"):
            call_command("serve", "--port", str(running.getsockname()[1]))
    assert not AuthEvent.objects.filter(reason=FORCED_OFF).exists()
    assert BANNER not in console_page(admin)


def test_a_quiet_instance_with_the_switch_is_seen_again_at_its_next_sign_in(
    user: User, admin: User, frozen_clock: clock.FrozenClock
) -> None:
    """A day after its start the banner is gone; the next sign-in there, even of a user with no second
    step, brings it back (at most one such event an hour)."""
    with forced_off():
        note_break_glass_start(instance_name())
    frozen_clock.advance(25 * 3600)
    assert BANNER not in console_page(admin)
    with forced_off():
        for _ in range(2):
            assert sign_in(Client(), user.username)["Location"] == "/account"
    assert BANNER in console_page(admin)
    assert AuthEvent.objects.filter(kind="server.two_factor_forced_off").count() == 2


def test_nothing_without_the_switch(
    admin: User, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A normal start records nothing, and the console has no such banner."""
    with caplog.at_level(logging.WARNING):
        serve(monkeypatch, free_port())
    assert not AuthEvent.objects.filter(reason=FORCED_OFF).exists()
    assert not [r for r in caplog.records if "forced off" in r.getMessage()]
    assert BANNER not in console_page(admin)


def test_the_instance_with_the_switch_shows_its_own_banner_only(admin: User) -> None:
    """Where the switch is on, the console's own break-glass banner says it all."""
    with forced_off():
        note_break_glass_start(instance_name())
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
