"""Device cookies: a browser that signed in to an account before keeps its own password-failure count.

The password step's per-account delay (``twostep.accounts.throttle``) is
what slows down guessing one account's password from many addresses; but
anyone can run it up by typing wrong passwords for that name, and then the
owner waits too.  A browser that completed a sign-in to the account gets a
signed cookie naming the account and a random device id.  When that browser
types the password for the same account, its failures count against the
device id instead of the account, so a stranger's failures do not delay it
(and its own still do).  The per-address limit applies as before.

The cookie is not a credential: it holds no secret the server keeps, opens
nothing by itself, and only chooses which counter a try is counted on.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse

from twostep.accounts.throttle import account_name

MAX_AGE = 365 * 86400
_SALT = "twostep.accounts.devices"


def cookie_name() -> str:
    return "__Host-twostep_device" if settings.SESSION_COOKIE_SECURE else "twostep_device"


def device_id(request: HttpRequest | None, username: str) -> str | None:
    """The device id of ``request``'s cookie if it was issued for ``username``, else None."""
    raw = request.COOKIES.get(cookie_name(), "") if request is not None else ""
    if not raw:
        return None
    try:
        value = signing.loads(raw, salt=_SALT, max_age=MAX_AGE)
    except signing.BadSignature:
        return None
    if not isinstance(value, dict) or value.get("account") != account_name(username):
        return None
    device = value.get("device")
    return device if isinstance(device, str) and device else None


def remember(request: HttpRequest, response: HttpResponse, username: str) -> None:
    """Give the browser a device cookie for ``username`` after a complete sign-in (keeping its id if it had one)."""
    device = device_id(request, username) or secrets.token_urlsafe(16)
    value = signing.dumps({"account": account_name(username), "device": device}, salt=_SALT, compress=True)
    response.set_cookie(
        cookie_name(),
        value,
        max_age=MAX_AGE,
        path="/",
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )
