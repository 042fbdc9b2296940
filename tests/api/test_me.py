"""The caller's security surface: profile, factors, authenticator-app set-up and removal."""

from __future__ import annotations

import re

import pytest

from tests.api.conftest import Api, allow_only, enrol_totp, error_code, prove_second_factor
from twostep.accounts.models import User
from twostep.audit.models import AuthEvent
from twostep.core import clock
from twostep.core.runtime import set_setting
from twostep.factors import totp
from twostep.mfa.models import Authenticator

pytestmark = pytest.mark.django_db


def test_me_describes_the_account(api: Api, user: User, token_for) -> None:  # type: ignore[no-untyped-def]
    """GET /me lists addresses, phones, factors, the 2FA state and the token in use."""
    body = api.get("/me", token=token_for(user)).json()
    assert body["username"] == "alice" and body["role"] == "user"
    assert [e["email"] for e in body["emails"]] == ["alice@example.com", "alice.backup@example.org"]
    assert body["emails"][0]["primary"] is True
    assert body["phones"][0]["number"] == "+15551234567"
    assert body["factors"] == []
    assert body["two_factor"] == {"active": False, "allowed_methods": ["totp"], "forced_off_by_config": False}
    assert body["token"]["current"] is True and body["token"]["kind"] == "sign_in"


def test_totp_enrolment_end_to_end(api: Api, user: User, two_factor_on: None, token_for) -> None:  # type: ignore[no-untyped-def]
    """Start returns the key, URI and QR once; a current code confirms; the factor is then listed without secrets."""
    token = token_for(user)
    start = api.post("/me/factors/totp", token=token)
    assert start.status_code == 200
    provisioning = start.json()
    assert provisioning["uri"].startswith("otpauth://totp/") and "issuer=twostep" in provisioning["uri"]
    assert provisioning["qr_svg"].startswith("<svg") and provisioning["secret"] in provisioning["uri"]
    assert api.post("/me/factors/totp", token=token).json()["secret"] == provisioning["secret"]
    key = totp.decode_secret(provisioning["secret"])
    current = totp.totp(key, clock.timestamp())
    wrong = api.post("/me/factors/totp/confirm", {"code": str((int(current) + 1) % 10**6).zfill(6)}, token=token)
    assert wrong.status_code == 422 and error_code(wrong) == "invalid_code"
    confirmed = api.post("/me/factors/totp/confirm", {"code": totp.totp(key, clock.timestamp())}, token=token)
    assert confirmed.status_code == 201 and confirmed.json()["method"] == "totp"
    factors = api.get("/me/factors", token=token)
    assert [f["method"] for f in factors.json()] == ["totp"]
    assert provisioning["secret"] not in factors.content.decode()
    assert provisioning["secret"] not in api.get("/me", token=token).content.decode()
    assert AuthEvent.objects.filter(kind="totp.enabled", user=user).exists()


def test_a_code_from_a_phone_whose_clock_is_off_says_so(  # type: ignore[no-untyped-def]
    api: Api, user: User, two_factor_on: None, token_for, frozen_clock: clock.FrozenClock
) -> None:
    """A code of the app with its clock 4 minutes behind gets 422 invalid_code saying so; nothing is enrolled."""
    token = token_for(user)
    key = totp.decode_secret(api.post("/me/factors/totp", token=token).json()["secret"])
    late = api.post("/me/factors/totp/confirm", {"code": totp.totp(key, clock.timestamp() - 240)}, token=token)
    assert late.status_code == 422 and error_code(late) == "invalid_code"
    assert "your phone's clock seems about 4 minutes slow" in late.json()["error"]["message"]
    assert not Authenticator.objects.filter(user=user, confirmed_at__isnull=False).exists()


def test_confirm_without_start(api: Api, user: User, two_factor_on: None, token_for) -> None:  # type: ignore[no-untyped-def]
    """Confirming with no set-up in progress answers 422 invalid_code and creates nothing."""
    response = api.post("/me/factors/totp/confirm", {"code": "123456"}, token=token_for(user))
    assert response.status_code == 422 and error_code(response) == "invalid_code"
    assert not Authenticator.objects.filter(user=user).exists()


def test_totp_not_allowed(api: Api, user: User, token_for) -> None:  # type: ignore[no-untyped-def]
    """When the admin does not allow authenticator apps, set-up answers 409 method_unavailable."""
    allow_only("email")
    response = api.post("/me/factors/totp", token=token_for(user))
    assert response.status_code == 409 and error_code(response) == "method_unavailable"
    assert response.json()["error"]["methods"] == ["email"]  # what may be set up instead


def test_remove_totp(api: Api, user: User, two_factor_on: None, token_for) -> None:  # type: ignore[no-untyped-def]
    """DELETE removes the app (then sign-in needs only the password); a second DELETE is 404."""
    enrol_totp(user)
    token = prove_second_factor(token_for(user))
    assert api.delete("/me/factors/totp", token=token).status_code == 204
    assert not Authenticator.objects.filter(user=user).exists()
    again = api.delete("/me/factors/totp", token=token)
    assert again.status_code == 404 and error_code(again) == "not_found"
    login = api.post("/auth/login", {"username": "alice", "password": "correct horse battery staple"})
    assert login.json()["status"] == "signed_in"


def test_set_up_ids_are_where_a_user_who_must_enrol_can_read_them(
    api: Api, user: User, two_factor_on: None, token_for
) -> None:  # type: ignore[no-untyped-def]
    """email_id and phone_id say where their ids are listed, and that operation answers a user who must
    enrol (GET /me does not) with those ids."""
    set_setting("two_factor.required", "everyone")
    token = token_for(user)
    assert api.get("/me", token=token).status_code == 403
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    for schema, field, listed in [("EmailFactorIn", "email_id", "emails"), ("PhoneFactorIn", "phone_id", "phones")]:
        description = schemas[schema]["properties"][field]["description"]
        match = re.search(r"GET (/api/v1/[\w/-]+)", description)
        assert match, description
        response = api.get(match.group(1).removeprefix("/api/v1"), token=token)
        assert response.status_code == 200, (field, match.group(1), response.content)
        assert response.json()[listed] and all(isinstance(item["id"], int) for item in response.json()[listed])
