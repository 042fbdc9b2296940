"""The console's SMS page: provider and its settings, limits, "Send test SMS"."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from twostep.accounts.reauth import seal_fields_matching
from twostep.audit.services import Origin
from twostep.core.decorators import admin_only
from twostep.core.runtime import get_setting
from twostep.sms import registry, service
from twostep.sms.base import ConfigurationError, Option
from twostep.sms.service import NotSent

PAGE = "/admin/sms"

# Providers name their options freely (a webhook's "authorization", a key of any
# name): each option is carried sealed through the password and code prompts.
seal_fields_matching(r"^opt_")


def _stored_hint(value: str) -> str:
    # Enough to recognise which secret is stored, never enough to use it.
    return f"stored, ending in …{value[-4:]}" if len(value) >= 16 else "stored"


def _fields(
    options: tuple[Option, ...], current: dict[str, str], secrets: dict[str, str], errors: dict[str, str]
) -> list[dict[str, Any]]:
    fields = []
    for option in options:
        fields.append(
            {
                "option": option,
                "id": f"opt_{option.name}",
                "value": "" if option.secret else current.get(option.name, option.default),
                "stored": _stored_hint(secrets[option.name]) if option.secret and secrets.get(option.name) else "",
                "error": errors.get(option.name, ""),
            }
        )
    return fields


@admin_only
@require_http_methods(["GET", "POST"])
def sms_admin_view(request: HttpRequest) -> HttpResponse:
    origin, actor = Origin.of(request), request.user
    try:
        stored = service.read_configuration()
    except ConfigurationError as exc:
        messages.error(request, str(exc))
        stored = service.Configuration("", {}, {}, "")
    chosen = request.POST.get("provider") or request.GET.get("provider") or stored.provider
    providers = registry.available()
    if chosen and chosen not in providers:
        messages.error(request, f"Unknown SMS provider {chosen!r}.")
        chosen = ""
    errors: dict[str, str] = {}
    values: dict[str, str] = dict(stored.options) if chosen == stored.provider else {}
    sender = stored.sender
    test_number = ""
    limit_errors: dict[str, str] = {}
    test_errors: dict[str, str] = {}
    action = request.POST.get("action", "") if request.method == "POST" else ""

    if action == "save" and chosen:
        options = providers[chosen].options
        values = {option.name: request.POST.get(f"opt_{option.name}", "") for option in options}
        clear = frozenset(
            option.name for option in options if option.secret and request.POST.get(f"clear_{option.name}")
        )
        sender = request.POST.get("sender", "")
        try:
            service.save_configuration(chosen, values, sender, origin=origin, actor=actor, clear=clear)
        except ConfigurationError as exc:
            errors[exc.setting] = str(exc)
        else:
            messages.success(request, f"SMS provider saved: {providers[chosen].label}.")
            return redirect(PAGE)
    elif action == "remove":
        try:
            service.clear_configuration(origin=origin, actor=actor)
        except ConfigurationError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, "SMS provider removed.")
        return redirect(PAGE)
    elif action == "limits":
        try:
            service.save_limits(
                request.POST.get("daily_limit", ""), request.POST.get("countries", ""), origin=origin, actor=actor
            )
        except service.LimitsError as exc:
            limit_errors.update(exc.errors)
        else:
            messages.success(request, "SMS limits saved.")
            return redirect(PAGE)
    elif action == "test":
        test_number = request.POST.get("number", "").strip()
        try:
            if not test_number:
                raise ValueError("Enter the phone number to send the test SMS to, like +15551234567.")
            receipt = service.send_test(test_number, origin=origin, actor=actor)
        except ValueError as exc:
            test_errors["number"] = str(exc)
        except NotSent as exc:
            test_errors["number"] = service.explain_test_refusal(exc)
        else:
            suffix = f" (message id {receipt.message_id})" if receipt.message_id else ""
            messages.success(request, f"Test SMS handed to {receipt.provider} for {service.mask(test_number)}{suffix}.")
            # To the top, where the message is (a redirect without a fragment keeps the form's).
            return redirect(f"{PAGE}#main")

    provider_cls = providers.get(chosen)
    daily_limit, countries = service.limits()
    # The refused field takes the focus, so that its error is read out with it.
    in_error = [f"opt_{name}" for name in errors if name not in {"provider", "sender"}]
    in_error += ["sender"] if "sender" in errors else []
    in_error += [name for name in ("daily_limit", "countries") if name in limit_errors]
    in_error += ["test-number"] if test_errors else []
    context = {
        "status": service.status(),
        # Plain data: templates would call (instantiate) provider classes.
        "providers": [{"name": name, "label": cls.label} for name, cls in sorted(providers.items())],
        "broken": registry.discover().broken,
        "chosen": chosen,
        "chosen_label": provider_cls.label if provider_cls else "",
        "fields": _fields(provider_cls.options, values, stored.secrets if chosen == stored.provider else {}, errors)
        if provider_cls
        else [],
        "sender": sender,
        "errors": errors,
        "provider_error": errors.get("provider", ""),
        "sender_error": errors.get("sender", ""),
        "daily_limit": request.POST.get("daily_limit", daily_limit) if action == "limits" else daily_limit,
        "countries": request.POST.get("countries", "") if action == "limits" else ", ".join(countries),
        "limit_errors": limit_errors,
        "test_number": test_number,
        "test_error": test_errors.get("number", ""),
        "sent_today": service.sent_in_window(),
        "sms_allowed": "sms" in get_setting("two_factor.methods"),
        "focus": in_error[0] if in_error else "",
    }
    return render(request, "mfa/sms/admin.html", context)
