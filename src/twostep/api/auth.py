"""Bearer-token authentication and the per-operation scope, re-authentication and second-factor checks.

Only the ``Authorization: Bearer`` header is read: a browser's session cookie
never authenticates an API call, so cross-site requests carry no authority.
"""

from __future__ import annotations

from typing import cast

from django.http import HttpRequest
from ninja.security import HttpBearer

from twostep.accounts.models import User
from twostep.api import tokens
from twostep.api.errors import ApiError
from twostep.api.models import AccessToken, Scope, TokenKind
from twostep.mfa import enforcement, step_up

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class BearerToken(HttpBearer):
    """An access token from /api/v1/auth/login or a personal token, carrying ``scope``."""

    openapi_bearerFormat = "opaque"

    def __init__(self, scope: str | None) -> None:
        self.scope = scope
        super().__init__()

    def authenticate(self, request: HttpRequest, token: str) -> AccessToken | None:
        access = tokens.authenticate(token)
        if access is None:
            return None
        if self.scope is not None and not tokens.allows(access, self.scope):
            if self.scope == Scope.ADMIN:
                raise ApiError("forbidden", "This needs an administrator's token with the admin scope.")
            raise ApiError("forbidden", f"This needs a token with the {self.scope} scope.")
        if (
            self.scope == Scope.ADMIN
            and request.method not in SAFE_METHODS
            and access.kind == TokenKind.SIGN_IN
            and not tokens.recently_reauthenticated(access)
        ):
            # As in the console: an administrator's change needs a recent
            # password.  Personal admin tokens are for automation; making one
            # already needed the password.
            raise ApiError(
                "reauthentication_required",
                "Enter your password again first (POST /api/v1/me/reauthenticate), then repeat the change.",
            )
        if (
            self.scope == Scope.ADMIN
            and request.method not in SAFE_METHODS
            and access.kind == TokenKind.SIGN_IN
            and lacks_second_factor(access)
        ):
            # Then a code, as in the console (``core.decorators.admin_only``):
            # an administrator's power reaches everyone's second step in more
            # ways than a list of guarded routes would keep up with.
            raise second_factor_required()
        if not enforcement.api_path_allowed(request.path) and enforcement.enrolment_required(access.user):
            raise ApiError(
                "enrolment_required",
                "Two-factor authentication is required for your account: set up a second factor first "
                "(GET /api/v1/me/factors/setup lists the methods and where codes may go; then "
                "POST /api/v1/me/factors/totp, /email or /sms; or on the web page /account/security/enrol).",
            )
        return access


# One class per scope, so that the OpenAPI document names the scope each
# operation needs (ninja names security schemes after the class).
class BearerAny(BearerToken):
    openapi_description = "Any live access token, whatever its scopes."


class BearerRead(BearerToken):
    openapi_description = "An access token with the `read` scope."


class BearerSecurity(BearerToken):
    openapi_description = "An access token with the `security` scope."


class BearerAdmin(BearerToken):
    openapi_description = "An administrator's access token with the `admin` scope."


ANY = BearerAny(None)
READ = BearerRead(Scope.READ)
SECURITY = BearerSecurity(Scope.SECURITY)
ADMIN = BearerAdmin(Scope.ADMIN)


def current_token(request: HttpRequest) -> AccessToken:
    return cast(AccessToken, request.auth)  # type: ignore[attr-defined]


def current_user(request: HttpRequest) -> User:
    return current_token(request).user


def require_reauthentication(request: HttpRequest) -> AccessToken:
    """The caller's token, if its password was entered within the last few minutes.

    Raises:
        ApiError: reauthentication_required.
    """
    token = current_token(request)
    if not tokens.recently_reauthenticated(token):
        raise ApiError(
            "reauthentication_required",
            "Enter your password again first: POST /api/v1/me/reauthenticate.",
        )
    return token


def require_second_factor(request: HttpRequest) -> AccessToken:
    """The caller's token, if it may change the user's second step: a code of a factor proved recently.

    As ``mfa.step_up_views.fresh_second_factor`` on the pages: a password
    (and a token) must not be enough to turn factors off, add one's own, or
    print new recovery codes.  Asked only while a factor signs the user in
    (``step_up.needed``): a first factor is set up with the password alone.
    Call it after ``require_reauthentication``: the password comes first.

    Raises:
        ApiError: second_factor_required.
    """
    token = current_token(request)
    if lacks_second_factor(token):
        raise second_factor_required()
    return token


def lacks_second_factor(token: AccessToken) -> bool:
    """Whether a change to the second step needs a proof that ``token`` has not (recently) got."""
    return step_up.needed(token.user) and not tokens.recently_proved_second_factor(token)


def second_factor_required() -> ApiError:
    """The answer to a change made without the second-factor proof it needs."""
    return ApiError(
        "second_factor_required",
        "Confirm with a code of your second step first (POST /api/v1/me/step-up), then repeat the change.",
    )
