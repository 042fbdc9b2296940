"""The NinjaAPI instance behind /api/v1: routers, parser, error handlers."""

from __future__ import annotations

from typing import Any

from ninja import NinjaAPI

from twostep.api import errors
from twostep.api.routes.admin import router as admin_router
from twostep.api.routes.auth import router as auth_router
from twostep.api.routes.me import router as me_router
from twostep.api.transport import MAX_BODY_BYTES, JsonParser


def _description() -> str:
    rows = "\n".join(f"| `{code}` | {status} | {meaning} |" for code, (status, meaning) in errors.CODES.items())
    return f"""Sign users in (with their second step), let them manage their factors and tokens,
and administer users and settings.

**Authentication.** Send `Authorization: Bearer <token>`. A token comes from
`POST /api/v1/auth/login` (and `/auth/login/verify` when a second step is required) or is a
personal token created on `/account/tokens`. Session cookies are never accepted.
Sign-in tokens end after 1 hour unused or 24 hours, personal tokens at their expiry, and all
of a user's tokens end when their sessions do (password change, role change, deactivation, 2FA reset).

**Re-authentication.** Adding or removing a factor and creating a personal token need the
password entered within the last 5 minutes: a sign-in counts, or `POST /api/v1/me/reauthenticate`.

**Requests.** Bodies are JSON (`Content-Type: application/json`, UTF-8), at most
{MAX_BODY_BYTES} bytes, sent with a `Content-Length` header (not chunked: 411); unknown fields are refused.

**Errors** all have the shape `{{"error": {{"code": "...", "message": "..."}}}}` (plus `fields`
for invalid input). The codes are stable:

| code | status | meaning |
|---|---|---|
{rows}
"""


class TwostepAPI(NinjaAPI):
    def get_openapi_operation_id(self, operation: Any) -> str:
        # Short, stable ids (the view functions' names are unique across routers).
        return str(operation.view_func.__name__)


api = TwostepAPI(
    title="twostep API",
    version="1",
    description=_description(),
    urls_namespace="api-v1",
    docs_url=None,
    parser=JsonParser(),
)
errors.install(api)
api.add_router("/auth", auth_router)
api.add_router("/me", me_router)
api.add_router("/admin", admin_router)
