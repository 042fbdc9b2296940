"""The console's Outgoing mail page (/admin/email): SMTP settings and "Send test email"."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from twostep.accounts.models import User
from twostep.audit.models import AuthEvent
from twostep.audit.services import Origin, Outcome, record
from twostep.core.decorators import admin_only
from twostep.core.runtime import SettingError, get_settings
from twostep.mail import config
from twostep.mail.base import MailDeliveryError
from twostep.mail.forms import SmtpSettingsForm, TestEmailForm
from twostep.mail.service import send_test_email
from twostep.mail.smtp import resolve_ca_file, unencrypted_to_another_machine

#: Auth-log kinds whose failures are mail deliveries.
DELIVERY_KINDS = ("login.code_sent", "email.code_sent", "email_check.code_sent", "email.test", "notification.abandoned")


def _initial() -> dict[str, Any]:
    values = get_settings(*config.KEYS)
    return {
        "host": values[config.HOST],
        "port": values[config.PORT],
        "security": values[config.SECURITY],
        "username": values[config.USERNAME],
        "from_address": values[config.FROM_ADDRESS],
    }


def _save(request: HttpRequest, form: SmtpSettingsForm) -> bool:
    data = form.cleaned_data
    if data["password"] and unencrypted_to_another_machine(data["host"], data["security"]):
        # Every send would be refused (smtp.SmtpMailer): say it now, not at the first code.
        form.add_error(
            "security",
            "twostep never sends a password to another machine without encryption: choose STARTTLS or TLS, "
            "or leave the password out if the server needs none.",
        )
        return False
    if not data["password"] and not data["clear_password"]:
        # A new server (or security) with the old password left behind: the
        # password is not sent there, so sign-in codes would stop; ask now.
        elsewhere = config.password_elsewhere(data["host"], data["port"], data["security"], data["username"])
        if elsewhere:
            form.add_error("password", elsewhere)
            return False
    try:
        config.save(
            host=data["host"],
            port=data["port"],
            security=data["security"],
            username=data["username"],
            from_address=data["from_address"],
        )
        if data["password"]:
            config.set_password(data["password"])
            stored_change = "changed"
        elif data["clear_password"]:
            stored_change = "removed" if config.clear_password() else "unchanged"
        else:
            stored_change = "unchanged"
    except SettingError as exc:
        form.add_error(None, str(exc))
        return False
    record(
        "settings.email",
        Outcome.INFO,
        origin=Origin.of(request),
        actor=request.user,
        detail={
            "host": data["host"],
            "port": data["port"],
            "security": data["security"],
            "username": data["username"],
            "from_address": data["from_address"],
            "password": stored_change,
        },
    )
    return True


@admin_only
@require_http_methods(["GET", "POST"])
def email_settings_view(request: HttpRequest) -> HttpResponse:
    admin: User = request.user  # type: ignore[assignment]
    action = request.POST.get("action", "")
    form = SmtpSettingsForm(request.POST if action == "save" else None, initial=_initial())
    test_form = TestEmailForm(request.POST if action == "test" else None, initial={"to": admin.primary_email() or ""})
    test_result: dict[str, str] | None = None
    status = 200
    if action == "save":
        if form.is_valid() and _save(request, form):
            messages.success(request, "Outgoing mail settings saved. Send a test email to check them.")
            return redirect("/admin/email")
        status = 400
    elif action == "test" and test_form.is_valid():
        to = test_form.cleaned_data["to"]
        try:
            send_test_email(to, origin=Origin.of(request), actor=admin)
        except ValidationError as exc:
            test_form.add_error("to", exc)
            status = 400
        except MailDeliveryError as exc:
            # A 200: the page worked; the message says the mail server did not.
            test_result = {"ok": "", "message": str(exc), "smtp_error": exc.smtp_error}
        else:
            test_result = {"ok": "yes", "message": f"The test email was sent to {to}. Check that it arrived."}
    elif action == "test":
        status = 400
    file = settings.CONFIG.email
    failures = AuthEvent.objects.filter(kind__in=DELIVERY_KINDS, reason="delivery_failed").order_by("-created_at")[:5]
    values = get_settings(*config.KEYS)
    return render(
        request,
        "console/email.html",
        {
            "form": form,
            "test_form": test_form,
            "test_result": test_result,
            "password_source": config.password_source(),
            "password_elsewhere": config.current_password_elsewhere(),
            "effective_from": values[config.FROM_ADDRESS] or config.default_from_address(),
            "configured": bool(values[config.HOST]),
            "file": file,
            "ca_file": resolve_ca_file(file.ca_file, settings.DATA_DIR),
            "plaintext_remote": unencrypted_to_another_machine(values[config.HOST], values[config.SECURITY]),
            "failures": failures,
        },
        status=status,
    )
