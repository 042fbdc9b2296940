"""The password asked again before a sensitive change, without losing the change.

A change posted when the password was last entered too long ago is not
refused outright: the answer is the password prompt, carrying the posted
fields, and the prompt posts them back to where they were going with the
password added.  Only when the password is right does the change run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render

from twostep.accounts.forms import PasswordForm
from twostep.accounts.models import User
from twostep.accounts.signin import SignInThrottled, check_reauthentication, throttled_message
from twostep.audit.services import Origin
from twostep.core.decorators import mark_reauthenticated

# The prompt's fields get this prefix, so that they cannot collide with the
# fields of the change they carry (a console form has its own "password").
PREFIX = "reauth"
INCORRECT = "That password is incorrect."

# Fields not carried through the prompt: the prompt brings its own CSRF token.
_NOT_CARRIED = {"csrfmiddlewaretoken"}


def confirm(request: HttpRequest, form: PasswordForm) -> int | None:
    """Check the password typed in ``form``; None when it was right, else the status to answer with.

    A right password gives the session a new key (a raised privilege, as at
    sign-in) and marks it freshly authenticated.  A wrong or throttled one
    leaves its error on ``form``; it counts against the sign-in limits.
    """
    if not form.is_valid():
        return 200
    user: User = request.user  # type: ignore[assignment]
    try:
        correct = check_reauthentication(user, form.cleaned_data["password"], Origin.of(request), request)
    except SignInThrottled as throttled:
        form.add_error("password", throttled_message(throttled))
        return 429
    if not correct:
        form.add_error("password", INCORRECT)
        return 200
    request.session.cycle_key()
    mark_reauthenticated(request)
    return None


def password_then(
    request: HttpRequest, back: str, view: Callable[..., HttpResponse], *args: Any, **kwargs: Any
) -> HttpResponse:
    """Run the posted change ``view`` once the password is confirmed; until then, answer with the prompt.

    The prompt carries every posted field back to ``request``'s URL with the
    password; the change then runs on exactly what was first posted.  Its
    "Cancel" leads to ``back``.
    """
    prompted = f"{PREFIX}-password" in request.POST
    form = PasswordForm(request.POST if prompted else None, prefix=PREFIX)
    status = confirm(request, form) if prompted else 200
    if status is None:
        request.POST = without_prompt(request.POST)  # type: ignore[assignment]  # immutable, as Django's
        return view(request, *args, **kwargs)
    context = {"form": form, "action": request.get_full_path(), "carried": carried(request.POST, PREFIX), "back": back}
    return render(request, "accounts/reauthenticate.html", context, status=status)


def carried(posted: QueryDict, prefix: str) -> list[tuple[str, str]]:
    """The posted fields a prompt (whose own fields start with ``prefix-``) carries on, in order."""
    return [
        (name, value)
        for name, values in posted.lists()
        if name not in _NOT_CARRIED and not name.startswith(f"{prefix}-")
        for value in values
    ]


def without_prompt(posted: QueryDict, prefix: str = PREFIX) -> QueryDict:
    """``posted`` without a prompt's fields (those starting with ``prefix-``), immutable as Django's own."""
    kept = QueryDict(mutable=True)
    for name, values in posted.lists():
        if not name.startswith(f"{prefix}-"):
            kept.setlist(name, values)
    return QueryDict(kept.urlencode())
