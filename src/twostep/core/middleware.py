"""Request-wide middleware: client information and response caching rules."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from twostep.core.client import client_ip, is_trusted_peer, parse_networks, proxy_chain

Handler = Callable[[HttpRequest], HttpResponse]


class ClientInfoMiddleware:
    """Sets ``request.client_ip`` and ``request.user_agent`` once, for everything after it.

    It also drops ``X-Forwarded-Proto`` unless the connection comes from a
    trusted proxy: Django believes that header (``SECURE_PROXY_SSL_HEADER``)
    from anyone once proxies are configured, and a client reaching the port
    directly could otherwise pass plain HTTP off as HTTPS.
    """

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response
        self.trusted = parse_networks(settings.CONFIG.server.trusted_proxies)
        self.proxy_header = settings.CONFIG.server.client_ip_header
        self.proxy_header_key = "HTTP_" + self.proxy_header.upper().replace("-", "_")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        meta = request.META
        if "HTTP_X_FORWARDED_PROTO" in meta and not is_trusted_peer(meta.get("REMOTE_ADDR", ""), self.trusted):
            del meta["HTTP_X_FORWARDED_PROTO"]
        request.client_ip = client_ip(  # type: ignore[attr-defined]
            meta.get("REMOTE_ADDR", ""),
            proxy_chain(self.proxy_header, meta.get(self.proxy_header_key, "")),
            self.trusted,
        )
        request.user_agent = meta.get("HTTP_USER_AGENT", "")[:300]  # type: ignore[attr-defined]
        return self.get_response(request)


class NoStoreMiddleware:
    """Pages of a sign-in service must never be kept by browsers or proxies."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path.startswith(settings.STATIC_URL):
            response["Cache-Control"] = "no-store"
            response["Pragma"] = "no-cache"
        return response


class DrainRequestBodyMiddleware:
    """Reads whatever request body a view left unread.

    gunicorn's threaded workers reuse keep-alive connections; a body left in
    the socket would be taken for the start of the next request.  Views that
    answer early (a redirect to sign in, a refusal) would break the client's
    next request without this.
    """

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not getattr(request, "_read_started", False) and request.META.get("CONTENT_LENGTH") not in (None, "", "0"):
            try:
                while request.read(65536):
                    pass
            except Exception:  # noqa: S110 - a broken or oversized body: the server closes the connection anyway
                pass
        return response
