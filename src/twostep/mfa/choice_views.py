"""Pages for choosing among several methods: the Security page's list, and "Use another method" at sign-in."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from twostep.accounts.models import User
from twostep.accounts.views import pending_sign_in, sign_in_expired
from twostep.audit.services import Origin
from twostep.core.decorators import signed_in
from twostep.mfa import choice
from twostep.mfa import login as second_step
from twostep.mfa.methods import SecurityPanel, register_panel
from twostep.mfa.models import Authenticator, PendingLogin
from twostep.mfa.trusted import services as trusted

PANEL_URL = "/account/security#methods"


def panel_context(request: HttpRequest, user: Any) -> dict[str, Any]:
    factors = list(Authenticator.objects.filter(user=user, confirmed_at__isnull=False).order_by("confirmed_at"))
    ordered = choice.order(factors, user.pk) if len(factors) > 1 else factors
    default = ordered[0].method if ordered else None
    return {
        "methods": [
            {
                "method": f.method,
                "label": choice.describe(f),
                "kind": choice.method_label(f.method),
                "name": f.name,
                "is_default": f.method == default,
                "last_used_at": f.last_used_at,
            }
            for f in factors
        ]
    }


register_panel(SecurityPanel("methods", "mfa/choice/panel.html", panel_context, order=5))


@signed_in
@require_POST
def set_default_view(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    try:
        factor = choice.set_default(user, request.POST.get("method", ""), Origin.of(request))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{choice.describe(factor, masked=False)} is now asked for first when you sign in.")
    return redirect(PANEL_URL)


@signed_in
@require_POST
def rename_view(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    try:
        factor = choice.rename(user, request.POST.get("method", ""), request.POST.get("name", ""), Origin.of(request))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Renamed to {choice.describe(factor, masked=False)}.")
    return redirect(PANEL_URL)


@require_POST
def switch_view(request: HttpRequest) -> HttpResponse:
    """ "Use another method" on the second-step page: ask for the chosen method instead."""
    pending = pending_sign_in(request)
    if pending is None:
        return sign_in_expired(request)
    try:
        choice.switch(pending, request.POST.get("method", ""), Origin.of(request))
    except second_step.SecondStepError as exc:
        if exc.reason == "expired_login":
            return sign_in_expired(request)
        messages.error(request, "That method is not available for your account.")
    return redirect("/login/verify")


def verify_page_context(pending: PendingLogin) -> dict[str, Any]:
    """What the second-step page shows besides the code field: other methods, recovery, trust."""
    policy = trusted.policy()
    return {
        "alternatives": choice.alternatives(pending),
        "trust_offered": policy.enabled,
        "trust_days": policy.days,
    }
