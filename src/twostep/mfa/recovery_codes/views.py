"""Recovery-code pages: the Security page panels, new codes, and signing in with a code."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from twostep.accounts.models import User
from twostep.accounts.views import NEXT_KEY, PENDING_KEY, complete_sign_in, pending_sign_in, sign_in_expired
from twostep.audit.services import Origin
from twostep.core.decorators import fresh_password, recently_authenticated
from twostep.mfa import login as second_step
from twostep.mfa import step_up, throttle
from twostep.mfa.enforcement import AFTER_ENROL_KEY
from twostep.mfa.forms import WRONG_RECOVERY_CODE, recovery_code_problem
from twostep.mfa.methods import SecurityPanel, register_panel
from twostep.mfa.models import Authenticator
from twostep.mfa.recovery_codes import services
from twostep.mfa.step_up_views import fresh_second_factor, recently_proven
from twostep.mfa.views import just_confirmed_a_factor

SECURITY_URL = "/account/security"
#: Set on the request when the first set was just created, so the status panel does not repeat it.
_JUST_CREATED = "_twostep_recovery_codes_created"


def _shown(request: HttpRequest, user: User, codes: services.NewCodes) -> dict[str, Any]:
    """Context for showing a new set once: the codes, and the text file as a data: URL (nothing kept on the server)."""
    return {
        "new_codes": codes.formatted,
        "download_href": "data:text/plain;charset=utf-8," + quote(codes.as_text(user)),
        "download_name": f"{user.username}-recovery-codes.txt",
    }


def new_codes_panel(request: HttpRequest, user: Any) -> dict[str, Any]:
    """The top of the Security page right after the first factor: the new codes, shown once.

    Codes come with the first factor: if the user has a factor but never had
    codes, they are created here and shown this once, on the redirect after
    the set-up's code (``mfa.views.factor_confirmed``).  They need what new
    codes always need: a fresh password and, once a factor signs the user
    in, a code right in the last few minutes (the set-up's, or a step-up's);
    a stolen session and the password must not be enough.  Without them
    (e.g. the factor was added through the API long ago, or before recovery
    codes existed) nothing is created: the status panel offers to create
    them, through the same checks.
    """
    if not recently_authenticated(request):
        return {}
    proven = just_confirmed_a_factor(request) or recently_proven(request)
    if not proven and step_up.needed(user):
        return {}
    created = services.create_first_set(user, Origin.of(request))
    if created is None:
        return {}
    setattr(request, _JUST_CREATED, True)
    context = _shown(request, user, created)
    context["continue_to"] = request.session.pop(AFTER_ENROL_KEY, None)
    return context


def status_panel(request: HttpRequest, user: Any) -> dict[str, Any]:
    return {
        "recovery": services.status(user),
        "recovery_just_created": getattr(request, _JUST_CREATED, False),
        "has_factor": Authenticator.objects.filter(user=user, confirmed_at__isnull=False).exists(),
    }


register_panel(SecurityPanel("recovery_codes_new", "mfa/recovery_codes/new_panel.html", new_codes_panel, order=1))
register_panel(SecurityPanel("recovery_codes", "mfa/recovery_codes/panel.html", status_panel, order=40))


@fresh_password
@require_POST
@fresh_second_factor
def regenerate_view(request: HttpRequest) -> HttpResponse:
    """Create a new set (the old codes stop working) and show it once, in this response only."""
    user: User = request.user  # type: ignore[assignment]
    try:
        codes = services.regenerate(user, Origin.of(request))
    except ValueError:
        messages.error(request, "Set up a second step first: recovery codes stand in for it.")
        return redirect(SECURITY_URL)
    return render(request, "mfa/recovery_codes/new.html", _shown(request, user, codes))


@require_http_methods(["GET", "POST"])
def login_recovery_view(request: HttpRequest) -> HttpResponse:
    """The second step with a recovery code instead of the usual method (its form is on /login/verify)."""
    if request.method == "GET":
        # A reload after a refused code: back to the page that has the form.
        return redirect("/login/verify")
    token = request.session.get(PENDING_KEY)
    pending = pending_sign_in(request)
    if pending is None:
        return sign_in_expired(request)
    typed = request.POST.get("recovery_code", "")
    problem = recovery_code_problem(typed)
    if problem:
        return render(request, "mfa/recovery_codes/login.html", {"error": problem}, status=200)
    try:
        user, left = services.sign_in(pending, typed, Origin.of(request))
    except second_step.SecondStepError:
        if second_step.resolve(token) is None:
            request.session.pop(PENDING_KEY, None)
            messages.error(request, "That recovery code didn't work, and this sign-in has ended. Please sign in again.")
            return redirect("/login")
        # The rule for recovery codes under a lock is told only to a user whose second step is locked.
        locked = throttle.is_locked(User.objects.get(pk=pending.user_id))
        return render(
            request, "mfa/recovery_codes/login.html", {"error": WRONG_RECOVERY_CODE, "locked": locked}, status=200
        )
    request.session.pop(PENDING_KEY, None)
    # Someone who needed a recovery code should see what is left and fix their second step.
    request.session[NEXT_KEY] = SECURITY_URL
    response = complete_sign_in(request, user, second_factor=True)
    if left:
        messages.warning(
            request,
            f"You signed in with a recovery code; it cannot be used again. You have {left} left. "
            "If you lost your device, set up a new one now.",
        )
    else:
        messages.warning(
            request,
            "You signed in with your last recovery code. Create new codes now, and set up a new device if you lost yours.",
        )
    return response
