"""The password step: generic errors, session rotation, CSRF, cookies, sign-out."""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from tests.conftest import PASSWORD, headers_and_cookies, sign_in
from tests.hashers import FastArgon2PasswordHasher
from twostep.accounts import services, throttle
from twostep.accounts.models import SignInThrottle, User
from twostep.audit.models import AuthEvent
from twostep.audit.services import CLI
from twostep.core import clock
from twostep.usersessions.backend import stored_key
from twostep.usersessions.models import UserSession

pytestmark = pytest.mark.django_db


def failure_body(client: Client, username: str, password: str) -> tuple[int, bytes]:
    response = client.post("/login", {"username": username, "password": password})
    body = response.content
    token = response.context["csrf_token"]
    return response.status_code, body.replace(str(token).encode(), b"")


def test_failures_are_indistinguishable(make_user: Callable[..., User]) -> None:
    """Unknown user, wrong password and inactive account give the same status and page (ENUM-01)."""
    make_user("known")
    inactive = make_user("sleeper")
    services.set_active(inactive, False, origin=CLI)
    results = {
        name: failure_body(Client(), username, password)
        for name, (username, password) in {
            "unknown": ("nobody", PASSWORD),
            "wrong": ("known", "wrong password here"),
            "inactive": ("sleeper", PASSWORD),
        }.items()
    }
    statuses = {status for status, _ in results.values()}
    assert statuses == {200}
    # Nor the headers or cookies: a cookie set only for real accounts would tell them apart.
    answers = [
        headers_and_cookies(Client().post("/login", {"username": name, "password": password}))
        for name, password in (("nobody", PASSWORD), ("known", "wrong password here"), ("sleeper", PASSWORD))
    ]
    assert answers[0] == answers[1] == answers[2]
    pages = {
        body.replace(b"nobody", b"X").replace(b"known", b"X").replace(b"sleeper", b"X") for _, body in results.values()
    }
    assert len(pages) == 1
    assert b"Your username or password is incorrect." in pages.pop()
    reasons = set(AuthEvent.objects.filter(kind="login.password", outcome="failure").values_list("reason", flat=True))
    assert reasons == {"unknown_user", "credentials", "inactive_user"}


def test_unknown_user_takes_as_long_as_wrong_password(make_user: Callable[..., User]) -> None:
    """The unknown-user path runs the password hasher too: medians within a wide noise band (ENUM-03)."""
    make_user("timed")
    client = Client()

    def elapsed(username: str) -> float:
        SignInThrottle.objects.all().delete()  # measure the hashing path, not the throttle
        start = time.perf_counter()
        client.post("/login", {"username": username, "password": "wrong password here"})
        return time.perf_counter() - start

    for _ in range(5):  # warm-up
        elapsed("timed"), elapsed("nobody-at-all")
    # Interleaved, so that other work on the machine slows both paths alike.
    samples = [(elapsed("timed"), elapsed("nobody-at-all")) for _ in range(40)]
    known = statistics.median(k for k, _ in samples)
    unknown = statistics.median(u for _, u in samples)
    # A short-circuit for unknown users would be several times faster; noise is well within 2x.
    assert 0.5 < unknown / known < 2.0


def test_unknown_user_runs_the_hasher_as_often_as_a_wrong_password(
    make_user: Callable[..., User], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counted, not timed: an unknown name costs the same argon2 work as a known one (ENUM-03).

    The timing test above cannot see a skipped hash with the test suite's cheap
    hasher parameters; the number of argon2 computations can.
    """
    make_user("counted")
    calls: list[str] = []
    for name in ("encode", "verify"):
        original = getattr(FastArgon2PasswordHasher, name)

        def counting(self: FastArgon2PasswordHasher, *args: str, _original: Any = original, _name: str = name) -> Any:
            calls.append(_name)
            return _original(self, *args)

        monkeypatch.setattr(FastArgon2PasswordHasher, name, counting)

    def argon2_work(username: str) -> int:
        calls.clear()
        Client().post("/login", {"username": username, "password": "wrong password here"})
        return len(calls)

    assert argon2_work("counted") == argon2_work("nobody-at-all") >= 1


def test_planted_session_does_not_reach_the_second_step(user: User, two_factor_on: None) -> None:
    """A session key fixed before the password step is replaced there, not only at the end (SES-01, SES-02)."""
    from tests.mfa.recovery_codes.helpers import enrol_totp

    enrol_totp(user)
    victim = Client()
    session = victim.session
    session["planted"] = True
    session.save()
    planted = victim.cookies[settings.SESSION_COOKIE_NAME].value
    assert sign_in(victim, user.username)["Location"] == "/login/verify"
    assert victim.cookies[settings.SESSION_COOKIE_NAME].value != planted
    attacker = Client()
    attacker.cookies[settings.SESSION_COOKIE_NAME] = planted
    response = attacker.get("/login/verify")
    assert response.status_code == 302 and response["Location"].startswith("/login")


def test_session_id_rotates_at_sign_in(user: User) -> None:
    """The session cookie before sign-in is not the one after it (SES-01, SES-02)."""
    client = Client()
    client.get("/login")
    session = client.session
    session["planted"] = True
    session.save()
    before = client.cookies[settings.SESSION_COOKIE_NAME].value
    sign_in(client, user.username)
    after = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert before != after
    assert not UserSession.objects.filter(session_key=stored_key(before)).exists()
    assert UserSession.objects.get(session_key=stored_key(after)).user_id == user.pk


def test_session_records_ip_and_agent(user: User) -> None:
    """The session row knows its user, IP and browser, for the session list."""
    client = Client(HTTP_USER_AGENT="TestBrowser/1.0", REMOTE_ADDR="198.51.100.23")
    sign_in(client, user.username)
    row = UserSession.objects.get(user=user)
    assert (row.ip, row.user_agent) == ("198.51.100.23", "TestBrowser/1.0")
    assert row.created_at is not None and row.last_seen is not None


def test_csrf_required_on_login_and_logout(user: User) -> None:
    """Forms without the CSRF token are refused (AZ-03, AZ-05)."""
    client = Client(enforce_csrf_checks=True)
    response = client.post("/login", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 403
    assert b"could not be verified" in response.content
    assert "_auth_user_id" not in client.session

    client.get("/login")
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    response = client.post("/login", {"username": user.username, "password": PASSWORD, "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert client.post("/logout").status_code == 403
    assert client.get("/account").status_code == 200


def test_cross_origin_post_refused(user: User) -> None:
    """A POST whose Origin is another site is refused even with a valid token."""
    client = Client(enforce_csrf_checks=True)
    client.get("/login")
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    response = client.post(
        "/login",
        {"username": user.username, "password": PASSWORD, "csrfmiddlewaretoken": token},
        HTTP_ORIGIN="https://evil.example",
    )
    assert response.status_code == 403


def test_logout_is_post_only_and_server_side(user: User) -> None:
    """GET /logout changes nothing; POST deletes the session so the old cookie is dead (SES-08)."""
    client = Client()
    sign_in(client, user.username)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert client.get("/logout").status_code == 200
    assert client.get("/account").status_code == 200
    client.post("/logout")
    assert not UserSession.objects.filter(session_key=stored_key(cookie)).exists()
    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = cookie
    assert replay.get("/account").status_code == 302


def test_cookie_and_security_headers(user: User) -> None:
    """Session cookie is HttpOnly and SameSite=Lax; pages are not cached or framed; CSP has no inline script (SES-03, AZ-13, FB-13)."""
    client = Client()
    response = sign_in(client, user.username)
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    page = client.get("/account")
    assert page["Cache-Control"] == "no-store"
    assert page["X-Frame-Options"] == "DENY"
    assert page["X-Content-Type-Options"] == "nosniff"
    csp = page["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_https_deployment_uses_host_prefixed_secure_cookies(tmp_path: object) -> None:
    """With an https public URL the cookies are __Host- prefixed and Secure, host-only on the whole site, and the
    proxy, not twostep, redirects to https (checked in a fresh process) (SES-03, SEC-12)."""
    import subprocess
    import sys

    names = {
        "SESSION_COOKIE_NAME": "__Host-twostep_session",
        "SESSION_COOKIE_SECURE": "True",
        "SESSION_COOKIE_HTTPONLY": "True",
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_PATH": "/",
        "SESSION_COOKIE_DOMAIN": "None",
        "CSRF_COOKIE_NAME": "__Host-twostep_csrf",
        "CSRF_COOKIE_SECURE": "True",
        "CSRF_COOKIE_PATH": "/",
        "CSRF_COOKIE_DOMAIN": "None",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_SSL_REDIRECT": "False",
    }
    code = "import django;from django.conf import settings as s;django.setup();" + ";".join(
        f"print(s.{name})" for name in names
    )
    env = {
        "TWOSTEP_DATA_DIR": str(tmp_path),
        "TWOSTEP_SERVER__PUBLIC_URL": "https://login.example.com",
        "DJANGO_SETTINGS_MODULE": "twostep.settings",
        "PATH": "/usr/bin:/bin",
    }
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert dict(zip(names, out.splitlines(), strict=True)) == names


def test_next_only_goes_to_this_site(user: User) -> None:
    """After sign-in, ?next= outside the site is ignored (no open redirect)."""
    for target in ("https://evil.example/x", "//evil.example", "javascript:alert(1)"):
        client = Client()
        response = client.post(f"/login?next={target}", {"username": user.username, "password": PASSWORD})
        assert response["Location"] == "/account"
    client = Client()
    response = client.post("/login?next=/account/security", {"username": user.username, "password": PASSWORD})
    assert response["Location"] == "/account/security"


def test_admin_set_password_must_be_changed(make_user: Callable[..., User]) -> None:
    """A password an admin set sends the user to choose their own before anything else."""
    user = make_user("newbie", must_change_password=True)
    client = Client()
    assert sign_in(client, user.username)["Location"] == "/account/password"
    assert client.get("/account")["Location"] == "/account/password"
    nav = client.get("/account/password").content.decode().split('<nav aria-label="Main">')[1].split("</nav>")[0]
    assert 'href="/account"' not in nav and "Sign out" in nav  # the other links would lead back here
    # The password the administrator chose (and knows) cannot be kept.
    same = client.post(
        "/account/password", {"current_password": PASSWORD, "new_password": PASSWORD, "repeat_password": PASSWORD}
    )
    assert same.status_code == 200 and "Choose a password different from your current one." in same.content.decode()
    assert User.objects.get(pk=user.pk).must_change_password
    response = client.post(
        "/account/password",
        {"current_password": PASSWORD, "new_password": "my very own secret", "repeat_password": "my very own secret"},
    )
    assert response["Location"] == "/account"
    assert client.get("/account").status_code == 200


def test_forced_password_change_goes_on_to_where_the_sign_in_was_going(make_user: Callable[..., User]) -> None:
    """A deep link (here one behind forward-auth would be the same) survives the forced change; a later change does not reuse it."""
    user = make_user("newbie", must_change_password=True)
    client = Client()
    signed = client.post("/login?next=/account/sessions%3Ftab%3Dall", {"username": user.username, "password": PASSWORD})
    assert signed["Location"] == "/account/password"
    change = {
        "current_password": PASSWORD,
        "new_password": "my very own secret",
        "repeat_password": "my very own secret",
    }
    assert client.post("/account/password", change)["Location"] == "/account/sessions?tab=all"
    again = {
        "current_password": "my very own secret",
        "new_password": "another one of mine",
        "repeat_password": "another one of mine",
    }
    assert client.post("/account/password", again)["Location"] == "/account"


def test_idle_timeout_ends_session(user: User, frozen_clock: object) -> None:
    """A session idle for more than an hour is signed out on its next request (SES-07); the sign-in page it
    leads to says why, and that a form sent then was not saved, once."""
    client = Client()
    sign_in(client, user.username)
    assert client.get("/account").status_code == 200
    frozen_clock.advance(3601)  # type: ignore[attr-defined]
    response = client.post("/account/password", {"current_password": "x"})
    assert response.status_code == 302 and response["Location"].startswith("/login")
    page = client.get(response["Location"]).content.decode()
    assert "You were signed out after 1 hour without activity." in page and "was not saved" in page
    assert "signed out after" not in client.get("/login").content.decode()


def test_absolute_timeout_despite_activity(user: User, frozen_clock: object) -> None:
    """Even an active session ends 24 hours after sign-in."""
    client = Client()
    sign_in(client, user.username)
    start = frozen_clock.value  # type: ignore[attr-defined]
    for _ in range(25):
        frozen_clock.advance(3500)  # type: ignore[attr-defined]
        response = client.get("/account")
        if response.status_code == 302:
            break
    assert response.status_code == 302
    assert frozen_clock.value - start <= 86400 + 3500  # type: ignore[attr-defined]
    assert "Sessions last at most 24 hours" in client.get(response["Location"]).content.decode()


def test_after_a_wrong_password_the_password_field_has_the_focus(user: User) -> None:
    """The username stays typed; the password, which is what to type again, is focused."""
    page = Client().post("/login", {"username": user.username, "password": "not the password"}).content.decode()
    password = re.search(r'<input type="password"[^>]*>', page)
    username = re.search(r'<input type="text" name="username"[^>]*>', page)
    assert password and " autofocus" in password.group(0)
    assert 'aria-describedby="login-error"' in password.group(0) and 'aria-invalid="true"' in password.group(0)
    assert username and " autofocus" not in username.group(0) and f'value="{user.username}"' in username.group(0)


def test_password_failures_throttled_per_name_known_or_not(make_user: Callable[..., User]) -> None:
    """After 5 wrong passwords the name must wait, identically for real and unknown names (BF-14)."""
    make_user("target")
    for name in ("target", "no-such-user"):
        client = Client(REMOTE_ADDR="203.0.113.10")
        statuses = [
            client.post("/login", {"username": name, "password": "wrong password here"}).status_code for _ in range(6)
        ]
        assert statuses == [200] * 5 + [429], name
    # Even the right password waits now, without being checked.
    response = Client(REMOTE_ADDR="203.0.113.11").post("/login", {"username": "target", "password": PASSWORD})
    assert response.status_code == 429
    assert AuthEvent.objects.filter(reason="throttled", username="target").exists()


def test_password_throttle_does_not_touch_the_second_factor(make_user: Callable[..., User]) -> None:
    """Wrong passwords delay the password step but never lock the second step (BF-11)."""
    victim = make_user("victim")
    for _ in range(8):
        Client().post("/login", {"username": "victim", "password": "wrong password here"})
    victim.refresh_from_db()
    assert victim.second_step_failures == 0 and victim.second_step_locked_at is None


def test_ip_throttle_ignores_spoofed_forwarded_for(make_user: Callable[..., User]) -> None:
    """Rotating X-Forwarded-For does not escape the per-IP limit when no proxy is trusted (BF-08)."""
    client = Client(REMOTE_ADDR="198.51.100.99")
    statuses = [
        client.post(
            "/login",
            {"username": f"name{i}", "password": "wrong password here"},
            HTTP_X_FORWARDED_FOR=f"10.1.{i}.1",
        ).status_code
        for i in range(32)
    ]
    assert statuses[:30] == [200] * 30 and statuses[30:] == [429, 429]


def test_success_clears_the_name_counter(make_user: Callable[..., User]) -> None:
    """A correct password resets the per-name count: five more typos are again let through undelayed."""
    make_user("forgetful")
    for _ in range(4):
        Client(REMOTE_ADDR="203.0.113.12").post("/login", {"username": "forgetful", "password": "wrong password here"})
    assert SignInThrottle.objects.filter(key=throttle.account_key("forgetful"), failures=4).exists()
    assert sign_in(Client(REMOTE_ADDR="203.0.113.12"), "forgetful").status_code == 302
    assert not SignInThrottle.objects.filter(key=throttle.account_key("forgetful"), failures__gt=0).exists()
    statuses = [
        # Another address each time: only the name's count is at stake.
        Client(REMOTE_ADDR=f"198.51.100.{i}")
        .post("/login", {"username": "forgetful", "password": "wrong password here"})
        .status_code
        for i in range(6)
    ]
    assert statuses == [200] * 5 + [429]


@pytest.mark.parametrize(("wait", "said"), [(1, "1 second"), (59, "59 seconds"), (60, "1 minute"), (61, "2 minutes")])
def test_a_throttled_try_is_told_how_long_to_wait(
    make_user: Callable[..., User], frozen_clock: clock.FrozenClock, wait: int, said: str
) -> None:
    """The page and the API say the wait that ``Retry-After`` gives, in words, not "a few minutes" whatever it is."""
    make_user("hasty")
    for _ in range(5):
        Client().post("/login", {"username": "hasty", "password": "wrong password here"})
    blocked_until = SignInThrottle.objects.get(key=throttle.account_key("hasty")).blocked_until
    assert blocked_until is not None
    frozen_clock.advance((blocked_until - clock.now()).total_seconds() - wait)
    message = f"Too many sign-in attempts. Try again in {said}."
    page = Client().post("/login", {"username": "hasty", "password": "wrong password here"})
    assert page.status_code == 429 and message in page.content.decode()
    api = Client().post(
        "/api/v1/auth/login", {"username": "hasty", "password": "wrong password here"}, content_type="application/json"
    )
    assert api.status_code == 429 and int(api["Retry-After"]) == wait
    assert api.json()["error"]["message"] == message


def test_reauthentication_is_throttled(user: User) -> None:
    """Guessing the password on the re-authentication page hits the same limit as sign-in."""
    client = Client(REMOTE_ADDR="203.0.113.40")
    sign_in(client, user.username)
    statuses = [
        client.post("/account/reauthenticate", {"password": f"guess number {i}", "next": "/account"}).status_code
        for i in range(6)
    ]
    assert statuses == [200] * 5 + [429]
    response = client.post("/account/reauthenticate", {"password": PASSWORD, "next": "/account"})
    assert response.status_code == 429


def test_change_password_form_is_throttled_too(user: User) -> None:
    """The current-password field of the change form counts against the same limit."""
    client = Client(REMOTE_ADDR="203.0.113.41")
    sign_in(client, user.username)
    for i in range(5):
        client.post(
            "/account/password",
            {"current_password": f"guess {i} nope", "new_password": "x" * 20, "repeat_password": "x" * 20},
        )
    response = client.post(
        "/account/password",
        {
            "current_password": PASSWORD,
            "new_password": "a fresh long password",
            "repeat_password": "a fresh long password",
        },
    )
    assert b"Too many sign-in attempts" in response.content
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_session_cookie_attributes_on_the_wire(user: User) -> None:
    """The session's Set-Cookie is HttpOnly, SameSite=Lax, Path=/, without Domain (over https see
    test_https_deployment_uses_host_prefixed_secure_cookies) (SES-03)."""
    response = sign_in(Client(), user.username)
    header = response.cookies[settings.SESSION_COOKIE_NAME].output(header="").strip()
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    assert {"httponly", "path", "samesite"} <= attributes and "domain" not in attributes, header
    assert "Path=/;" in header + ";" and "SameSite=Lax" in header


def test_no_cross_origin_reads_are_allowed(user: User) -> None:
    """No page or API answer, preflight included, grants another origin access (AZ-11)."""
    client = Client()
    evil = {"HTTP_ORIGIN": "https://evil.example", "HTTP_ACCESS_CONTROL_REQUEST_METHOD": "POST"}
    answers = [
        client.options("/login", **evil),
        client.options("/api/v1/auth/login", **evil),
        client.post("/login", {"username": user.username, "password": PASSWORD}, **evil),
        client.get("/account", **evil),
        client.post(
            "/api/v1/auth/login",
            {"username": user.username, "password": PASSWORD},
            content_type="application/json",
            **evil,
        ),
    ]
    assert answers[-1].status_code == 200  # the API answered; the browser must still not let evil read it
    for response in answers:
        granted = [name for name in response.headers if name.lower().startswith("access-control-allow")]
        assert granted == [], (response.request["PATH_INFO"], granted)


@pytest.mark.parametrize(
    "name", ["alic_", "al%", "%", "_____", "' OR 1=1 --", "alice' --", "alice\\", "*", "{0}", "%s"]
)
def test_wildcards_and_quotes_in_the_name_match_nobody(user: User, name: str) -> None:
    """SQL wildcards, quotes and format strings typed as the name find no account, even with its password (FUZZ-07)."""
    client = Client()
    response = client.post("/login", {"username": name, "password": PASSWORD})
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    assert AuthEvent.objects.get(kind="login.password").reason == "unknown_user"


def test_markup_typed_as_the_name_is_escaped(user: User) -> None:
    """A name carrying markup or a line break comes back escaped on the sign-in form (FUZZ-07)."""
    typed = '<script>alert(1)</script>"\r\nSet-Cookie: x=1'
    page = Client().post("/login", {"username": typed, "password": "wrong"}).content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_session_id_in_the_url_is_ignored(user: User) -> None:
    """A session key passed in the query string is neither read nor promoted (SES-02)."""
    signed_in = Client()
    sign_in(signed_in, user.username)
    key = signed_in.cookies[settings.SESSION_COOKIE_NAME].value
    stranger = Client()
    for query in [f"?{settings.SESSION_COOKIE_NAME}={key}", f"?sessionid={key}", f"?session={key}"]:
        assert stranger.get("/account" + query).status_code == 302, query
    stranger.post(f"/login?{settings.SESSION_COOKIE_NAME}={key}", {"username": "x", "password": "y"})
    cookie = stranger.cookies.get(settings.SESSION_COOKIE_NAME)
    assert cookie is None or cookie.value != key


def test_password_reset_does_not_skip_the_second_step(user: User, admin: User, two_factor_on: None) -> None:
    """After an administrator sets a new password, signing in with it still asks for the second step first (FB-05)."""
    from tests.mfa.recovery_codes.helpers import enrol_totp

    enrol_totp(user)
    services.set_password(user, "a brand new passphrase", origin=CLI, actor=admin, must_change=True)
    client = Client()
    response = sign_in(client, user.username, "a brand new passphrase")
    assert response.status_code == 302 and response["Location"] == "/login/verify"
    for path in ("/account", "/account/password", "/account/security"):
        assert client.get(path)["Location"].startswith("/login"), path
    assert "_auth_user_id" not in client.session


def test_a_login_form_left_open_in_another_tab_sends_a_signed_in_browser_on(user: User) -> None:
    """Signing in renews the CSRF token, so a second tab's sign-in form is refused; a browser that is
    signed in is sent to its account instead of "Request refused", and the form is not processed."""
    browser = Client(enforce_csrf_checks=True)
    browser.get("/login")
    old_token = browser.cookies[settings.CSRF_COOKIE_NAME].value
    form = {"username": user.username, "password": PASSWORD, "csrfmiddlewaretoken": old_token}
    assert browser.post("/login", form).status_code == 302
    signed_in_as = browser.session["_auth_user_id"]

    second_tab = browser.post("/login", {**form, "csrfmiddlewaretoken": "x" * 64})
    assert second_tab.status_code == 302 and second_tab["Location"] == "/account"
    assert browser.session["_auth_user_id"] == signed_in_as

    stranger = Client(enforce_csrf_checks=True).post("/login", {**form, "csrfmiddlewaretoken": "x" * 64})
    assert stranger.status_code == 403
    assert "nothing\nin it was saved" in stranger.content.decode() and 'href="/login"' in stranger.content.decode()


def test_a_stale_sign_out_asks_again_and_ends_nothing(user: User) -> None:
    """A "Sign out" from a page opened before the last sign-in carries an old CSRF token: refused (403), with the
    sign-out page's own form, which works; the browser stays signed in until it confirms there."""
    browser = Client(enforce_csrf_checks=True)
    browser.get("/login")
    token = browser.cookies[settings.CSRF_COOKIE_NAME].value
    browser.post("/login", {"username": user.username, "password": PASSWORD, "csrfmiddlewaretoken": token})
    stale = browser.post("/logout", {"csrfmiddlewaretoken": "x" * 64})
    assert stale.status_code == 403 and "you are still signed in" in stale.content.decode()
    assert "_auth_user_id" in browser.session
    page = stale.content.decode()
    fresh = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert fresh is not None
    assert browser.post("/logout", {"csrfmiddlewaretoken": fresh.group(1)}).status_code == 302
    assert "_auth_user_id" not in browser.session


def test_password_change_shows_the_rules_first_and_focuses_the_field_in_error(client: Client, user: User) -> None:
    """The rules are under the new password's label before any try; after a refusal, that field has the focus."""
    sign_in(client, user.username)
    blank = client.get("/account/password").content.decode()
    first = re.findall(r"<input[^>]*\bautofocus\b[^>]*>", blank)
    assert len(first) == 1 and 'id="id_current_password"' in first[0], first
    assert re.search(r'<div class="helptext" id="id_new_password_helptext">[^<]*at least 8 characters', blank)
    assert 'aria-describedby="id_new_password_helptext"' in blank
    refused = client.post(
        "/account/password", {"current_password": PASSWORD, "new_password": PASSWORD, "repeat_password": PASSWORD}
    ).content.decode()
    focused = re.findall(r"<input[^>]*\bautofocus\b[^>]*>", refused)
    assert len(focused) == 1 and 'id="id_new_password"' in focused[0], focused
    # The rules stay, still tied to the field, when a password was refused: exactly when they are needed.
    assert re.search(r'<div class="helptext" id="id_new_password_helptext">[^<]*at least 8 characters', refused)
    assert 'aria-describedby="id_new_password_helptext id_new_password_error"' in refused
    differ = client.post(
        "/account/password",
        {"current_password": PASSWORD, "new_password": "my very own secret", "repeat_password": "my very own"},
    ).content.decode()
    focused = re.findall(r"<input[^>]*\bautofocus\b[^>]*>", differ)
    assert len(focused) == 1 and 'id="id_repeat_password"' in focused[0], focused


def test_the_password_change_names_the_sessions_it_ended(client: Client, user: User) -> None:
    """ "Your other sessions were signed out" only when there were some: not at a first, forced change."""
    change = {
        "current_password": PASSWORD,
        "new_password": "my very own secret",
        "repeat_password": "my very own secret",
    }
    sign_in(client, user.username)
    alone = client.post("/account/password", change, follow=True)
    said = " ".join(str(message) for message in alone.context["messages"])
    assert "Your password is changed." in said and "signed out" not in said
    other = Client()
    sign_in(other, user.username, "my very own secret")
    again = {
        "current_password": "my very own secret",
        "new_password": "another of mine",
        "repeat_password": "another of mine",
    }
    with_another = client.post("/account/password", again, follow=True)
    said = " ".join(str(message) for message in with_another.context["messages"])
    assert "Your 1 other session was signed out." in said
    assert other.get("/account").status_code == 302


@pytest.mark.parametrize(
    "fields", [{}, {"username": "alice"}, {"password": PASSWORD}, {"username": " ", "password": "x"}]
)
def test_an_empty_field_is_named_not_called_wrong(user: User, fields: dict[str, str]) -> None:
    """Nothing to check is not a wrong password: the page says what is missing, and nothing is counted."""
    response = Client().post("/login", fields)
    page = response.content.decode()
    assert response.status_code == 200 and "Enter your username and your password." in page
    assert "incorrect" not in page
    assert not AuthEvent.objects.filter(kind="login.password").exists()


def test_every_problem_of_a_password_change_is_said_at_once(user: User) -> None:
    """A wrong current password, a new one that breaks the rules and a repeat that differs: all three in one
    answer, each on its field; nothing changes."""
    client = Client()
    sign_in(client, user.username)
    page = client.post(
        "/account/password", {"current_password": "not it at all", "new_password": "short", "repeat_password": "other"}
    ).content.decode()
    for field in ("current_password", "new_password", "repeat_password"):
        assert f'id="id_{field}_error"' in page, field
    assert "That is not your current password." in page and "The two new passwords differ." in page
    assert "too short" in page
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_a_stale_form_leads_back_to_its_page_on_this_site_only(user: User) -> None:
    """A refused form of this site links back to its page (which opens with a fresh token); one posted from
    another site (its Referer elsewhere) gets no such link."""
    browser = Client(enforce_csrf_checks=True)
    browser.get("/login")
    token = browser.cookies[settings.CSRF_COOKIE_NAME].value
    browser.post("/login", {"username": user.username, "password": PASSWORD, "csrfmiddlewaretoken": token})
    stale = browser.post(
        "/account/security/totp/remove",
        {"csrfmiddlewaretoken": "x" * 64},
        HTTP_REFERER="http://testserver/account/security",
    )
    assert stale.status_code == 403 and '<a href="/account/security">Back to the form</a>' in stale.content.decode()
    for referer in ("https://evil.example/account/security", "//evil.example/admin/users", ""):
        forged = browser.post("/account/security/totp/remove", {"csrfmiddlewaretoken": "x" * 64}, HTTP_REFERER=referer)
        assert forged.status_code == 403 and "Back to the form" not in forged.content.decode(), referer
