"""Walk every page route as an anonymous visitor and as a normal user (FB-01, AZ-07).

New routes are covered automatically: a route missing from PUBLIC must refuse
anonymous visitors, and every /admin/ route must refuse non-admins.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from tests.conftest import asked_for_password, sign_in
from tests.mail.smtp_server import SmtpServer, certificates, mail_server, smtp_server
from tests.mfa.email.conftest import BACKUP, email_on
from twostep.accounts.models import User
from twostep.core import clock
from twostep.core.decorators import REAUTH_KEY
from twostep.mfa.models import Authenticator

pytestmark = pytest.mark.django_db

__all__ = ["certificates", "email_on", "mail_server", "smtp_server"]

#: Routes anyone may reach; each refuses or redirects for its own reasons.
PUBLIC = {"", "healthz", "login", "login/verify", "logout", "auth/request", "auth/forward"}


def page_routes() -> list[str]:
    routes: list[str] = []

    def walk(patterns: list[URLPattern | URLResolver], prefix: str) -> None:
        for pattern in patterns:
            text = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, text)
            else:
                routes.append(text)

    walk(get_resolver().url_patterns, "")
    # The JSON API has its own route walk with bearer tokens (tests/api).
    return [route for route in routes if not route.startswith(("api/", "^static"))]


def concrete(route: str, username: str) -> str:
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: username if m.group(1) == "username" else "1", route)


def test_route_table_is_not_empty() -> None:
    """The walk sees the console and the account pages."""
    routes = page_routes()
    assert "admin/users/<str:username>/reset-2fa" in routes
    assert "account/security" in routes


def test_anonymous_visitors_are_refused_everywhere_private(user: User) -> None:
    """Without a session, every non-public page redirects to sign-in or refuses, for GET and POST."""
    client = Client()
    for route in page_routes():
        if route in PUBLIC:
            continue
        url = concrete(route, user.username)
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            assert response.status_code in (302, 401, 403, 405), (method, url, response.status_code)
            if response.status_code == 302:
                assert response["Location"].startswith("/login") or response["Location"] == "/admin/users", url


def test_normal_users_cannot_use_any_admin_route(user: User, make_user: object) -> None:
    """A signed-in non-admin gets 403 from every /admin/ route and changes nothing."""
    target = make_user("target", emails=["t@example.com"])  # type: ignore[operator]
    client = Client()
    sign_in(client, user.username)
    for route in page_routes():
        if not route.startswith("admin/") or route == "admin/":
            continue
        url = concrete(route, target.username)
        for method in ("get", "post"):
            response = getattr(client, method)(url, {"confirm": target.username, "action": "remove", "id": "1"})
            assert response.status_code == 403, (method, url, response.status_code)
    target.refresh_from_db()
    assert target.is_active and target.email_addresses.count() == 1


def test_pending_second_step_reaches_nothing_private(user: User, two_factor_on: None) -> None:
    """With only the password done, every private page behaves as for an anonymous visitor."""
    from twostep.audit.services import CLI
    from twostep.core import clock
    from twostep.factors import totp
    from twostep.mfa.totp import flows

    key = totp.decode_secret(flows.provisioning_for(user).secret)
    flows.confirm(user, totp.totp(key, clock.timestamp()), CLI)
    client = Client()
    assert sign_in(client, user.username)["Location"] == "/login/verify"
    for route in page_routes():
        if route in PUBLIC:
            continue
        response = client.get(concrete(route, user.username))
        assert response.status_code in (302, 401, 403, 405), route


#: Routes that take no CSRF token: the reverse proxy's sub-request carries no form.
CSRF_EXEMPT = {"auth/request", "auth/forward"}


@pytest.mark.parametrize("role", ["user", "admin"])
def test_every_page_refuses_a_post_without_the_csrf_token(role: str, user: User, admin: User) -> None:
    """Signed in as a user and as an administrator, a form posted from elsewhere changes nothing (AZ-03, AZ-05)."""
    signed_in_as = admin if role == "admin" else user
    client = Client()
    assert sign_in(client, signed_in_as.username).status_code == 302
    client.handler.enforce_csrf_checks = True
    for route in page_routes():
        if route in CSRF_EXEMPT:
            continue
        url = concrete(route, user.username)
        response = client.post(url, {"confirm": user.username, "action": "remove", "id": "1"})
        if url == "/login":
            # A sign-in form from another tab: the signed-in browser is sent on, the form not processed.
            assert response.status_code == 302 and response["Location"] == "/account", response.status_code
            continue
        assert response.status_code == 403 and b"could not be verified" in response.content, (url, response.status_code)
    user.refresh_from_db()
    assert user.is_active and user.email_addresses.count() == 2
    assert client.get("/account").status_code == 200  # still signed in: not even sign-out got through


#: Changes on the user's own pages that need the password entered within
#: ``security.reauth_max_age``; every /admin/ change needs it too.
ACCOUNT_CHANGES_NEEDING_PASSWORD = [
    ("account/security/totp", {"action": "confirm", "code": "123456"}),
    ("account/security/totp/remove", {"confirm": "yes"}),
    ("account/security/email", {"action": "send", "address": "1"}),
    ("account/security/email/remove", {"confirm": "yes"}),
    ("account/security/sms", {"action": "send", "phone": "1"}),
    ("account/security/sms/remove", {"confirm": "yes"}),
    ("account/security/recovery-codes", {}),
    ("account/tokens", {"name": "ci", "scope": "self"}),
    ("account/sessions/end", {"session": "x"}),
    ("account/sessions/end-others", {}),
]


def stale(client: Client) -> None:
    """Age the password entry of ``client``'s session past ``security.reauth_max_age``."""
    session = client.session
    session[REAUTH_KEY] = clock.timestamp() - 3600
    session.save()


def test_sensitive_changes_need_a_recent_password(user: User, two_factor_on: None) -> None:
    """With an old password entry each change on the Security page shows the password prompt instead (SES-10).

    The prompt comes before anything else, whether the method is allowed or not.
    """
    client = Client()
    assert sign_in(client, user.username).status_code == 302
    assert {route for route, _ in ACCOUNT_CHANGES_NEEDING_PASSWORD} <= set(page_routes())
    for route, data in ACCOUNT_CHANGES_NEEDING_PASSWORD:
        stale(client)
        response = client.post("/" + route, data)
        assert asked_for_password(response), (route, response.status_code)
    assert not Authenticator.objects.filter(user=user).exists()


def test_every_console_change_needs_a_recent_password(user: User, admin: User) -> None:
    """An administrator's session left open is not enough to change anything in the console (SES-10)."""
    client = Client()
    assert sign_in(client, admin.username).status_code == 302
    routes = [route for route in page_routes() if route.startswith("admin/") and route != "admin/"]
    assert len(routes) >= 14
    for route in routes:
        stale(client)
        response = client.post(
            concrete(route, user.username), {"confirm": user.username, "action": "remove", "id": "1"}
        )
        assert asked_for_password(response), (route, response.status_code)
    user.refresh_from_db()
    assert user.is_active and user.email_addresses.count() == 2


def test_pending_second_step_changes_no_security_setting(user: User, two_factor_on: None) -> None:
    """With only the password done, every change on the Security page is refused and nothing changes (FB-14)."""
    from twostep.api.models import AccessToken
    from twostep.audit.services import CLI
    from twostep.factors import totp
    from twostep.mfa.recovery_codes import services as recovery
    from twostep.mfa.totp import flows

    key = totp.decode_secret(flows.provisioning_for(user).secret)
    flows.confirm(user, totp.totp(key, clock.timestamp()), CLI)
    recovery.regenerate(user, CLI)
    before = (list(Authenticator.objects.filter(user=user).values()), recovery.remaining(user.pk))
    client = Client()
    assert sign_in(client, user.username)["Location"] == "/login/verify"
    changes = [*ACCOUNT_CHANGES_NEEDING_PASSWORD, ("account/password", {}), ("account/sessions/end-others", {})]
    for route, data in changes:
        response = client.post("/" + route, data)
        assert response.status_code in (302, 401, 403), (route, response.status_code)
        if response.status_code == 302:
            assert response["Location"].startswith("/login"), (route, response["Location"])
    assert (list(Authenticator.objects.filter(user=user).values()), recovery.remaining(user.pk)) == before
    assert not AccessToken.objects.filter(user=user).exists()


def security_state() -> dict[str, object]:
    """What a request could change that matters: codes made, factors, accounts, addresses, trust, tokens,
    recovery codes, sessions, sign-ins waiting, and security emails queued."""
    from twostep.accounts.models import EmailAddress, PhoneNumber
    from twostep.api.models import AccessToken
    from twostep.mfa.models import OneTimeCode, PendingLogin, RecoveryCode, TrustedBrowser
    from twostep.notifications.models import Notification
    from twostep.usersessions.models import UserSession

    return {
        "codes": OneTimeCode.objects.count(),
        "factors": list(Authenticator.objects.filter(confirmed_at__isnull=False).order_by("pk").values()),
        "users": list(User.objects.order_by("pk").values()),
        "addresses": list(EmailAddress.objects.order_by("pk").values()),
        "numbers": list(PhoneNumber.objects.order_by("pk").values()),
        "trusted": list(TrustedBrowser.objects.order_by("pk").values_list("pk", "expires_at")),
        "tokens": AccessToken.objects.count(),
        "recovery codes": list(RecoveryCode.objects.order_by("pk").values()),
        "sessions": UserSession.objects.count(),
        "waiting": list(PendingLogin.objects.order_by("pk").values("pk", "expires_at", "completed_at", "method")),
        "notifications": Notification.objects.count(),
    }


def test_a_get_changes_nothing(
    user: User, admin: User, email_on: None, mail_server: SmtpServer, frozen_clock: clock.FrozenClock
) -> None:
    """Every page route, fetched with GET by a browser waiting for its emailed code and by an administrator
    just signed in, changes no security state: a link or a prefetch cannot act (AZ-04)."""
    from tests.mfa.recovery_codes.helpers import enrol_totp, signed_in_with_totp
    from twostep.audit.services import CLI
    from twostep.mfa.email import flows as email_flows
    from twostep.mfa.recovery_codes import services as recovery_codes

    email_flows.start_enrolment(user, user.email_addresses.get(email=BACKUP).pk, CLI)
    email_flows.confirm_enrolment(user, mail_server.last_code(BACKUP), CLI)
    waiting = Client()
    assert sign_in(waiting, user.username)["Location"] == "/login/verify"
    signed_in = Client()
    key = enrol_totp(admin)
    # Made with the first factor (the Security page shows them once after it): already seen here.
    recovery_codes.create_first_set(admin, CLI)
    assert signed_in_with_totp(signed_in, admin, key).status_code == 302
    frozen_clock.advance(61)  # past the resend cooldown: a new code could go out now
    routes = [route for route in page_routes() if route not in {"auth/request", "auth/forward"}]
    for client in (waiting, signed_in):
        for route in routes:
            before = security_state()
            client.get(concrete(route, user.username))
            assert security_state() == before, route
