"""SMS pages: set up (pick a number, send, confirm), turn off, and "send a new code" at sign-in."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from twostep.accounts.models import User
from twostep.accounts.views import sign_in_expired
from twostep.audit.services import Origin
from twostep.core.decorators import fresh_password
from twostep.mfa import codes
from twostep.mfa.email_check_views import email_checked
from twostep.mfa.forms import CodeForm
from twostep.mfa.methods import SecurityPanel, register_panel
from twostep.mfa.models import Authenticator, Method, PendingLogin
from twostep.mfa.policy import two_factor_state
from twostep.mfa.sms import flows
from twostep.mfa.step_up_views import fresh_second_factor
from twostep.mfa.views import confirm_if_last, factor_confirmed, for_pending_factor, what_is_left
from twostep.sms import service
from twostep.sms.service import NotSent

SETUP_URL = "/account/security/sms"


def _phone_id(request: HttpRequest) -> int:
    try:
        return int(request.POST.get("phone", ""))
    except ValueError:
        return 0


@fresh_password
@email_checked(Method.SMS)
@fresh_second_factor
@require_http_methods(["GET", "POST"])
def sms_setup_view(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    _, methods = two_factor_state()
    if Method.SMS not in methods:
        messages.error(request, "Your administrator does not allow SMS codes.")
        return redirect("/account/security")
    origin = Origin.of(request)
    error = ""
    action = request.POST.get("action", "") if request.method == "POST" else ""
    try:
        if action in {"send", "resend"}:
            if action == "send":
                pending = flows.start_enrolment(user, _phone_id(request), origin)
            else:
                pending = flows.resend_enrolment_code(user, origin)
            problem = flows.unconfirmed_problem(authenticator=pending)
            if problem:
                messages.warning(request, problem)
            else:
                new = "a new code" if action == "resend" else "a code"
                messages.success(request, f"We sent {new} to {pending.destination}.")
            return redirect(SETUP_URL)
        if action == "change":
            flows.cancel_enrolment(user)
            return redirect(SETUP_URL)
        if action == "confirm":
            form = CodeForm(request.POST)
            if form.is_valid():
                factor = flows.confirm(
                    user, form.cleaned_data["code"], origin, keep_session_key=request.session.session_key
                )
                factor_confirmed(request)
                messages.success(request, f"SMS codes are on: sign-in codes now go to {factor.destination}.")
                return redirect("/account/security")
            # Empty, or not six digits: said so, and nothing is checked or counted.
            error = str(form.errors["code"][0])
        elif action:
            error = "Unknown action."
    except flows.EnrolmentError as exc:
        error = flows.enrolment_message(exc.reason)
    except NotSent as exc:
        error = exc.user_message
    enrolment = flows.pending_enrolment(user)
    numbers = flows.phone_numbers(user)
    current = flows.active_factor(user)
    selected = enrolment.destination if enrolment else (current.destination if current else "")
    # Every send for the set-up failed: nothing to enter; choose and send again.
    unsent_to = codes.never_sent_to(enrolment)
    context: dict[str, Any] = {
        "error": error,
        "pending": None if unsent_to else enrolment,
        "unsent_to": unsent_to,
        # The user's own numbers, on their own page, in full (as their addresses are): masks
        # are for the sign-in page, seen before the second step.
        "pending_to": enrolment.destination if enrolment else "",
        "cooldown": codes.cooldown_remaining(authenticator=enrolment) if enrolment else 0,
        "numbers": [
            {
                "id": phone.pk,
                "number": phone.number,
                "primary": phone.is_primary,
                "selected": phone.number == selected,
            }
            for phone in numbers
        ],
        "current_to": current.destination if current else "",
        "status": service.status(),
        # The risk notice points to the stronger method when the administrator allows it.
        "totp_allowed": Method.TOTP in methods,
    }
    return render(request, "mfa/sms/setup.html", context, status=200)


@fresh_password
@require_POST
@confirm_if_last(Method.SMS, "SMS codes")
@fresh_second_factor
def sms_remove_view(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    if flows.remove(user, Origin.of(request), keep_session_key=request.session.session_key):
        request.session.cycle_key()
        messages.success(request, f"SMS codes are off. {what_is_left(user)}")
    return redirect("/account/security")


@require_POST
@for_pending_factor(Method.SMS)
def sms_resend_view(request: HttpRequest, pending: PendingLogin, authenticator: Authenticator) -> HttpResponse:
    """'Send a new code' on the second-step page."""
    try:
        flows.send_sign_in_code(pending, authenticator, Origin.of(request))
    except codes.Ended:
        return sign_in_expired(request)
    except NotSent as exc:
        if exc.reason == "cooldown":
            messages.info(request, exc.user_message)
        elif flows.has_live_code(pending):
            # Without a live code the page itself explains what is wrong.
            messages.error(request, f"{exc.user_message} The code we sent before still works.")
    else:
        # An unconfirmed message is explained by the page itself (the method's box).
        if not flows.unconfirmed_problem(pending=pending):
            messages.success(request, f"We sent a new code to {service.mask(authenticator.destination)}.")
    return redirect("/login/verify")


def panel_context(request: HttpRequest, user: Any) -> dict[str, Any]:
    factor = flows.active_factor(user)
    return {
        "sms_to": service.mask(factor.destination) if factor else "",
        "sms_usable": bool(factor and flows.has_number(user.pk, factor.destination)),
        "sms_has_numbers": user.phone_numbers.exists(),
        "sms_status": service.status(),
    }


register_panel(SecurityPanel(Method.SMS, "mfa/sms/panel.html", panel_context, order=30))
