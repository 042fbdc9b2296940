"""Trusted browsers: the cookie, the skip, and every way trust ends."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client

from tests.authenticator_app import a_wrong_code
from tests.conftest import sign_in
from tests.mfa.recovery_codes.helpers import enrol_totp, events, next_code, signed_in_with_totp
from twostep.accounts import services as accounts
from twostep.accounts.models import User
from twostep.audit.services import CLI
from twostep.core import clock
from twostep.core.runtime import set_setting
from twostep.factors import totp
from twostep.mfa import services as mfa_services
from twostep.mfa.email import flows as email_flows
from twostep.mfa.models import Authenticator, TrustedBrowser
from twostep.mfa.totp import flows as totp_flows
from twostep.mfa.trusted import services

pytestmark = pytest.mark.django_db

COOKIE = "twostep_trusted"


@pytest.fixture
def totp_user(user: User, two_factor_on: None) -> tuple[User, bytes]:
    return user, enrol_totp(user)


def trust(client: Client, user: User, key: bytes) -> str:
    """Sign in with "Trust this browser" ticked; return the cookie value, then sign out."""
    response = signed_in_with_totp(client, user, key, trust="1")
    assert response.status_code == 302
    value = response.cookies[COOKIE].value
    client.post("/logout")
    return value


def skips(client: Client, user: User) -> bool:
    """Whether the password alone signs ``user`` in on this browser."""
    response = sign_in(client, user.username)
    assert response.status_code == 302
    return response["Location"] != "/login/verify"


def test_trust_sets_a_safe_cookie_and_stores_only_a_hash(client: Client, totp_user: tuple[User, bytes]) -> None:
    """The cookie is HttpOnly, SameSite=Lax, lasts 30 days, and the server keeps only its SHA-256."""
    user, key = totp_user
    response = signed_in_with_totp(client, user, key, trust="1")
    morsel = response.cookies[COOKIE]
    assert morsel["httponly"] and morsel["samesite"] == "Lax" and morsel["path"] == "/"
    assert int(morsel["max-age"]) == 30 * 86400
    assert not morsel["secure"]  # plain HTTP in tests; see the HTTPS test below
    token = morsel.value
    row = TrustedBrowser.objects.get(user=user)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(list(TrustedBrowser.objects.values()))
    assert [e.detail for e in events("trusted_browser.added")] == [{"days": 30}]


def test_over_https_the_cookie_is_secure_and_host_only(
    client: Client, totp_user: tuple[User, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When served over HTTPS the cookie is Secure and named __Host- (no Domain, Path=/)."""
    monkeypatch.setattr(settings, "SESSION_COOKIE_SECURE", True)
    user, key = totp_user
    response = signed_in_with_totp(client, user, key, trust="1")
    morsel = response.cookies["__Host-twostep_trusted"]
    assert morsel["secure"] and not morsel["domain"] and morsel["path"] == "/"


def test_without_the_box_nothing_is_trusted(client: Client, totp_user: tuple[User, bytes]) -> None:
    """Not ticking the box sets no cookie and stores nothing; the next sign-in asks again."""
    user, key = totp_user
    response = signed_in_with_totp(client, user, key)
    assert COOKIE not in response.cookies and not TrustedBrowser.objects.exists()
    client.post("/logout")
    assert not skips(client, user)


def test_trusted_browser_skips_the_second_step(client: Client, totp_user: tuple[User, bytes]) -> None:
    """On the trusted browser the password alone signs the same user in, and the log says why."""
    user, key = totp_user
    trust(client, user, key)
    assert skips(client, user)
    assert client.get("/account").status_code == 200
    assert len(events("trusted_browser.used", user=user)) == 1
    assert TrustedBrowser.objects.get(user=user).last_used_at is not None


def test_trust_is_for_the_same_user_only(client: Client, totp_user: tuple[User, bytes], make_user) -> None:  # type: ignore[no-untyped-def]
    """Another user on the trusted browser still gets the second step; a stolen token does not help another user."""
    user, key = totp_user
    token = trust(client, user, key)
    bob = make_user("bob")
    enrol_totp(bob)
    assert not skips(client, bob)
    other = Client()
    other.cookies[COOKIE] = token
    assert not skips(other, bob)


def test_trust_expires(client: Client, totp_user: tuple[User, bytes], frozen_clock: clock.FrozenClock) -> None:
    """After the configured days the browser is asked for the second step again."""
    user, key = totp_user
    trust(client, user, key)
    frozen_clock.advance(30 * 86400 + 1)
    assert not skips(client, user)


def test_duration_is_configurable(
    client: Client, totp_user: tuple[User, bytes], frozen_clock: clock.FrozenClock
) -> None:
    """With trusted_browsers.days = 7 the cookie lasts 7 days and so does the skip."""
    set_setting("trusted_browsers.days", 7)
    user, key = totp_user
    response = signed_in_with_totp(client, user, key, trust="1")
    assert int(response.cookies[COOKIE]["max-age"]) == 7 * 86400
    client.post("/logout")
    frozen_clock.advance(6 * 86400)
    assert skips(client, user)
    client.post("/logout")
    frozen_clock.advance(86400 + 1)
    assert not skips(client, user)


def test_fewer_days_shorten_trust_already_given(
    client: Client, totp_user: tuple[User, bytes], frozen_clock: clock.FrozenClock
) -> None:
    """Trust given for 30 days ends after 3 once an administrator lowers the setting to 3."""
    user, key = totp_user
    trust(client, user, key)
    frozen_clock.advance(2 * 86400)
    set_setting("trusted_browsers.days", 3)
    assert services.count_trusted(user.pk) == 1
    assert [b.expires_at - b.trusted_at for b in services.list_trusted(user)] == [timedelta(days=3)]
    assert skips(client, user)
    client.post("/logout")
    frozen_clock.advance(86400 + 1)
    assert not skips(client, user)
    assert services.count_trusted(user.pk) == 0 and services.list_trusted(user) == []


def test_admin_can_turn_trust_off(client: Client, totp_user: tuple[User, bytes]) -> None:
    """With trusted browsers off, the box is not offered, a ticked box does nothing, and old trust no longer skips."""
    user, key = totp_user
    trust(client, user, key)
    set_setting("trusted_browsers.enabled", False)
    assert not skips(client, user)
    assert "Trust this browser" not in client.get("/login/verify").content.decode()
    response = client.post("/login/verify", {"code": a_wrong_code(key), "trust": "1"})
    assert COOKIE not in response.cookies


def test_the_box_is_offered_with_its_duration(client: Client, totp_user: tuple[User, bytes]) -> None:
    """The second-step page offers "Trust this browser for 30 days" as a labelled checkbox."""
    user, _ = totp_user
    sign_in(client, user.username)
    html = client.get("/login/verify").content.decode()
    assert 'name="trust"' in html and '<label for="id_trust">Trust this browser for 30 days</label>' in html


def test_security_page_lists_and_revokes_one(client: Client, totp_user: tuple[User, bytes]) -> None:
    """The Security page shows the browser, address and date; "Stop trusting" ends that one only."""
    user, key = totp_user
    laptop = Client(HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0")
    trust(laptop, user, key)
    trust(client, user, key)
    assert skips(client, user)
    html = client.get("/account/security").content.decode()
    assert "Firefox on Linux" in html and "127.0.0.1" in html and "this browser" in html
    laptop_row = TrustedBrowser.objects.get(user_agent__contains="Firefox")
    response = client.post("/account/security/trusted/revoke", {"browser": laptop_row.pk})
    assert response.status_code == 302
    assert not skips(laptop, user)
    client.post("/logout")
    assert skips(client, user)


def test_revoking_needs_the_owner(client: Client, totp_user: tuple[User, bytes], make_user) -> None:  # type: ignore[no-untyped-def]
    """A user cannot revoke (or probe) another user's trusted browser by its number."""
    user, key = totp_user
    trust(client, user, key)
    row = TrustedBrowser.objects.get(user=user)
    mallory = make_user("mallory")
    intruder = Client()
    sign_in(intruder, mallory.username)
    intruder.post("/account/security/trusted/revoke", {"browser": row.pk})
    intruder.post("/account/security/trusted/revoke", {"browser": "not a number"})
    assert TrustedBrowser.objects.filter(pk=row.pk).exists()


def test_revoke_all(client: Client, totp_user: tuple[User, bytes]) -> None:
    """ "Stop trusting all browsers" ends every trust of the user."""
    user, key = totp_user
    other = Client()
    trust(other, user, key)
    trust(client, user, key)
    assert skips(client, user)
    client.post("/account/security/trusted/revoke-all")
    assert not TrustedBrowser.objects.filter(user=user).exists()
    assert not skips(other, user)


@pytest.mark.parametrize("change", ["password", "factor_removed", "factor_added", "admin_reset", "sign_out_others"])
def test_security_changes_end_trust(client: Client, totp_user: tuple[User, bytes], admin: User, change: str) -> None:
    """Password change, a factor added or removed, an admin reset, "sign out everywhere else": trust ends everywhere."""
    user, key = totp_user
    trust(client, user, key)
    if change == "password":
        accounts.set_password(user, "a brand new passphrase 42", origin=CLI)
    elif change == "factor_removed":
        # A second factor so that one can be removed while 2FA stays on.
        Authenticator.objects.create(
            user=user, method="email", destination="alice@example.com", confirmed_at=clock.now()
        )
        email_flows.remove(user, CLI)
    elif change == "factor_added":
        new_key = totp.decode_secret(totp_flows.provisioning_for(user).secret)
        totp_flows.confirm(user, totp.totp(new_key, clock.timestamp()), CLI)
    elif change == "admin_reset":
        mfa_services.reset_two_factor(user, origin=CLI, actor=admin)
        enrol_totp(user)
    else:
        other = Client()
        signed_in_with_totp(other, user, key)
        other.post("/account/sessions/end-others")
    assert not TrustedBrowser.objects.filter(user=user).exists()
    password = "a brand new passphrase 42" if change == "password" else None
    response = sign_in(client, user.username, password) if password else sign_in(client, user.username)
    assert response["Location"] == "/login/verify"


def test_changed_factors_end_trust_even_without_the_signal(client: Client, totp_user: tuple[User, bytes]) -> None:
    """If the factors change by a path that ends no session, the fingerprint still refuses the old trust."""
    user, key = totp_user
    trust(client, user, key)
    Authenticator.objects.create(user=user, method="email", destination="alice@example.com", confirmed_at=clock.now())
    assert not skips(client, user)
    assert [e.reason for e in events("trusted_browser.refused")] == ["changed"]
    assert not TrustedBrowser.objects.exists()


def test_changed_password_ends_trust_even_without_the_signal(client: Client, totp_user: tuple[User, bytes]) -> None:
    """A password hash changed behind the service's back also voids the trust."""
    user, key = totp_user
    trust(client, user, key)
    user.set_password("changed directly in the database 7")
    User.objects.filter(pk=user.pk).update(password=user.password)
    response = sign_in(client, user.username, "changed directly in the database 7")
    assert response["Location"] == "/login/verify"


def test_locked_second_step_is_not_skipped(client: Client, totp_user: tuple[User, bytes]) -> None:
    """While the second step is locked, a trusted browser does not get around it."""
    user, key = totp_user
    trust(client, user, key)
    User.objects.filter(pk=user.pk).update(second_step_locked_at=clock.now())
    assert not skips(client, user)


def test_one_browser_remembers_several_people(client: Client, totp_user: tuple[User, bytes], make_user) -> None:  # type: ignore[no-untyped-def]
    """Two accounts trusted on one browser both skip; trusting again replaces, never piles up."""
    user, key = totp_user
    bob = make_user("bob")
    bob_key = enrol_totp(bob)
    trust(client, user, key)
    trust(client, bob, bob_key)
    assert skips(client, user)
    client.post("/logout")
    assert skips(client, bob)
    client.post("/logout")
    assert TrustedBrowser.objects.filter(user=user).count() == 1


def test_garbage_cookie_is_harmless(client: Client, totp_user: tuple[User, bytes]) -> None:
    """A malformed or oversized cookie just means "not trusted"."""
    user, _ = totp_user
    client.cookies[COOKIE] = "x" * 4000 + ".." + "ü"
    assert not skips(client, user)


def test_services_ignore_a_user_without_trust(totp_user: tuple[User, bytes]) -> None:
    """Listing and revoking for a user with no trusted browser are empty, not errors."""
    user, _ = totp_user
    assert services.list_trusted(user) == [] and services.revoke_all(user) == 0
    assert not services.revoke(user, 12345, origin=CLI)


def test_every_security_page_form_carries_the_csrf_token(totp_user: tuple[User, bytes]) -> None:
    """Panels are included in isolation; each of their POST forms still has the CSRF token, so a real browser can use them."""
    user, key = totp_user
    browser = Client(enforce_csrf_checks=True)
    trust(Client(), user, key)
    page = browser.get("/login")
    form = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert form is not None
    browser.post("/login", {"username": user.username, "password": "correct horse battery staple",
                            "csrfmiddlewaretoken": form.group(1)})  # fmt: skip
    verify = browser.get("/login/verify").content.decode()
    form = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', verify)
    assert form is not None
    assert (
        browser.post("/login/verify", {"code": next_code(key), "csrfmiddlewaretoken": form.group(1)}).status_code == 302
    )
    html = browser.get("/account/security").content.decode()
    forms = re.findall(r'<form method="post"[^>]*>(.*?)</form>', html, re.S)
    assert len(forms) >= 4
    assert all("csrfmiddlewaretoken" in body for body in forms)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert token is not None
    row = TrustedBrowser.objects.get(user=user)
    response = browser.post(
        "/account/security/trusted/revoke", {"browser": row.pk, "csrfmiddlewaretoken": token.group(1)}
    )
    assert response.status_code == 302 and not TrustedBrowser.objects.filter(pk=row.pk).exists()


def test_expired_records_can_be_pruned(
    client: Client, totp_user: tuple[User, bytes], frozen_clock: clock.FrozenClock
) -> None:
    """Housekeeping's prune deletes only trust that has run out."""
    user, key = totp_user
    trust(client, user, key)
    assert services.prune_expired() == 0
    frozen_clock.advance(30 * 86400 + 1)
    assert services.prune_expired() == 1 and not TrustedBrowser.objects.exists()


def test_admin_stops_trusting_one_browser_then_all(client: Client, totp_user: tuple[User, bytes], admin: User) -> None:
    """The console lists a user's trusted browsers; an admin ends one (a lost laptop), then the rest."""
    from twostep.audit.models import AuthEvent

    user, key = totp_user
    laptop = Client(HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0")
    trust(laptop, user, key)
    trust(client, user, key)
    console = Client()
    sign_in(console, admin.username)
    page = console.get(f"/admin/users/{user.username}").content.decode()
    assert "Trusted browsers" in page and "Firefox on Linux" in page
    lost = TrustedBrowser.objects.get(user_agent__contains="Firefox")
    for bad in ("not a number", str(lost.pk + 1000)):
        console.post(f"/admin/users/{user.username}/trusted-browsers", {"action": "revoke", "id": bad})
    assert TrustedBrowser.objects.filter(user=user).count() == 2
    response = console.post(f"/admin/users/{user.username}/trusted-browsers", {"action": "revoke", "id": lost.pk})
    assert response.status_code == 302
    assert not skips(laptop, user)
    assert skips(client, user)
    assert AuthEvent.objects.filter(kind="trusted_browser.revoked", user=user, actor=admin).exists()
    client.post("/logout")
    console.post(f"/admin/users/{user.username}/trusted-browsers", {"action": "revoke_all"})
    assert not TrustedBrowser.objects.filter(user=user).exists()
    assert not skips(client, user)


def test_only_admins_end_someone_elses_trust(client: Client, totp_user: tuple[User, bytes], make_user) -> None:  # type: ignore[no-untyped-def]
    """A normal user cannot use the console route to end another user's trust."""
    user, key = totp_user
    trust(client, user, key)
    mallory = Client()
    sign_in(mallory, make_user("mallory").username)
    path = f"/admin/users/{user.username}/trusted-browsers"
    assert mallory.post(path, {"action": "revoke_all"}).status_code == 403
    assert TrustedBrowser.objects.filter(user=user).count() == 1
    assert skips(client, user)
