"""The request a reverse proxy asks about, read from the headers it sends.

Two conventions, each with its own endpoint, because each proxy passes the
client's own headers through and only overwrites the ones it sets itself:

* nginx ``auth_request`` (``/auth/request``): the nginx configuration sets
  ``X-Original-URL``.  nginx only understands 2xx, 401 and 403 from the auth
  server, so "sign in first" is a 401 whose ``Location`` nginx turns into
  the redirect (``error_page 401 =302 $location``).
* Traefik ForwardAuth and Caddy forward_auth (``/auth/forward``): the proxy
  sets ``X-Forwarded-Proto``, ``X-Forwarded-Host`` and ``X-Forwarded-Uri``
  and passes any non-2xx answer on to the browser, so "sign in first" is a
  302 to the sign-in page.

An endpoint never reads the other convention's headers: a client could
send them, and the proxy in front of that endpoint would not replace them.

Headers that are missing or malformed give no target (the proxy is set up
wrongly); a well-formed request that twostep will not judge raises
``RefusedTarget`` instead, so that the log blames the request, not the
proxy.  Plain Python, no Django.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit, urlunsplit

#: Longer original URLs are cut back to their origin in ``next``.
MAX_URL_LENGTH = 4096
_HOST = re.compile(r"^(?:(?!-)[a-z0-9-]{1,63}(?<!-)\.)*(?!-)[a-z0-9-]{1,63}(?<!-)$")
_PORT = re.compile(r"^[0-9]{1,5}$")


class RefusedTarget(ValueError):
    """The proxy named a request clearly, but one twostep refuses to judge; the message says why."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(reason)
        #: The requested host (no port), for the log; the path may carry secrets.
        self.host = host


class Style(Enum):
    #: nginx auth_request: answer 401 (with Location) when sign-in is needed.
    AUTH_REQUEST = "auth_request"
    #: Traefik / Caddy: answer 302 to the sign-in page.
    FORWARD = "forward"


@dataclass(frozen=True)
class Target:
    """The original request: its URL (for ``next``), host name (no port) and raw path."""

    url: str
    host: str
    path: str
    style: Style


def _host_and_port(netloc: str) -> tuple[str, str] | None:
    host, _, port = netloc.strip().lower().partition(":")
    host = host.rstrip(".")
    if not _HOST.match(host) or (port and not _PORT.match(port)):
        return None
    return host, port


def _target(scheme: str, netloc: str, path_and_query: str, style: Style) -> Target | None:
    scheme = scheme.strip().lower()
    parsed = _host_and_port(netloc)
    if scheme not in ("http", "https") or parsed is None:
        return None
    if not path_and_query.startswith("/"):
        return None
    if not path_and_query.isprintable() or " " in path_and_query:
        return None
    host, port = parsed
    path, _, query = path_and_query.partition("?")
    if "\\" in path:
        # Some servers and frameworks read "\" in a path as "/", others as a
        # plain character: which page is meant depends on the application.
        raise RefusedTarget(host, "its path holds a backslash, which applications read differently (some as /)")
    authority = f"{host}:{port}" if port else host
    # A backslash in the query is an ordinary character (?q=a\b).  Escaped,
    # it means the same to the application, and the URL stays acceptable as
    # the ``next`` to return to after sign-in, which refuses backslashes.
    query = query.replace("\\", "%5C")
    url = urlunsplit((scheme, authority, path, query, ""))
    if len(url) > MAX_URL_LENGTH:
        url = f"{scheme}://{authority}/"
    return Target(url=url, host=host, path=path, style=style)


def from_original_url(headers: Mapping[str, str]) -> Target | None:
    """The request nginx asks about (``X-Original-URL``); None when missing or malformed.

    ``headers`` must come from a trusted proxy: the caller checks that.

    Raises:
        RefusedTarget: the URL is well-formed but its path is ambiguous (a backslash).
    """
    original = headers.get("X-Original-URL", "")
    try:
        # No fragments: browsers never send one, and nginx passes a "#" in the
        # request target on to the application as it came.  Cut off here, the
        # rest ("/a#/../admin") would escape the path rules while an
        # application that cleans paths serves it; kept, the rules see it.
        parts = urlsplit(original.strip(), allow_fragments=False)
    except ValueError:  # e.g. a broken IPv6 literal
        return None
    if parts.username is not None or parts.password is not None:
        return None
    path_and_query = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _target(parts.scheme, parts.netloc, path_and_query, Style.AUTH_REQUEST)


def from_forwarded(headers: Mapping[str, str]) -> Target | None:
    """The request Traefik or Caddy asks about (``X-Forwarded-Proto/Host/Uri``); None when missing or malformed.

    ``headers`` must come from a trusted proxy: the caller checks that.

    Raises:
        RefusedTarget: the request is well-formed but its path is ambiguous (a backslash).
    """
    host = headers.get("X-Forwarded-Host", "")
    if not host or "," in host:
        # Several hosts means several proxies disagree on what was asked for.
        return None
    proto = headers.get("X-Forwarded-Proto", "")
    # Traefik and Caddy always send it; taken for "/" when missing, a proxy
    # set up wrongly would have every path judged by the rules for "/".
    uri = headers.get("X-Forwarded-Uri", "")
    return _target(proto, host, uri, Style.FORWARD)
