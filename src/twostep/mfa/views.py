"""The second-step page and the user's Security page."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from twostep.accounts.models import User
from twostep.accounts.views import PENDING_KEY, complete_sign_in, pending_sign_in, sign_in_expired
from twostep.audit.services import Origin
from twostep.core import clock
from twostep.core.decorators import recently_authenticated, signed_in, stamped_recently
from twostep.mfa import enforcement
from twostep.mfa import login as second_step
from twostep.mfa.choice_views import verify_page_context
from twostep.mfa.forms import CodeForm
from twostep.mfa.methods import SECRET_UNREADABLE, handler_for, panels, verify_context
from twostep.mfa.models import Authenticator, PendingLogin
from twostep.mfa.policy import forced_off_by_config, two_factor_state
from twostep.mfa.trusted import services as trusted_browsers
from twostep.usersessions.services import list_sessions

#: A view of the second-step page's own actions: (request, pending sign-in, its factor).
FactorView = Callable[[HttpRequest, PendingLogin, Authenticator], HttpResponse]


def for_pending_factor(method: str) -> Callable[[FactorView], Callable[[HttpRequest], HttpResponse]]:
    """Decorate a second-step action (e.g. "Send a new code") of ``method`` with what it works on.

    The view gets the browser's live pending sign-in and its factor.  An
    expired sign-in goes back to the sign-in form; a pending sign-in of
    another method (or whose factor is gone) goes back to the second step.
    """

    def decorate(view: FactorView) -> Callable[[HttpRequest], HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest) -> HttpResponse:
            pending = pending_sign_in(request)
            if pending is None:
                return sign_in_expired(request)
            authenticator = second_step.authenticator_for(pending)
            if authenticator is None or authenticator.method != method:
                return redirect("/login/verify")
            return view(request, pending, authenticator)

        return wrapper

    return decorate


#: When a set-up's code was last right in this session (``factor_confirmed``).
FACTOR_CONFIRMED_KEY = "twostep_factor_confirmed"


def factor_confirmed(request: HttpRequest) -> None:
    """After a set-up's code was right: a new session id (a raised privilege, as at sign-in), and a
    note that lets the page this leads to create the first recovery codes (``just_confirmed_a_factor``)."""
    request.session[FACTOR_CONFIRMED_KEY] = clock.timestamp()
    request.session.cycle_key()


def just_confirmed_a_factor(request: HttpRequest) -> bool:
    """True once after ``factor_confirmed`` in this session, within ``security.reauth_max_age`` seconds.

    The set-up's code proves the new factor, as a step-up's code proves one;
    unlike a step-up, it allows nothing else (removing a factor still asks
    for a code).
    """
    confirmed = stamped_recently(request, FACTOR_CONFIRMED_KEY)
    request.session.pop(FACTOR_CONFIRMED_KEY, None)
    return confirmed


def what_is_left(user: User) -> str:
    """After a method was turned off: what signing in asks now, in one sentence (for the page's message)."""
    if Authenticator.objects.filter(user=user, confirmed_at__isnull=False).exists():
        return "Your other methods still sign you in."
    if enforcement.current_policy().applies_to(user):
        return "Your administrator requires a second step: set up another method to go on using your account."
    return "Sign-in now needs only your password."


def confirm_if_last(
    method: str, name: str
) -> Callable[[Callable[[HttpRequest], HttpResponse]], Callable[[HttpRequest], HttpResponse]]:
    """Turning off the account's last second-step method first asks, saying what it leaves.

    One click next to "Change address" would otherwise leave the account
    with its password alone and delete its recovery codes.  The page posts
    back with ``confirm=yes``.
    """

    def decorate(view: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest) -> HttpResponse:
            from twostep.mfa.recovery_codes.services import remaining

            user: User = request.user  # type: ignore[assignment]
            confirmed = Authenticator.objects.filter(user=user, confirmed_at__isnull=False)
            is_last = confirmed.filter(method=method).exists() and not confirmed.exclude(method=method).exists()
            if is_last and request.POST.get("confirm") != "yes":
                context = {
                    "name": name,
                    "action": request.path,
                    "recovery_codes": remaining(user.pk),
                    "required": enforcement.current_policy().applies_to(user),
                }
                return render(request, "mfa/confirm_turn_off.html", context)
            return view(request)

        return wrapper

    return decorate


@require_http_methods(["GET", "POST"])
def verify_view(request: HttpRequest) -> HttpResponse:
    token = request.session.get(PENDING_KEY)
    pending = pending_sign_in(request)
    if pending is None:
        return sign_in_expired(request)
    authenticator = second_step.authenticator_for(pending)
    if authenticator is None:
        # Other methods and recovery codes may still work (verify_page_context).
        return render(request, "mfa/verify_unavailable.html", verify_page_context(pending), status=409)
    handler = handler_for(pending.method)
    form = CodeForm(request.POST if request.method == "POST" else None)
    error: str | None = None
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            response = second_step.verify(
                pending,
                form.cleaned_data["code"],
                Origin.of(request),
                then=lambda user: complete_sign_in(request, user, second_factor=True),
            )
        except second_step.SecondStepError as exc:
            error = second_step.GENERIC_FAILURE
            if exc.reason == SECRET_UNREADABLE:
                # The service's fault (its keys), not a wrong code: say so, without a 500.
                error, status = second_step.CANNOT_CHECK, 503
            if second_step.resolve(token) is None:
                request.session.pop(PENDING_KEY, None)
                messages.error(request, "That code didn't work, and this sign-in has ended. Please sign in again.")
                return redirect("/login")
        else:
            if request.POST.get("trust") == "1":
                trusted_browsers.remember(request, response, request.user)  # type: ignore[arg-type]
            return response
    elif request.method == "POST":
        error = second_step.GENERIC_FAILURE
    prompt = handler.prompt(authenticator)
    extra = verify_context(pending, authenticator)
    delivery = extra.get("code_delivery")  # read from the method's own state, worked out once
    if delivery is not None and not delivery.sent:
        # Not "Enter the code sent to ..." when none went out; why is said
        # above the field, and the method's own box below offers to send one.
        prompt = "No code was sent for this sign-in yet."
    return render(
        request,
        "mfa/verify.html",
        {
            "form": form,
            "error": error,
            # Not under "We could not check your code": that one is the service's fault.
            "wrong_code_hint": error == second_step.GENERIC_FAILURE,
            "prompt": prompt,
            "extra_template": handler.verify_template,
            "pending": pending,
            "authenticator": authenticator,
            **extra,
            **verify_page_context(pending),
        },
        status=status,
    )


@signed_in
def security_view(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    active, methods = two_factor_state()
    factors = {a.method: a for a in Authenticator.objects.filter(user=user, confirmed_at__isnull=False)}
    context: dict[str, object] = {
        "two_factor_active": active,
        "forced_off": forced_off_by_config(),
        "allowed_methods": methods,
        "factors": factors,
        "reauthenticated": recently_authenticated(request),
    }
    sections = []
    for panel in panels():
        panel_context = dict(context)
        panel_context.update(
            panel.context(request, user),
            factor=factors.get(panel.method),
            method_allowed=panel.method in methods,
        )
        sections.append((panel.template, panel_context))
    context["sections"] = sections
    context["sessions"] = list_sessions(user, request.session.session_key)
    return render(request, "mfa/security.html", context)
