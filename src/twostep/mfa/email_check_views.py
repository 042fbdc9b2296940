"""The "Confirm it's you" page: a code to one of the user's addresses before a first factor is set up.

See ``twostep.mfa.email_check`` for when it is asked.  The set-up pages of
the checked methods wear ``email_checked``; the page itself is reachable by a
user who must enrol (it lives under the enrolment page's path).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from twostep.accounts.models import User
from twostep.audit.services import Origin
from twostep.core.decorators import signed_in
from twostep.mail import MailDeliveryError
from twostep.mfa import codes, email_check, enforcement
from twostep.mfa.email import flows as email_flows
from twostep.mfa.email.views import CODE_ERRORS, address_id, send_error
from twostep.mfa.forms import CodeForm

PAGE_URL = f"{enforcement.ENROL_URL}/email-check"

#: What the page says for each reason a check did not pass.
CHECK_ERRORS = {
    "not_your_address": "Choose one of the addresses on your account.",
    "no_check": "Choose an address and send a code first.",
    "ended": "The check was started again on another address while the code was being sent: nothing was sent. Choose an address and send a new code.",
    **CODE_ERRORS,
}

View = Callable[..., HttpResponse]


def email_checked(method: str) -> Callable[[View], View]:
    """Send a user who must first confirm an email address (see ``email_check.needed``) to do so."""

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            user: User = request.user  # type: ignore[assignment]
            # The holder name is made only when the check applies: other sessions are left untouched.
            if email_check.needed(user, method) and not email_check.passed(
                user, email_check.session_holder(request.session)
            ):
                return redirect(f"{PAGE_URL}?{urlencode({'method': method})}")
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


@signed_in
@require_http_methods(["GET", "POST"])
def email_check_view(request: HttpRequest) -> HttpResponse:
    """Pick an address, get a code, enter it; then on to the set-up page of ``?method=``."""
    user: User = request.user  # type: ignore[assignment]
    method = request.GET.get("method", "")
    if method not in email_check.CHECKED_METHODS:
        method = ""
    after = enforcement.SETUP_URLS[method] if method else enforcement.ENROL_URL
    if not (email_check.needed(user, method) if method else email_check.asked_of(user)):
        return redirect(after)
    holder = email_check.session_holder(request.session)
    if email_check.passed(user, holder):
        return redirect(after)
    origin = Origin.of(request)
    here = f"{PAGE_URL}?{urlencode({'method': method})}" if method else PAGE_URL
    form = CodeForm()
    error = ""
    action = request.POST.get("action", "") if request.method == "POST" else ""
    if action in {"send", "resend"}:
        try:
            if action == "send":
                check = email_check.start(user, address_id(request), holder, origin)
            else:
                check = email_check.resend(user, holder, origin)
        except (email_check.CheckError, codes.SendRefused, MailDeliveryError) as exc:
            error = send_error(exc, CHECK_ERRORS)
        else:
            messages.success(request, f"We sent a code to {check.destination}.")
            return redirect(here)
    elif action == "confirm":
        form = CodeForm(request.POST)
        code = form.cleaned_data["code"] if form.is_valid() else ""
        try:
            email_check.confirm(user, code, holder, origin)
        except email_check.CheckError as exc:
            error = CHECK_ERRORS.get(exc.reason, CHECK_ERRORS["wrong_code"])
        else:
            messages.success(request, "Thank you: your address is confirmed. Now set up your second step.")
            return redirect(after)
    addresses = email_flows.addresses_of(user)
    pending = email_check.in_progress(user, holder)
    # Every send for the check failed: nothing to enter; choose and send again.
    unsent_to = codes.never_sent_to(pending)
    choosing = pending is None or bool(unsent_to) or request.GET.get("change") == "1" or action == "send"
    # Any address of theirs will do.
    suggested = email_flows.address_to_offer(addresses, unsent_to, addresses[0] if addresses else None)
    return render(
        request,
        "mfa/enforcement/email_check.html",
        {
            "addresses": addresses,
            "selected_id": address_id(request) if action == "send" else (suggested.pk if suggested else 0),
            "pending": pending,
            "choosing": choosing,
            "unsent_to": unsent_to,
            "cooldown": email_check.cooldown(pending) if pending else 0,
            "form": form,
            "error": error,
            "here": here,
        },
        status=200,
    )
