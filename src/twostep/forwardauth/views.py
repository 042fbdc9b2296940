"""The endpoints that reverse proxies call to ask whether a request may pass.

``/auth/request`` is for nginx ``auth_request``; ``/auth/forward`` is for
Traefik ForwardAuth and Caddy forward_auth (see ``target`` for why they are
separate).  Both answer 200 with identity headers, 403, or "sign in first".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from twostep.accounts.models import User
from twostep.forwardauth import services, target

logger = logging.getLogger(__name__)

_BODIES = {
    200: "OK\n",
    302: "Sign in first.\n",
    401: "Sign in first.\n",
    403: "Forbidden.\n",
}


class _ProxyAnswer(HttpResponse):
    """The answer to the proxy, whose identity headers reach the wire as UTF-8 under any WSGI server.

    PEP 3333 carries header bytes as latin-1 code points, so the headers are
    set as UTF-8 bytes in that form: Django checks them (no line breaks) and
    gunicorn writes them byte for byte.  granian writes a value's text as
    UTF-8 instead, which would encode them twice; for it ``items()``, the
    list Django's WSGI handler passes to the server, holds the text itself.
    (Setting the text as the header would not do: Django turns text beyond
    latin-1 into a MIME encoded-word, ``=?utf-8?b?...?=``.)
    """

    def __init__(self, answer: services.Answer, *, server_writes_utf8: bool) -> None:
        super().__init__(_BODIES.get(answer.status, ""), status=answer.status, content_type="text/plain")
        if answer.location:
            self["Location"] = answer.location
        for name, text in answer.headers.items():
            self[name] = services.wsgi_header_value(text)
        # Keyed in lower case: header names are case-insensitive.
        self._text_for_server = (
            {name.lower(): text for name, text in answer.headers.items()} if server_writes_utf8 else {}
        )

    def items(self) -> list[tuple[str, str]]:
        return [(name, self._text_for_server.get(name.lower(), value)) for name, value in super().items()]


def _verify(
    request: HttpRequest, read: Callable[[Mapping[str, str]], target.Target | None], expected: str
) -> HttpResponse:
    remote_addr = request.META.get("REMOTE_ADDR", "")
    proxied = None
    if not services.is_trusted_proxy(remote_addr):
        logger.warning("forward-auth: %s is not in server.trusted_proxies; its request is denied", remote_addr)
    else:
        try:
            proxied = read(request.headers)
        except target.RefusedTarget as refused:
            # The proxy did its job: the request itself is refused, so say
            # what about it instead of sending the operator to the proxy.
            logger.info("forward-auth: refused a request for %s: %s", refused.host, refused)
        else:
            if proxied is None:
                logger.warning("forward-auth: the proxy at %s sent no usable %s", remote_addr, expected)
    user: User | None = request.user if request.user.is_authenticated else None  # type: ignore[assignment]
    result = services.answer(proxied, user)
    # Host and outcome only: paths and query strings may carry secrets.
    logger.debug("forward-auth: %s for %s: %s", result.status, proxied.host if proxied else "-", result.reason or "ok")
    return _ProxyAnswer(result, server_writes_utf8=services.server_writes_header_text_as_utf8(request.META))


# Any method: nginx asks with the original request's method, and the check
# reads and changes nothing (so no CSRF token either).
@csrf_exempt
def auth_request_view(request: HttpRequest) -> HttpResponse:
    """nginx ``auth_request``: 200, 401 (with Location) or 403."""
    return _verify(request, target.from_original_url, "X-Original-URL")


@csrf_exempt
def forward_auth_view(request: HttpRequest) -> HttpResponse:
    """Traefik ForwardAuth, Caddy forward_auth: 200, 302 or 403."""
    return _verify(request, target.from_forwarded, "X-Forwarded-Proto/Host/Uri")
