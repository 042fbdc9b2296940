"""The admin console: users, their addresses and phones, and the 2FA settings."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from twostep.accounts import services
from twostep.accounts.models import EmailAddress, PhoneNumber, User
from twostep.audit.query import EventFilter, events
from twostep.audit.services import Origin, Outcome, record
from twostep.console.forms import (
    AddEmailForm,
    AddPhoneForm,
    CreateUserForm,
    DeleteUserForm,
    EditUserForm,
    ResetPasswordForm,
    TwoFactorSettingsForm,
)
from twostep.core import clock
from twostep.core.clockcheck import database_offset, offset_warning
from twostep.core.decorators import admin_only
from twostep.core.runtime import SettingError, get_settings, set_setting
from twostep.core.search import search_term
from twostep.core.wording import plural
from twostep.mfa import email_check, enforcement
from twostep.mfa import services as mfa_services
from twostep.mfa.models import Authenticator, Method
from twostep.mfa.policy import SWITCH_KEYS, forced_off_by_config, methods_warning
from twostep.mfa.recovery_codes.services import remaining as remaining_recovery_codes
from twostep.mfa.trusted import services as trusted_browsers


def _actor(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _show_errors(request: HttpRequest, exc: ValidationError) -> None:
    for message in exc.messages:
        messages.error(request, message)


@admin_only
def users_view(request: HttpRequest) -> HttpResponse:
    query = search_term(request.GET.get("q", ""))
    users = User.objects.annotate(
        factor_count=Count("authenticators", filter=Q(authenticators__confirmed_at__isnull=False))
    ).order_by("username")
    if query:
        users = users.filter(Q(username__icontains=query) | Q(display_name__icontains=query))
    page = Paginator(users, 50).get_page(request.GET.get("page"))
    return render(request, "console/users.html", {"page": page, "query": query})


@admin_only
@require_http_methods(["GET", "POST"])
def create_user_view(request: HttpRequest) -> HttpResponse:
    form = CreateUserForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user = services.create_user(
                data["username"],
                password=data["password"],
                display_name=data["display_name"],
                role=data["role"],
                emails=data["emails"],
                phones=data["phones"],
                must_change_password=True,
                origin=Origin.of(request),
                actor=_actor(request),
            )
        except ValidationError as exc:
            form.add_error("username" if exc.code == "username_taken" else None, exc)
        else:
            messages.success(request, f"User {user.username} created.")
            contacts: list[EmailAddress | PhoneNumber] = [*user.email_addresses.all(), *user.phone_numbers.all()]
            for contact in contacts:
                _warn_if_shared(request, user, contact)
            return redirect(f"/admin/users/{user.username}")
    return render(request, "console/user_new.html", {"form": form})


def _done(request: HttpRequest, message: str, url: str) -> HttpResponse:
    """Say ``message`` on ``url`` after a change; on the sign-in page when it ended the admin's own session.

    Resetting one's own password or second factor ends every session of the
    account, this one included: the response must not save into it.
    """
    key = request.session.session_key
    if key is not None and not request.session.exists(key):
        request.session.flush()
        messages.success(request, f"{message} That ended your own session too: sign in again.")
        return redirect("/login")
    messages.success(request, message)
    return redirect(url)


def _user_or_404(username: str) -> User:
    return get_object_or_404(User, username=username.lower())


@admin_only
@require_http_methods(["GET", "POST"])
def user_view(request: HttpRequest, username: str) -> HttpResponse:
    user = _user_or_404(username)
    form = _edit_form(user, request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            services.update_user(user, **form.edited(), origin=Origin.of(request), actor=_actor(request))
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Saved.")
            return redirect(f"/admin/users/{user.username}")
    return _user_page(request, user, form=form)


def _edit_form(user: User, data: Any = None) -> EditUserForm:
    return EditUserForm(
        data, initial={"display_name": user.display_name, "role": user.role, "is_active": user.is_active}
    )


def _user_page(request: HttpRequest, user: User, status: int = 200, **forms: Form) -> HttpResponse:
    """A user's console page; ``forms`` replaces blank ones (e.g. a refused entry, kept with its error)."""
    factors = Authenticator.objects.filter(user=user, confirmed_at__isnull=False).order_by("method")
    blank = {
        "form": _edit_form(user),
        "email_form": AddEmailForm(),
        "phone_form": AddPhoneForm(),
        "password_form": ResetPasswordForm(),
        "delete_form": DeleteUserForm(user.username),
    }
    return render(
        request,
        "console/user.html",
        {
            "subject": user,
            "emails": user.email_addresses.all(),
            "phones": user.phone_numbers.all(),
            "factors": factors,
            "code_destinations": {f.destination.lower() for f in factors if f.destination},
            "trusted": trusted_browsers.list_trusted(user),
            **blank,
            **forms,
        },
        status=status,
    )


@admin_only
@require_POST
def user_password_view(request: HttpRequest, username: str) -> HttpResponse:
    user = _user_or_404(username)
    form = ResetPasswordForm(request.POST)
    if form.is_valid():
        try:
            services.set_password(
                user, form.cleaned_data["password"], must_change=True, origin=Origin.of(request), actor=_actor(request)
            )
        except ValidationError as exc:
            form.add_error("password", exc)
        else:
            return _done(
                request, f"Password of {user.username} reset; their sessions ended.", f"/admin/users/{user.username}"
            )
    # The page again, the refusal on the field itself (focused), not in a banner at the top.
    return _user_page(request, user, status=400, password_form=form)


@admin_only
@require_POST
def user_delete_view(request: HttpRequest, username: str) -> HttpResponse:
    user = _user_or_404(username)
    form = DeleteUserForm(user.username, request.POST)
    if form.is_valid():
        try:
            services.delete_user(user, origin=Origin.of(request), actor=_actor(request))
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"User {user.username} deleted.")
            return redirect("/admin/users")
    # The page again, the refusal on the form itself (focused), not in a banner at the top.
    return _user_page(request, user, status=400, delete_form=form)


@admin_only
@require_POST
def user_reset_2fa_view(request: HttpRequest, username: str) -> HttpResponse:
    """Remove all of a user's second factors, after a page that names them and what else goes (``confirm=yes``)."""
    user = _user_or_404(username)
    if request.POST.get("confirm") != "yes":
        factors = Authenticator.objects.filter(user=user, confirmed_at__isnull=False).order_by("method")
        if not factors:
            messages.info(request, f"{user.username} has no second factor: there is nothing to reset.")
            return redirect(f"/admin/users/{user.username}")
        context = {
            "subject": user,
            "factors": factors,
            "recovery_codes": remaining_recovery_codes(user.pk),
            "trusted": len(trusted_browsers.list_trusted(user)),
        }
        return render(request, "console/confirm_reset_2fa.html", context)
    removed = mfa_services.reset_two_factor(user, origin=Origin.of(request), actor=_actor(request))
    return _done(
        request,
        f"Two-factor authentication of {user.username} reset: {plural(removed, 'method')} removed and "
        "every session ended. They can sign in with their password and set up a method again.",
        f"/admin/users/{user.username}",
    )


@admin_only
@require_POST
def user_unlock_view(request: HttpRequest, username: str) -> HttpResponse:
    user = _user_or_404(username)
    mfa_services.unlock_second_step(user, origin=Origin.of(request), actor=_actor(request))
    messages.success(
        request,
        f"Second step of {user.username} unlocked. Sign-ins that were waiting for a code have ended: "
        f"{user.username} signs in again.",
    )
    return redirect(f"/admin/users/{user.username}")


@admin_only
@require_POST
def user_trusted_browsers_view(request: HttpRequest, username: str) -> HttpResponse:
    """Stop trusting one of the user's browsers (a lost or shared computer), or all of them."""
    user = _user_or_404(username)
    origin, actor = Origin.of(request), _actor(request)
    if request.POST.get("action") == "revoke_all":
        count = trusted_browsers.revoke_all(user, origin=origin, actor=actor, reason="admin")
        messages.success(request, f"{count} browser(s) of {user.username} no longer skip the second step.")
    else:
        try:
            handle = int(request.POST.get("id", ""))
        except ValueError:
            handle = 0
        if trusted_browsers.revoke(user, handle, origin=origin, actor=actor):
            messages.success(request, f"That browser of {user.username} must pass the second step again.")
        else:
            messages.error(request, "That browser is not trusted (any more).")
    return redirect(f"/admin/users/{user.username}#trusted")


@dataclass(frozen=True)
class _Contacts:
    """What differs between a user's email addresses and phone numbers on their console page."""

    form: type[AddEmailForm | AddPhoneForm]
    field: str
    add: Callable[..., Any]
    remove: Callable[..., Any]
    make_primary: Callable[..., Any]
    updated: str
    anchor: str
    #: The second-step method whose codes go to one of these, and its name.
    method: str
    method_name: str
    #: The user's entry with this id as its text, or None.
    text_of: Callable[[User, int], str | None]


_EMAILS = _Contacts(
    AddEmailForm,
    "email",
    services.add_email,
    services.remove_email,
    services.make_primary_email,
    "Email addresses updated.",
    "emails",
    Method.EMAIL,
    "email codes",
    lambda user, pk: user.email_addresses.filter(pk=pk).values_list("email", flat=True).first(),
)
_PHONES = _Contacts(
    AddPhoneForm,
    "phone",
    services.add_phone,
    services.remove_phone,
    services.make_primary_phone,
    "Phone numbers updated.",
    "phones",
    Method.SMS,
    "SMS codes",
    lambda user, pk: user.phone_numbers.filter(pk=pk).values_list("number", flat=True).first(),
)


def _codes_go_to(user: User, contacts: _Contacts, pk: int) -> str | None:
    """The entry ``pk`` when the user's confirmed factor sends its codes there, else None."""
    text = contacts.text_of(user, pk)
    return text if text and mfa_services.sends_codes_to(user, contacts.method, text) else None


def _change_contacts(request: HttpRequest, username: str, contacts: _Contacts) -> HttpResponse:
    """Add, remove or make primary one of the user's addresses or numbers."""
    user = _user_or_404(username)
    action = request.POST.get("action", "add")
    origin, actor = Origin.of(request), _actor(request)
    try:
        if action == "add":
            form = contacts.form(request.POST)
            try:
                if form.is_valid():
                    added = contacts.add(
                        user,
                        form.cleaned_data[contacts.field],
                        primary=form.cleaned_data["primary"],
                        origin=origin,
                        actor=actor,
                    )
                    _warn_if_shared(request, user, added)
            except ValidationError as exc:
                form.add_error(contacts.field, exc)
            if form.errors:
                # The page again, with what was typed and what is wrong with it.
                return _user_page(request, user, status=400, **{f"{contacts.field}_form": form})
        elif action == "remove":
            pk = int(request.POST.get("id", "0"))
            in_use = _codes_go_to(user, contacts, pk)
            if in_use and request.POST.get("confirm") != "yes":
                # The user's codes go there: removing it stops that method for them.
                context = {"subject": user, "value": in_use, "method_name": contacts.method_name, "id": pk}
                return render(request, "console/confirm_remove.html", {**context, "action": request.path})
            contacts.remove(user, pk, origin=origin, actor=actor)
        elif action == "primary":
            contacts.make_primary(user, int(request.POST.get("id", "0")), origin=origin, actor=actor)
        else:
            raise ValidationError("Unknown action.")
    except (ValidationError, ValueError) as exc:
        _show_errors(request, exc if isinstance(exc, ValidationError) else ValidationError("Invalid request."))
    else:
        messages.success(request, contacts.updated)
    return redirect(f"/admin/users/{user.username}#{contacts.anchor}")


def _warn_if_shared(request: HttpRequest, user: User, added: EmailAddress | PhoneNumber) -> None:
    others = services.also_on(added)
    if others:
        value = added.email if isinstance(added, EmailAddress) else added.number
        messages.warning(
            request,
            f"{value} is also on the account of {', '.join(others)}. Codes sent there reach whoever reads it: "
            f"make sure it is {user.username}'s.",
        )


@admin_only
@require_POST
def user_emails_view(request: HttpRequest, username: str) -> HttpResponse:
    return _change_contacts(request, username, _EMAILS)


@admin_only
@require_POST
def user_phones_view(request: HttpRequest, username: str) -> HttpResponse:
    return _change_contacts(request, username, _PHONES)


@admin_only
@require_http_methods(["GET", "POST"])
def authentication_view(request: HttpRequest) -> HttpResponse:
    current = get_settings(*SWITCH_KEYS)
    form = TwoFactorSettingsForm(
        request.POST if request.method == "POST" else None,
        initial={"enabled": current["two_factor.enabled"], "methods": current["two_factor.methods"]},
    )
    affected = None
    confirm_self = False
    if request.method == "POST" and form.is_valid():
        enabled, methods = form.cleaned_data["enabled"], list(form.cleaned_data["methods"])
        affected = mfa_services.affected_by(enabled, methods)
        admin: User = request.user  # type: ignore[assignment]
        confirm_self = request.POST.get("confirm_self") != "yes" and enforcement.sends_to_enrol(
            admin, active=enabled and not forced_off_by_config(), methods=tuple(methods)
        )
        if (affected and form.cleaned_data["confirm"] != affected) or confirm_self:
            # Show who loses protection (or that the administrator must enrol at once) before anything changes.
            form = TwoFactorSettingsForm(initial={"enabled": enabled, "methods": methods})
        else:
            try:
                with email_check.sparing(_actor(request)):
                    set_setting("two_factor.enabled", enabled)
                    set_setting("two_factor.methods", methods)
            except SettingError as exc:
                form.add_error(None, str(exc))
            else:
                record(
                    "settings.two_factor",
                    Outcome.INFO,
                    origin=Origin.of(request),
                    actor=_actor(request),
                    detail={"enabled": enabled, "methods": methods, "affected_users": affected},
                )
                messages.success(request, "Authentication settings saved.")
                return redirect("/admin/authentication")
    enrolled = Authenticator.objects.filter(confirmed_at__isnull=False).values("method").annotate(users=Count("user"))
    offset = database_offset()
    return render(
        request,
        "console/authentication.html",
        {
            "form": form,
            "affected": affected,
            # The change would send this administrator to set up a second step at once: asked first.
            "confirm_self": confirm_self,
            # Whether those users then prove an email address before setting up a new method.
            "enrolment_email_check": email_check.is_enabled(),
            "forced_off": forced_off_by_config(),
            "server_time": clock.now(),
            # Several instances: this one's clock against the database server's (PostgreSQL only).
            "clock_offset": offset,
            "clock_warning": offset_warning(offset),
            "enrolled": {row["method"]: row["users"] for row in enrolled},
            # For the methods as shown: saved, or chosen but not yet saved.
            "methods_warning": methods_warning(list(form["methods"].value() or [])),
        },
    )


def _parse_date(text: str, *, end_of_day: bool = False) -> datetime | None:
    try:
        day = datetime.strptime(text.strip(), "%Y-%m-%d").replace(tzinfo=UTC)
        return day + timedelta(days=1) if end_of_day else day
    except (ValueError, OverflowError):  # not a date; or the last day there is: no end to it
        return None


@admin_only
def audit_view(request: HttpRequest) -> HttpResponse:
    """The auth log, filtered by user, outcome, kind, IP and dates, 50 events a page."""
    params = request.GET
    criteria = EventFilter(
        username=search_term(params.get("user", "")),
        outcome=params.get("outcome", "") if params.get("outcome") in {"success", "failure", "info"} else "",
        kind=search_term(params.get("kind", "")),
        ip=params.get("ip", "") if _is_ip(params.get("ip", "")) else "",
        since=_parse_date(params.get("since", "")),
        until=_parse_date(params.get("until", ""), end_of_day=True),
    )
    page = Paginator(events(criteria), 50).get_page(params.get("page"))
    query = params.copy()
    query.pop("page", None)
    return render(
        request,
        "console/audit.html",
        {
            "page": page,
            "filters": {key: params.get(key, "") for key in ("user", "outcome", "kind", "ip", "since", "until")},
            "query": query.urlencode(),
            "retention_days": settings.CONFIG.audit.retention_days,
        },
    )


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip())
    except ValueError:
        return False
    return True
