"""URLs under /api/v1/: the operations, the OpenAPI document, the reference page, JSON 404s."""

from __future__ import annotations

from django.urls import include, path, re_path

from twostep.api.api import api
from twostep.api.reference import reference_view
from twostep.api.transport import guarded_patterns, not_found

_patterns, _app_name, _namespace = api.urls

urlpatterns = [
    path("docs", reference_view, name="api-reference"),
    path("", include((guarded_patterns(_patterns), _app_name), namespace=_namespace)),
    re_path(r"^.*$", not_found),
]
