"""Authenticator-app pages: set up (with QR code), move to a new phone, turn off."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from twostep.accounts.models import User
from twostep.audit.services import Origin
from twostep.core.decorators import fresh_password
from twostep.mfa.email_check_views import email_checked
from twostep.mfa.forms import CodeForm
from twostep.mfa.methods import SecurityPanel, register_panel
from twostep.mfa.models import Authenticator, Method
from twostep.mfa.policy import two_factor_state
from twostep.mfa.step_up_views import fresh_second_factor
from twostep.mfa.totp import flows as totp_flows
from twostep.mfa.views import confirm_if_last, factor_confirmed, what_is_left

#: The set-up key expired (``flows.ENROLMENT_TTL``): the page shows a new one, which the phone does not have.
SETUP_EXPIRED = (
    "This set-up expired, so the key your app scanned no longer works. "
    "Delete that entry from your app, scan the new QR code below, and enter the code it shows."
)
AFTER_SETUP = "Your authenticator app is now required when you sign in."
#: While two-factor authentication is off for everyone (the console's switch, or the configuration's).
AFTER_SETUP_WHILE_OFF = (
    "Your authenticator app is set up. Sign-in will ask for it once two-factor authentication is back on."
)


@fresh_password
@email_checked(Method.TOTP)
@fresh_second_factor
@require_http_methods(["GET", "POST"])
def totp_setup_view(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    active, methods = two_factor_state()
    if Method.TOTP not in methods:
        messages.error(request, "Your administrator does not allow authenticator apps.")
        return redirect("/account/security")
    form = CodeForm(request.POST if request.method == "POST" else None)
    error = None
    if request.method == "POST" and form.is_valid():
        try:
            totp_flows.confirm(
                user, form.cleaned_data["code"], Origin.of(request), keep_session_key=request.session.session_key
            )
        except totp_flows.EnrolmentError as exc:
            no_setup = str(exc) == "no_pending_secret"
            error = SETUP_EXPIRED if no_setup else totp_flows.wrong_code_message(exc.device_clock_offset)
        else:
            factor_confirmed(request)
            messages.success(request, AFTER_SETUP if active else AFTER_SETUP_WHILE_OFF)
            return redirect("/account/security")
    elif request.method == "POST":
        # Empty, or not six digits: the form says which, and nothing is counted.
        error = str(form.errors["code"][0])
    provisioning = totp_flows.provisioning_for(user)
    replacing = Authenticator.objects.filter(user=user, method=Method.TOTP, confirmed_at__isnull=False).exists()
    return render(
        request,
        "mfa/totp_setup.html",
        {"form": form, "error": error, "provisioning": provisioning, "replacing": replacing},
    )


@fresh_password
@require_POST
@confirm_if_last(Method.TOTP, "your authenticator app")
@fresh_second_factor
def totp_remove_view(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    if totp_flows.remove(user, Origin.of(request), keep_session_key=request.session.session_key):
        request.session.cycle_key()
        messages.success(request, f"Your authenticator app was removed. {what_is_left(user)}")
    return redirect("/account/security")


def panel_context(request: HttpRequest, user: Any) -> dict[str, Any]:
    return {}


register_panel(SecurityPanel(Method.TOTP, "mfa/panels/totp.html", panel_context, order=10))
