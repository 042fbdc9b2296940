"""Trusted-browser pages: the Security page panel and revoking trust."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from twostep.accounts.models import User
from twostep.audit.services import Origin
from twostep.core.decorators import signed_in
from twostep.core.wording import plural
from twostep.mfa.methods import SecurityPanel, register_panel
from twostep.mfa.trusted import services

PANEL_URL = "/account/security#trusted-browsers"


def panel_context(request: HttpRequest, user: Any) -> dict[str, Any]:
    return {"trusted": services.list_trusted(user, request), "trust_policy": services.policy()}


register_panel(SecurityPanel("trusted_browsers", "mfa/trusted/panel.html", panel_context, order=45))


@signed_in
@require_POST
def revoke_view(request: HttpRequest) -> HttpResponse:
    """Stop trusting one browser (any of the user's, this one included)."""
    user: User = request.user  # type: ignore[assignment]
    try:
        handle = int(request.POST.get("browser", ""))
    except ValueError:
        handle = 0
    if services.revoke(user, handle, origin=Origin.of(request)):
        messages.success(request, "That browser will ask for your second step again.")
    else:
        messages.error(request, "That browser was not trusted any more.")
    return redirect(PANEL_URL)


@signed_in
@require_POST
def revoke_all_view(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    count = services.revoke_all(user, origin=Origin.of(request), actor=user, reason="user")
    messages.success(
        request,
        f"{plural(count, 'browser')} will ask for your second step again." if count else "No browser was trusted.",
    )
    return redirect(PANEL_URL)
