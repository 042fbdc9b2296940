"""Access tokens: storage, expiry, scopes, re-authentication and revocation with the user's sessions."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from tests.api.conftest import Api, enrol_totp, error_code
from tests.conftest import PASSWORD
from twostep.accounts import services
from twostep.accounts.models import Role, User
from twostep.api import tokens
from twostep.api.models import AccessToken
from twostep.audit.services import CLI
from twostep.core import clock
from twostep.factors import totp
from twostep.mfa import services as mfa_services
from twostep.mfa.totp import flows

pytestmark = pytest.mark.django_db


def personal(user: User, scopes: list[str], days: int = 30) -> str:
    return tokens.create_personal_token(user, name="script", scopes=scopes, days=days, origin=CLI).secret


def test_only_the_hash_is_stored(user: User) -> None:
    """The database holds the token's SHA-256, never the token itself."""
    secret = tokens.issue_sign_in_token(user, origin=CLI).secret
    row = AccessToken.objects.get(user=user)
    assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM api_accesstoken")
        dump = repr(cursor.fetchall())
    assert secret not in dump and secret[4:] not in dump


def test_tokens_are_random_and_prefixed(user: User) -> None:
    """Tokens carry a recognisable prefix and at least 256 bits from secrets (no two alike)."""
    issued = {tokens.issue_sign_in_token(user, origin=CLI).secret for _ in range(20)}
    assert len(issued) == 20
    assert all(s.startswith("tsa_") and len(s) >= 4 + 43 for s in issued)
    assert personal(user, ["read"]).startswith("tsp_")


def test_sign_in_token_idle_timeout(api: Api, user: User, frozen_clock: clock.FrozenClock) -> None:
    """A sign-in token unused for an hour stops working; use keeps it alive."""
    token = tokens.issue_sign_in_token(user, origin=CLI).secret
    frozen_clock.advance(3000)
    assert api.get("/me", token=token).status_code == 200
    frozen_clock.advance(3000)
    assert api.get("/me", token=token).status_code == 200
    frozen_clock.advance(3601)
    response = api.get("/me", token=token)
    assert response.status_code == 401 and error_code(response) == "unauthorized"


def test_sign_in_token_absolute_timeout(api: Api, user: User, frozen_clock: clock.FrozenClock) -> None:
    """A sign-in token ends after 24 hours however much it is used."""
    token = tokens.issue_sign_in_token(user, origin=CLI).secret
    for _ in range(24):
        frozen_clock.advance(3590)
        assert api.get("/me", token=token).status_code == 200
    frozen_clock.advance(3590)
    assert api.get("/me", token=token).status_code == 401


def test_personal_token_expiry(api: Api, user: User, frozen_clock: clock.FrozenClock) -> None:
    """A personal token has no idle timeout but ends at the expiry chosen."""
    token = personal(user, ["read"], days=7)
    frozen_clock.advance(6 * 86400)
    assert api.get("/me", token=token).status_code == 200
    frozen_clock.advance(86400)
    assert api.get("/me", token=token).status_code == 401


def test_a_token_not_used_yet_says_so(api: Api, user: User, frozen_clock: clock.FrozenClock) -> None:
    """last_used_at is null until the first use, which is recorded at once, not a minute later."""
    unused = tokens.create_personal_token(user, name="unused", scopes=["read"], days=7, origin=CLI).secret
    lister = tokens.create_personal_token(user, name="lister", scopes=["read"], days=7, origin=CLI).secret
    frozen_clock.advance(5)

    def last_used() -> dict[str, object]:
        return {t["name"]: t["last_used_at"] for t in api.get("/me/tokens", token=lister).json()}

    seen = last_used()
    assert seen["unused"] is None and seen["lister"] is not None  # listing was the lister's first use
    frozen_clock.advance(5)
    assert api.get("/me", token=unused).status_code == 200
    assert last_used()["unused"] is not None


@pytest.mark.parametrize(
    "end",
    [
        lambda user: services.set_password(user, "a brand new passphrase", origin=CLI),
        lambda user: services.set_active(user, False, origin=CLI),
        lambda user: mfa_services.reset_two_factor(user, origin=CLI),
    ],
    ids=["password-change", "deactivation", "2fa-reset"],
)
def test_tokens_end_with_the_sessions(api: Api, user: User, end: Callable[[User], object]) -> None:
    """Password change, deactivation and a 2FA reset end every token of the user, personal ones too."""
    sign_in = tokens.issue_sign_in_token(user, origin=CLI).secret
    automation = personal(user, ["read"])
    end(user)
    assert api.get("/me", token=sign_in).status_code == 401
    assert api.get("/me", token=automation).status_code == 401
    assert not AccessToken.objects.filter(user=user).exists()


def test_other_users_tokens_survive(api: Api, user: User, make_user) -> None:  # type: ignore[no-untyped-def]
    """Ending one user's sessions leaves other users' tokens alone."""
    bob = make_user("bob")
    bobs = tokens.issue_sign_in_token(bob, origin=CLI).secret
    services.set_password(user, "a brand new passphrase", origin=CLI)
    assert api.get("/me", token=bobs).status_code == 200


def test_web_factor_change_ends_tokens(api: Api, user: User, two_factor_on: None) -> None:
    """Setting up a factor on the web page ends the user's API tokens (as it ends other sessions)."""
    token = tokens.issue_sign_in_token(user, origin=CLI).secret
    enrol_totp(user)
    assert api.get("/me", token=token).status_code == 401


def test_own_factor_change_spares_the_calling_token(api: Api, user: User, two_factor_on: None) -> None:
    """Confirming TOTP through the API keeps the calling token and ends the user's others."""
    mine = tokens.issue_sign_in_token(user, origin=CLI).secret
    other = tokens.issue_sign_in_token(user, origin=CLI).secret
    secret = api.post("/me/factors/totp", token=mine).json()["secret"]
    code = totp.totp(totp.decode_secret(secret), clock.timestamp())
    assert api.post("/me/factors/totp/confirm", {"code": code}, token=mine).status_code == 201
    assert api.get("/me", token=mine).status_code == 200
    assert api.get("/me", token=other).status_code == 401


def test_read_scope_cannot_change_security(api: Api, user: User) -> None:
    """A read-only personal token can read but gets 403 forbidden for security changes."""
    token = personal(user, ["read"])
    assert api.get("/me/factors", token=token).status_code == 200
    response = api.post("/me/reauthenticate", {"password": PASSWORD}, token=token)
    assert response.status_code == 403 and error_code(response) == "forbidden"


def test_security_scope_cannot_read(api: Api, user: User) -> None:
    """Scopes are separate: a security-only token cannot call read operations."""
    token = personal(user, ["security"])
    response = api.get("/me", token=token)
    assert response.status_code == 403 and error_code(response) == "forbidden"


def test_admin_scope_follows_the_role(api: Api, admin: User, make_user) -> None:  # type: ignore[no-untyped-def]
    """An admin token loses its admin powers the moment the user stops being an administrator:
    a new role ends the user's sessions and tokens, as any change of privilege."""
    make_user("second-admin", role=Role.ADMIN)
    token = personal(admin, ["read", "admin"])
    assert api.get("/admin/users", token=token).status_code == 200
    services.update_user(admin, role=Role.USER, origin=CLI)
    response = api.get("/admin/users", token=token)
    assert response.status_code == 401 and error_code(response) == "unauthorized"


def test_admin_scope_needs_the_role_even_if_the_token_survived(api: Api, admin: User, make_user) -> None:  # type: ignore[no-untyped-def]
    """Second guard: a token left over from a role change made outside the service
    (a database edit, a race) still loses the admin scope with the role."""
    make_user("second-admin", role=Role.ADMIN)
    token = personal(admin, ["read", "admin"])
    User.objects.filter(pk=admin.pk).update(role=Role.USER)
    response = api.get("/admin/users", token=token)
    assert response.status_code == 403 and error_code(response) == "forbidden"
    assert api.get("/me", token=token).status_code == 200  # the token itself still works


def test_users_cannot_get_the_admin_scope(api: Api, user: User, token_for) -> None:  # type: ignore[no-untyped-def]
    """A regular user can neither sign in with nor create a token carrying the admin scope."""
    token = token_for(user)
    assert "admin" not in AccessToken.objects.get(user=user).scopes
    response = api.post("/me/tokens", {"name": "x", "scopes": ["admin"]}, token=token)
    assert response.status_code == 422 and error_code(response) == "invalid_value"


def test_token_cannot_mint_wider_scopes(api: Api, admin: User) -> None:
    """A token cannot create a personal token with a scope it does not carry itself."""
    token = personal(admin, ["read", "security"])
    assert api.post("/me/reauthenticate", {"password": PASSWORD}, token=token).status_code == 200
    # A short life, so that the refusal is the scope's and not the expiry's.
    response = api.post("/me/tokens", {"name": "escalate", "scopes": ["admin"], "expires_in_days": 1}, token=token)
    assert response.status_code == 422 and error_code(response) == "invalid_value"
    assert "cannot grant scope(s) it does not have: admin" in response.json()["error"]["message"]
    assert AccessToken.objects.filter(user=admin).count() == 1


def test_the_service_refuses_the_admin_scope_to_a_user(user: User) -> None:
    """Whatever the caller offers (no cap on scopes, as from the web page), a regular user gets no admin token."""
    with pytest.raises(ValidationError, match="Only administrators"):
        tokens.create_personal_token(user, name="sneaky", scopes=["read", "admin"], origin=CLI)
    assert not AccessToken.objects.filter(user=user).exists()


def test_personal_tokens_per_user_are_capped(user: User, make_user) -> None:  # type: ignore[no-untyped-def]
    """A user holds at most MAX_PERSONAL_TOKENS live personal tokens: one more is refused until one is revoked."""
    for _ in range(tokens.MAX_PERSONAL_TOKENS):
        personal(user, ["read"])
    with pytest.raises(ValidationError, match="revoke one first"):
        personal(user, ["read"])
    assert AccessToken.objects.filter(user=user).count() == tokens.MAX_PERSONAL_TOKENS
    assert personal(make_user("bob"), ["read"])  # the cap is per user


def test_a_deactivated_users_token_stops_working_even_if_it_survived(api: Api, user: User) -> None:
    """Second guard: a token whose row outlived the user's deactivation (any path) authenticates nothing."""
    token = personal(user, ["read"])
    assert api.get("/me", token=token).status_code == 200
    User.objects.filter(pk=user.pk).update(is_active=False)  # bypasses the service, so the row stays
    assert AccessToken.objects.filter(user=user).exists()
    assert api.get("/me", token=token).status_code == 401


def test_token_cannot_mint_a_longer_lived_token(api: Api, user: User) -> None:
    """A personal token about to expire cannot renew itself for a year with the password alone."""
    token = tokens.create_personal_token(user, name="ci", scopes=["read", "security"], days=1, origin=CLI).secret
    assert api.post("/me/reauthenticate", {"password": PASSWORD}, token=token).status_code == 200
    longer = api.post("/me/tokens", {"name": "forever", "scopes": ["read"], "expires_in_days": 365}, token=token)
    assert longer.status_code == 422 and "cannot last longer" in longer.json()["error"]["message"]
    assert AccessToken.objects.filter(user=user).count() == 1
    signed_in = tokens.issue_sign_in_token(user, origin=CLI).secret
    year = api.post("/me/tokens", {"name": "yearly", "scopes": ["read"], "expires_in_days": 365}, token=signed_in)
    assert year.status_code == 201, year.content


def test_sensitive_changes_need_recent_password(
    api: Api, user: User, two_factor_on: None, frozen_clock: clock.FrozenClock
) -> None:
    """After five minutes a sign-in token needs the password again before a sensitive change."""
    token = tokens.issue_sign_in_token(user, origin=CLI).secret
    assert api.post("/me/factors/totp", token=token).status_code == 200
    frozen_clock.advance(301)
    response = api.post("/me/factors/totp", token=token)
    assert response.status_code == 403 and error_code(response) == "reauthentication_required"
    wrong = api.post("/me/reauthenticate", {"password": "not my password"}, token=token)
    assert wrong.status_code == 403 and error_code(wrong) == "invalid_password"
    assert api.post("/me/factors/totp", token=token).status_code == 403
    right = api.post("/me/reauthenticate", {"password": PASSWORD}, token=token)
    assert right.status_code == 200 and right.json()["reauthenticated_until"]
    assert api.post("/me/factors/totp", token=token).status_code == 200


def test_personal_tokens_start_without_reauthentication(api: Api, user: User) -> None:
    """A new personal token must re-authenticate before it can make sensitive changes."""
    token = personal(user, ["read", "security"])
    response = api.post("/me/tokens", {"name": "more", "scopes": ["read"]}, token=token)
    assert response.status_code == 403 and error_code(response) == "reauthentication_required"


def test_create_list_and_revoke_personal_tokens(api: Api, user: User, token_for) -> None:  # type: ignore[no-untyped-def]
    """A personal token is shown once at creation, listed without its secret, and revocable."""
    token = token_for(user)
    created = api.post("/me/tokens", {"name": "backup", "scopes": ["read"], "expires_in_days": 7}, token=token)
    assert created.status_code == 201
    body = created.json()
    secret = body["token"]
    assert secret.startswith("tsp_") and body["scopes"] == ["read"] and body["kind"] == "personal"
    listing = api.get("/me/tokens", token=token)
    assert secret not in listing.content.decode()
    ids = {item["id"]: item for item in listing.json()}
    assert ids[body["id"]]["name"] == "backup" and sum(item["current"] for item in ids.values()) == 1
    assert api.get("/me", token=secret).status_code == 200
    assert api.delete(f"/me/tokens/{body['id']}", token=token).status_code == 204
    assert api.get("/me", token=secret).status_code == 401
    again = api.delete(f"/me/tokens/{body['id']}", token=token)
    assert again.status_code == 404 and error_code(again) == "not_found"


def test_cannot_revoke_someone_elses_token(api: Api, user: User, make_user, token_for) -> None:  # type: ignore[no-untyped-def]
    """Token ids of other users are not found (and stay alive)."""
    bob = make_user("bob")
    bobs = tokens.issue_sign_in_token(bob, origin=CLI)
    response = api.delete(f"/me/tokens/{bobs.token.public_id}", token=token_for(user))
    assert response.status_code == 404
    assert api.get("/me", token=bobs.secret).status_code == 200


def test_garbage_tokens_are_unauthorized(api: Api, db: None) -> None:
    """Malformed, unknown and over-long bearer values all get 401 unauthorized."""
    for value in ["", "tsa_", "tsa_" + "x" * 43, "tsp_" + "y" * 500, "Basic abc", "\u00e9\u00e9"]:
        response = api.get("/me", token=value)
        assert response.status_code == 401 and error_code(response) == "unauthorized"
    response = api.get("/me", HTTP_AUTHORIZATION="Basic YWxpY2U6cGFzc3dvcmQ=")
    assert response.status_code == 401


def test_demoted_via_flows_remove(api: Api, user: User, two_factor_on: None) -> None:
    """Removing TOTP on the pages' flow ends API tokens too."""
    enrol_totp(user)
    token = tokens.issue_sign_in_token(user, origin=CLI).secret
    flows.remove(user, CLI)
    assert api.get("/me", token=token).status_code == 401
