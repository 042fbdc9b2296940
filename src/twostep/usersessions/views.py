"""Ending sessions from the Security page.

Both need the password entered within the last few minutes (ASVS 7.5.2): a
stolen session cookie alone must not be enough to sign its owner out
everywhere else.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from twostep.audit.services import Origin, Outcome, record
from twostep.core.decorators import fresh_password
from twostep.usersessions.services import current_handle, end_session, end_sessions


@fresh_password
@require_POST
def end_session_view(request: HttpRequest) -> HttpResponse:
    handle = request.POST.get("session", "")
    if handle == current_handle(request.session.session_key):
        messages.error(request, "To end this session, sign out.")
    elif end_session(request.user, handle):  # type: ignore[arg-type]
        record("session.ended", Outcome.INFO, origin=Origin.of(request), user=request.user)
        messages.success(request, "That session is signed out.")
    else:
        messages.error(request, "That session had already ended.")
    return redirect("/account/security#sessions")


@fresh_password
@require_POST
def end_other_sessions_view(request: HttpRequest) -> HttpResponse:
    count = end_sessions(request.user, except_key=request.session.session_key)  # type: ignore[arg-type]
    record("session.ended_others", Outcome.INFO, origin=Origin.of(request), user=request.user, detail={"count": count})
    messages.success(request, f"{count} other session{'' if count == 1 else 's'} signed out.")
    return redirect("/account/security#sessions")
