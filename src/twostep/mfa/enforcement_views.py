"""The enrolment page a user who must set up a second factor is sent to, and the grace reminder."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from twostep.accounts.models import EmailAddress, PhoneNumber, User
from twostep.accounts.views import safe_next
from twostep.core.decorators import signed_in
from twostep.mfa import email_check, enforcement
from twostep.mfa.choice import method_label
from twostep.mfa.methods import SecurityPanel, register_panel

_ACTIONS = {"totp": "Set up an authenticator app", "email": "Set up email codes", "sms": "Set up SMS codes"}
_HINTS = {
    "totp": "An app on your phone such as Aegis, Google Authenticator or 1Password. Recommended.",
    "email": "A code sent to one of your email addresses each time you sign in.",
    "sms": "A code sent by text message to one of your phone numbers each time you sign in.",
}


def _options(user: User, methods: tuple[str, ...], *, email_check_first: bool) -> list[dict[str, Any]]:
    has_email = EmailAddress.objects.filter(user=user).exists()
    has_phone = PhoneNumber.objects.filter(user=user).exists()
    options = []
    for method in methods:
        missing = ""
        if method == "email" and not has_email:
            missing = "Your account has no email address: ask an administrator to add one."
        elif method == "sms" and not has_phone:
            missing = "Your account has no phone number: ask an administrator to add one."
        elif email_check_first and method in email_check.CHECKED_METHODS and not has_email:
            missing = "Your account has no email address to confirm it's you first: ask an administrator to add one."
        options.append(
            {
                "method": method,
                "label": method_label(method),
                "action": _ACTIONS.get(method, f"Set up {method_label(method)}"),
                "hint": _HINTS.get(method, ""),
                "url": enforcement.SETUP_URLS.get(method, "/account/security"),
                "missing": missing,
            }
        )
    return options


@signed_in
@require_GET
def enrol_view(request: HttpRequest) -> HttpResponse:
    """ "Set up two-step verification": the only page (with the set-up pages) a user who must enrol can reach."""
    user: User = request.user  # type: ignore[assignment]
    policy = enforcement.current_policy()
    state = enforcement.requirement(user, policy)
    later = safe_next(request, request.session.get(enforcement.AFTER_ENROL_KEY))
    if not state.required or state.enrolled:
        request.session.pop(enforcement.AFTER_ENROL_KEY, None)
        return redirect(later)
    email_check_first = email_check.is_enabled()
    options = _options(user, policy.methods, email_check_first=email_check_first)
    return render(
        request,
        "mfa/enforcement/enrol.html",
        {
            "state": state,
            "options": options,
            "none_possible": all(option["missing"] for option in options),
            "email_check_first": email_check_first
            and any(option["method"] in email_check.CHECKED_METHODS and not option["missing"] for option in options),
            "later": later,
            "days_left": enforcement.days_left(state.deadline),
            "nav_limited": state.must_enrol_now,
        },
    )


def reminder_context(request: HttpRequest, user: Any) -> dict[str, Any]:
    state = enforcement.grace_reminder(user)
    return {"grace": state, "days_left": enforcement.days_left(state.deadline) if state else None}


register_panel(SecurityPanel("enrolment_reminder", "mfa/enforcement/reminder_panel.html", reminder_context, order=0))
