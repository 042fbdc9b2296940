from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def twostep(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    return {
        "is_admin": bool(user is not None and user.is_authenticated and getattr(user, "is_admin", False)),
        # The break-glass switch of the config file; the console shows a banner while it is on.
        "two_factor_forced_off": not settings.CONFIG.two_factor.enabled,
    }
