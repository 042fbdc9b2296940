from __future__ import annotations

from django.http import HttpRequest


def twostep(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    return {"is_admin": bool(user is not None and user.is_authenticated and getattr(user, "is_admin", False))}
