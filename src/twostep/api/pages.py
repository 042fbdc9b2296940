"""The /account/tokens page: personal access tokens for automation, created and revoked by their owner."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_http_methods, require_POST

from twostep.accounts.models import User
from twostep.api import tokens
from twostep.api.models import Scope
from twostep.audit.services import Origin
from twostep.core.decorators import fresh_password, recently_authenticated, signed_in
from twostep.mfa.step_up_views import fresh_second_factor

EXPIRY_CHOICES = [(7, "7 days"), (30, "30 days"), (90, "90 days"), (365, "1 year")]


class TokenForm(forms.Form):
    name = forms.CharField(max_length=tokens.MAX_NAME_LENGTH, help_text="What the token is for, e.g. “backup script”.")
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="Give the token only what it needs.",
        error_messages={"required": "Choose at least one scope."},
    )
    days = forms.TypedChoiceField(
        label="Expires after", choices=EXPIRY_CHOICES, coerce=int, initial=tokens.PERSONAL_DEFAULT_DAYS
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")  # labels sit above their fields, as on the other pages
        super().__init__(*args, **kwargs)
        if not user.is_admin:
            scopes = cast(forms.MultipleChoiceField, self.fields["scopes"])
            scopes.choices = [c for c in Scope.choices if c[0] != Scope.ADMIN]


def _page(request: HttpRequest, form: TokenForm, created: tokens.Issued | None = None) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    return render(
        request,
        "api/tokens.html",
        {
            "form": form,
            "created": created,
            "tokens": list(tokens.live_tokens(user)),
            "reauthenticated": recently_authenticated(request),
        },
    )


@signed_in
@require_http_methods(["GET", "POST"])
def tokens_view(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    if request.method == "GET":
        return _page(request, TokenForm(user=user))
    return _create(request)


# Creating a credential is a sensitive change, and a token signs in to the API
# without a second step: it needs the code as well as the password.
@fresh_password
@fresh_second_factor
def _create(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    form = TokenForm(request.POST, user=user)
    if form.is_valid():
        try:
            issued = tokens.create_personal_token(
                user,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                days=form.cleaned_data["days"],
                origin=Origin.of(request),
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            # Rendered, not redirected: the secret appears in this one response only.
            return _page(request, TokenForm(user=user), created=issued)
    return _page(request, form)


@signed_in
@require_POST
def revoke_view(request: HttpRequest, token_id: str) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    target = tokens.find_live(user, token_id)
    if target is not None:
        tokens.revoke(target, origin=Origin.of(request), actor=user)
        messages.success(request, f"Token “{target.name or target.public_id}” revoked.")
    else:
        messages.info(request, "That token had already been revoked, or has expired.")
    return redirect("/account/tokens")


#: Included under "account/" by twostep.urls.
urlpatterns = [
    path("tokens", tokens_view),
    path("tokens/<str:token_id>/revoke", revoke_view),
]
