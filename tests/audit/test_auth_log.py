"""The auth log: what is recorded, the console page, `twostep audit`, retention."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client

from tests.conftest import PASSWORD, sign_in
from twostep.accounts.models import User
from twostep.audit.models import AuthEvent
from twostep.audit.services import CLI, Outcome, record
from twostep.core import clock
from twostep.core.housekeeping import prune

pytestmark = pytest.mark.django_db


def test_sign_in_attempts_recorded_with_origin(user: User) -> None:
    """Failed and successful sign-ins are logged with username as typed, IP, agent and reason."""
    client = Client(REMOTE_ADDR="192.0.2.44", HTTP_USER_AGENT="Probe/2")
    client.post("/login", {"username": "ALICE", "password": "wrong password here"})
    sign_in(client, user.username)
    failure = AuthEvent.objects.get(kind="login.password", outcome="failure")
    assert (failure.username, failure.ip, failure.user_agent, failure.reason) == (
        "ALICE",
        "192.0.2.44",
        "Probe/2",
        "credentials",
    )
    assert failure.user == user
    assert AuthEvent.objects.filter(kind="login", outcome="success", user=user).exists()
    assert PASSWORD not in str(list(AuthEvent.objects.values_list("detail", "reason", "username")))


def test_console_page_filters_and_paginates(user: User, admin: User) -> None:
    """Admins browse the log filtered by user, outcome and IP, 50 per page."""
    for i in range(60):
        record("login.password", Outcome.FAILURE, origin=CLI, username=f"bot{i}", reason="unknown_user")
    record(
        "login.password", Outcome.FAILURE, origin=CLI.__class__("198.51.100.1", "x"), user=user, reason="credentials"
    )
    console = Client()
    sign_in(console, admin.username)
    page = console.get("/admin/audit").content.decode()
    assert f"{AuthEvent.objects.count()} events" in page
    assert "Page 1 of 2" in page
    filtered = console.get("/admin/audit", {"user": "alice", "outcome": "failure"}).content.decode()
    assert "1 event<" in filtered and "credentials" in filtered
    by_ip = console.get("/admin/audit", {"ip": "198.51.100.1"}).content.decode()
    assert "1 event<" in by_ip
    ignored = console.get("/admin/audit", {"ip": "not-an-ip", "since": "garbage"})
    assert ignored.status_code == 200


def test_console_page_admin_only(user: User) -> None:
    """Normal users get 403, anonymous users are sent to sign in."""
    assert Client().get("/admin/audit")["Location"].startswith("/login")
    client = Client()
    sign_in(client, user.username)
    assert client.get("/admin/audit").status_code == 403


def test_retention_prunes_old_events(user: User, settings: object) -> None:
    """Events older than the retention period are deleted by housekeeping."""
    old = record("login", Outcome.SUCCESS, origin=CLI, user=user)
    AuthEvent.objects.filter(pk=old.pk).update(created_at=clock.now() - timedelta(days=91))
    recent = record("login", Outcome.SUCCESS, origin=CLI, user=user)
    removed = prune()
    assert removed["auth_events"] == 1
    assert list(AuthEvent.objects.filter(kind="login").values_list("pk", flat=True)) == [recent.pk]


def test_audit_tail(user: User, capsys: pytest.CaptureFixture[str]) -> None:
    """`twostep audit tail` prints the latest events, oldest first."""
    record("login.password", Outcome.FAILURE, origin=CLI, user=user, reason="credentials")
    record("login", Outcome.SUCCESS, origin=CLI, user=user)
    call_command("audit", "tail", "-n", "2")
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert "reason=credentials" in lines[0] and "login " in lines[1]
    call_command("audit", "prune")
    assert "deleted" in capsys.readouterr().out


def test_audit_tail_escapes_what_strangers_typed(user: User, capsys: pytest.CaptureFixture[str]) -> None:
    """A username typed at the password step cannot forge a line or send escape codes to the terminal (FUZZ-07)."""
    forged = "nobody\n2030-01-01 00:00:00  success  login  root  127.0.0.1\x1b[2K"
    response = Client().post("/login", {"username": forged, "password": "x" * 12})
    assert response.status_code == 200
    call_command("audit", "tail", "-n", "1")
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "\x1b" not in out
    # Not even escaped: a text no account could be named is not written down at all.
    assert "2030-01-01" not in out and "(not a username)" in out


@pytest.mark.parametrize("password", ["Tr0ub4dor&3 horse", "Summer2024", "hunter2"])
def test_a_password_typed_as_the_username_is_not_logged(user: User, password: str) -> None:
    """A password typed in the username field stays out of the auth log, whether or not it could be a
    username; tries at one unknown name share a label, so that guessing still shows."""
    for _ in range(2):
        Client().post("/login", {"username": password, "password": "x" * 12})
    Client().post("/login", {"username": "mallory", "password": "x" * 12})
    typed = list(AuthEvent.objects.filter(kind="login.password").order_by("pk").values_list("username", flat=True))
    assert typed[0] == typed[1] != typed[2]
    assert all(name.startswith(("(not a username)", "(unknown name #")) for name in typed)
    stored = str(list(AuthEvent.objects.values_list("detail", "reason", "username")))
    assert password.lower() not in stored.lower() and "mallory" not in stored


def test_a_name_that_is_an_account_is_logged_as_typed(user: User) -> None:
    """A failed or throttled try at a real account names it: that account is the one under attack."""
    for _ in range(30):
        Client().post("/login", {"username": "Alice", "password": "x" * 12})
    events = AuthEvent.objects.filter(kind="login.password")
    assert {(e.username, e.user_id) for e in events} == {("Alice", user.pk)}
    assert set(events.values_list("reason", flat=True)) == {"credentials", "throttled"}
