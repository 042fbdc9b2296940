"""The administrator's second-factor proof can be walked around with other admin operations (audit).

docs/api.md: "With a sign-in token, an administrator whose own sign-in asks for a code also needs the
proof for POST /api/v1/admin/users/{username}/reset-2fa, and for a PATCH /api/v1/admin/settings ...
that stops asking users for their code", so that "a token and the password are not enough to turn the
second step off or over".  Someone holding an administrator's sign-in token and password, but not the
administrator's authenticator app, reaches the same end through operations that ask no proof.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.api.conftest import Api, allow_only, enrol_totp, error_code
from tests.conftest import PASSWORD
from twostep.accounts.models import User
from twostep.core import clock
from twostep.mfa.models import Authenticator

pytestmark = pytest.mark.django_db

ATTACKER_PASSWORD = "attacker chosen passphrase 42"


def has_factor(user: User) -> bool:
    return Authenticator.objects.filter(user=user, confirmed_at__isnull=False).exists()


def login(api: Api, username: str, password: str) -> dict[str, Any]:
    response = api.post("/auth/login", {"username": username, "password": password})
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def stolen_admin_token(admin: User, two_factor_on: None, token_for: Callable[[User], str]) -> str:
    """An administrator who signs in with an app; the attacker has a sign-in token (password just entered) but no code."""
    enrol_totp(admin)
    return token_for(admin)


def test_a_fresh_admin_account_resets_2fa_without_the_admins_proof(
    api: Api, user: User, stolen_admin_token: str
) -> None:
    """reset-2fa is refused for want of the administrator's proof, but the same token may create another
    administrator (no proof asked), whose own token then resets the victim's second step: no code of any
    factor was ever typed."""
    enrol_totp(user)
    refused = api.post(f"/admin/users/{user.username}/reset-2fa", token=stolen_admin_token)
    assert refused.status_code == 403 and error_code(refused) == "second_factor_required"

    created = api.post(
        "/admin/users",
        {"username": "helper", "password": ATTACKER_PASSWORD, "role": "admin", "must_change_password": False},
        token=stolen_admin_token,
    )
    if created.status_code == 201:
        helper = login(api, "helper", ATTACKER_PASSWORD)
        if helper["status"] == "signed_in":
            api.post(f"/admin/users/{user.username}/reset-2fa", token=helper["access_token"])
    assert has_factor(user), "the victim's second step was turned off without any second-factor proof"


def test_deactivate_withdraw_reactivate_turns_a_users_second_step_off_without_proof(
    api: Api, user: User, stolen_admin_token: str
) -> None:
    """A withdrawn method is counted in `confirm_affected` (and needs the proof) only for active users.
    Deactivating the victim first, withdrawing their only method, and reactivating them turns their second
    step off with no confirmation and no proof; a password the administrator sets then signs them in alone."""
    allow_only("totp", "email")
    address = user.email_addresses.get(email="alice@example.com")
    Authenticator.objects.create(
        user=user, method="email", destination=address.email, confirmed_at=clock.now()
    )  # the victim's only factor: email codes
    assert login(api, user.username, PASSWORD)["status"] == "second_step_required"

    steps = [
        api.patch(f"/admin/users/{user.username}", {"is_active": False}, token=stolen_admin_token),
        api.patch("/admin/settings", {"values": {"two_factor.methods": ["totp"]}}, token=stolen_admin_token),
        api.patch(f"/admin/users/{user.username}", {"is_active": True}, token=stolen_admin_token),
        api.post(
            f"/admin/users/{user.username}/password",
            {"password": ATTACKER_PASSWORD, "must_change_password": False},
            token=stolen_admin_token,
        ),
    ]
    if all(step.status_code in (200, 204) for step in steps):
        answer = login(api, user.username, ATTACKER_PASSWORD)
        assert answer["status"] != "signed_in", (
            "the victim signs in with the password alone: their second step was turned off without a proof"
        )
