"""Helpers for calling the JSON API in-process."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from tests.mfa.recovery_codes.helpers import enrol_totp
from twostep.accounts.models import User
from twostep.api import tokens
from twostep.audit.services import CLI

__all__ = ["Api", "allow_only", "api", "enrol_totp", "error_code", "prove_second_factor", "token_for"]


class Api:
    """A thin JSON client: ``api.post("/auth/login", {...}, token=...)``."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        raw: bytes | None = None,
        content_type: str = "application/json",
        **extra: Any,
    ) -> Any:
        headers: dict[str, Any] = dict(extra)
        if token is not None:
            headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        return self.client.generic(method, f"/api/v1{path}", data=data, content_type=content_type, **headers)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.call("POST", path, body, **kwargs)

    def patch(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.call("PATCH", path, body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.call("DELETE", path, **kwargs)


@pytest.fixture
def api(client: Client) -> Api:
    return Api(client)


@pytest.fixture
def token_for() -> Callable[[User], str]:
    """A fresh sign-in token for a user, as if they had signed in through the API."""

    def issue(user: User) -> str:
        return tokens.issue_sign_in_token(user, origin=CLI).secret

    return issue


def prove_second_factor(secret: str) -> str:
    """Give the token ``secret`` a second-factor proof from now on; return ``secret``.

    For tests of changes to the second step that are not about the step-up
    itself (which tests/api/test_step_up.py proves through POST /me/step-up).
    """
    token = tokens.authenticate(secret)
    assert token is not None, "not a live token"
    tokens.mark_second_factor(token)
    return secret


def allow_only(*methods: str) -> None:
    """Store the allowed methods as an earlier configuration left them, without the
    current checks (email, for instance, needs outgoing mail set up to be allowed now)."""
    from twostep.core.models import Setting

    Setting.objects.update_or_create(key="two_factor.methods", defaults={"value": list(methods)})


def error_code(response: Any) -> str:
    """The error code of an error response, after checking the one error shape."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return str(body["error"]["code"])
