"""Admin console page "Two-step policy": require 2FA (with a grace period), trusted browsers, and compliance."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from twostep.accounts.models import Role, User
from twostep.audit.services import Origin, Outcome, record
from twostep.core.decorators import admin_only
from twostep.core.runtime import SettingError, get_settings, set_setting
from twostep.core.search import search_term
from twostep.mfa import compliance, email_check, enforcement
from twostep.mfa.policy import forced_off_by_config
from twostep.mfa.trusted import services as trusted

PAGE_URL = "/admin/two-factor"
_KEYS = (
    enforcement.REQUIRED_KEY,
    enforcement.ROLES_KEY,
    enforcement.GRACE_UNTIL_KEY,
    enforcement.GRACE_SIGN_INS_KEY,
    email_check.KEY,
    trusted.ENABLED_KEY,
    trusted.DAYS_KEY,
)


class PolicyForm(forms.Form):
    required = forms.ChoiceField(
        label="Require two-factor authentication",
        choices=[
            (enforcement.NOBODY, "Nobody (users choose)"),
            (enforcement.EVERYONE, "Everyone"),
            (enforcement.ADMINS, "Administrators only"),
            (enforcement.ROLES, "Chosen roles"),
        ],
        widget=forms.RadioSelect,
    )
    roles = forms.MultipleChoiceField(
        label="Roles that must enrol", choices=Role.choices, required=False, widget=forms.CheckboxSelectMultiple
    )
    grace_until = forms.DateField(
        label="Grace period until (date)",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Users may put off enrolling until this date begins (00:00 UTC): the day before is their "
        "last day of grace. Leave empty for no date.",
    )
    grace_sign_ins = forms.IntegerField(
        label="Grace period in sign-ins",
        min_value=0,
        max_value=enforcement.MAX_GRACE_SIGN_INS,
        required=False,
        help_text="Users may sign in this many times without enrolling (0: none). "
        "With both a date and a number, the grace ends at whichever comes first; with neither, at once.",
    )
    email_check = forms.BooleanField(
        label="Before a first authenticator app or SMS number, confirm the user's email address with a code",
        required=False,
    )
    trusted_enabled = forms.BooleanField(label='Offer "Trust this browser" on the second step', required=False)
    trusted_days = forms.IntegerField(label="Trust a browser for (days)", min_value=1, max_value=trusted.MAX_DAYS)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("required") == enforcement.ROLES and not data.get("roles"):
            self.add_error("roles", "Choose at least one role, or pick another option.")
        problem = email_check.unavailable_reason() if data.get("email_check") else None
        if problem:
            self.add_error("email_check", problem)
        return data


def _initial() -> dict[str, Any]:
    values = get_settings(*_KEYS)
    return {
        "required": values[enforcement.REQUIRED_KEY],
        "roles": values[enforcement.ROLES_KEY],
        "grace_until": values[enforcement.GRACE_UNTIL_KEY] or None,
        "grace_sign_ins": values[enforcement.GRACE_SIGN_INS_KEY],
        "email_check": values[email_check.KEY],
        "trusted_enabled": values[trusted.ENABLED_KEY],
        "trusted_days": values[trusted.DAYS_KEY],
    }


def _save(form: PolicyForm, request: HttpRequest) -> None:
    data = form.cleaned_data
    day = data.get("grace_until")
    values = {
        enforcement.REQUIRED_KEY: data["required"],
        enforcement.ROLES_KEY: list(data.get("roles") or []) if data["required"] == enforcement.ROLES else [],
        enforcement.GRACE_UNTIL_KEY: day.isoformat() if day else "",
        enforcement.GRACE_SIGN_INS_KEY: int(data.get("grace_sign_ins") or 0),
        email_check.KEY: bool(data["email_check"]),
        trusted.ENABLED_KEY: bool(data["trusted_enabled"]),
        trusted.DAYS_KEY: int(data["trusted_days"]),
    }
    with email_check.sparing(request.user):  # type: ignore[arg-type]
        for key, value in values.items():
            set_setting(key, value)
    record("settings.two_factor_policy", Outcome.INFO, origin=Origin.of(request), actor=request.user, detail=values)


def _locks_out(form: PolicyForm, admin: User) -> bool:
    """Whether the policy in ``form`` would send ``admin`` to set up a second step at once (none, no grace)."""
    data = form.cleaned_data
    day = data.get("grace_until")
    return enforcement.sends_to_enrol(
        admin,
        mode=data["required"],
        roles=tuple(data.get("roles") or ()),
        grace_until=enforcement.grace_ends(day) if day else None,
        grace_sign_ins=int(data.get("grace_sign_ins") or 0),
    )


@admin_only
@require_http_methods(["GET", "POST"])
def two_factor_view(request: HttpRequest) -> HttpResponse:
    form = PolicyForm(request.POST if request.method == "POST" else None, initial=_initial())
    admin: User = request.user  # type: ignore[assignment]
    confirm_self = False
    if request.method == "POST" and form.is_valid():
        confirm_self = _locks_out(form, admin) and request.POST.get("confirm_self") != "yes"
        if not confirm_self:
            try:
                _save(form, request)
            except SettingError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, "Two-step policy saved.")
                return redirect(PAGE_URL)
    status = request.GET.get("status", "")
    if status not in compliance.STATUSES:
        status = ""
    # Printable text only: PostgreSQL refuses NUL bytes in a query.
    search = search_term(request.GET.get("q", ""))
    try:
        page_number = max(1, int(request.GET.get("page", "1")))
    except ValueError:
        page_number = 1
    page, policy = compliance.overview(status=status, search=search, page=page_number)
    # With the email check on, these users have no address to prove: they cannot enrol.
    stranded = compliance.cannot_prove_an_address(policy) if email_check.is_enabled() else (0, [])
    return render(
        request,
        "mfa/enforcement/admin.html",
        {
            "form": form,
            "policy": policy,
            "summary": compliance.summary(policy),
            "page": page,
            "status": status,
            "statuses": compliance.STATUSES,
            "search": search,
            "forced_off": forced_off_by_config(),
            "self_enrolled": enforcement.requirement(admin, policy).enrolled,
            "confirm_self": confirm_self,
            "stranded_count": stranded[0],
            "stranded": stranded[1],
        },
    )
