"""Which operations need a recent password, and which a second-factor proof: found by calling every
operation, held to docs/api.md.

docs/api.md lists the operations of /api/v1/me that answer 403
reauthentication_required without a recent password entry and says that
every administrative change made with a sign-in token does; and, apart, those
that answer 403 second_factor_required without a recent code of a factor
(AZ-01).  The lists are not kept by hand: each operation is called with a
token whose password entry is stale (or, for the second list, recent but
without a proof), and what answers so must be exactly what the guide and the
operation's own description say.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Api, enrol_totp
from twostep.accounts.models import User
from twostep.api import tokens
from twostep.api.api import api as ninja_api
from twostep.api.models import AccessToken
from twostep.audit.services import CLI
from twostep.mfa.models import Authenticator

pytestmark = pytest.mark.django_db

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "api.md"
#: Valid bodies, by request schema, so that each call reaches its operation's own checks.
BODIES: dict[str, dict[str, Any]] = {
    "ReauthenticateIn": {"password": "not the password"},
    "CodeIn": {"code": "123456"},
    "EmailFactorIn": {"email_id": 1},
    "PhoneFactorIn": {"phone_id": 1},
    "TokenCreateIn": {"name": "script", "scopes": ["read"]},
    "UserCreateIn": {"username": "newcomer"},
    "UserUpdateIn": {},
    "SetPasswordIn": {"password": "a perfectly fine passphrase"},
    "EmailIn": {"email": "new@example.com"},
    "PhoneIn": {"phone": "+15551234567"},
    "SettingsIn": {"values": {"two_factor.enabled": True}},
    "StepUpIn": {},
    "StepUpVerifyIn": {"step_up_token": "made-up", "code": "123456"},
    "StepUpTokenIn": {"step_up_token": "made-up"},
    "StepUpMethodIn": {"step_up_token": "made-up", "method": "totp"},
}
SAMPLE = {"username": "alice", "email_id": "1", "phone_id": "1", "token_id": "0" * 16}


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    spec = ninja_api.get_openapi_schema(path_prefix="/api/v1/")
    return [
        (method, path, operation)
        for path, methods in spec["paths"].items()
        for method, operation in methods.items()
        if operation.get("security")  # the public sign-in operations have no token to ask about
    ]


def _stale_token(user: User) -> str:
    issued = tokens.issue_sign_in_token(user, origin=CLI)
    AccessToken.objects.filter(pk=issued.token.pk).update(reauthenticated_at=None)
    return issued.secret


def _body(operation: dict[str, Any]) -> dict[str, Any] | None:
    if "requestBody" not in operation:
        return None
    name = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert name in BODIES, f"add a valid {name} to BODIES"
    return BODIES[name]


def _refused_with(api: Api, method: str, path: str, operation: dict[str, Any], token: str, code: str) -> bool:
    """Whether calling the operation with ``token`` answers 403 ``code``."""
    concrete = re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], path).removeprefix("/api/v1")
    response = api.call(method.upper(), concrete, _body(operation), token=token)
    assert response.status_code != 500, (method, path, response.content)
    return response.status_code == 403 and response.json()["error"]["code"] == code


def _documented(start: str, end: str) -> set[tuple[str, str]]:
    """The operations under /api/v1/me that docs/api.md names between ``start`` and ``end``."""
    text = GUIDE.read_text()
    section = text[text.index(start) : text.index(end)]
    return {
        (method.lower(), path)
        for method, path in re.findall(r"`(GET|POST|PATCH|DELETE) (/api/v1/me/[^`\s]*)`", section)
    }


def test_the_guide_lists_exactly_the_operations_that_ask_for_the_password(api: Api, user: User, admin: User) -> None:
    """Every /me operation that answers reauthentication_required to a stale token is in docs/api.md's
    list, and nothing else is; each says so in its description. Every administrative change made with
    a sign-in token asks too (as the guide says), and no read does."""
    asking: set[tuple[str, str]] = set()
    for method, path, operation in _operations():
        is_admin = path.startswith("/api/v1/admin/")
        # A token of its own for each call: one of them signs out.
        token = _stale_token(admin if is_admin else user)
        if _refused_with(api, method, path, operation, token, "reauthentication_required"):
            asking.add((method, path))
            assert re.search(r"needs\s+a\s+recent\s+re-authentication", operation.get("description", ""), re.I), (
                method,
                path,
            )
        if is_admin:
            assert ((method, path) in asking) is (method != "get"), (method, path)
        elif method == "get":
            assert (method, path) not in asking, (method, path)
    assert {op for op in asking if op[1].startswith("/api/v1/me/")} == _documented(
        "**Re-authentication:**", "**Second-factor proof:**"
    )
    assert "each `POST`, `PATCH` and `DELETE` under\n  `/api/v1/admin/`" in GUIDE.read_text()


def test_the_guide_lists_exactly_the_operations_that_ask_for_a_second_factor(
    api: Api, user: User, two_factor_on: None
) -> None:
    """Every /me operation that answers second_factor_required to a user whom an app signs in, with the
    password just entered but no code of the app, is in docs/api.md's list, and nothing else is; each
    says so in its description (AZ-01).  A user without a factor is never asked."""
    asking: set[tuple[str, str]] = set()
    for method, path, operation in _operations():
        if not path.startswith("/api/v1/me"):
            continue
        # A factor that signs Alice in, whatever the previous call did (one removes it if unguarded).
        if not Authenticator.objects.filter(user=user, confirmed_at__isnull=False).exists():
            enrol_totp(user)
        token = tokens.issue_sign_in_token(user, origin=CLI).secret  # a sign-in: a recent password, no proof
        description = operation.get("description", "")
        says_so = re.search(r"second-factor\s+proof", description, re.I) is not None
        if _refused_with(api, method, path, operation, token, "second_factor_required"):
            asking.add((method, path))
            assert re.search(r"needs\s+a\s+recent\s+re-authentication", description, re.I), (method, path)
        assert says_so is ((method, path) in asking), (method, path)
    assert asking == _documented("**Second-factor proof:**", "**Step-up:**")
    assert all(method != "get" for method, _ in asking)

    Authenticator.objects.filter(user=user).delete()
    for method, path, operation in _operations():
        if path.startswith("/api/v1/me") and (method, path) in asking:
            token = tokens.issue_sign_in_token(user, origin=CLI).secret
            assert not _refused_with(api, method, path, operation, token, "second_factor_required"), (method, path)
