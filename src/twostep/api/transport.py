"""What every API request must be before an operation sees it.

Bodies are JSON (``application/json``, UTF-8), at most ``MAX_BODY_BYTES``,
with no NUL characters or unpaired surrogates in any string (PostgreSQL and
the password hasher cannot take them).  Requiring the JSON media type also
shuts out cross-site HTML form posts; the API reads bearer tokens only, never
the session cookie, so it needs no CSRF token.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import URLPattern, URLResolver
from django.views.decorators.http import require_safe
from ninja.operation import Operation
from ninja.parser import Parser

from twostep.api.errors import UnreadableBody, error_response
from twostep.core.middleware import names_holding_nul

#: Far above any legitimate request (a user with twenty addresses is < 4 KiB).
MAX_BODY_BYTES = 32 * 1024
#: How much of a refused body is read and thrown away (see _drain).
MAX_DRAIN_BYTES = 1024 * 1024
JSON_MEDIA_TYPE = "application/json"


def _reject_constant(name: str) -> Any:
    raise UnreadableBody(f"{name} is not JSON")


def _object_without_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object; a name given twice (``{"code": "1", "code": "2"}``) is refused, not "the last wins"."""
    data = dict(pairs)
    if len(data) != len(pairs):
        repeated = next(name for name in data if sum(1 for pair in pairs if pair[0] == name) > 1)
        raise UnreadableBody(f"the name {json.dumps(repeated)} is given twice in one object")
    return data


def _check_strings(value: Any) -> None:
    """Raises UnreadableBody for a NUL character or an unpaired surrogate anywhere in ``value``."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise UnreadableBody("a string holds a NUL character (\\u0000)")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise UnreadableBody("a string holds half of a surrogate pair, which is not a character") from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


class JsonParser(Parser):
    """Strict JSON: UTF-8 only, no NaN/Infinity, no NUL or lone surrogates, no repeated names."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        """The body as JSON.

        Raises:
            UnreadableBody: not UTF-8, not JSON, or JSON this API refuses (see the class).
        """
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError:
            raise UnreadableBody("it is not UTF-8") from None
        try:
            data = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_object_without_repeats)
        except json.JSONDecodeError as exc:
            raise UnreadableBody(f"not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
        _check_strings(data)
        return data  # type: ignore[no-any-return]


def check_request(request: HttpRequest) -> HttpResponse | None:
    """An error response when the body is too large or not JSON, else None."""
    if request.META.get("HTTP_TRANSFER_ENCODING") and not request.META.get("CONTENT_LENGTH"):
        # Under WSGI, Django reads no body without a Content-Length: a chunked
        # body would pass every check below as empty, and then be refused as
        # "payload: Field required", or silently ignored.  Say what to change.
        return error_response("length_required", "Send the request body with a Content-Length header, not chunked.")
    if "" in request.GET:
        return error_response("invalid_request", "A query parameter has no name.")
    with_nul = names_holding_nul(request.GET)
    if with_nul:
        # Refused whether or not the operation reads that parameter, as in a body.
        fields = [
            {"field": name.replace("\x00", "\\u0000"), "message": "A NUL character (%00) is not allowed."}
            for name in with_nul[:20]
        ]
        return error_response("invalid_request", "The query holds a NUL character (%00).", fields=fields)
    # No operation takes a list in its query: a repeated name is a mistake (or a probe).
    repeated = sorted(name for name, values in request.GET.lists() if len(values) > 1)
    if repeated:
        return error_response("invalid_request", f"Give each query parameter once: {', '.join(repeated[:5])}.")
    raw = request.META.get("CONTENT_LENGTH") or ""
    try:
        length = int(raw) if raw else 0
    except ValueError:
        return error_response("invalid_request", "The Content-Length header is not a number.")
    if length < 0:
        return error_response("invalid_request", "The Content-Length header is not a number.")
    if length > MAX_BODY_BYTES:
        return error_response("payload_too_large", f"A request body can be at most {MAX_BODY_BYTES} bytes.")
    if length:
        charset = (request.content_params or {}).get("charset", "utf-8").lower()
        if request.content_type != JSON_MEDIA_TYPE or charset not in {"utf-8", "utf8"}:
            return error_response("unsupported_media_type", "Send the request body as application/json (UTF-8).")
    return None


def _takes_body(operation: Operation) -> bool:
    return any(getattr(model, "__ninja_param_source__", None) == "body" for model in operation.models)


def _unexpected_body(request: HttpRequest) -> HttpResponse | None:
    """400 invalid_request when ``request`` carries a body other than nothing or ``{}``, else None.

    ``{}`` passes: many clients send it with every POST, and it holds no
    field to refuse.  Anything else would be silently ignored, while the
    documentation promises that unknown fields are refused.
    """
    if not request.META.get("CONTENT_LENGTH") or not request.body.strip():
        return None
    try:
        data = JsonParser().parse_body(request)
    except ValueError:  # not JSON, not UTF-8, NaN: a body all the same
        data = None
    if data == {}:
        return None
    fields = (
        [{"field": str(name), "message": "Unknown field."} for name in list(data)[:20]]
        if isinstance(data, dict)
        else None
    )
    return error_response(
        "invalid_request", "This operation takes no request body: send none (or an empty object, {}).", fields=fields
    )


def refuse_unexpected_body(run: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A ninja "view" decorator for every operation (``api.add_decorator(..., mode="view")``): one
    that declares no body answers 400 ``invalid_request`` to a request that carries one.

    It wraps the operation's ``run``, so it answers before authentication,
    like the other transport checks.  An operation with a body parameter is
    left as it is: its schema refuses unknown fields.

    Raises:
        TypeError: ``run`` is not an operation's bound ``run`` method (ninja's
            decorator API changed), when the API's URLs are built.
    """
    operation = getattr(run, "__self__", None)
    if not isinstance(operation, Operation):
        # ninja hands over the operation's bound run method; anything else means its API changed.
        raise TypeError(f"expected an operation's run method, got {run!r}")
    if _takes_body(operation):
        return run

    @wraps(run)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return _unexpected_body(request) or run(request, *args, **kwargs)

    return checked


def _drain(request: HttpRequest) -> None:
    """Read what is left of the request body and discard it.

    A keep-alive connection whose body was not read goes out of step in
    gunicorn's gthread worker (the next request on it is dropped), so every
    answer, even an early refusal, first consumes the body, up to a bound.
    """
    remaining = MAX_DRAIN_BYTES
    stream: Any = request
    if not request.META.get("CONTENT_LENGTH") and request.META.get("wsgi.input_terminated"):
        # A body without Content-Length (chunked, refused with 411): Django's
        # stream reads none of it, and granian then sometimes drops the
        # connection.  A server that sets wsgi.input_terminated (granian,
        # gunicorn) ends its input where the body ends, so it can be read.
        stream = request.META["wsgi.input"]
    try:
        while remaining > 0:
            chunk = stream.read(min(64 * 1024, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
    except OSError:
        return


def drop_empty_query_parameters(request: HttpRequest) -> None:
    """Leave out of ``request.GET`` the parameters sent empty: they count as not given.

    A query built from a template (``/admin/audit?user=&kind=&page=``), or
    by an HTML form, sends the unused parameters empty; every query
    parameter of the API is optional, and the OpenAPI document marks them
    ``allowEmptyValue``.  Run after ``check_request``, which refuses a
    repeated name, so each name has one value.
    """
    if "" not in request.GET.values():
        return
    query = request.GET.copy()
    for name in [name for name, value in query.items() if value == ""]:
        del query[name]
    query._mutable = False
    request.GET = query  # type: ignore[assignment]  # the stubs' read-only QueryDict type is private


def guard(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wrap an API view: transport checks first, HEAD wherever GET is, and JSON for 404 and 405."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        problem = check_request(request)
        if problem is not None:
            _drain(request)
            return problem
        drop_empty_query_parameters(request)
        # HEAD is GET without the body (RFC 9110): the operations name GET only.
        head = request.method == "HEAD"
        if head:
            request.method = "GET"
        try:
            response = view(request, *args, **kwargs)
        except Http404:
            response = error_response("not_found", "Not found.")
        finally:
            if head:
                request.method = "HEAD"
        _drain(request)
        if isinstance(response, HttpResponseNotAllowed):
            allowed = [method.strip() for method in response["Allow"].split(",")]
            allowed += ["HEAD"] if "GET" in allowed and "HEAD" not in allowed else []
            response = error_response(
                "method_not_allowed", f"{request.method} is not allowed here.", headers={"Allow": ", ".join(allowed)}
            )
        if head and not response.streaming:
            response["Content-Length"] = str(len(response.content))
            response.content = b""
        if response.status_code == 204:
            # No content, so no type of it either (ninja names JSON for every answer).
            del response["Content-Type"]
        return response

    guarded.csrf_exempt = True  # type: ignore[attr-defined]
    return guarded


def guarded_patterns(patterns: Iterable[URLPattern | URLResolver]) -> list[URLPattern | URLResolver]:
    """``patterns`` with every view wrapped in ``guard``; the OpenAPI document answers GET and HEAD only."""
    result: list[URLPattern | URLResolver] = []
    for pattern in patterns:
        if isinstance(pattern, URLPattern):
            view = require_safe(pattern.callback) if pattern.name == "openapi-json" else pattern.callback
            result.append(URLPattern(pattern.pattern, guard(view), pattern.default_args, pattern.name))
        else:
            result.append(pattern)
    return result


def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Every other path under /api/v1/."""
    problem = check_request(request)
    _drain(request)
    if problem is not None:
        return problem
    return error_response("not_found", "No such API route. The reference is at /api/v1/docs.")


not_found.csrf_exempt = True  # type: ignore[attr-defined]
