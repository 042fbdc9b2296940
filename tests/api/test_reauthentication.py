"""Which operations need a recent password: found by calling every operation, held to docs/api.md.

docs/api.md lists the operations of /api/v1/me that answer 403
reauthentication_required without a recent password entry and says that
every administrative change made with a sign-in token does.  The lists
are not kept by hand: each operation is called with a token whose password
entry is stale, and what answers so must be exactly what the guide and the
operation's own description say.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Api
from twostep.accounts.models import User
from twostep.api import tokens
from twostep.api.api import api as ninja_api
from twostep.api.models import AccessToken
from twostep.audit.services import CLI

pytestmark = pytest.mark.django_db(transaction=True)

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


def _asks_for_the_password(api: Api, method: str, path: str, operation: dict[str, Any], token: str) -> bool:
    concrete = re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], path).removeprefix("/api/v1")
    response = api.call(method.upper(), concrete, _body(operation), token=token)
    assert response.status_code != 500, (method, path, response.content)
    return response.status_code == 403 and response.json()["error"]["code"] == "reauthentication_required"


def _documented() -> set[tuple[str, str]]:
    text = GUIDE.read_text()
    section = text[text.index("**Re-authentication:**") : text.index("## Your security settings")]
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
        if _asks_for_the_password(api, method, path, operation, token):
            asking.add((method, path))
            assert re.search(r"needs\s+a\s+recent\s+re-authentication", operation.get("description", ""), re.I), (
                method,
                path,
            )
        if is_admin:
            assert ((method, path) in asking) is (method != "get"), (method, path)
        elif method == "get":
            assert (method, path) not in asking, (method, path)
    assert {op for op in asking if op[1].startswith("/api/v1/me/")} == _documented()
    assert "each `POST`, `PATCH` and `DELETE` under\n  `/api/v1/admin/`" in GUIDE.read_text()
