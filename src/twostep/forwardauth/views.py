"""``/auth/verify``: the endpoint nginx auth_request, Traefik ForwardAuth and Caddy forward_auth call."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from twostep.accounts.models import User
from twostep.forwardauth import services, target

logger = logging.getLogger(__name__)


# Any method: nginx asks with the original request's method, and the check
# reads and changes nothing (so no CSRF token either).
@csrf_exempt
def verify_view(request: HttpRequest) -> HttpResponse:
    remote_addr = request.META.get("REMOTE_ADDR", "")
    if services.is_trusted_proxy(remote_addr):
        proxied = target.from_headers(request.headers)
        if proxied is None:
            logger.warning(
                "forward-auth: the proxy at %s sent no usable X-Original-URL or X-Forwarded-Proto/Host/Uri",
                remote_addr,
            )
    else:
        proxied = None
        logger.warning("forward-auth: %s is not in server.trusted_proxies; its request is denied", remote_addr)
    user: User | None = request.user if request.user.is_authenticated else None  # type: ignore[assignment]
    result = services.answer(proxied, user)
    response = HttpResponse(_BODIES.get(result.status, ""), status=result.status, content_type="text/plain")
    if result.location:
        response["Location"] = result.location
    for name, value in result.headers.items():
        response[name] = value
    return response


_BODIES = {
    200: "OK\n",
    302: "Sign in first.\n",
    401: "Sign in first.\n",
    403: "Forbidden.\n",
}
