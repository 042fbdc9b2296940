"""Recovery codes through the pages and the service: shown once, hashed, single use, throttled (RR-07, SEC-10, BF-05)."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from functools import partial
from urllib.parse import unquote

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from tests.authenticator_app import a_wrong_code
from tests.concurrency import at_once
from tests.conftest import PASSWORD, asked_for_password, forget_second_factor_proof, prove_second_factor, sign_in
from tests.mfa.recovery_codes.helpers import enrol_totp, events, fresh_codes, signed_in_with_totp
from twostep.accounts import services as accounts
from twostep.accounts.models import User
from twostep.audit.services import CLI
from twostep.core import clock
from twostep.core.decorators import REAUTH_KEY
from twostep.factors import recovery
from twostep.mfa import login as second_step
from twostep.mfa import services as mfa_services
from twostep.mfa.models import PendingLogin, RecoveryCode
from twostep.mfa.policy import login_authenticators
from twostep.mfa.recovery_codes import services
from twostep.mfa.totp import flows as totp_flows
from twostep.notifications.models import Notification

pytestmark = pytest.mark.django_db
# Tests whose threads race each other need commits: django_db(transaction=True).

FAILURE = "That recovery code didn"


@pytest.fixture
def codes_user(client: Client, user: User, two_factor_on: None) -> tuple[User, bytes, list[str]]:
    """Alice with an authenticator app, signed in once, and the codes shown to her then."""
    key = enrol_totp(user)
    assert signed_in_with_totp(client, user, key).status_code == 302
    codes = fresh_codes(client)
    client.post("/logout")
    return user, key, codes


def recovery_sign_in(client: Client, user: User, code: str) -> object:
    response = sign_in(client, user.username)
    assert response["Location"] == "/login/verify"
    return client.post("/login/recovery", {"recovery_code": code})


def test_first_factor_brings_ten_codes_shown_once(client: Client, user: User, two_factor_on: None) -> None:
    """Right after the first factor the Security page shows 10 new codes; the next visit shows none, only the count."""
    key = enrol_totp(user)
    signed_in_with_totp(client, user, key)
    codes = fresh_codes(client)
    assert len(codes) == 10 == len(set(codes))
    assert all(recovery.normalise(code) for code in codes)
    again = client.get("/account/security").content.decode()
    assert not any(code in again for code in codes)
    assert "10 codes left" in again
    assert [e.detail for e in events("recovery_codes.created")] == [{"count": 10}]


def test_codes_are_stored_hashed(codes_user: tuple[User, bytes, list[str]]) -> None:
    """The table holds keyed hashes only: no code, and no plain SHA-256 of one, appears in it (SEC-10)."""
    user, _, codes = codes_user
    stored = list(RecoveryCode.objects.filter(user=user).values_list("code_hash", flat=True))
    assert len(stored) == 10
    for code in codes:
        plain = recovery.normalise(code)
        assert plain is not None
        assert all(plain not in h and code not in h for h in stored)
        assert hashlib.sha256(plain.encode()).hexdigest() not in stored


def test_download_and_copy_need_no_inline_script(client: Client, user: User, two_factor_on: None) -> None:
    """The new-codes panel offers the codes as a text download (data: URL) and a static copy script, no inline JS."""
    key = enrol_totp(user)
    signed_in_with_totp(client, user, key)
    session = client.session
    session[REAUTH_KEY] = clock.timestamp()
    session.save()
    html = client.get("/account/security").content.decode()
    start = html.index('href="data:text/plain;charset=utf-8,') + len('href="')
    text = unquote(html[start : html.index('"', start)].split(",", 1)[1])
    shown = [line for line in text.splitlines() if len(line) == 19]
    assert len(shown) == 10 and all(f"<code>{c}</code>" in html for c in shown)
    assert 'download="alice-recovery-codes.txt"' in html
    assert "<script>" not in html and "twostep/copy.js" in html
    assert "data-copy-target" in html


def test_no_codes_without_a_recent_password(client: Client, user: User, two_factor_on: None) -> None:
    """With an old password entry the Security page creates nothing and offers a button behind the password prompt."""
    key = enrol_totp(user)
    signed_in_with_totp(client, user, key)
    session = client.session
    session[REAUTH_KEY] = clock.timestamp() - 3600
    session.save()
    html = client.get("/account/security").content.decode()
    assert "Create recovery codes" in html and not RecoveryCode.objects.exists()
    assert asked_for_password(client.post("/account/security/recovery-codes"))
    assert not RecoveryCode.objects.exists()


def test_a_stolen_session_and_the_password_do_not_print_the_first_codes(
    client: Client, user: User, two_factor_on: None
) -> None:
    """A factor without codes (enrolled before recovery codes existed): with the session and the password
    but no code, the Security page creates none, and its button asks for a code; with the code, they come."""
    key = enrol_totp(user)
    signed_in_with_totp(client, user, key)
    forget_second_factor_proof(client)  # the thief has the session, not the factor
    reauthenticated = client.post("/account/reauthenticate", {"password": PASSWORD, "next": "/account/security"})
    assert reauthenticated.status_code == 302
    page = client.get("/account/security").content.decode()
    assert "<li><code>" not in page and "Create recovery codes" in page
    assert not RecoveryCode.objects.filter(user=user).exists()
    asked = client.post("/account/security/recovery-codes")
    assert "mfa/step_up.html" in [t.name for t in asked.templates]
    assert not RecoveryCode.objects.filter(user=user).exists()
    # The owner, with the code: the same session now gets them on the page.
    prove_second_factor(client)
    assert (
        len(re.findall(r"<li><code>([0-9A-Z-]{19})</code></li>", client.get("/account/security").content.decode()))
        == 10
    )


def test_a_code_signs_in_once(client: Client, codes_user: tuple[User, bytes, list[str]]) -> None:
    """A code completes the second step and lands on the Security page; the same code is refused the next time (RR-07)."""
    user, _, codes = codes_user
    response = recovery_sign_in(client, user, codes[3].lower().replace("-", " "))
    assert response.status_code == 302 and response["Location"] == "/account/security"
    page = client.get("/account/security").content.decode()
    assert "9 codes left" in page and "You signed in with a recovery code" in page
    client.post("/logout")
    again = Client()
    response = recovery_sign_in(again, user, codes[3])
    assert response.status_code == 200 and FAILURE in response.content.decode()
    # Reloading the refused page (a GET of the form's address) goes back to the second step, not to an error.
    assert again.get("/login/recovery")["Location"] == "/login/verify"
    assert [e.reason for e in events("login.second_step", method="recovery_code")] == ["reused_code"]


def test_using_a_code_is_logged_and_notified(client: Client, codes_user: tuple[User, bytes, list[str]]) -> None:
    """A used code is an auth event recovery_codes.used (with what is left), which queues an email notice."""
    user, _, codes = codes_user
    recovery_sign_in(client, user, codes[0])
    used = events("recovery_codes.used")
    assert len(used) == 1 and used[0].detail == {"remaining": 9} and used[0].user_id == user.pk
    assert Notification.objects.filter(user=user, kind="recovery_codes.used").count() == 1


def test_codes_belong_to_their_user(client: Client, codes_user: tuple[User, bytes, list[str]], make_user) -> None:  # type: ignore[no-untyped-def]
    """Alice's code does not complete Bob's sign-in."""
    _, _, codes = codes_user
    bob = make_user("bob")
    enrol_totp(bob)
    response = recovery_sign_in(client, bob, codes[0])
    assert response.status_code == 200 and FAILURE in response.content.decode()
    assert services.remaining(codes_user[0].pk) == 10


def test_regenerating_needs_the_password_and_kills_old_codes(
    client: Client, codes_user: tuple[User, bytes, list[str]]
) -> None:
    """New codes need a fresh password, are shown once in the answer, notify, and every old code stops working."""
    user, key, old = codes_user
    signed_in_with_totp(client, user, key)
    session = client.session
    session[REAUTH_KEY] = clock.timestamp() - 3600
    session.save()
    assert asked_for_password(client.post("/account/security/recovery-codes"))
    session = client.session
    session[REAUTH_KEY] = clock.timestamp()
    session.save()
    prove_second_factor(client)
    response = client.post("/account/security/recovery-codes")
    assert response.status_code == 200
    html = response.content.decode()
    new = re.findall(r"<li><code>([0-9A-Z-]{19})</code></li>", html)
    assert len(new) == 10 and not set(new) & set(old)
    assert "Your previous recovery codes no longer work." in html
    assert Notification.objects.filter(user=user, kind="recovery_codes.generated").count() == 1
    client.post("/logout")
    assert FAILURE in recovery_sign_in(Client(), user, old[0]).content.decode()
    assert recovery_sign_in(Client(), user, new[0]).status_code == 302


def test_regenerate_is_post_only_and_needs_a_factor(client: Client, user: User, two_factor_on: None) -> None:
    """GET is refused; a user without a factor gets no codes."""
    sign_in(client, user.username)
    assert client.get("/account/security/recovery-codes").status_code == 405
    session = client.session
    session[REAUTH_KEY] = clock.timestamp()
    session.save()
    response = client.post("/account/security/recovery-codes")
    assert response.status_code == 302 and not RecoveryCode.objects.exists()


def test_wrong_codes_share_the_account_counter(client: Client, codes_user: tuple[User, bytes, list[str]]) -> None:
    """Wrong TOTP codes and wrong recovery codes add up in one per-account counter (BF-05)."""
    user, key, _ = codes_user
    sign_in(client, user.username)
    client.post("/login/verify", {"code": a_wrong_code(key)})
    client.post("/login/recovery", {"recovery_code": "AAAA-AAAA-AAAA-AAAA"})
    user.refresh_from_db()
    assert user.second_step_failures == 2
    reasons = [e.reason for e in events("login.second_step", method="recovery_code")]
    assert reasons == ["wrong_code"]


@pytest.mark.parametrize(
    ("typed", "said"),
    [("", "Enter one of your recovery codes."), ("   ", "Enter one of your recovery codes."),
     ("not a code at all", "A recovery code has 16 letters and digits"), ("AAAA-AAAA-AAAA", "16 letters"),
     ("\uff21" * 16, "16 letters")],
)  # fmt: skip
def test_text_that_cannot_be_a_code_is_said_and_spends_no_try(
    client: Client, codes_user: tuple[User, bytes, list[str]], typed: str, said: str
) -> None:
    """Empty or impossible recovery codes are refused with what a code looks like, before any check: as many times
    as typed, they spend none of the sign-in's tries nor the account's, and a right code still signs in.  Under a
    lock they do not start the 15-minute wait either."""
    user, _, codes = codes_user
    User.objects.filter(pk=user.pk).update(second_step_locked_at=clock.now(), second_step_failures=20)
    sign_in(client, user.username)
    for _ in range(settings.CONFIG.security.attempts_per_login + 1):
        response = client.post("/login/recovery", {"recovery_code": typed})
        assert response.status_code == 200 and said in response.content.decode()
    user.refresh_from_db()
    assert user.second_step_failures == 20 and user.second_step_blocked_until is None
    assert not events("login.second_step", method="recovery_code")
    response = client.post("/login/recovery", {"recovery_code": codes[0]})
    assert response.status_code == 302 and response["Location"] == "/account/security"


def test_through_the_service_an_impossible_code_spends_the_sign_ins_try_only(
    codes_user: tuple[User, bytes, list[str]],
) -> None:
    """The API has no form: text that cannot be a recovery code spends one of the sign-in's own tries (so a login
    token cannot write auth-log lines without end), not the account's."""
    user, _, _ = codes_user
    pending = second_step.start(user, login_authenticators(user.pk)[0], CLI)[0]
    with pytest.raises(second_step.SecondStepError, match="malformed_code"):
        services.sign_in(pending, "not a code", CLI)
    user.refresh_from_db()
    pending.refresh_from_db()
    assert user.second_step_failures == 0 and pending.failures == 1


def test_wrong_codes_end_the_pending_sign_in(client: Client, codes_user: tuple[User, bytes, list[str]]) -> None:
    """After the per-sign-in limit of wrong codes, even a right recovery code sends back to the password."""
    user, _, codes = codes_user
    sign_in(client, user.username)
    for _ in range(settings.CONFIG.security.attempts_per_login - 1):
        assert client.post("/login/recovery", {"recovery_code": "AAAA-AAAA-AAAA-AAAA"}).status_code == 200
    response = client.post("/login/recovery", {"recovery_code": "AAAA-AAAA-AAAA-AAAA"})
    assert response.status_code == 302 and response["Location"] == "/login"
    response = client.post("/login/recovery", {"recovery_code": codes[0]})
    assert response.status_code == 302 and response["Location"] == "/login"
    assert services.remaining(user.pk) == 10


def test_throttled_account_cannot_try_codes(
    client: Client, codes_user: tuple[User, bytes, list[str]], frozen_clock: clock.FrozenClock
) -> None:
    """While the growing delay runs, a right recovery code is refused too and stays unspent."""
    user, _, codes = codes_user
    User.objects.filter(pk=user.pk).update(second_step_blocked_until=clock.now() + timedelta(seconds=60))
    response = recovery_sign_in(client, user, codes[0])
    assert response.status_code == 200 and FAILURE in response.content.decode()
    assert services.remaining(user.pk) == 10
    frozen_clock.advance(61)
    assert client.post("/login/recovery", {"recovery_code": codes[0]}).status_code == 302


def test_a_code_lifts_a_lock_but_wrong_codes_wait(
    client: Client, codes_user: tuple[User, bytes, list[str]], frozen_clock: clock.FrozenClock
) -> None:
    """A locked second step accepts a right recovery code (and unlocks); a wrong one makes it wait 15 minutes."""
    user, _, codes = codes_user
    User.objects.filter(pk=user.pk).update(second_step_locked_at=clock.now(), second_step_failures=20)
    sign_in(client, user.username)
    assert FAILURE in client.post("/login/recovery", {"recovery_code": "AAAA-AAAA-AAAA-AAAA"}).content.decode()
    # Blocked for the longest delay: even the right code is refused now.
    assert FAILURE in client.post("/login/recovery", {"recovery_code": codes[0]}).content.decode()
    frozen_clock.advance(15 * 60 + 1)
    # The pending sign-in has expired meanwhile: password again, then the code.
    response = recovery_sign_in(client, user, codes[0])
    assert response.status_code == 302 and response["Location"] == "/account/security"
    user.refresh_from_db()
    assert user.second_step_locked_at is None and user.second_step_failures == 0
    assert [e.reason for e in events("second_step.unlocked")] == ["recovery_code"]


def test_recovery_needs_a_pending_sign_in(client: Client, codes_user: tuple[User, bytes, list[str]]) -> None:
    """Without the password step a code does nothing (and a GET only leads back to the second step)."""
    _, _, codes = codes_user
    assert client.get("/login/recovery")["Location"] == "/login/verify"
    response = client.post("/login/recovery", {"recovery_code": codes[0]})
    assert response.status_code == 302 and response["Location"] == "/login"
    assert services.remaining(codes_user[0].pk) == 10


def test_verify_page_offers_a_recovery_code(client: Client, codes_user: tuple[User, bytes, list[str]]) -> None:
    """The second-step page has a "Use a recovery code" form posting to /login/recovery."""
    user, _, _ = codes_user
    sign_in(client, user.username)
    html = client.get("/login/verify").content.decode()
    assert "Use a recovery code" in html and 'action="/login/recovery"' in html


def sign_in_all_at_once(pendings: list[PendingLogin], code: str) -> list[str]:
    """Submit recovery ``code`` for every pending sign-in at the same moment; ``ok`` or the refusal's reason."""

    def attempt(pending: PendingLogin) -> str:
        try:
            services.sign_in(pending, code, CLI)
        except second_step.SecondStepError as exc:
            return exc.reason
        return "ok"

    return at_once([partial(attempt, pending) for pending in pendings])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attempt", range(2))
def test_concurrent_use_of_one_code_exactly_one_wins(codes_user: tuple[User, bytes, list[str]], attempt: int) -> None:
    """Ten sign-ins submitting the same code at the same moment: exactly one succeeds, on this database (RR-07)."""
    user, _, codes = codes_user
    pendings = [second_step.start(user, login_authenticators(user.pk)[0], CLI)[0] for _ in range(10)]
    results = sign_in_all_at_once(pendings, codes[attempt])
    # The losers count as failures, so a late one may already find the account throttled.
    assert results.count("ok") == 1, (connection.vendor, results)
    assert len(results) == 10 and set(results) <= {"ok", "reused_code", "throttled"}, results
    assert services.remaining(user.pk) == 9
    assert PendingLogin.objects.filter(pk__in=[p.pk for p in pendings], completed_at__isnull=False).count() == 1


@pytest.mark.django_db(transaction=True)
def test_parallel_wrong_codes_while_locked_get_one_try(codes_user: tuple[User, bytes, list[str]]) -> None:
    """Locked: ten wrong recovery codes at the same moment are one try, the rest wait (they queue on the account)."""
    user, _, _ = codes_user
    User.objects.filter(pk=user.pk).update(second_step_locked_at=clock.now(), second_step_failures=20)
    pendings = [second_step.start(user, login_authenticators(user.pk)[0], CLI)[0] for _ in range(10)]
    results = sign_in_all_at_once(pendings, "AAAA-AAAA-AAAA-AAAA")
    assert sorted(results) == ["throttled"] * 9 + ["wrong_code"], (connection.vendor, results)


def test_a_code_cannot_complete_a_dead_sign_in_and_stays_unspent(codes_user: tuple[User, bytes, list[str]]) -> None:
    """The service itself re-checks the pending sign-in: an expired one is refused and the code keeps working."""
    user, _, codes = codes_user
    pending = second_step.start(user, login_authenticators(user.pk)[0], CLI)[0]
    PendingLogin.objects.filter(pk=pending.pk).update(expires_at=clock.now())
    with pytest.raises(second_step.SecondStepError, match="expired_login"):
        services.sign_in(pending, codes[0], CLI)
    assert services.remaining(user.pk) == 10
    assert PendingLogin.objects.get(pk=pending.pk).completed_at is None
    fresh = second_step.start(user, login_authenticators(user.pk)[0], CLI)[0]
    assert services.sign_in(fresh, codes[0], CLI) == (user, 9)


def test_last_factor_removed_takes_the_codes(codes_user: tuple[User, bytes, list[str]]) -> None:
    """Turning off the only factor deletes the codes; a new first factor brings a new set."""
    user, _, _ = codes_user
    assert totp_flows.remove(user, CLI)
    assert not RecoveryCode.objects.filter(user=user).exists()


def test_admin_reset_takes_the_codes(codes_user: tuple[User, bytes, list[str]], admin: User) -> None:
    """An admin's 2FA reset removes the recovery codes with the factors."""
    user, _, _ = codes_user
    mfa_services.reset_two_factor(user, origin=CLI, actor=admin)
    assert not RecoveryCode.objects.filter(user=user).exists()


def test_password_change_keeps_the_codes(codes_user: tuple[User, bytes, list[str]]) -> None:
    """A password change ends sessions but the factor stays, and so do its recovery codes."""
    user, _, _ = codes_user
    accounts.set_password(user, "an entirely new passphrase 9", origin=CLI)
    assert services.remaining(user.pk) == 10


def test_low_count_is_flagged(client: Client, codes_user: tuple[User, bytes, list[str]]) -> None:
    """With three or fewer codes left the Security page says to create new ones."""
    user, key, _ = codes_user
    for row in RecoveryCode.objects.filter(user=user).order_by("pk")[:7]:
        RecoveryCode.objects.filter(pk=row.pk).update(used_at=clock.now())
    signed_in_with_totp(client, user, key)
    html = client.get("/account/security").content.decode()
    assert "3 codes left" in html and "You are running out of recovery codes." in html


def test_the_lock_rule_is_told_only_under_a_lock(
    client: Client, codes_user: tuple[User, bytes, list[str]], frozen_clock: clock.FrozenClock
) -> None:
    """A wrong recovery code says nothing about locks when nothing is locked; under a lock, it tells the rule."""
    user, _, _ = codes_user
    rule = "While the second step is locked, one recovery code may be tried every 15 minutes"
    page = recovery_sign_in(client, user, "AAAA-AAAA-AAAA-AAAA").content.decode()  # type: ignore[attr-defined]
    assert FAILURE in page and rule not in page
    assert 'aria-describedby="recovery-hint recovery-error"' in page
    client.post("/logout")
    frozen_clock.advance(901)
    User.objects.filter(pk=user.pk).update(second_step_locked_at=clock.now(), second_step_failures=20)
    locked = recovery_sign_in(client, user, "AAAA-AAAA-AAAA-AAAA").content.decode()  # type: ignore[attr-defined]
    assert FAILURE in locked and rule in locked
    assert 'aria-describedby="recovery-hint recovery-error recovery-error-hint"' in locked
