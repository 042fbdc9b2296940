"""The password step's throttle under persistence and concurrency (BF-14, RR)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client

from tests.concurrency import at_once
from tests.conftest import PASSWORD, sign_in
from twostep.accounts import devices, throttle
from twostep.accounts.models import SignInThrottle, User
from twostep.accounts.signin import SignInThrottled, check_password_step
from twostep.audit.models import AuthEvent
from twostep.audit.services import Origin
from twostep.core import clock


@pytest.mark.django_db
def test_patient_guessing_keeps_being_counted_and_logged(user: User, frozen_clock: clock.FrozenClock) -> None:
    """A guesser who waits out every delay is counted, delayed and logged at every try, however many.

    The delay doubles with each failure; computing it once overflowed
    (2 ** 47 seconds), which failed the request, rolled the count back and
    left the name unthrottled from then on.
    """
    guesses = 80
    for i in range(guesses):
        try:
            assert check_password_step(user.username, f"guess {i}", Origin(f"198.51.100.{i + 1}", "ua")) is None
        except SignInThrottled as waiting:
            frozen_clock.advance(waiting.retry_after.total_seconds())
            assert check_password_step(user.username, f"guess {i}", Origin(f"198.51.100.{i + 1}", "ua")) is None
    row = SignInThrottle.objects.get(key=throttle.account_key(user.username))
    assert row.failures == guesses
    assert row.blocked_until == clock.now() + throttle.MAX_DELAY
    logged = AuthEvent.objects.filter(kind="login.password", reason="credentials", user=user).count()
    assert logged == guesses
    with pytest.raises(SignInThrottled):
        check_password_step(user.username, PASSWORD, Origin("203.0.113.1", "ua"))


@pytest.mark.django_db
def test_capitalising_the_name_differently_shares_one_count(user: User) -> None:
    """Names are case-insensitive, so "Alice", "ALICE" and " alice " are one account with one allowance of failures."""
    spellings = [user.username.upper(), user.username.capitalize(), f" {user.username} ", user.username.swapcase()]
    for i in range(throttle.ACCOUNT_FREE_FAILURES):
        name = spellings[i % len(spellings)]
        assert check_password_step(name, "wrong password", Origin(f"198.51.100.{i + 1}", "ua")) is None
    assert (
        SignInThrottle.objects.get(key=throttle.account_key(user.username)).failures == throttle.ACCOUNT_FREE_FAILURES
    )
    with pytest.raises(SignInThrottled):
        check_password_step(user.username.upper(), PASSWORD, Origin("203.0.113.1", "ua"))


@pytest.mark.django_db
def test_a_right_password_gives_the_address_its_try_back(make_user: Callable[..., User]) -> None:
    """Colleagues behind one NAT signing in successfully do not use up its allowance of failures."""
    alice = make_user("alice")
    office = Origin("192.0.2.50", "ua")
    for i in range(throttle.IP_FAILURES_PER_WINDOW - 1):
        check_password_step(f"typo{i}", "wrong password", office)
    for _ in range(5):
        assert check_password_step(alice.username, PASSWORD, office) == alice
    assert SignInThrottle.objects.get(key="ip:192.0.2.50").failures == throttle.IP_FAILURES_PER_WINDOW - 1
    check_password_step("one more typo", "wrong password", office)
    with pytest.raises(SignInThrottled):
        check_password_step(alice.username, PASSWORD, office)


@pytest.mark.django_db(transaction=True)
def test_parallel_guesses_get_no_more_tries_than_sequential_ones(user: User) -> None:
    """Forty wrong passwords at once, from forty addresses: exactly the free allowance is checked.

    Counted only after the hash, every request arriving while the first ones
    hashed passed the check: a burst as large as the server's concurrency.
    """
    attackers = 40
    start = threading.Barrier(attackers)
    outcomes: list[str] = []

    def guess(i: int) -> None:
        try:
            start.wait()
            check_password_step(user.username, f"wrong {i}", Origin(f"10.0.0.{i + 1}", "ua"))
            outcomes.append("checked")
        except SignInThrottled:
            outcomes.append("throttled")
        finally:
            connection.close()

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(attackers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("checked") == throttle.ACCOUNT_FREE_FAILURES
    assert outcomes.count("throttled") == attackers - throttle.ACCOUNT_FREE_FAILURES
    assert AuthEvent.objects.filter(kind="login.password", reason="credentials").count() == 5
    assert (
        SignInThrottle.objects.get(key=throttle.account_key(user.username)).failures == throttle.ACCOUNT_FREE_FAILURES
    )


@pytest.mark.django_db(transaction=True)
def test_parallel_sign_ins_from_one_address_do_not_deadlock(user: User) -> None:
    """Right passwords for one name from one address, in parallel: every try is counted and settled.

    A settle (clearing the name's counter, giving the address its try back)
    must lock the counters in the order a claim does: on PostgreSQL, one that
    locked the name's row first deadlocked with a claim holding the
    address's, and one of the two sign-ins failed.
    """
    origin = Origin("10.1.2.3", "ua")

    def sign_in_once() -> str:
        attempt = throttle.claim(user.username, origin.ip, clock.now())
        throttle.settle(attempt, password_was_right=True)
        return "settled"

    for _ in range(25):
        assert at_once([sign_in_once] * 4) == ["settled"] * 4
    assert not SignInThrottle.objects.filter(key=throttle.account_key(user.username)).exists()
    assert SignInThrottle.objects.get(key=f"ip:{origin.ip}").failures == 0


@pytest.mark.django_db
def test_a_stranger_cannot_delay_a_browser_that_signed_in_before(user: User) -> None:
    """Wrong passwords typed for a name delay that name everywhere but in the owner's own browser (BF-11).

    Without the device cookie, one wrong password every 15 minutes kept the
    owner out; now only browsers that never signed in to the account wait.
    """
    owner = Client(REMOTE_ADDR="192.0.2.10")
    assert sign_in(owner, user.username)["Location"] == "/account"
    assert devices.cookie_name() in owner.cookies
    owner.post("/logout")

    for i in range(8):
        Client(REMOTE_ADDR=f"198.51.100.{i + 1}").post("/login", {"username": user.username, "password": f"not it {i}"})
    assert (
        Client(REMOTE_ADDR="203.0.113.5").post("/login", {"username": user.username, "password": PASSWORD}).status_code
        == 429
    )
    assert sign_in(owner, user.username)["Location"] == "/account"


@pytest.mark.django_db
def test_a_stranger_cannot_block_the_owners_password_confirmation(user: User) -> None:
    """The same holds when a signed-in owner enters the password again for a sensitive change."""
    owner = Client(REMOTE_ADDR="192.0.2.12")
    sign_in(owner, user.username)
    for i in range(8):
        Client(REMOTE_ADDR=f"198.51.100.{i + 1}").post("/login", {"username": user.username, "password": f"no {i}"})
    response = owner.post("/account/reauthenticate", {"password": PASSWORD, "next": "/account"})
    assert response.status_code == 302 and response["Location"] == "/account"


@pytest.mark.django_db
def test_the_device_keeps_its_own_count(user: User, make_user: Callable[..., User]) -> None:
    """Wrong passwords from the device are still delayed; its cookie does nothing for another name, or forged."""
    owner = Client(REMOTE_ADDR="192.0.2.11")
    sign_in(owner, user.username)
    owner.post("/logout")
    statuses = [
        owner.post("/login", {"username": user.username, "password": f"typo {i}"}).status_code for i in range(6)
    ]
    assert statuses == [200] * 5 + [429]

    bob = make_user("bob")
    for i in range(6):
        Client().post("/login", {"username": "bob", "password": f"guess {i}"})
    assert owner.post("/login", {"username": bob.username, "password": PASSWORD}).status_code == 429
    forged = Client()
    forged.cookies[devices.cookie_name()] = "eyJhY2NvdW50IjoiYm9iIn0:forged:signature"
    assert forged.post("/login", {"username": bob.username, "password": PASSWORD}).status_code == 429


@pytest.mark.django_db
def test_an_ipv6_network_shares_one_allowance() -> None:
    """Addresses of one /64 (what one IPv6 subscriber holds) count together; another /64 has its own."""
    for i in range(throttle.IP_FAILURES_PER_WINDOW):
        check_password_step(f"name{i}", "wrong password", Origin(f"2001:db8:1:2::{i + 1:x}", "ua"))
    with pytest.raises(SignInThrottled):
        check_password_step("another", "wrong password", Origin("2001:db8:1:2:ffff::1", "ua"))
    assert check_password_step("another", "wrong password", Origin("2001:db8:1:3::1", "ua")) is None


def test_a_password_typed_as_the_username_is_not_stored(user: User) -> None:
    """The name's counter is keyed by a hash: what was typed (a password in the wrong field) is nowhere."""
    typed = "Tr0ub4dor&3 horse"
    Client().post("/login", {"username": typed, "password": "x" * 12})
    keys = list(SignInThrottle.objects.values_list("key", flat=True))
    assert throttle.account_key(typed) in keys
    assert not [key for key in keys if "tr0ub4dor" in key.lower()]


def test_upgrading_drops_the_counters_kept_by_name(user: User) -> None:
    """The migration to hashed keys drops the counters that held typed names; the others stay."""
    from importlib import import_module

    from django.apps import apps

    SignInThrottle.objects.create(key="user:my secret password", failures=3, window_started_at=clock.now())
    SignInThrottle.objects.create(key="ip:192.0.2.1", failures=3, window_started_at=clock.now())
    import_module("twostep.accounts.migrations.0003_hash_throttle_keys").drop_plain_name_keys(apps, None)
    assert list(SignInThrottle.objects.values_list("key", flat=True)) == ["ip:192.0.2.1"]


@pytest.mark.django_db
def test_ipv4_clients_seen_as_ipv4_mapped_ipv6_are_not_one_address(user: User) -> None:
    """A server (or proxy) on a dual-stack socket sees IPv4 clients as ``::ffff:a.b.c.d``.  Those are
    IPv4 clients, each its own address; the /64 rule for IPv6 subscribers puts every one of them in
    ``::/64``, so one stranger's 30 wrong passwords shut the password step for every IPv4 user (audit)."""
    attacker = Client(REMOTE_ADDR="::ffff:198.51.100.7")
    for i in range(throttle.IP_FAILURES_PER_WINDOW):
        attacker.post("/login", {"username": f"name{i}", "password": "wrong password"})
    assert attacker.post("/login", {"username": "another", "password": "wrong password"}).status_code == 429

    someone_else = Client(REMOTE_ADDR="::ffff:203.0.113.9")
    response = someone_else.post("/login", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, "an unrelated IPv4 client is throttled by another's failures"


@pytest.mark.django_db
def test_housekeeping_forgets_only_quiet_counters() -> None:
    """Every name ever typed leaves a counter; one with no failure for 30 days goes.  A counter whose last
    failure (its last block) is recent stays, however old its first failure."""
    from twostep.core.housekeeping import prune

    now = clock.now()
    long_ago, lately = now - timedelta(days=40), now - timedelta(days=2)
    rows = {
        "ip:192.0.2.1": (long_ago, None),  # a few failures long ago, never blocked: forgotten
        "user:quiet": (long_ago, long_ago),  # blocked long ago, nothing since: forgotten
        "user:under-attack": (long_ago, lately),  # first failure long ago, blocked lately: kept
        "ip:192.0.2.2": (lately, None),  # recent: kept
    }
    for key, (started, blocked) in rows.items():
        SignInThrottle.objects.create(key=key, failures=9, window_started_at=started, blocked_until=blocked)
    assert prune()["sign_in_throttles"] == 2
    assert sorted(SignInThrottle.objects.values_list("key", flat=True)) == ["ip:192.0.2.2", "user:under-attack"]
