from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_safe

from twostep.core.decorators import page_posted_from


@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness and database reachability, for load balancers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        return JsonResponse({"status": "unavailable"}, status=503)
    return JsonResponse({"status": "ok"})


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """403 for a form Django's CSRF check refused.

    One case is no attack: a sign-in form left open in another tab, sent
    after this browser signed in (signing in renews the CSRF token).  The
    form is not processed either way; a signed-in browser is only sent on.
    """
    user = getattr(request, "user", None)
    if request.path == settings.LOGIN_URL and user is not None and user.is_authenticated:
        messages.info(request, "You are already signed in.")
        return redirect("/account")
    if request.path == "/logout":
        # "Sign out" from a page older than this browser's last sign-in: still
        # refused, but with the sign-out page's own form, which works.
        return render(request, "accounts/logout.html", {"stale": True}, status=403)
    # Back to the form's page on this site (reloaded, it carries a valid token), when the Referer says which.
    back = page_posted_from(request, ("/account/", "/admin/"), "")
    return render(request, "twostep/csrf_failure.html", {"back": back}, status=403)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """400 for requests Django refuses before any view (e.g. an unknown Host): JSON under /api/."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": {"code": "invalid_request", "message": "Bad request."}}, status=400)
    return render(request, "twostep/bad_request.html", status=400)
