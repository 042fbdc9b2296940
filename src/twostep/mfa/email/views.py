"""Email-code pages: set up (pick an address, confirm its code), turn off, resend at sign-in."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from twostep.accounts.models import User
from twostep.accounts.views import sign_in_expired
from twostep.audit.services import Origin
from twostep.core.decorators import fresh_password
from twostep.mail import MailDeliveryError
from twostep.mfa import codes, guesses
from twostep.mfa.email import flows
from twostep.mfa.forms import CodeForm
from twostep.mfa.models import Authenticator, Method, PendingLogin
from twostep.mfa.policy import two_factor_state
from twostep.mfa.step_up_views import fresh_second_factor
from twostep.mfa.views import confirm_if_last, factor_confirmed, for_pending_factor, what_is_left

SETUP_URL = "/account/security/email"

#: What a page says when an emailed code was refused, by the reason ``codes.verify`` gave.
CODE_ERRORS = {
    "malformed_code": "Enter the 6-digit code from the message.",
    "wrong_code": "That code didn't match. Check the newest message and try again.",
    "expired_code": "That code has expired. Send a new code.",
    "code_exhausted": "That code was tried too many times. Send a new code.",
    "reused_code": "That code was already used. Send a new code.",
    **guesses.REFUSALS,
}

#: What the setup page says for each reason enrolment stopped.
ENROLMENT_ERRORS = {
    "not_your_address": "Choose one of the addresses on your account.",
    "no_pending": "Your setup expired. Choose an address and send a new code.",
    "address_removed": "That address is no longer on your account. Choose another one.",
    "ended": "Your setup changed while the code was being sent (it was cancelled, reset, or started again on another address): nothing was sent. Choose an address and send a new code.",
    **CODE_ERRORS,
}


def send_error(exc: Exception, reasons: dict[str, str]) -> str:
    """What a page says when a code could not be sent: a cap or cooldown, a refusal in ``reasons``, or a failure."""
    if isinstance(exc, codes.SendRefused):
        return flows.refusal_message(exc)
    reason = getattr(exc, "reason", "")
    return reasons.get(reason, flows.COULD_NOT_SEND) if reason else flows.COULD_NOT_SEND


def address_id(request: HttpRequest) -> int:
    """The address picked in the form (its id), or 0."""
    try:
        return int(request.POST.get("address", ""))
    except ValueError:
        return 0


@fresh_password
@fresh_second_factor
@require_http_methods(["GET", "POST"])
def email_setup_view(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    _, methods = two_factor_state()
    if Method.EMAIL not in methods:
        messages.error(request, "Your administrator does not allow email codes.")
        return redirect("/account/security")
    origin = Origin.of(request)
    error = None
    form = CodeForm()
    action = request.POST.get("action", "")
    if request.method == "POST":
        if action in {"send", "resend"}:
            try:
                if action == "send":
                    started = flows.start_enrolment(user, address_id(request), origin)
                else:
                    started = flows.resend_enrolment_code(user, origin)
            except (flows.EnrolmentError, codes.SendRefused, MailDeliveryError) as exc:
                error = send_error(exc, ENROLMENT_ERRORS)
            else:
                messages.success(request, f"We sent a code to {started.destination}.")
                return redirect(SETUP_URL)
        elif action == "confirm":
            form = CodeForm(request.POST)
            code = form.cleaned_data["code"] if form.is_valid() else ""
            try:
                factor = flows.confirm_enrolment(user, code, origin, keep_session_key=request.session.session_key)
            except flows.EnrolmentError as exc:
                error = ENROLMENT_ERRORS.get(exc.reason, ENROLMENT_ERRORS["wrong_code"])
            else:
                factor_confirmed(request)
                messages.success(
                    request, f"Email codes are on. When you sign in, we will send a code to {factor.destination}."
                )
                return redirect("/account/security")
        elif action == "cancel":
            flows.cancel_enrolment(user)
            return redirect("/account/security")
    addresses = flows.addresses_of(user)
    pending = flows.pending_enrolment(user)
    # Every send for the set-up failed: nothing to enter; choose and send again.
    unsent_to = codes.never_sent_to(pending)
    choosing = pending is None or bool(unsent_to) or request.GET.get("change") == "1" or action == "send"
    primary = next((a for a in addresses if a.is_primary), None)
    suggested = flows.address_to_offer(addresses, unsent_to, primary)
    selected_id = address_id(request) if action == "send" else (suggested.pk if suggested else 0)
    current = flows.active_factor(user)
    return render(
        request,
        "mfa/email/setup.html",
        {
            "addresses": addresses,
            "primary": primary,
            "selected_id": selected_id,
            "pending": pending,
            "choosing": choosing,
            "unsent_to": unsent_to,
            "pending_is_primary": bool(pending and primary and pending.destination.lower() == primary.email.lower()),
            "cooldown": codes.cooldown_remaining(authenticator=pending) if pending else 0,
            "current": current,
            "current_works": current is not None and flows.is_available(current),
            "form": form,
            "error": error,
        },
        status=200,
    )


@fresh_password
@require_POST
@confirm_if_last(Method.EMAIL, "email codes")
@fresh_second_factor
def email_remove_view(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    if flows.remove(user, Origin.of(request), keep_session_key=request.session.session_key):
        request.session.cycle_key()
        messages.success(request, f"Email codes are off. {what_is_left(user)}")
    return redirect("/account/security")


@require_POST
@for_pending_factor(Method.EMAIL)
def login_resend_view(request: HttpRequest, pending: PendingLogin, authenticator: Authenticator) -> HttpResponse:
    """The second-step page's "Send a new code" button."""
    try:
        flows.send_login_code(pending, authenticator, Origin.of(request))
    except codes.Ended:
        return sign_in_expired(request)
    except (flows.EnrolmentError, codes.SendRefused, MailDeliveryError) as exc:
        status = flows.code_status(pending, authenticator)
        # Before any code went out the page already says what is wrong; say it once.
        if status.sent or (isinstance(exc, codes.SendRefused) and exc.reason == "cooldown"):
            messages.error(request, send_error(exc, ENROLMENT_ERRORS))
    else:
        messages.success(
            request,
            f"We sent a new code to {codes.mask_email(authenticator.destination)}. Earlier codes no longer work.",
        )
    return redirect("/login/verify")
