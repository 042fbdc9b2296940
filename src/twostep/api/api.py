"""The NinjaAPI instance behind /api/v1: routers, parser, error handlers."""

from __future__ import annotations

import copy
from typing import Any

from django.conf import settings
from ninja import NinjaAPI
from ninja.openapi import get_schema
from ninja.openapi.schema import OpenAPISchema

from twostep.api import errors
from twostep.api.auth import SAFE_METHODS
from twostep.api.routes.admin import router as admin_router
from twostep.api.routes.auth import router as auth_router
from twostep.api.routes.me import router as me_router
from twostep.api.transport import MAX_BODY_BYTES, JsonParser, refuse_unexpected_body


def _description() -> str:
    rows = "\n".join(f"| `{code}` | {status} | {meaning} |" for code, (status, meaning) in errors.CODES.items())
    return f"""Sign users in (with their second step), let them manage their factors and tokens,
and administer users and settings.

**Authentication.** Send `Authorization: Bearer <token>`. A token comes from
`POST /api/v1/auth/login` (and `/auth/login/verify` when a second step is required) or is a
personal token created on `/account/tokens`. Session cookies are never accepted.
Sign-in tokens end after 1 hour unused or 24 hours, personal tokens at their expiry, and all
of a user's tokens end when their sessions do (password change, role change, deactivation, 2FA reset,
a factor added or removed, except the token that made that change).

**Re-authentication.** Every step of setting up a factor (the email check included), removing
one, new recovery codes, creating a personal token, each step of a step-up and, with a sign-in
token, every administrative change (`POST`, `PATCH`, `DELETE` under `/api/v1/admin/`) need the
password entered within the last 5 minutes, else `403 reauthentication_required`: a sign-in
counts, or `POST /api/v1/me/reauthenticate`. Each of these operations says so.

**Second-factor proof.** Once a factor signs the user in, setting up, replacing or removing a
factor, new recovery codes, creating a personal token and, with a sign-in token, every
administrative change also need a code of one of their factors (or a recovery code) proved with
the same token within the last 5 minutes, else `403 second_factor_required`:
`POST /api/v1/me/step-up`, then `POST /api/v1/me/step-up/verify` with the code. A sign-in
completed with a code (or a recovery code) counts as such a proof for those 5 minutes. A first
factor needs only the password. Each of these operations says so.

**Requests.** Bodies are JSON (`Content-Type: application/json`, UTF-8), at most
{MAX_BODY_BYTES} bytes, sent with a `Content-Length` header (not chunked: 411); unknown fields are refused,
and so is a body sent to an operation that shows none (send nothing there, or `{{}}`).

**Errors** all have the shape `{{"error": {{"code": "...", "message": "..."}}}}` (plus `fields`
for invalid input, `methods`, the methods that can be used, with `method_unavailable`, and
`affected`, the number to confirm, with `confirmation_required`).
The codes are stable:

| code | status | meaning |
|---|---|---|
{rows}
"""


class TwostepAPI(NinjaAPI):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: (path prefix, public URL) -> the built document; see get_openapi_schema.
        self._openapi_schemas: dict[tuple[str, str], OpenAPISchema] = {}

    def get_openapi_operation_id(self, operation: Any) -> str:
        # Short, stable ids (the view functions' names are unique across routers).
        return str(operation.view_func.__name__)

    def get_openapi_schema(
        self, *, path_prefix: str | None = None, path_params: dict[str, Any] | None = None
    ) -> OpenAPISchema:
        """The OpenAPI document, built once per process and path prefix.

        Building it walks every operation and schema (about a second on a
        busy machine), and it depends only on the code and the config file,
        which do not change while the process runs.  Callers must not modify
        the document they get.  ``servers`` names ``server.public_url``: the
        paths already begin with /api/v1.
        """
        if path_prefix is None:
            path_prefix = self.get_root_path(path_params or {})
        public_url = settings.CONFIG.server.public_url
        key = (path_prefix, public_url)
        schema = self._openapi_schemas.get(key)
        if schema is None:
            self.servers = [{"url": public_url, "description": "This twostep server (server.public_url)."}]
            schema = get_schema(api=self, path_prefix=path_prefix)
            _describe_central_rules(schema)
            self._openapi_schemas[key] = schema
        return schema


ADMIN_REAUTHENTICATION = (
    "With a sign-in token, needs a recent re-authentication (403 `reauthentication_required`); "
    "a personal token with the admin scope does not."
)


_ERROR_HEADERS = {
    "401": {
        "WWW-Authenticate": {
            "description": 'Bearer realm="twostep" when the access token is missing, unknown or ended.',
            "schema": {"type": "string"},
        }
    },
    "429": {
        "Retry-After": {
            "description": "Whole seconds to wait before trying again.",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}


def _describe_central_rules(schema: dict[str, Any]) -> None:
    """Add to ``schema`` what checks outside the operations decide, so that each operation says it."""
    for methods in schema["paths"].values():
        for method, operation in methods.items():
            # The transport leaves out query parameters sent empty
            # (transport.drop_empty_query_parameters): a client may send
            # `?page=`, and a fuzzer must not take it for invalid input.
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query" and not parameter.get("required"):
                    parameter["allowEmptyValue"] = True
            # Headers the error handlers add (errors.install), for clients generated from the document.
            for status, response in operation.get("responses", {}).items():
                if str(status) in _ERROR_HEADERS:  # the keys are ints until the document is serialised
                    response["headers"] = copy.deepcopy(_ERROR_HEADERS[str(status)])
            # BearerToken.authenticate asks an admin's change made with a sign-in token for a recent password.
            admin = any("BearerAdmin" in item for item in operation.get("security", []))
            if admin and method.upper() not in SAFE_METHODS:
                description = operation.get("description", "")
                operation["description"] = f"{description}\n\n{ADMIN_REAUTHENTICATION}".strip()


api = TwostepAPI(
    title="twostep API",
    version="1",
    description=_description(),
    urls_namespace="api-v1",
    docs_url=None,
    parser=JsonParser(),
)
errors.install(api)
api.add_decorator(refuse_unexpected_body, mode="view")
api.add_router("/auth", auth_router)
api.add_router("/me", me_router)
api.add_router("/admin", admin_router)
