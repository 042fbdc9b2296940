"""The human-readable API reference at /api/v1/docs, rendered on the server from the OpenAPI document.

No JavaScript and nothing from a CDN: it works under the site's CSP and on
machines with no Internet access.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from twostep.api.errors import CODES

METHOD_ORDER = {"get": 0, "post": 1, "put": 2, "patch": 3, "delete": 4}


@dataclass
class Field:
    name: str
    type: str
    required: bool
    description: str = ""
    location: str = ""


@dataclass
class Operation:
    method: str
    path: str
    anchor: str
    summary: str
    description: str
    auth: str
    parameters: list[Field]
    body: str | None
    body_fields: list[Field]
    responses: list[tuple[str, str, str]]


@dataclass
class Group:
    tag: str
    operations: list[Operation] = field(default_factory=list)


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def describe(schema: dict[str, Any]) -> str:
    """A short human description of a JSON Schema: type, constraints, enum values."""
    if "$ref" in schema:
        return _ref_name(schema["$ref"])
    for combiner in ("anyOf", "oneOf"):
        if combiner in schema:
            return " or ".join(describe(option) for option in schema[combiner])
    if "const" in schema:
        return f'"{schema["const"]}"'
    if "enum" in schema:
        return "one of " + ", ".join(f'"{value}"' for value in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        text = f"array of {describe(schema.get('items', {}))}"
    elif kind == "object" and "additionalProperties" in schema and isinstance(schema["additionalProperties"], dict):
        text = f"object of {describe(schema['additionalProperties'])}"
    else:
        text = str(kind)
    notes = []
    if "format" in schema:
        notes.append(schema["format"])
    for key, label in (("minLength", "min length"), ("maxLength", "max length"), ("minItems", "min items")):
        if key in schema:
            notes.append(f"{label} {schema[key]}")
    for key, label in (("maxItems", "max items"), ("minimum", "≥"), ("maximum", "≤")):
        if key in schema:
            notes.append(f"{label} {schema[key]}")
    if "pattern" in schema and schema["pattern"] not in {r"^[^\u0000-\u001f\u007f]*$", r"^[^\u0000]*$"}:
        notes.append(f"pattern {schema['pattern']}")
    if "default" in schema:
        notes.append(f"default {schema['default']!r}")
    return f"{text} ({', '.join(notes)})" if notes else text


def fields_of(schema: dict[str, Any]) -> list[Field]:
    required = set(schema.get("required", []))
    return [
        Field(name, describe(prop), name in required, prop.get("description", ""))
        for name, prop in schema.get("properties", {}).items()
    ]


def _auth_text(operation: dict[str, Any], schemes: dict[str, Any]) -> str:
    security = operation.get("security")
    if not security:
        return "None (public)."
    return " or ".join(schemes.get(name, {}).get("description", name) for item in security for name in item)


def build(schema: dict[str, Any]) -> dict[str, Any]:
    """Everything the reference template shows, from an OpenAPI document."""
    components = schema.get("components", {})
    definitions = components.get("schemas", {})
    schemes = components.get("securitySchemes", {})
    groups: dict[str, Group] = {}
    for path, methods in schema.get("paths", {}).items():
        for method, operation in sorted(methods.items(), key=lambda item: METHOD_ORDER.get(item[0], 9)):
            tag = (operation.get("tags") or ["other"])[0]
            parameters = [
                Field(
                    p["name"],
                    describe(p.get("schema", {})),
                    p.get("required", False),
                    p.get("description", ""),
                    p["in"],
                )
                for p in operation.get("parameters", [])
            ]
            body = None
            body_fields: list[Field] = []
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                body_schema = content["application/json"].get("schema", {})
                body = describe(body_schema)
                if "$ref" in body_schema:
                    body_fields = fields_of(definitions.get(_ref_name(body_schema["$ref"]), {}))
            responses = []
            for status, response in operation.get("responses", {}).items():
                media = response.get("content", {}).get("application/json", {})
                responses.append((status, response.get("description", ""), describe(media["schema"]) if media else "—"))
            groups.setdefault(tag, Group(tag)).operations.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    anchor=operation.get("operationId", f"{method}-{path}"),
                    summary=operation.get("summary", ""),
                    description=operation.get("description", ""),
                    auth=_auth_text(operation, schemes),
                    parameters=parameters,
                    body=body,
                    body_fields=body_fields,
                    responses=responses,
                )
            )
    models = [(name, fields_of(definition)) for name, definition in sorted(definitions.items())]
    return {
        "title": schema.get("info", {}).get("title", "API"),
        "version": schema.get("info", {}).get("version", ""),
        "groups": list(groups.values()),
        "models": models,
        "codes": [(code, status, meaning) for code, (status, meaning) in CODES.items()],
    }


@require_safe
def reference_view(request: HttpRequest) -> HttpResponse:
    from twostep.api.api import api

    context = build(api.get_openapi_schema())
    return render(request, "api/reference.html", context)
