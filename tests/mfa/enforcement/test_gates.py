"""A user who must enrol reaches nothing else: not the pages, not the API, not the forward-auth endpoint (FB-10)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from tests.api.conftest import Api, error_code
from tests.conftest import PASSWORD, sign_in
from tests.forwardauth.conftest import PUBLIC_URL, forward_config
from tests.mfa.recovery_codes.helpers import enrol_totp, events, signed_in_with_totp
from twostep.accounts.models import Role, User
from twostep.api import tokens
from twostep.audit.services import CLI
from twostep.config.loader import TwostepConfig
from twostep.core import clock
from twostep.core.decorators import REAUTH_KEY
from twostep.core.runtime import set_setting
from twostep.factors import totp
from twostep.mfa import enforcement
from twostep.mfa import services as mfa_services

__all__ = ["forward_config"]

pytestmark = pytest.mark.django_db

ENROL = "/account/security/enrol"
#: Pages that show or change something; all must be out of reach.
PRIVATE_PAGES = ["/account", "/account/security", "/account/tokens", "/admin/users", "/admin/two-factor", "/"]


def require(mode: str = "everyone", *, until: str = "", sign_ins: int = 0) -> None:
    set_setting("two_factor.required", mode)
    set_setting("two_factor.grace_until", until)
    set_setting("two_factor.grace_sign_ins", sign_ins)


def fresh(client: Client) -> None:
    session = client.session
    session[REAUTH_KEY] = clock.timestamp()
    session.save()


def enrol_through_pages(client: Client) -> None:
    """Set up an authenticator app on its page, as the user would."""
    fresh(client)
    page = client.get("/account/security/totp")
    assert page.status_code == 200
    secret = page.context["provisioning"].secret
    response = client.post("/account/security/totp", {"code": totp.totp(totp.decode_secret(secret), clock.timestamp())})
    assert response.status_code == 302 and response["Location"] == "/account/security"


def test_password_leads_straight_to_enrolment(client: Client, user: User, two_factor_on: None) -> None:
    """Without a grace period the password step ends on the enrolment page, and no other page opens."""
    require()
    response = client.post("/login?next=/account/sessions", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == ENROL
    page = client.get(ENROL)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Set up two-step verification" in html and 'href="/account/security/totp"' in html
    assert "Not now" not in html
    # The main menu offers only what can be reached: its other links would lead back here.
    nav = html.split('<nav aria-label="Main">')[1].split("</nav>")[0]
    assert 'href="/account"' not in nav and 'href="/account/security"' not in nav and "Sign out" in nav
    for path in PRIVATE_PAGES:
        for method in ("get", "post"):
            response = getattr(client, method)(path)
            assert response.status_code == 302 and response["Location"] == ENROL, (method, path)
    assert [e.detail["now"] for e in events("two_factor.enrolment_required")] == [True]


def test_a_forced_password_change_goes_on_to_the_enrolment_page(
    client: Client, make_user: Callable[..., User], two_factor_on: None
) -> None:
    """A user whose password an administrator chose, and whom the policy asks to set up a second step
    (here within a grace period), sees the enrolment page right after choosing a password, as a sign-in
    without the forced change does; "Not now" goes on to where the sign-in was going."""
    require(sign_ins=1)
    newbie = make_user("newbie", must_change_password=True)
    signed = client.post("/login?next=/account/sessions", {"username": newbie.username, "password": PASSWORD})
    assert signed["Location"] == "/account/password"
    changed = client.post(
        "/account/password",
        {"current_password": PASSWORD, "new_password": "my very own secret", "repeat_password": "my very own secret"},
    )
    assert changed["Location"] == ENROL
    assert '<a href="/account/sessions">Not now</a>' in client.get(ENROL).content.decode()


def test_enrolling_opens_everything(client: Client, user: User, two_factor_on: None) -> None:
    """After setting up a factor on the allowed set-up page, the pages open and the first recovery codes show."""
    require()
    sign_in(client, user.username)
    enrol_through_pages(client)
    security = client.get("/account/security")
    assert security.status_code == 200 and "Save these codes now" in security.content.decode()
    assert client.get("/account").status_code == 200
    assert client.get(ENROL)["Location"] == "/account"


def test_enrolment_is_not_a_way_around_the_password(client: Client, user: User, two_factor_on: None) -> None:
    """The set-up pages still ask for a recent password, so a stolen session cannot enrol the thief's phone."""
    require()
    sign_in(client, user.username)
    session = client.session
    session[REAUTH_KEY] = clock.timestamp() - 3600
    session.save()
    response = client.get("/account/security/totp")
    assert response.status_code == 302 and response["Location"].startswith("/account/reauthenticate")
    assert client.get(response["Location"]).status_code == 200


def test_grace_offers_not_now_and_keeps_the_destination(client: Client, user: User, two_factor_on: None) -> None:
    """During the grace the enrolment page says how long is left and "Not now" goes where the user was going."""
    require(sign_ins=2)
    response = client.post("/login?next=/account/sessions", {"username": "alice", "password": PASSWORD})
    assert response["Location"] == ENROL
    html = client.get(ENROL).content.decode()
    assert "You can sign in 1 more time without it." in html
    assert '<a href="/account/sessions">Not now</a>' in html
    assert client.get("/account").status_code == 200
    assert "Set up one of the methods below" in client.get("/account/security").content.decode()


def test_grace_by_sign_ins_runs_out(user: User, two_factor_on: None) -> None:
    """The third sign-in with two grace sign-ins is locked to enrolment."""
    require(sign_ins=2)
    for _ in range(2):
        browser = Client()
        sign_in(browser, user.username)
        assert browser.get("/account").status_code == 200
    browser = Client()
    assert sign_in(browser, user.username)["Location"] == ENROL
    assert browser.get("/account")["Location"] == ENROL
    assert "Not now" not in browser.get(ENROL).content.decode()


def test_grace_by_date_runs_out_mid_session(
    client: Client, user: User, two_factor_on: None, frozen_clock: clock.FrozenClock
) -> None:
    """When the date passes, an open session is sent to enrolment at its next page."""
    deadline = (clock.now() + timedelta(days=1)).date()
    midnight = datetime.combine(deadline, datetime.min.time(), UTC)
    frozen_clock.advance((midnight - clock.now()).total_seconds() - 30 * 60)
    require(until=deadline.isoformat())
    sign_in(client, user.username)
    assert client.get("/account").status_code == 200
    page = client.get("/account/security")
    # The deadline, in UTC for the page's script to show in the reader's zone.
    stamp = midnight.strftime("%Y-%m-%d %H:%M")
    assert (
        f'from <time datetime="{midnight.isoformat()}" data-local="datetime">{stamp} UTC</time>'
        in page.content.decode()
    )
    frozen_clock.advance(29 * 60)
    assert client.get("/account").status_code == 200
    frozen_clock.advance(2 * 60)
    assert client.get("/account")["Location"] == ENROL


def test_admin_reset_means_enrol_again(client: Client, user: User, admin: User, two_factor_on: None) -> None:
    """After an admin resets the user's 2FA, a required user must enrol again at the next sign-in."""
    require()
    enrol_totp(user)
    mfa_services.reset_two_factor(user, origin=CLI, actor=admin)
    assert sign_in(client, user.username)["Location"] == ENROL


def test_policy_for_admins_only(client: Client, user: User, admin: User, two_factor_on: None) -> None:
    """ "Administrators only" sends the admin to enrol but lets a normal user in."""
    require("admins")
    assert sign_in(client, user.username)["Location"] == "/account"
    other = Client()
    assert sign_in(other, admin.username)["Location"] == ENROL
    assert other.get("/admin/users")["Location"] == ENROL


def test_forced_password_change_comes_first(client: Client, make_user, two_factor_on: None) -> None:  # type: ignore[no-untyped-def]
    """A user who must also change their password does that first, then lands on enrolment."""
    require()
    make_user("newbie", must_change_password=True)
    assert sign_in(client, "newbie")["Location"] == "/account/password"
    assert client.get(ENROL)["Location"] == "/account/password"
    response = client.post(
        "/account/password",
        {
            "current_password": PASSWORD,
            "new_password": "a fresh passphrase 12",
            "repeat_password": "a fresh passphrase 12",
        },
    )
    assert response.status_code == 302 and response["Location"] == ENROL


# --- the API ---------------------------------------------------------------------


@pytest.fixture
def api(client: Client) -> Api:
    return Api(client)


def test_api_token_reaches_only_enrolment(api: Api, user: User, two_factor_on: None) -> None:
    """A token of a user who must enrol gets 403 enrolment_required everywhere but sign-in, password and factors."""
    require()
    response = api.post("/auth/login", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    token = response.json()["access_token"]
    for path in ["/me", "/me/tokens", "/me/recovery-codes"]:
        refused = api.get(path, token=token)
        assert refused.status_code == 403 and error_code(refused) == "enrolment_required", path
        assert "set up a second factor" in refused.json()["error"]["message"]
    started = api.post("/me/factors/totp", token=token)
    assert started.status_code == 200
    key = totp.decode_secret(started.json()["secret"])
    confirmed = api.post("/me/factors/totp/confirm", {"code": totp.totp(key, clock.timestamp())}, token=token)
    assert confirmed.status_code == 201
    assert api.get("/me", token=token).status_code == 200


def test_api_admin_token_is_blocked_too(api: Api, admin: User, two_factor_on: None) -> None:
    """Even an admin-scoped token cannot use the admin API before enrolling."""
    require("admins")
    issued = tokens.issue_sign_in_token(admin, origin=CLI)
    refused = api.get("/admin/users", token=issued.secret)
    assert refused.status_code == 403 and error_code(refused) == "enrolment_required"


def test_api_sign_ins_count_towards_the_grace(api: Api, user: User, two_factor_on: None) -> None:
    """Each API sign-in without a second step uses one grace sign-in; then the token is gated."""
    require(sign_ins=1)
    first = api.post("/auth/login", {"username": "alice", "password": PASSWORD}).json()["access_token"]
    assert api.get("/me", token=first).status_code == 200
    second = api.post("/auth/login", {"username": "alice", "password": PASSWORD}).json()["access_token"]
    assert error_code(api.get("/me", token=second)) == "enrolment_required"
    assert error_code(api.get("/me", token=first)) == "enrolment_required"


# --- forward-auth ----------------------------------------------------------------


def test_forward_auth_sends_to_enrolment(
    client: Client, user: User, two_factor_on: None, forward_config: Callable[..., TwostepConfig]
) -> None:
    """The proxy gets no identity for a user who must enrol: nginx 401 / Traefik 302 to the enrolment page."""
    require()
    sign_in(client, user.username)
    nginx = client.get("/auth/request", HTTP_X_ORIGINAL_URL="https://wiki.example.com/page")
    assert nginx.status_code == 401 and nginx["Location"] == f"{PUBLIC_URL}{ENROL}"
    assert "Remote-User" not in nginx
    traefik = client.get(
        "/auth/forward",
        HTTP_X_FORWARDED_PROTO="https",
        HTTP_X_FORWARDED_HOST="wiki.example.com",
        HTTP_X_FORWARDED_URI="/page",
    )
    assert traefik.status_code == 302 and traefik["Location"] == f"{PUBLIC_URL}{ENROL}"
    key = enrol_totp(user)  # ends the user's sessions: sign in again, with the code
    assert signed_in_with_totp(client, user, key).status_code == 302
    passed = client.get("/auth/request", HTTP_X_ORIGINAL_URL="https://wiki.example.com/page")
    assert passed.status_code == 200 and passed["Remote-User"] == "alice"


def test_forward_auth_during_grace_passes(
    client: Client, user: User, two_factor_on: None, forward_config: Callable[..., TwostepConfig]
) -> None:
    """While the grace lasts, applications stay reachable."""
    require(sign_ins=3)
    sign_in(client, user.username)
    assert client.get("/auth/request", HTTP_X_ORIGINAL_URL="https://wiki.example.com/").status_code == 200


def test_role_change_applies_at_once(client: Client, user: User, two_factor_on: None) -> None:
    """Promoting a user to admin under "admins only" gates their open session at the next page."""
    require("admins")
    sign_in(client, user.username)
    assert client.get("/account").status_code == 200
    User.objects.filter(pk=user.pk).update(role=Role.ADMIN)
    assert client.get("/account")["Location"] == ENROL


def test_requirement_helper_matches_gate(user: User, two_factor_on: None) -> None:
    """The middleware, the API and forward-auth all ask the same function."""
    require()
    assert enforcement.enrolment_required(user)
    enrol_totp(user)
    assert not enforcement.enrolment_required(user)
