"""Authorization of every route, walked from the OpenAPI document so new routes are covered automatically.

For each operation: anonymous callers get 401; each scheme's scope is
enforced (a token without it gets 403, one with it passes); admin operations
refuse regular users with 403 and let administrators through.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.api.conftest import Api
from twostep.accounts.models import User
from twostep.api import tokens
from twostep.api.api import api as ninja_api
from twostep.audit.services import CLI

pytestmark = pytest.mark.django_db

#: The only operations anyone may call without a token; a new public route must be added here on purpose.
PUBLIC = {
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/login/verify"),
    ("post", "/api/v1/auth/login/method"),
    ("post", "/api/v1/auth/login/recovery"),
    ("post", "/api/v1/auth/login/resend"),
}
SCHEME_SCOPE = {"BearerAny": None, "BearerRead": "read", "BearerSecurity": "security", "BearerAdmin": "admin"}
SAMPLE = {"username": "nobody", "email_id": "1", "phone_id": "1", "token_id": "0" * 16}


def operations() -> list[tuple[str, str, str]]:
    spec = ninja_api.get_openapi_schema(path_prefix="/api/v1/")
    found = []
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            schemes = [name for item in operation.get("security", []) for name in item]
            assert len(schemes) <= 1, f"{method} {path} has several security schemes"
            found.append((method, path, schemes[0] if schemes else ""))
    return found


OPERATIONS = operations()


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], path).removeprefix("/api/v1")


def call(api: Api, method: str, path: str, token: str | None) -> Any:
    return api.call(method.upper(), concrete(path), {} if method in {"post", "patch"} else None, token=token)


def code_of(response: Any) -> str | None:
    try:
        return response.json()["error"]["code"]  # type: ignore[no-any-return]
    except (ValueError, KeyError, TypeError):
        return None


def test_every_operation_is_classified() -> None:
    """Each operation is public sign-in or declares exactly one known bearer scheme."""
    assert len(OPERATIONS) >= 30
    for method, path, scheme in OPERATIONS:
        if (method, path) in PUBLIC:
            assert scheme == ""
        else:
            assert scheme in SCHEME_SCOPE, (method, path)


@pytest.mark.parametrize(("method", "path", "scheme"), [op for op in OPERATIONS if (op[0], op[1]) not in PUBLIC])
def test_anonymous_gets_401(api: Api, method: str, path: str, scheme: str) -> None:
    """Without a token every protected operation answers 401 unauthorized."""
    response = call(api, method, path, None)
    assert response.status_code == 401 and code_of(response) == "unauthorized"
    assert response["WWW-Authenticate"].startswith("Bearer")


def fresh(user: User, scopes: list[str] | None = None) -> str:
    """A token for ``user`` (sign-in scopes, or exactly ``scopes``), recently re-authenticated."""
    issued = tokens.issue_sign_in_token(user, origin=CLI)
    if scopes is not None:
        issued.token.scopes = scopes
        issued.token.save(update_fields=["scopes"])
    return issued.secret


@pytest.mark.parametrize(("method", "path", "scheme"), [op for op in OPERATIONS if (op[0], op[1]) not in PUBLIC])
def test_scopes_and_roles(api: Api, user: User, admin: User, method: str, path: str, scheme: str) -> None:
    """The scheme's scope is enforced, and admin operations refuse regular users but not administrators."""
    scope = SCHEME_SCOPE[scheme]
    passes = []
    for caller, scopes, allowed in [
        (user, None, scope != "admin"),
        (admin, None, True),
        (admin, [scope] if scope else ["read"], True),
        (admin, [s for s in ("read", "security", "admin") if s != scope] if scope else None, scope is None),
    ]:
        response = call(api, method, path, fresh(caller, scopes))
        code = code_of(response)
        if allowed:
            assert code not in {"unauthorized", "forbidden"}, (caller.username, scopes, response.content)
            passes.append(response.status_code)
        else:
            assert response.status_code == 403 and code == "forbidden", (caller.username, scopes, response.content)
    assert passes


def test_no_public_operation_skips_the_second_step(api: Api, user: User, two_factor_on: None) -> None:
    """With the password alone, no public operation hands out an access token to an account with a second factor (FB-02)."""
    from tests.api.conftest import enrol_totp
    from tests.conftest import PASSWORD

    enrol_totp(user)
    bodies: dict[str, dict[str, object]] = {
        "/api/v1/auth/login": {"username": user.username, "password": PASSWORD},
        "/api/v1/auth/login/verify": {"code": "000000"},
        "/api/v1/auth/login/method": {"method": "totp"},
        "/api/v1/auth/login/recovery": {"code": "AAAA-AAAA-AAAA-AAAA"},
        "/api/v1/auth/login/resend": {},
    }
    assert set(bodies) == {path for _, path in PUBLIC}
    for path, body in bodies.items():
        login = api.post("/auth/login", {"username": user.username, "password": PASSWORD}).json()
        assert login["status"] == "second_step_required" and "access_token" not in login
        payload = body if path == "/api/v1/auth/login" else {"login_token": login["login_token"], **body}
        response = api.post(path.removeprefix("/api/v1"), payload)
        assert response.status_code != 500 and "access_token" not in response.content.decode(), path
        User.objects.filter(pk=user.pk).update(second_step_failures=0, second_step_blocked_until=None)
    from twostep.api.models import AccessToken

    assert not AccessToken.objects.filter(user=user).exists()


def test_a_login_token_opens_nothing(api: Api, user: User, two_factor_on: None) -> None:
    """The login token of a half-done sign-in is no bearer token: every protected operation answers 401 (FB-04)."""
    from tests.api.conftest import enrol_totp
    from tests.conftest import PASSWORD

    enrol_totp(user)
    login_token = api.post("/auth/login", {"username": user.username, "password": PASSWORD}).json()["login_token"]
    for method, path, _ in [op for op in OPERATIONS if (op[0], op[1]) not in PUBLIC]:
        response = call(api, method, path, login_token)
        assert response.status_code == 401 and code_of(response) == "unauthorized", (method, path)
