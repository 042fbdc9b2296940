"""Bad input gets a 4xx in the one error shape, never a 500; the spec and the reference page are complete."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from tests.api.conftest import Api, error_code
from twostep.accounts.models import User
from twostep.api import api as api_module
from twostep.api.api import api as ninja_api
from twostep.api.errors import CODES
from twostep.api.transport import MAX_BODY_BYTES

pytestmark = pytest.mark.django_db


def test_malformed_json(api: Api, db: None) -> None:
    """Bodies that are not JSON, not UTF-8 or use NaN get 400 invalid_request."""
    for raw in [b"{", b"not json", b"\xff\xfe{}", b'{"username": NaN, "password": "x"}', b"[" * 5000 + b"]" * 5000]:
        response = api.post("/auth/login", raw=raw)
        assert response.status_code == 400, raw[:20]
        assert error_code(response) == "invalid_request"


@pytest.mark.parametrize(
    "body",
    [
        {"username": 1, "password": "x"},
        {"username": "alice", "password": ["x"]},
        {"username": "alice"},
        {"username": "alice", "password": "x", "remember_me": True},
        {"username": "al\u0000ice", "password": "x"},
        {"username": "alice", "password": "\ud800"},
        {"username": "alice", "password": "x" * 1025},
        [],
        "alice",
    ],
    ids=["int", "list", "missing", "unknown-field", "nul", "lone-surrogate", "too-long", "array", "string"],
)
def test_invalid_bodies(api: Api, db: None, body: object) -> None:
    """Wrong types, missing or unknown fields, control characters and over-long values get 400 (FUZZ-05)."""
    raw = json.dumps(body).encode()
    response = api.post("/auth/login", raw=raw)
    assert response.status_code == 400
    assert error_code(response) == "invalid_request"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b'{"username": "a\\u0000b", "password": "x"}', "a string holds a NUL character"),
        (b'{"username": "a", "username": "b", "password": "x"}', 'the name "username" is given twice'),
        (b'{"username": "a",}', "not JSON (Expecting property name enclosed in double quotes at line 1, column 18)"),
        (b'{"username": "\xff"}', "it is not UTF-8"),
        (b'{"username": NaN}', "NaN is not JSON"),
    ],
)
def test_an_unreadable_body_is_explained(api: Api, db: None, raw: bytes, why: str) -> None:
    """The 400 says what is wrong with the body, not only that it must be JSON."""
    response = api.post("/auth/login", raw=raw)
    assert response.status_code == 400 and error_code(response) == "invalid_request"
    assert response.json()["error"]["message"].startswith(f"The request body must be a JSON object in UTF-8: {why}")


def test_field_errors_name_the_field(api: Api, db: None) -> None:
    """A validation error lists each offending field by its JSON name."""
    response = api.post("/auth/login", {"username": "alice", "password": "x", "extra": 1})
    fields = response.json()["error"]["fields"]
    assert {"field": "extra", "message": "Unknown field."} in fields


def test_field_names_are_what_the_client_sent(api: Api, admin: User, token_for) -> None:  # type: ignore[no-untyped-def]
    """Never a validator's inner name (``lax-or-strict[...]``) or a parameter's (``filters``, ``payload``):
    the query parameter, the settings key, or "body" for a body that is not an object."""
    token = token_for(admin)
    cases = [
        (api.get("/admin/audit?ip=999.1.1.1", token=token), "ip"),
        (api.patch("/admin/settings", {"values": {"email.port": 10**23}}, token=token), "values.email.port"),
        (api.post("/auth/login", raw=b"[]"), "body"),
    ]
    for response, field in cases:
        assert response.status_code == 400, response.content
        assert [item["field"] for item in response.json()["error"]["fields"]] == [field], response.content


def test_body_size_limit(api: Api, db: None) -> None:
    """A body above the limit gets 413 payload_too_large before anything reads it."""
    raw = json.dumps({"username": "a", "password": "b" * MAX_BODY_BYTES}).encode()
    response = api.post("/auth/login", raw=raw)
    assert response.status_code == 413 and error_code(response) == "payload_too_large"


def test_body_without_content_length_is_411(api: Api, user: User) -> None:
    """A body sent with Transfer-Encoding and no Content-Length (chunked) gets 411 length_required, before
    any other check: under WSGI Django would read it as empty and refuse it as a missing payload."""
    chunked = {"HTTP_TRANSFER_ENCODING": "chunked", "CONTENT_TYPE": "application/json"}
    response = api.post("/auth/login", raw=b"", **chunked)
    assert response.status_code == 411 and error_code(response) == "length_required"
    assert "Content-Length" in response.json()["error"]["message"]
    for path in ["/me?=x", "/no/such/route"]:
        response = api.get(path, raw=b"", **chunked)
        assert response.status_code == 411 and error_code(response) == "length_required", path
    # With a Content-Length (a proxy that de-chunked the body) the body is read as usual.
    raw = b'{"username": "alice", "password": "correct horse battery staple"}'
    assert api.post("/auth/login", raw=raw, HTTP_TRANSFER_ENCODING="chunked").status_code == 200


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin-1",
    ],
)
def test_bodies_must_be_json(api: Api, user: User, content_type: str) -> None:
    """Form posts (a cross-site attacker's only tool) and other media types get 415."""
    raw = b'{"username": "alice", "password": "correct horse battery staple"}'
    response = api.post("/auth/login", raw=raw, content_type=content_type)
    assert response.status_code == 415 and error_code(response) == "unsupported_media_type"


def test_json_with_utf8_charset_is_fine(api: Api, user: User) -> None:
    """application/json with an explicit UTF-8 charset is accepted."""
    raw = b'{"username": "alice", "password": "correct horse battery staple"}'
    response = api.post("/auth/login", raw=raw, content_type="application/json; charset=UTF-8")
    assert response.status_code == 200


def _operations() -> list[tuple[str, str, bool]]:
    spec = ninja_api.get_openapi_schema(path_prefix="/api/v1/")
    return [
        (method, path, "requestBody" in operation)
        for path, methods in spec["paths"].items()
        for method, operation in methods.items()
    ]


@pytest.mark.parametrize(("method", "path", "takes_body"), _operations())
def test_a_body_where_none_is_taken_is_refused(api: Api, db: None, method: str, path: str, takes_body: bool) -> None:
    """An operation the document shows without a request body refuses one (400 invalid_request, before
    authentication), as unknown fields are refused; the others read theirs."""
    concrete = path.removeprefix("/api/v1").format(username="alice", email_id=1, phone_id=1, token_id="0" * 16)
    response = api.call(method.upper(), concrete, {"x": 1})
    takes_none = "takes no request body" in response.content.decode()
    assert takes_none is not takes_body, (method, path, response.content)
    if takes_none:
        assert response.status_code == 400 and error_code(response) == "invalid_request"
        assert response.json()["error"]["fields"] == [{"field": "x", "message": "Unknown field."}]


def test_no_body_operations_take_nothing_or_an_empty_object(api: Api, user: User, token_for) -> None:  # type: ignore[no-untyped-def]
    """No body, an empty one or {} is fine; any other body, JSON or not, is refused."""
    token = token_for(user)
    assert api.get("/me", token=token).status_code == 200
    assert api.get("/me", raw=b"{}", token=token).status_code == 200
    assert api.post("/me/factors/totp", raw=b" { } ", token=token).status_code == 200
    for raw in [b'{"x": 1}', b"[]", b"null", b"{oops", b'"text"']:
        response = api.post("/me/factors/totp", raw=raw, token=token)
        assert response.status_code == 400 and error_code(response) == "invalid_request", raw
        assert "takes no request body" in response.json()["error"]["message"]


def test_wrong_method_is_405_with_allow(api: Api, db: None) -> None:
    """An existing route called with another method gets 405 method_not_allowed and an Allow header."""
    response = api.get("/auth/login")
    assert response.status_code == 405 and error_code(response) == "method_not_allowed"
    assert "POST" in response["Allow"]
    assert api.call("HEAD", "/auth/login").status_code == 405


def test_head_is_get_without_the_body(api: Api, user: User, token_for) -> None:  # type: ignore[no-untyped-def]
    """HEAD works wherever GET does (RFC 9110): same status and headers, no body; Allow names it."""
    token = token_for(user)
    got = api.get("/me", token=token)
    head = api.call("HEAD", "/me", token=token)
    assert head.status_code == 200 and head.content == b""
    assert head["Content-Length"] == str(len(got.content)) and head["Content-Type"] == got["Content-Type"]
    assert api.call("HEAD", "/me").status_code == 401
    refused = api.call("PUT", "/me", token=token)
    assert refused.status_code == 405 and refused["Allow"] == "GET, HEAD"
    document = api.post("/openapi.json", {})
    assert document.status_code == 405 and error_code(document) == "method_not_allowed"
    signed_out = api.post("/auth/logout", token=token)
    assert signed_out.status_code == 204 and signed_out.content == b"" and "Content-Type" not in signed_out


def test_unknown_routes_are_json_404(api: Api, db: None) -> None:
    """Any unknown path under /api/v1/ gets a JSON 404, not an HTML page."""
    for path in ["/nope", "/me/", "/", "/admin/users/alice/unknown"]:
        response = api.get(path)
        assert response.status_code == 404 and error_code(response) == "not_found", path


def test_path_parameters_are_validated(api: Api, admin: User, token_for) -> None:  # type: ignore[no-untyped-def]
    """Oversized ids and malformed usernames or token ids are 400, never a database error."""
    token = token_for(admin)
    for path in [
        f"/admin/users/{admin.username}/emails/{2**70}",
        f"/admin/users/{admin.username}/emails/0",
        "/admin/users/%00bad",
        "/me/tokens/not-a-token-id",
    ]:
        response = api.delete(path, token=token)
        assert response.status_code == 400, path
        assert error_code(response) == "invalid_request"


def test_query_parameters_are_validated(api: Api, admin: User, token_for) -> None:  # type: ignore[no-untyped-def]
    """Bad page numbers, IPs, outcomes and dates are 400; far-away dates are clamped, not crashed on (FUZZ-06)."""
    token = token_for(admin)
    for query in [
        "page=0",
        "page_size=1000",
        "ip=1.2.3",
        "outcome=maybe",
        "since=yesterday",
        "q=%00",
        "usr=alice",
        "=x",
        "page=1&page=2",
        "page=1_0",
        "page=%2B1",
        "page=1.0",
        "page_size=%201",
    ]:
        path = "/admin/audit?" + query if not query.startswith("q=") else "/admin/users?" + query
        response = api.get(path, token=token)
        assert response.status_code == 400, query
    for query in ["since=0001-01-01T00:00:00%2B14:00", "until=9999-12-31T23:59:59-14:00"]:
        assert api.get("/admin/audit?" + query, token=token).status_code == 200, query
    # Where no parameter is read at all, a NUL is refused all the same.
    for path in ("/me?%00=1", "/me?note=a%00b"):
        response = api.get(path, token=token)
        assert response.status_code == 400 and "NUL" in response.json()["error"]["message"], path


def test_empty_query_parameters_count_as_not_given(api: Api, admin: User, token_for) -> None:  # type: ignore[no-untyped-def]
    """A query template sent with its unused parameters empty works, as if they were left out; the
    document marks every query parameter allowEmptyValue. Unknown names are refused even empty."""
    token = token_for(admin)
    template = api.get("/admin/audit?user=&kind=&outcome=&ip=&since=&until=&page=&page_size=", token=token)
    assert template.status_code == 200, template.content
    assert template.json()["page"] == 1 and template.json()["page_size"] == 50
    assert template.json()["total"] == api.get("/admin/audit", token=token).json()["total"]
    users = api.get("/admin/users?q=&page=&page_size=", token=token)
    assert users.status_code == 200 and users.json()["total"] == 1
    assert api.get("/admin/audit?outcome=&page=2&page_size=1", token=token).json()["page"] == 2
    typo = api.get("/admin/audit?usr=", token=token)
    assert typo.status_code == 400 and error_code(typo) == "invalid_request"
    # The field's message is the rule, without the validation library's "Value error, " before it.
    letters = api.get("/admin/users?page=abc", token=token).json()["error"]
    assert letters["fields"] == [{"field": "page", "message": "must be a whole number written in digits, e.g. 2"}]
    spec = api.get("/openapi.json").json()
    for path in ["/api/v1/admin/audit", "/api/v1/admin/users"]:
        parameters = spec["paths"][path]["get"]["parameters"]
        assert parameters and all(p["allowEmptyValue"] is True for p in parameters if p["in"] == "query"), path


def test_error_codes_are_documented(api: Api, db: None) -> None:
    """The OpenAPI document lists every error code, and every error response uses ErrorBody."""
    spec = api.get("/openapi.json").json()
    detail = spec["components"]["schemas"]["ErrorDetail"]
    assert set(detail["properties"]["code"]["enum"]) == set(CODES)
    assert {"fields", "methods"} <= set(detail["properties"])
    for code in CODES:
        assert f"`{code}`" in spec["info"]["description"]
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorBody"), (method, path, status)


def test_error_headers_are_declared(api: Api, user: User, token_for) -> None:  # type: ignore[no-untyped-def]
    """Retry-After on every 429 and WWW-Authenticate on every 401 are in the document, as the server sends them."""
    spec = api.get("/openapi.json").json()
    declared = {"401": "WWW-Authenticate", "429": "Retry-After"}
    seen = set()
    for methods in spec["paths"].values():
        for operation in methods.values():
            for status, header in declared.items():
                if status in operation["responses"]:
                    assert header in operation["responses"][status]["headers"]
                    seen.add(status)
    assert seen == set(declared)
    unauthorized = api.get("/me")
    assert unauthorized["WWW-Authenticate"] == 'Bearer realm="twostep"'
    # Errors are typed as successes are.
    success = api.get("/me", token=token_for(user))
    assert unauthorized["Content-Type"] == success["Content-Type"] == "application/json; charset=utf-8"


def test_fields_always_sent_are_required(api: Api, db: None) -> None:
    """A field every answer carries, even when null or empty, is marked required, so that generated
    clients do not make it optional."""
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    assert {"recovery_codes_left", "enrolment"} <= set(schemas["SignedInOut"]["required"])
    assert "recovery_codes_left" in schemas["SecondFactorProvedOut"]["required"]
    assert "problem" in schemas["CodeSentOut"]["required"]


def test_spec_is_complete(api: Api, db: None) -> None:
    """Every operation has an id, a summary, responses and (unless public sign-in) a bearer security scheme."""
    spec = api.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    schemes = spec["components"]["securitySchemes"]
    assert all(s["type"] == "http" and s["scheme"] == "bearer" for s in schemes.values())
    public = {f"/api/v1/auth/login{suffix}" for suffix in ("", "/verify", "/method", "/recovery", "/resend")}
    operations = [(p, m, op) for p, ms in spec["paths"].items() for m, op in ms.items()]
    assert len(operations) >= 30
    for path, method, operation in operations:
        assert operation["operationId"] and operation["summary"], (method, path)
        assert any(int(s) < 300 for s in operation["responses"]), (method, path)
        if path in public:
            assert "security" not in operation
        else:
            assert operation["security"] and "401" in {str(s) for s in operation["responses"]}, (method, path)
        if "requestBody" in operation:
            ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            body = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]
            assert body["additionalProperties"] is False, (method, path)


def test_spec_declares_the_transport_answers(api: Api, user: User, token_for) -> None:  # type: ignore[no-untyped-def]
    """Every operation declares 400, 411, 413 and 415: the transport checks answer them whatever the
    operation (a body to GET /me, text/plain to a route that takes no body, a body too large); and
    500 and 503, which any operation answers on a fault or with the database out of reach."""
    spec = api.get("/openapi.json").json()
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            assert {"400", "411", "413", "415", "500", "503"} <= set(operation["responses"]), (method, path)
            assert operation["responses"]["503"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorBody"
            }, (method, path)
    token = token_for(user)
    assert api.get("/me", raw=b"x" * (MAX_BODY_BYTES + 1), token=token).status_code == 413
    assert api.post("/me/factors/totp", raw=b"{}", content_type="text/plain", token=token).status_code == 415
    assert "415" in spec["paths"]["/api/v1/me/factors/totp"]["post"]["responses"]


def test_spec_names_the_server(api: Api, db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """servers holds the configured public URL (the paths already start with /api/v1)."""
    monkeypatch.setattr(settings.CONFIG.server, "public_url", "https://login.example.com")
    spec = api.get("/openapi.json").json()
    assert [server["url"] for server in spec["servers"]] == ["https://login.example.com"]
    assert all(path.startswith("/api/v1/") for path in spec["paths"])


def test_spec_is_built_once(api: Api, db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The document is built on the first request of a process, then served as built."""
    monkeypatch.setattr(ninja_api, "_openapi_schemas", {})
    built = []
    build = api_module.get_schema

    def counting(**kwargs: Any) -> Any:
        built.append(kwargs)
        return build(**kwargs)

    monkeypatch.setattr(api_module, "get_schema", counting)
    first = api.get("/openapi.json")
    second = api.get("/openapi.json")
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json() and len(built) == 1
    # The reference page reads the same document.
    assert api.client.get("/api/v1/docs").status_code == 200 and len(built) == 1


def test_reference_page(client, db: None) -> None:  # type: ignore[no-untyped-def]
    """/api/v1/docs lists every operation and error code, with no script and nothing from another site."""
    from twostep.api.api import api as ninja_api

    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    html = response.content.decode()
    spec = ninja_api.get_openapi_schema()
    for path, methods in spec["paths"].items():
        for method in methods:
            assert f"{method.upper()}</span> <code>{path}</code>" in html, (method, path)
    for code in CODES:
        assert f"<code>{code}</code>" in html
    assert "<script" not in html and "cdn" not in html.lower() and "https://" not in html
    assert "default-src 'self'" in response["Content-Security-Policy"]


def test_a_database_outage_in_an_operation_is_503_unavailable(
    client: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Not a 500 internal_error: the client is told the service is down for now and nothing happened."""
    from django.db import OperationalError

    from twostep.api.routes import auth

    def unreachable(*args: object, **kwargs: object) -> None:
        raise OperationalError("connection to server at 127.0.0.1, port 5499 failed: Connection refused")

    monkeypatch.setattr(auth, "check_password_step", unreachable)
    with caplog.at_level(logging.ERROR):
        response = client.post(
            "/api/v1/auth/login", {"username": "alice", "password": "x"}, content_type="application/json"
        )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
    assert any("database unavailable" in record.getMessage() for record in caplog.records)
