"""Request-wide middleware: client information, input no page accepts, response caching rules, database outages."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import BadRequest
from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.template.loader import render_to_string

from twostep.core.client import client_ip, is_local_peer, is_trusted_peer, parse_networks, proxy_chain

Handler = Callable[[HttpRequest], HttpResponse]

logger = logging.getLogger("twostep.database")
proxy_logger = logging.getLogger("twostep.proxy")

#: What Django raises when the database cannot be used at all (refused, gone,
#: does not exist, locked too long), as opposed to a fault in a query.
OUTAGE_ERRORS = (OperationalError, InterfaceError)
OUTAGE_MESSAGE = "twostep cannot reach its database; nobody was signed in; try again in a moment."
#: The API's answers, errors included, as django-ninja sends its own.
JSON_CONTENT_TYPE = "application/json; charset=utf-8"
#: The page is rendered outside the middleware that adds these, and must not be framed or cached either.
_OUTAGE_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
}
_OUTAGE_ATTRIBUTE = "_twostep_database_outage"


def _host_and_port(authority: str) -> tuple[str, int] | None:
    """``login.example.com`` and ``LOGIN.example.com.:443`` alike as (``login.example.com``, 443); None if malformed."""
    try:
        parts = urlsplit(f"//{authority}")
        port = parts.port or 443
    except ValueError:
        return None
    host = (parts.hostname or "").rstrip(".")
    return (host, port) if host else None


class ClientInfoMiddleware:
    """Sets ``request.client_ip`` and ``request.user_agent`` once, for everything after it.

    It also drops ``X-Forwarded-Proto`` unless the connection comes from a
    trusted proxy: Django believes that header (``SECURE_PROXY_SSL_HEADER``)
    from anyone once proxies are configured, and a client reaching the port
    directly could otherwise pass plain HTTP off as HTTPS.  Without that
    header, a request for the host of an https public address counts as https:
    it reached twostep through a proxy that ended TLS, even one left out of
    ``trusted_proxies`` (HSTS is sent, ``next`` must be https).  A request for
    another name (``127.0.0.1:8000`` through an SSH tunnel) stays what it is.
    """

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response
        self.trusted = parse_networks(settings.CONFIG.server.trusted_proxies)
        self.proxy_header = settings.CONFIG.server.client_ip_header
        self.proxy_header_key = "HTTP_" + self.proxy_header.upper().replace("-", "_")
        self.proxy_unconfigured_told = False
        public = urlsplit(settings.CONFIG.server.public_url)
        self.public_https_host = _host_and_port(public.netloc) if public.scheme == "https" else None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        meta = request.META
        if not self.trusted and not self.proxy_unconfigured_told and self.proxy_header_key in meta:
            self._tell_of_an_unconfigured_proxy(meta.get("REMOTE_ADDR", ""))
        if "HTTP_X_FORWARDED_PROTO" in meta and not is_trusted_peer(meta.get("REMOTE_ADDR", ""), self.trusted):
            del meta["HTTP_X_FORWARDED_PROTO"]
        if self.public_https_host and "HTTP_X_FORWARDED_PROTO" not in meta:
            named = _host_and_port(meta.get("HTTP_HOST") or meta.get("SERVER_NAME", ""))
            if named == self.public_https_host:
                meta["wsgi.url_scheme"] = "https"
        request.client_ip = client_ip(  # type: ignore[attr-defined]
            meta.get("REMOTE_ADDR", ""),
            proxy_chain(self.proxy_header, meta.get(self.proxy_header_key, "")),
            self.trusted,
        )
        # Goes to the auth log: PostgreSQL stores no NUL (a server should never pass one on).
        request.user_agent = meta.get("HTTP_USER_AGENT", "")[:300].replace("\x00", "")  # type: ignore[attr-defined]
        return self.get_response(request)

    def _tell_of_an_unconfigured_proxy(self, peer: str) -> None:
        """Warn, once per process, that a proxy on this machine or network forwards requests unbelieved.

        Every client then counts as the proxy: the per-address limits (wrong
        passwords, codes sent) hold for all of them together, and the auth log
        names the proxy.  Not for a peer elsewhere: anyone can send the header.
        """
        if is_local_peer(peer):
            self.proxy_unconfigured_told = True
            proxy_logger.warning(
                "requests from %s carry %s, but server.trusted_proxies is empty: every client counts as %s "
                "for the per-address limits and the auth log; add the proxy's address to server.trusted_proxies",
                peer,
                self.proxy_header,
                peer,
            )


def names_holding_nul(values: QueryDict) -> list[str]:
    """The names of ``values`` (a query or a form) whose name or a value holds a NUL character."""
    return [key for key, items in values.lists() if "\x00" in key or any("\x00" in value for value in items)]


class RefuseNulMiddleware:
    """Answers 400 to a request with a NUL character in its path, query string or form fields.

    PostgreSQL cannot store or compare text that holds one: such a value
    reaching a query (a username in the URL, a search, a method's name) was
    a server error there.  No name, address, code or search of twostep's
    holds one, so it is refused here, for every page, those added later
    included.  The API is left to its own checks (path and query schemas, a
    strict JSON parser), which refuse it too and name the field at fault.
    """

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith("/api/"):
            return self.get_response(request)
        # request.POST parses only form bodies, which the CSRF check reads anyway.
        if (
            "\x00" in request.path_info
            or names_holding_nul(request.GET)
            or (request.method == "POST" and names_holding_nul(request.POST))
        ):
            raise BadRequest("a NUL character in the request")
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
    """Reads whatever request body a view left unread, up to ``LIMIT`` bytes.

    gunicorn's threaded workers reuse keep-alive connections; a body left in
    the socket would be taken for the start of the next request.  Views that
    answer early (a redirect to sign in, a refusal) would break the client's
    next request without this.  A larger body than any form of twostep's is
    left alone: reading gigabytes would hold a worker thread for the sender,
    and what it breaks is the sender's own connection.
    """

    LIMIT = 1024 * 1024

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        length = request.META.get("CONTENT_LENGTH") or "0"
        if not getattr(request, "_read_started", False) and length.isdigit() and 0 < int(length) <= self.LIMIT:
            try:
                while request.read(65536):
                    pass
            except Exception:  # noqa: S110 - a broken or oversized body: the server closes the connection anyway
                pass
        return response


def database_error_text(exc: BaseException) -> str:
    """The database error's message on one line (libpq's span several) and without the database password."""
    message = " ".join(str(exc).split())
    password = str(connection.settings_dict.get("PASSWORD") or "")
    return message.replace(password, "***") if password else message


def log_outage(request: HttpRequest, error: BaseException) -> None:
    """The one ERROR line for a request that met a database outage (without the database password)."""
    logger.error(
        "database unavailable: %s %s answered 503: %s", request.method, request.path, database_error_text(error)
    )


def _note_outage(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    # Sent by Django while it turns an uncaught exception into its 500 answer,
    # inside the except block: sys.exc_info() is that exception.
    error = sys.exc_info()[1]
    if request is not None and isinstance(error, OUTAGE_ERRORS):
        setattr(request, _OUTAGE_ATTRIBUTE, error)


class DatabaseOutageMiddleware:
    """A database outage anywhere in a request answers 503, saying so, instead of a bare 500.

    Django turns an exception into a 500 response at the layer where it
    happens (a session loaded by a middleware, a view), so no outer
    ``try`` sees it; its ``got_request_exception`` signal marks the request
    instead, and this middleware swaps the 500 for: ``/healthz``'s own
    ``{"status": "unavailable"}``, the API's error shape
    (``{"error": {"code": "unavailable", ...}}``) under ``/api/``, and a page
    elsewhere.  Nothing was committed for such a request, so nobody was
    signed in.  It is logged once, as one line (``DatabaseOutageLogFilter``
    keeps Django's traceback of the same error out of the log).

    It must come before every middleware that uses the database (sessions first).
    """

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response
        got_request_exception.connect(_note_outage, dispatch_uid="twostep.core.middleware.database_outage")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        error = getattr(request, _OUTAGE_ATTRIBUTE, None)
        if error is None:
            return response
        log_outage(request, error)
        return outage_response(request)


def outage_response(request: HttpRequest) -> HttpResponse:
    """The 503 answer to ``request`` when the database cannot be reached."""
    response: HttpResponse
    if request.path == "/healthz":
        response = JsonResponse({"status": "unavailable"}, status=503)
    elif request.path.startswith("/api/"):
        response = JsonResponse(
            {"error": {"code": "unavailable", "message": OUTAGE_MESSAGE}}, status=503, content_type=JSON_CONTENT_TYPE
        )
    else:
        # Without the request: context processors would read the session, from the database.
        page = render_to_string("twostep/database_unavailable.html", {"message": OUTAGE_MESSAGE})
        response = HttpResponse(page, status=503)
        for name, value in _OUTAGE_PAGE_HEADERS.items():
            response[name] = value
    response["Cache-Control"] = "no-store"
    # Logged by the middleware as one line; Django would log the 503 again.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


class DatabaseOutageLogFilter(logging.Filter):
    """Keeps django.request's traceback of a database outage out of the log: DatabaseOutageMiddleware logs it."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, OUTAGE_ERRORS)
