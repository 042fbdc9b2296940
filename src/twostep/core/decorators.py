"""Access rules for views: a full session, an administrator, a recent password."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from twostep.core import clock

View = Callable[..., HttpResponse]
#: When the password was last entered in this session, and a code of a factor last right.
REAUTH_KEY = "twostep_reauth_at"
SECOND_FACTOR_KEY = "twostep_step_up_at"


def signed_in(view: View) -> View:
    """Only a fully signed-in user (both steps) passes; others go to /login.

    A user who must choose a new password is sent to do that first.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect(f"{settings.LOGIN_URL}?{urlencode({'next': request.get_full_path()})}")
        if request.user.must_change_password and request.path != "/account/password":  # type: ignore[union-attr]
            return redirect("/account/password")
        return view(request, *args, **kwargs)

    return wrapper


def admin_only(view: View) -> View:
    """Signed in and an administrator; anyone else signed in gets 403.

    A change (POST) also needs the password entered within
    ``security.reauth_max_age`` seconds, as sensitive changes on a user's own
    Security page do: an administrator's session left open, or stolen, must
    not be enough to reset another user's password or second factor.  Without
    it the administrator is asked for the password, and the change is made
    once it is given (``accounts.reauth``).  Then, when the administrator's
    own sign-in asks for a code, a code proven as recently
    (``mfa.step_up_views.code_first``): every change, because an
    administrator's power reaches everyone's second step in more ways than
    a list of gated pages would keep up with (a new administrator, a mail
    server of one's own, a user's address removed).
    """

    @wraps(view)
    def change(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # The second step builds on core: imported when needed, not at start-up.
        from twostep.mfa.step_up_views import code_first

        # Once the password prompt was answered, the page must not offer it again.
        request.console_needs_password = not recently_authenticated(request)  # type: ignore[attr-defined]
        return code_first(request, view, *args, **kwargs) or view(request, *args, **kwargs)

    @signed_in
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_admin:  # type: ignore[union-attr]
            raise PermissionDenied
        fresh = recently_authenticated(request)
        # Console pages offer the password prompt up front, so that a long
        # form is not filled in only to be asked for it on saving.
        request.console_needs_password = not fresh  # type: ignore[attr-defined]
        if request.method != "POST":
            return view(request, *args, **kwargs)
        if not fresh:
            back = page_posted_from(request, "/admin/", "/admin/users")
            return _password_then(request, back, change, *args, **kwargs)
        return change(request, *args, **kwargs)

    return wrapper


def _password_then(request: HttpRequest, back: str, view: View, *args: Any, **kwargs: Any) -> HttpResponse:
    # Accounts builds on core: imported when needed, not at start-up.
    from twostep.accounts.reauth import password_then

    return password_then(request, back, view, *args, **kwargs)


def page_posted_from(request: HttpRequest, section: str | tuple[str, ...], fallback: str) -> str:
    """The page under ``section`` (or one of several) a form was posted from (its Referer, if on this
    site), else ``fallback``."""
    referer = urlsplit(request.headers.get("Referer", ""))
    if referer.netloc in {"", request.get_host()} and referer.path.startswith(section):
        return referer.path + (f"?{referer.query}" if referer.query else "")
    return fallback


def mark_reauthenticated(request: HttpRequest) -> None:
    request.session[REAUTH_KEY] = clock.timestamp()


def mark_second_factor_proven(request: HttpRequest) -> None:
    """A code of a factor was right in this session just now (at sign-in, or a step-up)."""
    request.session[SECOND_FACTOR_KEY] = clock.timestamp()


def recently_authenticated(request: HttpRequest) -> bool:
    """True when the password was entered within ``security.reauth_max_age`` seconds."""
    return stamped_recently(request, REAUTH_KEY)


def stamped_recently(request: HttpRequest, key: str) -> bool:
    """Whether the session's time stamp under ``key`` is at most ``security.reauth_max_age`` seconds old.

    The one window of every proof a session keeps (the password entered
    again, a second factor confirmed).
    """
    stamp = request.session.get(key)
    return stamp is not None and clock.timestamp() - float(stamp) <= settings.CONFIG.security.reauth_max_age


def fresh_password(view: View) -> View:
    """Sensitive changes need the password entered within the last few minutes.

    A page asked for (GET) without it leads to the password prompt and back;
    a change posted without it is made once the password is given
    (``accounts.reauth``).
    """

    @signed_in
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not recently_authenticated(request):
            if request.method == "POST":
                back = page_posted_from(request, "/account/", "/account/security")
                return _password_then(request, back, view, *args, **kwargs)
            return redirect(f"/account/reauthenticate?{urlencode({'next': request.get_full_path()})}")
        return view(request, *args, **kwargs)

    return wrapper
