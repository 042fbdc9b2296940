"""One error shape for the whole API: ``{"error": {"code": ..., "message": ...}}``.

``CODES`` is the catalogue of stable codes with their HTTP status; the
reference page and docs/api.md list it.  Every exception that can leave an
operation is turned into this shape here, so that bad input never becomes a
500 and an unexpected fault never leaks a traceback.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from ninja import Schema
from ninja.errors import AuthenticationError, HttpError, Throttled
from ninja.errors import ValidationError as NinjaValidationError
from pydantic import Field

from twostep.core.middleware import JSON_CONTENT_TYPE, OUTAGE_ERRORS, OUTAGE_MESSAGE, log_outage
from twostep.core.runtime import SettingError

if TYPE_CHECKING:
    from ninja import NinjaAPI

logger = logging.getLogger("twostep.api")

#: code -> (HTTP status, when it is used).  Codes never change meaning.
CODES: dict[str, tuple[int, str]] = {
    "invalid_request": (
        400,
        "The request is malformed: not JSON, a wrong type, an unknown or missing field, a value outside its schema.",
    ),
    "unauthorized": (401, "No bearer token, or the token is unknown, expired or revoked."),
    "invalid_credentials": (401, "Sign-in refused: unknown user, wrong password or disabled account (one message)."),
    "second_step_failed": (
        401,
        "The code was wrong, reused or malformed, or the account is held back or locked after wrong codes "
        "(then even a right code gets this, with no Retry-After).",
    ),
    "login_expired": (401, "The pending sign-in expired, was used up or ended; sign in again."),
    "step_up_expired": (
        401,
        "The step-up expired, was used up, succeeded already or ended (or is not this token's): start a new one "
        "(POST /api/v1/me/step-up); after one used up or expired, enter the password again first "
        "(POST /api/v1/me/reauthenticate).",
    ),
    "forbidden": (403, "The token's scopes or the user's role do not allow this operation."),
    "reauthentication_required": (403, "Enter the password again first (POST /api/v1/me/reauthenticate)."),
    "second_factor_required": (
        403,
        "A change to the second step needs a code of one of the user's factors (or a recovery code) first, "
        "besides the password: POST /api/v1/me/step-up, then /api/v1/me/step-up/verify.",
    ),
    "invalid_password": (403, "The password given to re-authenticate is wrong."),
    "password_change_required": (403, "The user must choose a new password on the web page before using the API."),
    "enrolment_required": (
        403,
        "Two-factor authentication is required of this user: set up a factor first "
        "(GET /api/v1/me/factors/setup lists what, then POST /api/v1/me/factors/...).",
    ),
    "email_check_required": (
        403,
        "Confirm one of your email addresses first (POST /api/v1/me/factors/email-check), "
        "then set up an authenticator app or SMS codes.",
    ),
    "second_step_locked": (
        403,
        "Too many wrong codes: the account's second step is locked until an administrator unlocks it.",
    ),
    "not_found": (404, "No such resource (or route)."),
    "method_not_allowed": (
        405,
        "The route exists but not with this HTTP method; see the Allow header (HEAD works wherever GET does).",
    ),
    "conflict": (
        409,
        "The change clashes with existing data (a username, address or number already there), "
        "needs a second factor the user does not have, or the set-up it sends a code for ended meanwhile.",
    ),
    "confirmation_required": (409, "The change affects other users; repeat it with the confirmation asked for."),
    "method_unavailable": (
        409,
        "That second-step method is not allowed or not set up for this user; `methods` lists those that can be used.",
    ),
    "length_required": (
        411,
        "A request body was sent without a Content-Length header (e.g. chunked): send it with one.",
    ),
    "payload_too_large": (413, "The request body is larger than the API accepts."),
    "unsupported_media_type": (415, "A request body must be sent as application/json."),
    "invalid_value": (422, "The request is well formed but a value breaks a rule (e.g. a password that is too weak)."),
    "invalid_code": (422, "The code does not confirm the factor being set up."),
    "rate_limited": (429, "Too many attempts; wait and retry (see Retry-After)."),
    "internal_error": (500, "An unexpected fault on the server; it is logged there. Please report it."),
    "second_step_unavailable": (
        503,
        "The second step (or a step-up) could not be started or the code could not be checked (a fault of the "
        "service: e.g. this instance's encryption keys differ from the others'); nothing was counted against "
        "the user. A code that could not be sent is not this error: the answer is 200 with `code_sent: false`.",
    ),
    "unavailable": (503, "The service cannot reach its database; nothing was changed and nobody was signed in."),
    "delivery_failed": (
        503,
        "A code could not be sent (mail server or SMS provider failed, or sending is not possible now); "
        "nothing was used up.",
    ),
}

ErrorCode = Literal[
    "invalid_request",
    "unauthorized",
    "invalid_credentials",
    "second_step_failed",
    "login_expired",
    "step_up_expired",
    "forbidden",
    "reauthentication_required",
    "second_factor_required",
    "invalid_password",
    "password_change_required",
    "enrolment_required",
    "email_check_required",
    "second_step_locked",
    "not_found",
    "method_not_allowed",
    "conflict",
    "confirmation_required",
    "method_unavailable",
    "length_required",
    "payload_too_large",
    "unsupported_media_type",
    "invalid_value",
    "invalid_code",
    "rate_limited",
    "internal_error",
    "second_step_unavailable",
    "unavailable",
    "delivery_failed",
]

#: Service error codes (Django ValidationError.code) that mean a clash with stored data.
_CONFLICT_CODES = {"username_taken", "duplicate_email", "duplicate_phone"}


class FieldError(Schema):
    field: str
    message: str


class ErrorDetail(Schema):
    code: ErrorCode
    message: str
    fields: list[FieldError] | None = Field(default=None, description="With invalid input: each field and its problem.")
    methods: list[str] | None = Field(
        default=None,
        description="With 409 `method_unavailable`: the methods that can be used instead: at sign-in the "
        "user's usable second-step methods (as `methods` of the second-step answer), likewise at a step-up, "
        "when setting up a factor the methods the administrator allows. May be empty.",
    )
    affected: int | None = Field(
        default=None,
        description="With 409 `confirmation_required`: how many users the change would stop asking for their "
        "second factor; repeat the request with `confirm_affected` set to it.",
    )


class ErrorBody(Schema):
    """Every error response has this shape."""

    error: ErrorDetail


class UnreadableBody(ValueError):
    """The body is not the strict JSON the API reads (``transport.JsonParser``); the message says why, for the client."""


class ApiError(Exception):
    """Raise from an operation to answer with the error shape."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        fields: list[dict[str, str]] | None = None,
        methods: list[str] | None = None,
        affected: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = CODES[code][0]
        self.code = code
        self.message = message
        self.fields = fields
        self.methods = methods
        self.affected = affected
        self.headers = headers or {}


def error_response(
    code: str,
    message: str,
    *,
    fields: list[dict[str, str]] | None = None,
    methods: list[str] | None = None,
    affected: int | None = None,
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    if methods is not None:  # an empty list says something too: no method is left
        body["methods"] = methods
    if affected is not None:
        body["affected"] = affected
    response = JsonResponse({"error": body}, status=CODES[code][0], content_type=JSON_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


#: What any request can be answered with, whatever the operation: refused before the
#: operation sees it (``api.transport``) because of a malformed query or header or a body
#: where none is taken (400), a body without Content-Length (411), too large (413) or not
#: JSON (415); an unexpected fault (500 ``internal_error``); the database out of reach
#: (503 ``unavailable``).  Every operation declares them.
ANY_REQUEST_ERRORS = (400, 411, 413, 415, 500, 503)


def responses(*statuses: int) -> dict[int, type[ErrorBody]]:
    """The OpenAPI ``response`` entries for the error statuses an operation can answer.

    ``ANY_REQUEST_ERRORS`` are always among them: the transport checks run and
    the database is reached on every request, whatever the operation and its method.
    """
    return dict.fromkeys(sorted({*ANY_REQUEST_ERRORS, *statuses}), ErrorBody)


UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="twostep"'}


#: Steps of pydantic's validation that it names in an error's location
#: (``lax-or-strict[...]``, ``function-before[...]``, ``constrained-int``),
#: and the members of a union it tried (``bool``, ``list[constrained-str]``):
#: not fields a client sent.
_VALIDATION_STEP = re.compile(
    r"^(function-(plain|before|after|wrap)|lax-or-strict|json-or-python|chain|constrained-\w+)\b"
    r"|^(bool|int|float|str|none|(list|dict|set|tuple)\[.*\])$"
)


def _field_name(loc: Iterable[Any]) -> str:
    parts = [str(part) for part in loc if not _VALIDATION_STEP.match(str(part))]
    # ninja prefixes the source ("body", "query", "path") and, for a body or a
    # query schema (``Query[...]``), the parameter's name; clients know fields
    # by their JSON names, and a body that is not an object as "body".
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        source = parts.pop(0)
        if source == "body" or (source == "query" and len(parts) > 1):
            parts = parts[1:]
    return ".".join(parts) or "body"


def _validation_fields(errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One entry per field: a value that fits none of several shapes (an IPv4 or an IPv6 address)
    gets the reasons of each in one message."""
    messages: dict[str, list[str]] = {}
    for error in errors[:20]:
        message = str(error.get("msg", "invalid"))
        if error.get("type") == "extra_forbidden":
            message = "Unknown field."
        elif error.get("type") == "value_error":
            # Our own validators' words, without pydantic's "Value error, " before them.
            message = message.removeprefix("Value error, ")
        said = messages.setdefault(_field_name(error.get("loc", ())), [])
        if message not in said:
            said.append(message)
    return [{"field": field, "message": "; ".join(said)} for field, said in messages.items()]


def _messages(exc: DjangoValidationError) -> str:
    return " ".join(exc.messages) or "A value is not valid."


def _django_validation(exc: DjangoValidationError) -> HttpResponse:
    codes = {getattr(item, "code", None) for item in exc.error_list} if hasattr(exc, "error_list") else set()
    if codes & _CONFLICT_CODES:
        return error_response("conflict", _messages(exc))
    if "not_found" in codes:
        return error_response("not_found", _messages(exc))
    return error_response("invalid_value", _messages(exc))


def install(api: NinjaAPI) -> None:
    """Replace ninja's error answers with the error shape."""

    def on_api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
        return error_response(
            exc.code, exc.message, fields=exc.fields, methods=exc.methods, affected=exc.affected, headers=exc.headers
        )

    def on_validation(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
        fields = _validation_fields(exc.errors)
        summary = "; ".join(f"{item['field']}: {item['message']}" for item in fields[:3])
        return error_response("invalid_request", f"Invalid request: {summary}", fields=fields)

    def on_authentication(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        return error_response(
            "unauthorized", "Send a valid access token: Authorization: Bearer <token>.", headers=UNAUTHORIZED_HEADERS
        )

    def on_throttled(request: HttpRequest, exc: Throttled) -> HttpResponse:
        headers = {"Retry-After": str(max(1, math.ceil(exc.wait or 1)))}
        return error_response("rate_limited", "Too many requests; try again later.", headers=headers)

    def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        if exc.status_code == 400:
            # ninja raises this when the body is not parseable (see transport.JsonParser).
            why = f": {exc.__cause__}" if isinstance(exc.__cause__, UnreadableBody) else ""
            return error_response("invalid_request", f"The request body must be a JSON object in UTF-8{why}.")
        by_status = {status: code for code, (status, _) in CODES.items()}
        code = {401: "unauthorized", 403: "forbidden"}.get(exc.status_code) or by_status.get(exc.status_code)
        if code is None:
            logger.error("unmapped HttpError %s", exc.status_code)
            return error_response("internal_error", "Something went wrong on our side.")
        return error_response(code, str(exc))

    def on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return error_response("not_found", "Not found.")

    def on_permission_denied(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
        return error_response("forbidden", "You are not allowed to do this.")

    def on_django_validation(request: HttpRequest, exc: DjangoValidationError) -> HttpResponse:
        return _django_validation(exc)

    def on_setting_error(request: HttpRequest, exc: SettingError) -> HttpResponse:
        return error_response("invalid_value", str(exc))

    def on_too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
        return error_response("payload_too_large", "The request body is too large.")

    def on_database_outage(request: HttpRequest, exc: Exception) -> HttpResponse:
        # Nothing was committed: say so, as the pages do (core.middleware), not a bare 500.
        log_outage(request, exc)
        return error_response("unavailable", OUTAGE_MESSAGE)

    def on_unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
        logger.exception("unexpected error in %s %s", request.method, request.path)
        return error_response("internal_error", "Something went wrong on our side.")

    handlers: list[tuple[type[Exception], Callable[[HttpRequest, Any], HttpResponse]]] = [
        (ApiError, on_api_error),
        (NinjaValidationError, on_validation),
        (AuthenticationError, on_authentication),
        (Throttled, on_throttled),
        (HttpError, on_http_error),
        (Http404, on_not_found),
        (PermissionDenied, on_permission_denied),
        (DjangoValidationError, on_django_validation),
        (SettingError, on_setting_error),
        (RequestDataTooBig, on_too_big),
        *((error, on_database_outage) for error in OUTAGE_ERRORS),
        (Exception, on_unexpected),
    ]
    for exc_class, handler in handlers:
        api.add_exception_handler(exc_class, handler)
