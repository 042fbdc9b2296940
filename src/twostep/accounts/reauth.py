"""The password asked again before a sensitive change, without losing the change.

A change posted when the password was last entered too long ago is not
refused outright: the answer is the password prompt, carrying the posted
fields, and the prompt posts them back to where they were going with the
password added.  Only when the password is right does the change run.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render

from twostep.accounts.forms import PasswordForm
from twostep.accounts.models import User
from twostep.accounts.signin import SignInThrottled, check_reauthentication, throttled_message
from twostep.audit.services import Origin
from twostep.core.crypto import DecryptionError
from twostep.core.decorators import mark_reauthenticated
from twostep.core.keyring import secret_box

# The prompt's fields get this prefix, so that they cannot collide with the
# fields of the change they carry (a console form has its own "password").
PREFIX = "reauth"
INCORRECT = "That password is incorrect."

# Fields not carried through the prompt: the prompt brings its own CSRF token.
_NOT_CARRIED = {"csrfmiddlewaretoken"}
#: Carried fields that hold a secret (a new password, the SMTP password, an SMS
#: provider's token): the prompt carries them encrypted, never written back into
#: the page as typed.
_SECRET_FIELD = re.compile(r"password|secret|token", re.IGNORECASE)


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
    """The posted fields a prompt (whose own fields start with ``prefix-``) carries on, in order.

    Secrets among them are encrypted (``without_prompt`` opens them again).

    Raises:
        twostep.core.crypto.KeyFileError: a secret is to be carried and the key file is missing or broken.
    """
    return [
        (name, _sealed(name, value))
        for name, values in posted.lists()
        if name not in _NOT_CARRIED and not name.startswith(f"{prefix}-")
        for value in values
    ]


def without_prompt(posted: QueryDict, prefix: str = PREFIX) -> QueryDict:
    """``posted`` without a prompt's fields (those starting with ``prefix-``), immutable as Django's own.

    The secrets ``carried`` encrypted are decrypted.
    """
    kept = QueryDict(mutable=True)
    for name, values in posted.lists():
        if not name.startswith(f"{prefix}-"):
            kept.setlist(name, [_opened(name, value) for value in values])
    return QueryDict(kept.urlencode())


def _sealed(name: str, value: str) -> str:
    if not value or not _SECRET_FIELD.search(name) or _open(value) is not None:
        return value  # not a secret, or carried sealed already (a prompt answered wrongly)
    return secret_box().encrypt(value)


def _opened(name: str, value: str) -> str:
    if not _SECRET_FIELD.search(name):
        return value
    opened = _open(value)
    return value if opened is None else opened


def _open(value: str) -> str | None:
    """What ``value`` holds if this service sealed it, else None (nobody else can make such a value)."""
    try:
        return secret_box().decrypt(value)
    except DecryptionError:
        return None
