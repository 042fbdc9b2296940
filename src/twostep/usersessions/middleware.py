"""Idle and absolute session timeouts, and the who/where/when a session records."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse

from twostep.core import clock
from twostep.usersessions.backend import LAST_SEEN_KEY, STARTED_KEY

#: Why the session was just ended for its age ("idle" or "limit"), for the sign-in page to say.
ENDED_KEY = "twostep_session_ended"

#: Write last-seen at most this often, so that reads do not become writes.
LAST_SEEN_RESOLUTION = 60


class SessionLifetimeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.idle = settings.CONFIG.security.session_idle_timeout
        self.absolute = settings.CONFIG.security.session_absolute_timeout

    def __call__(self, request: HttpRequest) -> HttpResponse:
        session = request.session
        session.client_ip = getattr(request, "client_ip", None)  # type: ignore[attr-defined]
        session.user_agent = getattr(request, "user_agent", "")  # type: ignore[attr-defined]
        if request.user.is_authenticated:
            now = clock.timestamp()
            started = session.get(STARTED_KEY, now)
            seen = session.get(LAST_SEEN_KEY, now)
            idle = now - seen > self.idle
            if idle or now - started > self.absolute:
                logout(request)
                # For the sign-in page this request is sent to: why, and that nothing was kept.
                session[ENDED_KEY] = "idle" if idle else "limit"
            elif now - seen >= LAST_SEEN_RESOLUTION:
                session[LAST_SEEN_KEY] = now
        return self.get_response(request)
