"""The answer to a reverse proxy's question "may this request pass?".

Shared by the verification view and anything else that needs the decision;
the pure parts live in ``rules`` (which rule applies) and ``target`` (which
request the proxy is asking about).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.utils.http import url_has_allowed_host_and_scheme

from twostep.accounts.models import User
from twostep.core.client import is_trusted_peer, parse_networks
from twostep.forwardauth import rules
from twostep.forwardauth.target import Style, Target
from twostep.mfa.enforcement import ENROL_URL, enrolment_required

#: Where a user who must choose a new password is sent before any application.
CHANGE_PASSWORD_PATH = "/account/password"  # noqa: S105 - a URL path, not a password
#: ``next`` values longer than this are refused outright.
MAX_DESTINATION_LENGTH = 4096
#: ``SERVER_SOFTWARE`` (lower case) of WSGI servers that write a header's str
#: value as its UTF-8 bytes instead of byte for byte (latin-1) as PEP 3333
#: says.  granian sets "Granian"; measured with granian 2.8: "Ä" goes out as
#: C3 84 from granian, as C4 from gunicorn.
_UTF8_HEADER_SERVERS = ("granian",)


@dataclass(frozen=True)
class Answer:
    """What the verification endpoint replies: a status, maybe a Location, identity headers.

    The identity headers' values are text; ``wsgi_header_value`` and
    ``server_writes_header_text_as_utf8`` say how to hand them to the server.
    """

    status: int
    location: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    reason: str = ""


def is_trusted_proxy(remote_addr: str) -> bool:
    """True when the direct peer is one of ``server.trusted_proxies``: only then are its headers believed."""
    return is_trusted_peer(remote_addr, parse_networks(settings.CONFIG.server.trusted_proxies))


def _header_text(value: str) -> str:
    # Control characters (and line separators) could split the header.
    return "".join(char for char in value if char.isprintable())


def wsgi_header_value(text: str) -> str:
    """``text``'s UTF-8 bytes as the latin-1 code points that PEP 3333 servers (gunicorn) write byte for byte."""
    return text.encode("utf-8").decode("latin-1")


def server_writes_header_text_as_utf8(environ: Mapping[str, object]) -> bool:
    """True when the WSGI server that made ``environ`` writes a header's str value as UTF-8 (granian).

    Such a server needs the text itself: the PEP 3333 form from
    ``wsgi_header_value`` would reach the wire encoded twice ("Ä" as C3 83 C2 84).
    """
    software = str(environ.get("SERVER_SOFTWARE", "")).strip().lower()
    return software.startswith(_UTF8_HEADER_SERVERS)


def identity_headers(user: User) -> dict[str, str]:
    """``Remote-User``, ``Remote-Name``, ``Remote-Email`` (primary; empty when none) and ``Remote-Groups`` (role).

    All four are always sent: some proxies (older Caddy versions) pass on a
    client's own header, or an unfilled placeholder, when the answer lacks one.
    The values are text without control characters, to be sent as UTF-8.
    """
    return {
        "Remote-User": _header_text(user.username),
        "Remote-Name": _header_text(user.name),
        "Remote-Email": _header_text(user.primary_email() or ""),
        "Remote-Groups": _header_text(user.role),
    }


def sign_in_url(next_url: str | None = None) -> str:
    """twostep's sign-in page as the browser reaches it, returning to ``next_url`` afterwards."""
    base = f"{settings.CONFIG.server.public_url}{settings.LOGIN_URL}"
    return f"{base}?{urlencode({'next': next_url})}" if next_url else base


def _must_sign_in(target: Target, location: str, reason: str) -> Answer:
    if target.style is Style.AUTH_REQUEST:
        # nginx only understands 401 here and redirects to our Location itself.
        return Answer(401, location=location, reason=reason)
    return Answer(302, location=location, reason=reason)


def answer(target: Target | None, user: User | None) -> Answer:
    """Decide for ``user`` (None: not fully signed in) and the proxied ``target``.

    200 with identity headers; 401 (nginx) or 302 (Traefik, Caddy) towards
    the sign-in page; 403 when the rules deny, and when the request cannot
    be understood (no trusted proxy headers): default deny.
    """
    if target is None:
        return Answer(403, reason="unknown target")
    decision = rules.decide(settings.CONFIG.forward_auth.rules, target.host, target.path, user.role if user else None)
    if decision is rules.Decision.FORBID:
        return Answer(403, reason="denied by rule")
    if decision is rules.Decision.SIGN_IN or user is None:
        return _must_sign_in(target, sign_in_url(target.url), "not signed in")
    if user.must_change_password:
        return _must_sign_in(
            target, f"{settings.CONFIG.server.public_url}{CHANGE_PASSWORD_PATH}", "must change password"
        )
    if enrolment_required(user):
        # 2FA is required of this user and they have not enrolled (grace over): no application until they do.
        return _must_sign_in(target, f"{settings.CONFIG.server.public_url}{ENROL_URL}", "must enrol a second factor")
    return Answer(200, headers=identity_headers(user))


def is_allowed_destination(url: str, *, require_https: bool) -> bool:
    """True when ``url`` is an absolute URL on a host that a forward-auth rule protects.

    Used for ``/login?next=...``: anything else (other hosts, look-alike
    hosts, ``//host``, ``javascript:``, user-info tricks, backslashes) is
    refused.  With ``require_https`` only https URLs pass.
    """
    if not url or len(url) > MAX_DESTINATION_LENGTH or not url.isprintable() or "\\" in url or " " in url:
        return False
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        return False
    allowed_schemes = ("https",) if require_https else ("http", "https")
    if parts.scheme not in allowed_schemes or not port_ok or parts.username is not None or parts.password is not None:
        return False
    host = (parts.hostname or "").rstrip(".")
    if not host or not rules.allows_destination(settings.CONFIG.forward_auth.rules, host):
        return False
    # Django's own check as a second opinion (control characters, scheme tricks).
    return url_has_allowed_host_and_scheme(url, allowed_hosts={parts.netloc}, require_https=require_https)
