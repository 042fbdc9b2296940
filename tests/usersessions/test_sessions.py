"""The user's list of sessions on the Security page."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from tests.api.conftest import token_for
from tests.conftest import sign_in
from twostep.accounts.models import User
from twostep.audit.models import AuthEvent
from twostep.usersessions.models import UserSession
from twostep.usersessions.services import current_handle, describe_agent

pytestmark = pytest.mark.django_db

__all__ = ["token_for"]

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile/15E148 Safari/604.1"


def test_security_page_lists_sessions_without_keys(user: User) -> None:
    """Each session shows device and IP; no session key appears in the page (SES-11)."""
    laptop = Client(HTTP_USER_AGENT=FIREFOX, REMOTE_ADDR="192.0.2.1")
    phone = Client(HTTP_USER_AGENT=IPHONE, REMOTE_ADDR="192.0.2.2")
    sign_in(laptop, user.username)
    sign_in(phone, user.username)
    page = laptop.get("/account/security").content.decode()
    assert "Firefox on Linux" in page and "Safari on iPhone" in page
    assert "192.0.2.2" in page and "this browser" in page
    cookies = [c.cookies[settings.SESSION_COOKIE_NAME].value for c in (laptop, phone)]
    for key in [*UserSession.objects.values_list("session_key", flat=True), *cookies]:
        assert key not in page


def test_end_one_and_all_other_sessions(user: User) -> None:
    """A user signs out another session, then every other one; their own stays (SES-11)."""
    clients = [Client(HTTP_USER_AGENT=FIREFOX) for _ in range(3)]
    for client in clients:
        sign_in(client, user.username)
    keys = [c.cookies[settings.SESSION_COOKIE_NAME].value for c in clients]
    me = clients[0]
    assert me.post("/account/sessions/end", {"session": current_handle(keys[1])}).status_code == 302
    assert clients[1].get("/account").status_code == 302
    assert clients[2].get("/account").status_code == 200
    me.post("/account/sessions/end-others")
    assert clients[2].get("/account").status_code == 302
    assert me.get("/account").status_code == 200


def test_table_holds_no_usable_session_key(user: User) -> None:
    """Whoever reads the sessions table (a backup, a replica) cannot sign in with what is in it."""
    browser = Client()
    sign_in(browser, user.username)
    cookie = browser.cookies[settings.SESSION_COOKIE_NAME].value
    rows = list(UserSession.objects.values_list("session_key", "session_data"))
    assert rows and all(cookie not in name and cookie not in data for name, data in rows)
    for name, _ in rows:
        thief = Client()
        thief.cookies[settings.SESSION_COOKIE_NAME] = name
        assert thief.get("/account").status_code == 302
    assert browser.get("/account").status_code == 200


def test_cannot_end_someone_elses_session(user: User, make_user: object) -> None:
    """A handle of another user's session does nothing (IDOR)."""
    other = make_user("bob")  # type: ignore[operator]
    victim = Client()
    sign_in(victim, other.username)
    attacker = Client()
    sign_in(attacker, user.username)
    handle = current_handle(victim.cookies[settings.SESSION_COOKIE_NAME].value)
    attacker.post("/account/sessions/end", {"session": handle})
    assert victim.get("/account").status_code == 200


@pytest.mark.parametrize(
    ("agent", "expected"),
    [(FIREFOX, "Firefox on Linux"), (IPHONE, "Safari on iPhone"), ("", "Unknown device"), ("curl/8.0", "curl/8.0")],
)
def test_describe_agent(agent: str, expected: str) -> None:
    """User agents become short readable names."""
    assert describe_agent(agent) == expected


def test_security_page_lists_only_ones_own_sessions(user: User, make_user: object) -> None:
    """Another user's sessions (device, address, handle) never appear on someone's Security page."""
    other = make_user("bob")  # type: ignore[operator]
    stranger = Client(HTTP_USER_AGENT=IPHONE, REMOTE_ADDR="198.51.100.7")
    sign_in(stranger, other.username)
    me = Client(HTTP_USER_AGENT=FIREFOX, REMOTE_ADDR="192.0.2.1")
    sign_in(me, user.username)
    page = me.get("/account/security").content.decode()
    assert "Firefox on Linux" in page
    assert "Safari on iPhone" not in page and "198.51.100.7" not in page
    assert current_handle(stranger.cookies[settings.SESSION_COOKIE_NAME].value) not in page


def test_an_administrator_signs_a_user_or_everyone_out(
    user: User, admin: User, token_for: Callable[[User], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`twostep users sign-out NAME` ends that user's sessions and API tokens only; `--everyone`, all of them
    (after the break-glass switch, sessions opened with the password alone must not last); both audited."""
    browsers = {who: Client() for who in (user, admin)}
    for who, browser in browsers.items():
        sign_in(browser, who.username)
        assert browser.get("/account").status_code == 200
    token = token_for(user)
    call_command("users", "sign-out", user.username)
    assert "Signed out alice: 1 session ended" in capsys.readouterr().out
    assert browsers[user].get("/account").status_code == 302
    assert Client().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
    assert browsers[admin].get("/account").status_code == 200
    call_command("users", "sign-out", "--everyone")
    assert browsers[admin].get("/account").status_code == 302
    assert not UserSession.objects.exists()
    assert AuthEvent.objects.filter(kind="session.ended_by_admin", user=user).count() == 2
    for wrong in ([], [user.username, "--everyone"]):
        with pytest.raises(CommandError, match="name one user, or pass --everyone"):
            call_command("users", "sign-out", *wrong)
