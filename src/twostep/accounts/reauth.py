"""The password asked again before a sensitive change, without losing the change.

A change posted when the password was last entered too long ago is not
refused outright: the answer is the password prompt, carrying the posted
fields, and the prompt posts them back to where they were going with the
password added.  Only when the password is right does the change run.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.utils.crypto import salted_hmac

from twostep.accounts.forms import PasswordForm
from twostep.accounts.models import User
from twostep.accounts.signin import SignInThrottled, check_reauthentication, throttled_message
from twostep.audit.services import Origin
from twostep.core import clock
from twostep.core.decorators import mark_reauthenticated

# The prompt's fields get this prefix, so that they cannot collide with the
# fields of the change they carry (a console form has its own "password").
PREFIX = "reauth"
INCORRECT = "That password is incorrect."

# Fields not carried through the prompt: the prompt brings its own CSRF token.
_NOT_CARRIED = {"csrfmiddlewaretoken"}
#: Carried fields that hold a secret (a new password, the SMTP password, an SMS
#: provider's token): the prompt carries them sealed, never written back into the
#: page as typed.  ``seal_fields_matching`` adds the names of other forms.
_secret_fields = [re.compile(r"password|secret|token|authorization|credential", re.IGNORECASE)]
#: What a sealed value starts with; the rest is a Fernet token of [user id, field name, value].
_SEALED = "sealed:"
#: How long a prompt left open may still carry its secrets on (seconds).
SEALED_FOR = 3600


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
        request.POST = without_prompt(request)  # type: ignore[assignment]  # immutable, as Django's
        return view(request, *args, **kwargs)
    context = {"form": form, "action": request.get_full_path(), "carried": carried(request, PREFIX), "back": back}
    return render(request, "accounts/reauthenticate.html", context, status=status)


def seal_fields_matching(pattern: str) -> None:
    """Carry the fields whose names match ``pattern`` (a regular expression) sealed too.

    For forms whose secret fields have other names, e.g. the options of SMS providers.
    """
    _secret_fields.append(re.compile(pattern))


def carried(request: HttpRequest, prefix: str) -> list[tuple[str, str]]:
    """The fields posted to ``request`` that a prompt (whose own fields start with ``prefix-``) carries on, in order.

    Secrets among them are sealed for this user and field (``without_prompt`` opens them).
    """
    user_id = int(request.user.pk)  # type: ignore[arg-type]  # prompts are for signed-in users
    return [
        (name, _sealed(user_id, name, value))
        for name, values in request.POST.lists()
        if name not in _NOT_CARRIED and not name.startswith(f"{prefix}-")
        for value in values
    ]


def without_prompt(request: HttpRequest, prefix: str = PREFIX) -> QueryDict:
    """``request.POST`` without a prompt's fields (those starting with ``prefix-``), immutable as Django's own.

    The secrets ``carried`` sealed are opened.  One that cannot be opened (sealed
    for another user or field, left more than ``SEALED_FOR`` seconds, or made up)
    is empty: the change then asks for it again rather than using the text.
    """
    user_id = int(request.user.pk)  # type: ignore[arg-type]
    kept = QueryDict(mutable=True)
    for name, values in request.POST.lists():
        if not name.startswith(f"{prefix}-"):
            kept.setlist(name, [_opened(user_id, name, value) for value in values])
    return QueryDict(kept.urlencode())


def _is_secret(name: str) -> bool:
    return any(pattern.search(name) for pattern in _secret_fields)


def _sealed(user_id: int, name: str, value: str) -> str:
    if not value or not _is_secret(name) or _open(user_id, name, value) is not None:
        return value  # not a secret, or carried sealed already (a prompt answered wrongly)
    payload = json.dumps([user_id, name, value]).encode()
    token = _fernet(settings.SECRET_KEY).encrypt_at_time(payload, int(clock.timestamp()))
    return _SEALED + token.decode("ascii")


def _opened(user_id: int, name: str, value: str) -> str:
    if not _is_secret(name) or not value.startswith(_SEALED):
        return value
    return _open(user_id, name, value) or ""


def _open(user_id: int, name: str, value: str) -> str | None:
    """What ``value`` holds if this service sealed it for ``user_id`` and ``name`` not long ago, else None."""
    if not value.startswith(_SEALED):
        return None
    try:
        plain = _fernet(settings.SECRET_KEY).decrypt_at_time(
            value.removeprefix(_SEALED).encode("ascii"), SEALED_FOR, int(clock.timestamp())
        )
        sealed_for, sealed_name, text = json.loads(plain)
    except (InvalidToken, UnicodeError, ValueError, TypeError):
        return None
    return str(text) if (sealed_for, sealed_name) == (user_id, name) else None


@cache
def _fernet(secret_key: str) -> Fernet:
    """A key of its own, derived from the signing key: not the keys of the secrets kept in the database,
    so that nothing stored can be opened by posting it to a prompt."""
    digest = salted_hmac("twostep.accounts.reauth.carried", "fernet key", secret=secret_key, algorithm="sha256")
    return Fernet(base64.urlsafe_b64encode(digest.digest()))
