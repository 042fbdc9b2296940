"""The second step with an authenticator app: replay, races, expiry, binding, limits."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from functools import partial

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client, override_settings

from tests.authenticator_app import a_wrong_code
from tests.concurrency import at_once
from tests.conftest import PASSWORD, sign_in
from tests.mfa.recovery_codes.helpers import enrol_totp
from twostep.accounts import services
from twostep.accounts.models import User
from twostep.accounts.views import PENDING_KEY
from twostep.audit.models import AuthEvent
from twostep.audit.services import CLI
from twostep.config import load_config
from twostep.core import clock
from twostep.factors import totp
from twostep.mfa import login as second_step
from twostep.mfa.models import Authenticator, PendingLogin
from twostep.mfa.policy import login_authenticators
from twostep.mfa.totp import flows

pytestmark = pytest.mark.django_db
# Tests whose threads race each other need commits: django_db(transaction=True).


def enrol(user: User) -> bytes:
    return enrol_totp(user)


def code_now(key: bytes, offset_steps: int = 0) -> str:
    return totp.totp(key, clock.timestamp() + 30 * offset_steps)


def verify(client: Client, code: str) -> int:
    response = client.post("/login/verify", {"code": code})
    return 1 if response.status_code == 302 and response["Location"] == "/account" else 0


def verify_all_at_once(pendings: list[PendingLogin], code: str) -> list[str]:
    """Submit ``code`` for every pending sign-in at the same moment; ``ok`` or the refusal's reason for each."""

    def attempt(pending: PendingLogin) -> str:
        try:
            second_step.verify(pending, code, CLI)
        except second_step.SecondStepError as exc:
            return exc.reason
        return "ok"

    return at_once([partial(attempt, pending) for pending in pendings])


def fail_sign_ins(user: User, wrong: str, times: int, frozen_clock: clock.FrozenClock) -> None:
    """``times`` sign-ins with the password and a wrong code, each 15 minutes after the last (no delay waits)."""
    for _ in range(times):
        frozen_clock.advance(901)
        client = Client()
        sign_in(client, user.username)
        client.post("/login/verify", {"code": wrong})


@pytest.fixture
def totp_user(user: User, two_factor_on: None) -> tuple[User, bytes]:
    return user, enrol(user)


def test_sequential_replay_refused(totp_user: tuple[User, bytes]) -> None:
    """A code accepted once is refused in a later sign-in within the same step (RR-01)."""
    user, key = totp_user
    code = code_now(key)
    first, second = Client(), Client()
    sign_in(first, user.username)
    assert verify(first, code) == 1
    sign_in(second, user.username)
    assert verify(second, code) == 0


def test_older_step_refused_after_newer(totp_user: tuple[User, bytes]) -> None:
    """After step T+1 was used, a still-in-window code of step T is refused (RR-03)."""
    user, key = totp_user
    first, second = Client(), Client()
    sign_in(first, user.username)
    assert verify(first, code_now(key, +1)) == 1
    sign_in(second, user.username)
    assert verify(second, code_now(key)) == 0


def test_clock_gone_back_refuses_without_counting(
    totp_user: tuple[User, bytes], frozen_clock: clock.FrozenClock
) -> None:
    """A sign-in while the server clock ran an hour ahead; once it is put right, the right codes are refused
    (the step was used) but are not wrong guesses: no failure is counted, so they cannot lock the account (FLT-08)."""
    user, key = totp_user
    frozen_clock.advance(3600)
    ahead = Client()
    sign_in(ahead, user.username)
    assert verify(ahead, code_now(key)) == 1
    frozen_clock.advance(-3600)
    for _ in range(25):
        browser = Client()
        sign_in(browser, user.username)
        assert verify(browser, code_now(key)) == 0
    user.refresh_from_db()
    assert user.second_step_failures == 0 and user.second_step_locked_at is None
    assert AuthEvent.objects.filter(kind="login.second_step", reason="clock_behind_last_use").count() == 25
    wrong = Client()
    sign_in(wrong, user.username)
    assert verify(wrong, a_wrong_code(key)) == 0
    user.refresh_from_db()
    assert user.second_step_failures == 1  # a wrong code still counts


def test_codes_older_than_one_a_fast_clock_accepted_are_not_counted_up_to_the_end(
    totp_user: tuple[User, bytes], frozen_clock: clock.FrozenClock
) -> None:
    """Another instance, 90 seconds fast, accepted a code: on this one the user's right codes are refused until
    real time reaches that step, and none of them counts, including the last steps before it (within the
    window of the accepted one), which used to count as reused codes.  The accepted code itself still counts."""
    user, key = totp_user
    frozen_clock.advance(90)
    fast = Client()
    sign_in(fast, user.username)
    accepted = code_now(key)
    assert verify(fast, accepted) == 1
    frozen_clock.advance(-90)
    for _ in range(3):
        browser = Client()
        sign_in(browser, user.username)
        assert verify(browser, code_now(key)) == 0
        frozen_clock.advance(30)
    user.refresh_from_db()
    assert user.second_step_failures == 0
    replay = Client()
    sign_in(replay, user.username)
    assert verify(replay, accepted) == 0
    user.refresh_from_db()
    assert user.second_step_failures == 1


@pytest.mark.parametrize("variant", [" {c}", "{c} ", "{c}\n", "{c3} {c3b}", "{wide}"])
def test_padded_replay_refused(totp_user: tuple[User, bytes], variant: str) -> None:
    """Variants of an accepted code (spaces, full-width digits) never pass (RR-04, CVE-2025-6014)."""
    user, key = totp_user
    code = code_now(key)
    client = Client()
    sign_in(client, user.username)
    assert verify(client, code) == 1
    other = Client()
    sign_in(other, user.username)
    wide = "".join(chr(0xFF10 + int(d)) for d in code)
    assert verify(other, variant.format(c=code, c3=code[:3], c3b=code[3:], wide=wide)) == 0


def test_padded_code_refused_even_when_fresh(totp_user: tuple[User, bytes]) -> None:
    """A correct but padded code is rejected before verification and spends no step (FUZZ-02)."""
    user, key = totp_user
    client = Client()
    sign_in(client, user.username)
    assert verify(client, " " + code_now(key)) == 0
    assert verify(client, code_now(key)) == 1


def test_enrolment_code_cannot_sign_in(user: User, two_factor_on: None) -> None:
    """The code that confirmed enrolment is spent (RR-05)."""
    provisioning = flows.provisioning_for(user)
    key = totp.decode_secret(provisioning.secret)
    code = code_now(key)
    flows.confirm(user, code, CLI)
    client = Client()
    sign_in(client, user.username)
    assert verify(client, code) == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_submissions_exactly_one_wins(totp_user: tuple[User, bytes]) -> None:
    """Ten sign-ins submitting the same valid code at once: exactly one succeeds (RR-02), on this database."""
    user, key = totp_user
    pendings = [second_step.start(user, login_authenticators(user.pk)[0], CLI)[0] for _ in range(10)]
    code = code_now(key)
    results = verify_all_at_once(pendings, code)
    # Exactly one wins; the others are refused as reused, or throttled once the reuses add up.
    assert results.count("ok") == 1, (connection.vendor, results)
    assert set(results) - {"ok"} <= {"reused_code", "throttled"}, results
    assert "reused_code" in results


def test_pending_login_expires(totp_user: tuple[User, bytes], frozen_clock: clock.FrozenClock) -> None:
    """After 10 minutes the pending sign-in is dead: a correct code sends back to /login (SES-09, FB-06)."""
    user, key = totp_user
    client = Client()
    sign_in(client, user.username)
    frozen_clock.advance(601)
    response = client.post("/login/verify", {"code": code_now(key)})
    assert response.status_code == 302 and response["Location"] == "/login"
    assert client.get("/account").status_code == 302


def test_pending_login_is_bound_to_the_browser(totp_user: tuple[User, bytes]) -> None:
    """Another browser cannot finish someone's pending sign-in; the token is not in the cookie."""
    user, key = totp_user
    owner = Client()
    sign_in(owner, user.username)
    cookie = owner.cookies[settings.SESSION_COOKIE_NAME].value
    token = owner.session["twostep_pending"]
    assert token not in cookie
    stranger = Client()
    response = stranger.post("/login/verify", {"code": code_now(key)})
    assert response["Location"] == "/login"
    assert not PendingLogin.objects.filter(completed_at__isnull=False).exists()


def test_forced_browsing_with_pending_login(totp_user: tuple[User, bytes]) -> None:
    """With only the password done, every signed-in page redirects to /login (FB-01)."""
    user, _ = totp_user
    client = Client()
    sign_in(client, user.username)
    for path in ("/account", "/account/security", "/account/security/totp", "/account/password", "/admin/users"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login"), path


def test_verify_without_pending_login_redirects(client: Client) -> None:
    """/login/verify without a pending sign-in goes back to /login and evaluates nothing."""
    assert client.get("/login/verify")["Location"] == "/login"
    assert client.post("/login/verify", {"code": "123456"})["Location"] == "/login"


def test_the_code_page_of_a_finished_sign_in_leads_to_the_account(totp_user: tuple[User, bytes]) -> None:
    """Back after the code, or a second tab on the code page: the sign-in is spent because it succeeded,
    so the signed-in browser goes to its account, not to "Your sign-in expired"."""
    user, key = totp_user
    client = Client()
    sign_in(client, user.username)
    assert client.post("/login/verify", {"code": code_now(key)})["Location"] == "/account"
    for response in (client.get("/login/verify"), client.post("/login/verify", {"code": code_now(key, 1)})):
        assert response.status_code == 302 and response["Location"] == "/account"
    assert "expired" not in client.get("/account").content.decode()


def test_session_rotates_again_after_second_step(totp_user: tuple[User, bytes]) -> None:
    """The session id after the password differs from the one after the code (SES-01)."""
    user, key = totp_user
    client = Client()
    sign_in(client, user.username)
    middle = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert verify(client, code_now(key)) == 1
    assert client.cookies[settings.SESSION_COOKIE_NAME].value != middle


def test_five_wrong_codes_end_the_sign_in(totp_user: tuple[User, bytes]) -> None:
    """After 5 wrong codes the pending sign-in is dead, even for the right code (BF-01, BF-15)."""
    user, key = totp_user
    client = Client()
    sign_in(client, user.username)
    wrong = a_wrong_code(key)
    for _ in range(4):
        assert client.post("/login/verify", {"code": wrong}).status_code == 200
    assert client.post("/login/verify", {"code": wrong})["Location"] == "/login"
    assert client.post("/login/verify", {"code": code_now(key)})["Location"] == "/login"
    assert client.get("/account").status_code == 302


def test_account_locks_after_twenty_failures_across_sign_ins(
    totp_user: tuple[User, bytes], frozen_clock: clock.FrozenClock
) -> None:
    """Failures count per account across sign-ins; at 20 even the right code fails identically (BF-03, ENUM-04, BF-13)."""
    user, key = totp_user
    wrong = a_wrong_code(key)
    fail_sign_ins(user, wrong, 20, frozen_clock)
    user.refresh_from_db()
    assert user.second_step_failures == 20
    assert user.second_step_locked_at is not None
    frozen_clock.advance(901)
    client = Client()
    sign_in(client, user.username)
    response = client.post("/login/verify", {"code": code_now(key)})
    assert response.status_code == 200 and b"That code didn" in response.content
    assert client.get("/account").status_code == 302
    assert AuthEvent.objects.filter(kind="second_step.locked", user=user).count() == 1


def test_a_locked_second_step_does_not_hold_back_the_password_step(
    totp_user: tuple[User, bytes], frozen_clock: clock.FrozenClock
) -> None:
    """The two counters are apart both ways: a second step locked by wrong codes leaves the password step
    answering at once, from anywhere (BF-11; the other way is in tests/accounts/test_login.py)."""
    user, key = totp_user
    fail_sign_ins(user, a_wrong_code(key), 20, frozen_clock)
    user.refresh_from_db()
    assert user.second_step_locked_at is not None
    for address in ("192.0.2.50", "198.51.100.50"):
        response = Client(REMOTE_ADDR=address).post("/login", {"username": user.username, "password": PASSWORD})
        assert response.status_code == 302 and response["Location"] == "/login/verify"


def test_growing_delay_refuses_without_evaluating(
    totp_user: tuple[User, bytes], frozen_clock: clock.FrozenClock
) -> None:
    """After 5 failures a correct code sent before the delay ends is refused and not consumed (BF-10)."""
    user, key = totp_user
    wrong = a_wrong_code(key)
    for _ in range(5):
        client = Client()
        sign_in(client, user.username)
        client.post("/login/verify", {"code": wrong})
    client = Client()
    sign_in(client, user.username)
    enrolment_step = Authenticator.objects.get(user=user).last_step
    code = code_now(key)
    assert verify(client, code) == 0
    # Refused unread: the step is not spent, and the try is not counted (the delay does not grow).
    assert Authenticator.objects.get(user=user).last_step == enrolment_step
    user.refresh_from_db()
    assert user.second_step_failures == 5
    frozen_clock.advance(3)
    # The very same code, still inside the accepted window even if a step began meanwhile.
    assert verify(client, code) == 1


def test_success_resets_failure_count(totp_user: tuple[User, bytes]) -> None:
    """A successful second step clears the consecutive-failure count."""
    user, key = totp_user
    client = Client()
    sign_in(client, user.username)
    client.post("/login/verify", {"code": a_wrong_code(key)})
    user.refresh_from_db()
    assert user.second_step_failures == 1
    assert verify(client, code_now(key)) == 1
    user.refresh_from_db()
    assert user.second_step_failures == 0


def test_break_glass_config_disables_second_step(totp_user: tuple[User, bytes]) -> None:
    """[two_factor] enabled = false (or the env variable) makes sign-in password-only (config wins over DB)."""
    user, _ = totp_user
    forced_off = load_config(settings.DATA_DIR, {"TWOSTEP_TWO_FACTOR__ENABLED": "false"})
    with override_settings(CONFIG=forced_off):
        client = Client()
        assert sign_in(client, user.username)["Location"] == "/account"
    # Each such sign-in says in the auth log that the switch let it in.
    skipped = AuthEvent.objects.filter(kind="login.second_step", reason="forced_off_by_config", user=user)
    assert skipped.count() == 1
    client = Client()
    assert sign_in(client, user.username)["Location"] == "/login/verify"
    assert skipped.count() == 1


def test_console_switch_off_disables_second_step(totp_user: tuple[User, bytes]) -> None:
    """`twostep settings set two_factor.enabled false` turns the second step off."""
    from django.core.management import call_command

    user, _ = totp_user
    call_command("settings", "set", "two_factor.enabled", "false")
    assert sign_in(Client(), user.username)["Location"] == "/account"


def test_no_code_or_secret_in_audit_log(totp_user: tuple[User, bytes]) -> None:
    """The auth log records reasons, never the submitted code or the secret (SEC-07)."""
    user, key = totp_user
    client = Client()
    sign_in(client, user.username)
    wrong = a_wrong_code(key)
    client.post("/login/verify", {"code": wrong})
    good = code_now(key)
    verify(client, good)
    rows = " ".join(str(row) for row in AuthEvent.objects.values_list("reason", "detail", "kind"))
    assert "wrong_code" in rows
    assert wrong not in rows and good not in rows and totp.encode_secret(key) not in rows


def test_audit_event_for_wrong_and_reused(totp_user: tuple[User, bytes], make_user: Callable[..., User]) -> None:
    """The log tells wrong from reused codes (users never see the difference)."""
    user, key = totp_user
    code = code_now(key)
    a, b = Client(), Client()
    sign_in(a, user.username)
    verify(a, code)
    sign_in(b, user.username)
    verify(b, code)
    reasons = list(
        AuthEvent.objects.filter(kind="login.second_step", outcome="failure").values_list("reason", flat=True)
    )
    assert reasons == ["reused_code"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_wrong_codes_all_counted_and_throttled(totp_user: tuple[User, bytes]) -> None:
    """50 parallel wrong codes: every evaluated failure is counted, and no more are evaluated than
    sequential guessing would allow (BF-04, BF-12)."""
    user, key = totp_user
    wrong = a_wrong_code(key)
    pendings = [second_step.start(user, login_authenticators(user.pk)[0], CLI)[0] for _ in range(50)]
    results = verify_all_at_once(pendings, wrong)
    user.refresh_from_db()
    evaluated = results.count("wrong_code")
    assert "ok" not in results
    assert user.second_step_failures == evaluated, (connection.vendor, results)
    assert evaluated == settings.CONFIG.security.second_step_delay_after
    assert results.count("throttled") == len(pendings) - evaluated


@pytest.mark.django_db(transaction=True)
def test_one_sign_in_gets_its_tries_and_no_more_under_concurrency(totp_user: tuple[User, bytes]) -> None:
    """20 parallel wrong codes for one sign-in, with the account's delay far off: exactly its own tries
    (security.attempts_per_login) are evaluated and counted, the rest find the sign-in over."""
    user, key = totp_user
    tries = settings.CONFIG.security.attempts_per_login
    roomy = load_config(settings.DATA_DIR, {"TWOSTEP_SECURITY__SECOND_STEP_DELAY_AFTER": "20"})
    with override_settings(CONFIG=roomy):
        pending = second_step.start(user, login_authenticators(user.pk)[0], CLI)[0]
        results = verify_all_at_once([pending] * 20, a_wrong_code(key))
    user.refresh_from_db()
    assert results.count("wrong_code") == tries, (connection.vendor, results)
    assert results.count("expired_login") == 20 - tries
    assert user.second_step_failures == tries
    assert PendingLogin.objects.get(pk=pending.pk).failures == tries


def test_timed_lock_ends_but_grants_no_fresh_budget(
    totp_user: tuple[User, bytes], frozen_clock: clock.FrozenClock
) -> None:
    """With a lock duration set, the lock lifts after it; one more failure locks again at once (BF-07)."""
    user, key = totp_user
    timed = load_config(settings.DATA_DIR, {"TWOSTEP_SECURITY__SECOND_STEP_LOCK_MINUTES": "30"})
    wrong = a_wrong_code(key)
    with override_settings(CONFIG=timed):
        fail_sign_ins(user, wrong, 20, frozen_clock)
        user.refresh_from_db()
        assert user.second_step_locked_at is not None
        frozen_clock.advance(10 * 60)
        client = Client()
        sign_in(client, user.username)
        assert verify(client, code_now(key)) == 0  # still locked after 10 minutes
        frozen_clock.advance(25 * 60)
        client = Client()
        sign_in(client, user.username)
        client.post("/login/verify", {"code": wrong})
        user.refresh_from_db()
        assert user.second_step_failures == 21
        client = Client()
        sign_in(client, user.username)
        assert verify(client, code_now(key)) == 0  # locked again by that one failure
        frozen_clock.advance(31 * 60)
        client = Client()
        sign_in(client, user.username)
        assert verify(client, code_now(key)) == 1
        user.refresh_from_db()
        assert (user.second_step_failures, user.second_step_locked_at) == (0, None)


def test_generous_lock_setting_keeps_counting_past_any_delay(
    totp_user: tuple[User, bytes], frozen_clock: clock.FrozenClock
) -> None:
    """With the lock far above the delay (here at 100, delays from 1), wrong codes stay counted and delayed.

    The doubling delay once overflowed from the 47th step on: the failure
    rolled back its own count, so one sign-in could guess without limit.
    """
    user, key = totp_user
    generous = load_config(
        settings.DATA_DIR,
        {"TWOSTEP_SECURITY__SECOND_STEP_DELAY_AFTER": "1", "TWOSTEP_SECURITY__SECOND_STEP_LOCK_AFTER": "100"},
    )
    User.objects.filter(pk=user.pk).update(second_step_failures=60)
    wrong = a_wrong_code(key)
    with override_settings(CONFIG=generous):
        client = Client()
        sign_in(client, user.username)
        response = client.post("/login/verify", {"code": wrong})
        assert response.status_code == 200 and b"That code didn" in response.content
        user.refresh_from_db()
        assert user.second_step_failures == 61
        assert user.second_step_blocked_until == clock.now() + timedelta(minutes=15)
        assert verify(client, code_now(key)) == 0


def test_refusal_explains_pauses_and_locks_the_same_way(totp_user: tuple[User, bytes]) -> None:
    """A wrong code and a right code refused by the lock get the same page, which says what to do when locked."""
    user, key = totp_user
    browser = Client()
    sign_in(browser, user.username)
    wrong = browser.post("/login/verify", {"code": a_wrong_code(key)})
    User.objects.filter(pk=user.pk).update(second_step_locked_at=clock.now())
    locked = browser.post("/login/verify", {"code": code_now(key)})
    for page in (wrong.content.decode(), locked.content.decode()):
        assert "That code didn" in page and "A recovery code, or an administrator, gets you in" in page
    assert wrong.content.decode().count("code-error") == locked.content.decode().count("code-error")


def test_deactivated_account_cannot_finish_its_sign_in(totp_user: tuple[User, bytes]) -> None:
    """An account switched off between the two steps is not signed in by its right code."""
    user, key = totp_user
    client = Client()
    assert sign_in(client, user.username)["Location"] == "/login/verify"
    services.set_active(user, False, origin=CLI)
    assert verify(client, code_now(key)) == 0
    assert not AuthEvent.objects.filter(kind="login", outcome="success", user=user).exists()


def test_recovery_code_rechecks_the_sign_in_inside_its_transaction(totp_user: tuple[User, bytes]) -> None:
    """A pending sign-in found live, then its account switched off, is refused and keeps the code."""
    from twostep.mfa.recovery_codes import services as recovery

    user, _ = totp_user
    codes = recovery.regenerate(user, CLI).codes
    client = Client()
    sign_in(client, user.username)
    pending = PendingLogin.objects.get(user=user, completed_at__isnull=True)
    assert second_step.is_live(pending)
    services.set_active(user, False, origin=CLI)  # after the page looked the sign-in up
    with pytest.raises(second_step.SecondStepError, match="expired_login"):
        recovery.sign_in(pending, codes[0], CLI)
    assert recovery.remaining(user.pk) == len(codes)


def test_signing_out_ends_the_pending_sign_in(totp_user: tuple[User, bytes]) -> None:
    """ "Back to sign in" ends the half-done sign-in: its token is worthless afterwards (FB-13)."""
    user, key = totp_user
    client = Client()
    sign_in(client, user.username)
    token = client.session[PENDING_KEY]
    assert second_step.resolve(token) is not None
    client.post("/logout")
    assert second_step.resolve(token) is None
    with pytest.raises(second_step.SecondStepError):
        second_step.verify(PendingLogin.objects.get(user=user), code_now(key), CLI)


@pytest.mark.parametrize("skew", [0, 1])
def test_totp_skew_setting_sets_the_accepted_window(
    totp_user: tuple[User, bytes], frozen_clock: clock.FrozenClock, skew: int
) -> None:
    """`two_factor.totp_skew` decides whether the previous step's code still signs in (OTP-06, FLT-07)."""
    user, key = totp_user
    frozen_clock.advance(120)  # past the step used at enrolment
    previous = code_now(key, -1)
    config = load_config(settings.DATA_DIR, {"TWOSTEP_TWO_FACTOR__TOTP_SKEW": str(skew)})
    with override_settings(CONFIG=config):
        client = Client()
        sign_in(client, user.username)
        assert verify(client, previous) == skew


def test_replayed_verify_request_mints_no_second_session(totp_user: tuple[User, bytes]) -> None:
    """The exact request that completed a sign-in (same cookie, same body), sent again, signs nobody in (RR-09)."""
    user, key = totp_user
    client = Client()
    sign_in(client, user.username)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    code = code_now(key)
    assert verify(client, code) == 1
    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = cookie
    response = replay.post("/login/verify", {"code": code})
    assert response.status_code == 302 and response["Location"] == "/login"
    assert replay.get("/account").status_code == 302
    assert AuthEvent.objects.filter(kind="login", outcome="success", user=user).count() == 1


def test_a_second_password_entry_ends_the_first_pending_sign_in(totp_user: tuple[User, bytes]) -> None:
    """Entering the password again in the same browser leaves one live pending sign-in, not two budgets (RR-11)."""
    user, key = totp_user
    client = Client()
    sign_in(client, user.username)
    first = client.session[PENDING_KEY]
    sign_in(client, user.username)
    second = client.session[PENDING_KEY]
    assert first != second
    assert second_step.resolve(first) is None and second_step.resolve(second) is not None
    assert PendingLogin.objects.filter(user=user, expires_at__gt=clock.now(), completed_at__isnull=True).count() == 1
    assert verify(client, code_now(key)) == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_password_entries_share_one_budget(
    totp_user: tuple[User, bytes], frozen_clock: clock.FrozenClock
) -> None:
    """One browser sending its password twice at the same moment may hold two pending sign-ins, but their
    wrong codes spend the account's one budget: no more guesses than one sign-in allows (RR-11)."""
    user, key = totp_user
    browser = Client()
    session = browser.session
    session["started"] = True  # a session cookie that both requests carry
    session.save()
    cookie = browser.cookies[settings.SESSION_COOKIE_NAME].value

    def enter_password() -> Client:
        tab = Client()
        tab.cookies[settings.SESSION_COOKIE_NAME] = cookie
        assert sign_in(tab, user.username)["Location"] == "/login/verify"
        return tab

    tabs: list[Client] = []
    at_once([lambda: str(tabs.append(enter_password())) for _ in range(2)])
    live = [t for t in tabs if second_step.resolve(t.session.get(PENDING_KEY)) is not None]
    assert 1 <= len(live) <= 2
    right = code_now(key)
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    guesses = settings.CONFIG.security.second_step_delay_after
    for tab in live * guesses:
        tab.post("/login/verify", {"code": wrong})
    checked = AuthEvent.objects.filter(kind="login.second_step", reason="wrong_code", user=user).count()
    assert checked == guesses
    # The budget is spent for the account: a right code waits, whichever sign-in is still open.
    assert not any(verify(tab, right) for tab in live if second_step.resolve(tab.session.get(PENDING_KEY)))
    assert AuthEvent.objects.filter(kind="login", outcome="success", user=user).count() == 0


@pytest.mark.django_db(transaction=True)
def test_replay_state_and_lock_live_in_the_database(
    totp_user: tuple[User, bytes], frozen_clock: clock.FrozenClock
) -> None:
    """After a restart (new connections, nothing kept in memory) a used step stays used and a lock stays (RR-10, FLT-06, FLT-10)."""
    user, key = totp_user
    code = code_now(key)
    client = Client()
    sign_in(client, user.username)
    assert verify(client, code) == 1
    connection.close()  # as a restarted worker would: a fresh connection, no state carried over
    again = Client()
    sign_in(again, user.username)
    assert verify(again, code) == 0
    assert AuthEvent.objects.filter(kind="login.second_step", reason="reused_code").count() == 1
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(settings.CONFIG.security.second_step_lock_after):
        frozen_clock.advance(901)
        browser = Client()
        sign_in(browser, user.username)
        browser.post("/login/verify", {"code": wrong})
    connection.close()
    frozen_clock.advance(3600)
    assert User.objects.get(pk=user.pk).second_step_locked_at is not None
    later = Client()
    sign_in(later, user.username)
    assert verify(later, code_now(key)) == 0


def test_the_code_comes_from_the_form_body_only(totp_user: tuple[User, bytes]) -> None:
    """A code in the query string is never read; the posted form decides (FUZZ-06)."""
    user, key = totp_user
    client = Client()
    sign_in(client, user.username)
    code = code_now(key)
    wrong = "000000" if code != "000000" else "111111"
    response = client.post(f"/login/verify?code={code}", {"code": wrong})
    assert response.status_code == 200 and client.get("/account").status_code == 302
    response = client.post(f"/login/verify?code={wrong}", {"code": code})
    assert response.status_code == 302 and response["Location"] == "/account"


def test_someone_elses_code_or_name_does_not_complete_a_sign_in(
    totp_user: tuple[User, bytes], make_user: Callable[..., User]
) -> None:
    """Alice's pending sign-in refuses Bob's current code, whatever user fields are posted with it (FB-07)."""
    alice, alice_key = totp_user
    bob = make_user("bob")
    bob_key = enrol(bob)
    bob_code = code_now(bob_key)
    if bob_code == code_now(alice_key):
        pytest.skip("the two keys share the current code")
    client = Client()
    sign_in(client, alice.username)
    extra = {"username": "bob", "user": str(bob.pk), "user_id": str(bob.pk)}
    response = client.post("/login/verify", {"code": bob_code, **extra})
    assert response.status_code == 200 and client.get("/account").status_code == 302
    assert verify(client, code_now(alice_key)) == 1
    assert client.get("/account").context["user"].pk == alice.pk
    assert Authenticator.objects.get(user=bob).last_step != totp.time_step(clock.timestamp())


def test_only_the_right_code_passes_the_login_path(totp_user: tuple[User, bytes]) -> None:
    """At sign-in, 000000, an empty code, the spent enrolment code and another key's code all fail (FB-09)."""
    user, key = totp_user
    current = code_now(key)
    spent = totp.hotp(key, totp.time_step(clock.timestamp()) - 1)  # what enrol_totp confirmed with
    stranger = totp.totp(totp.generate_secret(), clock.timestamp())
    candidates = [c for c in ["000000", "", spent, stranger] if c != current]
    for candidate in candidates:
        client = Client()
        sign_in(client, user.username)
        assert verify(client, candidate) == 0, candidate
        User.objects.filter(pk=user.pk).update(second_step_failures=0, second_step_blocked_until=None)
    client = Client()
    sign_in(client, user.username)
    assert verify(client, current) == 1


def test_nothing_between_the_steps_holds_the_password(totp_user: tuple[User, bytes]) -> None:
    """After the password step, neither the session nor the pending sign-in holds the password, plain or encoded (SEC-08)."""
    import base64
    from urllib.parse import quote, quote_plus

    from tests.conftest import PASSWORD
    from twostep.usersessions.models import UserSession

    user, _ = totp_user
    client = Client()
    assert sign_in(client, user.username)["Location"] == "/login/verify"
    raw = PASSWORD.encode()
    encodings = [
        PASSWORD,
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        raw.hex(),
        quote(PASSWORD),
        quote_plus(PASSWORD),
    ]
    stored = " ".join(
        [
            str(list(UserSession.objects.values())),
            str(list(PendingLogin.objects.values())),
            str(dict(client.session.items())),
            *(morsel.value for morsel in client.cookies.values()),
        ]
    )
    assert client.session[PENDING_KEY]  # the session does hold the pending sign-in
    for encoded in encodings:
        assert encoded not in stored, encoded


def test_no_code_token_or_session_key_travels_in_a_url(totp_user: tuple[User, bytes]) -> None:
    """Every redirect and link of a sign-in carries no code, pending-sign-in token or session key (SEC-09)."""
    import re

    user, key = totp_user
    client = Client()
    responses = [client.get("/login"), sign_in(client, user.username)]
    token = client.session[PENDING_KEY]
    middle = client.cookies[settings.SESSION_COOKIE_NAME].value
    code = code_now(key)
    responses += [client.get("/login/verify"), client.post("/login/verify", {"code": code})]
    final = client.cookies[settings.SESSION_COOKIE_NAME].value
    responses.append(client.get("/account"))
    assert responses[3]["Location"] == "/account"
    urls = [r["Location"] for r in responses if r.has_header("Location")]
    for response in responses:
        urls += re.findall(r'(?:href|action|src)="([^"]*)"', response.content.decode())
    assert urls
    for url in urls:
        assert not [secret for secret in (code, token, middle, final) if secret in url], url


def test_sign_in_open_at_the_lock_cannot_guess_after_it(
    totp_user: tuple[User, bytes], frozen_clock: clock.FrozenClock
) -> None:
    """A sign-in that was open when the lock engaged gets no tries once a timed lock runs out, nor after an
    unlock: the password must be entered again (BF-06)."""
    from twostep.mfa.services import unlock_second_step

    user, key = totp_user
    timed = load_config(settings.DATA_DIR, {"TWOSTEP_SECURITY__SECOND_STEP_LOCK_MINUTES": "2"})
    wrong = a_wrong_code(key)
    with override_settings(CONFIG=timed):
        fail_sign_ins(user, wrong, 19, frozen_clock)
        frozen_clock.advance(901)
        attacker, victim = Client(), Client()
        sign_in(victim, user.username)
        sign_in(attacker, user.username)
        attacker.post("/login/verify", {"code": wrong})  # the 20th: locked
        user.refresh_from_db()
        assert user.second_step_locked_at is not None
        frozen_clock.advance(3 * 60)  # the lock ran out; both sign-ins are still within their 10 minutes
        failures = user.second_step_failures
        assert verify(attacker, code_now(key)) == 0
        ended = victim.post("/login/verify", {"code": code_now(key)})
        assert ended.status_code == 302 and ended["Location"] == "/login"  # told to sign in again, not "wrong code"
        assert victim.get("/login/verify")["Location"].startswith("/login")
        user.refresh_from_db()
        assert user.second_step_failures == failures  # refused as over, not counted
        fresh = Client()
        sign_in(fresh, user.username)
        assert verify(fresh, code_now(key)) == 1  # the password again: a try

    opened = Client()
    sign_in(opened, user.username)
    unlock_second_step(user, origin=CLI)
    assert verify(opened, code_now(key, +1)) == 0


def _code_input(html: str) -> str:
    match = re.search(r'<input type="text" name="code"[^>]*>', html)
    assert match, html
    return match.group(0)


def test_code_input_takes_a_pasted_code_whole(totp_user: tuple[User, bytes]) -> None:
    """The code field has no maxlength that would cut "053 243" to "053 24"; it still says what a code is."""
    user, _ = totp_user
    client = Client()
    sign_in(client, user.username)
    page = client.get("/login/verify").content.decode()
    field = _code_input(page)
    assert "maxlength" not in field
    for attribute in ('pattern="[0-9]{6}"', 'inputmode="numeric"', 'autocomplete="one-time-code"', 'title="6 digits"'):
        assert attribute in field
    # The script that removes spaces and dashes is a file of this site, not an inline script.
    assert re.search(r'<script src="/static/mfa/code_input\.js"', page) and "<script>" not in page


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("{c3} {c3b}", "Enter the 6-digit code (digits only)."),
        (" {c} ", "Enter the 6-digit code (digits only)."),
        ("{c3}-{c3b}", "Enter the 6-digit code (digits only)."),
        ("{c3} {c3b_short}", "Enter the 6-digit code (digits only)."),  # what maxlength="6" used to send
        ("", "Enter the code."),
    ],
)
def test_not_a_code_is_said_so_and_not_counted(totp_user: tuple[User, bytes], typed: str, message: str) -> None:
    """Text that cannot be a code gets its own message and costs no try (FUZZ-02 still refuses it)."""
    user, key = totp_user
    code = code_now(key)
    client = Client()
    sign_in(client, user.username)
    typed = typed.format(c=code, c3=code[:3], c3b=code[3:], c3b_short=code[3:5])
    response = client.post("/login/verify", {"code": typed})
    html = response.content.decode()
    assert response.status_code == 200 and message in html
    assert "didn&#x27;t work" not in html and "After several wrong codes" not in html
    user.refresh_from_db()
    assert user.second_step_failures == 0
    assert PendingLogin.objects.get(user=user).failures == 0
    # The right code, as six digits, still signs in on the same sign-in.
    assert verify(client, code) == 1


def test_malformed_code_is_logged_but_not_counted_by_the_service(totp_user: tuple[User, bytes]) -> None:
    """The shared verification (pages, step-up, API) refuses a malformed code and logs it; it is no guess at
    the code, so the account's count is untouched, but it spends one of the sign-in's own tries, so that a
    login token cannot write log lines without end."""
    user, key = totp_user
    pending, _ = second_step.start(user, Authenticator.objects.get(user=user), CLI)
    for typed in ("", "12 345", " " + code_now(key), "".join(chr(0xFF10 + int(d)) for d in "123456")):
        with pytest.raises(second_step.SecondStepError) as refused:
            second_step.verify(pending, typed, CLI)
        assert refused.value.reason == "malformed_code"
    user.refresh_from_db()
    pending.refresh_from_db()
    assert user.second_step_failures == 0 and pending.failures == 4
    assert AuthEvent.objects.filter(kind="login.second_step", reason="malformed_code").count() == 4
    # A wrong code of the right shape counts against the account too, and is the sign-in's last try.
    with pytest.raises(second_step.SecondStepError):
        second_step.verify(pending, a_wrong_code(key), CLI)
    user.refresh_from_db()
    pending.refresh_from_db()
    assert user.second_step_failures == 1 and not second_step.is_live(pending)
    with pytest.raises(second_step.SecondStepError) as over:
        second_step.verify(pending, "", CLI)
    assert over.value.reason == "expired_login"


def test_trust_this_browser_stays_ticked_after_a_wrong_code(totp_user: tuple[User, bytes]) -> None:
    """A refused code does not untick "Trust this browser": the next try keeps the choice."""
    user, key = totp_user
    client = Client()
    sign_in(client, user.username)
    ticked = client.post("/login/verify", {"code": a_wrong_code(key), "trust": "1"})
    assert re.search(
        r'<input type="checkbox" name="trust" value="1" id="id_trust" aria-describedby="trust-hint" checked>',
        ticked.content.decode(),
    )
    unticked = client.post("/login/verify", {"code": a_wrong_code(key)})
    assert re.search(
        r'<input type="checkbox" name="trust" value="1" id="id_trust" aria-describedby="trust-hint">',
        unticked.content.decode(),
    )
