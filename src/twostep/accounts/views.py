"""Sign-in, sign-out, the account page and password changes."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout, update_session_auth_hash
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from twostep.accounts import devices, reauth, services
from twostep.accounts.forms import ChangePasswordForm, LoginForm, PasswordForm
from twostep.accounts.models import User
from twostep.accounts.signin import (
    GENERIC_FAILURE,
    SignInThrottled,
    check_password_step,
    check_reauthentication,
    throttled_message,
)
from twostep.audit.services import Origin, Outcome, record
from twostep.core import clock
from twostep.core.decorators import mark_reauthenticated, mark_second_factor_proven, signed_in
from twostep.core.wording import duration
from twostep.forwardauth.services import is_allowed_destination
from twostep.mfa import enforcement
from twostep.mfa import login as second_step
from twostep.mfa.models import PendingLogin
from twostep.mfa.policy import login_authenticators, note_break_glass
from twostep.mfa.trusted import services as trusted_browsers
from twostep.usersessions.backend import LAST_SEEN_KEY, STARTED_KEY
from twostep.usersessions.middleware import ENDED_KEY

PENDING_KEY = "twostep_pending"
NEXT_KEY = "twostep_next"


def safe_next(request: HttpRequest, candidate: str | None) -> str:
    """``candidate`` if it stays on this site or goes to an application behind forward-auth, else the account page.

    On this site means a path from the root (``/account``) or a URL with this
    host: a bare word (``next=account``) is neither, and ``redirect()`` would
    take it for the name of a URL pattern.
    """
    if (
        candidate
        and (candidate.startswith("/") or candidate.lower().startswith(("http://", "https://")))
        and url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
    ):
        return candidate
    if candidate and is_allowed_destination(candidate, require_https=request.is_secure()):
        return candidate
    return settings.LOGIN_REDIRECT_URL


def pending_sign_in(request: HttpRequest) -> PendingLogin | None:
    """The browser's live pending sign-in (password done, second step not yet), or None.

    A dead one (expired, spent, exhausted), or one begun through the API, is
    forgotten from the session.
    """
    pending = second_step.resolve(request.session.get(PENDING_KEY), holder=second_step.PAGES_HOLDER)
    if pending is None:
        request.session.pop(PENDING_KEY, None)
    return pending


def sign_in_expired(request: HttpRequest) -> HttpResponse:
    """Back to the sign-in form, saying why; to the account when this browser is signed in after all.

    A second tab left on the code page, or Back after the code, finds the
    sign-in spent because it succeeded: "expired" would be wrong there.
    """
    request.session.pop(PENDING_KEY, None)
    if request.user.is_authenticated:
        return redirect("/account")
    messages.info(request, "Your sign-in expired. Please sign in again.")
    return redirect(settings.LOGIN_URL)


def complete_sign_in(request: HttpRequest, user: User, *, second_factor: bool = False) -> HttpResponse:
    """Turn the browser's session into a signed-in one (a new session id) and go on.

    ``second_factor``: a code of a factor (or a recovery code) was right just
    now, which counts as the proof changes to the second step ask for, as
    the password counts as entered again.
    """
    destination = safe_next(request, request.session.get(NEXT_KEY))
    # One commit for the session (new key and data) and the log entry, joining
    # the second step's transaction when called from it (without a savepoint).
    with transaction.atomic(savepoint=False):
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        request.session.pop(PENDING_KEY, None)
        now = clock.timestamp()
        request.session[STARTED_KEY] = now
        request.session[LAST_SEEN_KEY] = now
        mark_reauthenticated(request)
        if second_factor:
            mark_second_factor_proven(request)
        record("login", Outcome.SUCCESS, origin=Origin.of(request), user=user)
        # Written now, in this transaction; the response's save then finds nothing new.
        request.session.save()
    response = redirect("/account/password" if user.must_change_password else destination)
    devices.remember(request, response, user.username)
    return response


@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated and request.method == "GET":
        return redirect(safe_next(request, request.GET.get("next")))
    form = LoginForm(request.POST if request.method == "POST" else None)
    error, status = None, 200
    if request.method == "POST" and form.is_valid():
        origin = Origin.of(request)
        try:
            user = check_password_step(form.cleaned_data["username"], form.cleaned_data["password"], origin, request)
        except SignInThrottled as throttled:
            user, error, status = None, throttled_message(throttled), 429
        if user is not None:
            next_url = safe_next(request, request.POST.get("next") or request.GET.get("next"))
            second_step.cancel(request.session.get(PENDING_KEY))
            # A new session id after the password step, and again after the second.
            request.session.cycle_key()
            request.session[NEXT_KEY] = next_url
            authenticators = login_authenticators(user.pk)
            if not authenticators:
                note_break_glass(user, origin)
                # Without a second step: a user who must (or soon must) enrol goes to enrolment.
                return enforcement.after_password_only_sign_in(request, user, complete_sign_in(request, user))
            if trusted_browsers.recognise(request, user) is not None:
                return complete_sign_in(request, user)
            try:
                _, token = second_step.start(user, authenticators[0], origin, holder=second_step.PAGES_HOLDER)
            except second_step.SecondStepError:
                error = "We could not start the second step. Try again in a moment."
            else:
                request.session[PENDING_KEY] = token
                return redirect("/login/verify")
        elif error is None:
            error = GENERIC_FAILURE
    elif request.method == "POST":
        # An empty field is no attempt: say what is missing (it tells nothing about any account).
        empty = not (request.POST.get("username", "").strip() and request.POST.get("password"))
        error = "Enter your username and your password." if empty else GENERIC_FAILURE
    return render(
        request,
        "accounts/login.html",
        {"form": form, "error": error, "next": request.GET.get("next", ""), "ended": _why_session_ended(request)},
        status=status,
    )


def _why_session_ended(request: HttpRequest) -> str:
    """What to tell someone whose session the lifetime limits just ended (``SessionLifetimeMiddleware``), or ""."""
    reason = request.session.pop(ENDED_KEY, None)
    security = settings.CONFIG.security
    if reason == "idle":
        return (
            f"You were signed out after {duration(security.session_idle_timeout)} without activity. "
            "Sign in again; anything you were about to send was not saved."
        )
    if reason == "limit":
        return (
            f"Sessions last at most {duration(security.session_absolute_timeout)}: sign in again. "
            "Anything you were about to send was not saved."
        )
    return ""


@require_http_methods(["GET", "POST"])
def logout_view(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        second_step.cancel(request.session.get(PENDING_KEY))
        if request.user.is_authenticated:
            record("logout", Outcome.INFO, origin=Origin.of(request), user=request.user)
        logout(request)
        messages.info(request, "You are signed out.")
        return redirect(settings.LOGIN_URL)
    return render(request, "accounts/logout.html")


@signed_in
def account_view(request: HttpRequest) -> HttpResponse:
    user = request.user
    return render(
        request,
        "accounts/account.html",
        {
            "account": user,
            "emails": user.email_addresses.all(),  # type: ignore[union-attr]
            "phones": user.phone_numbers.all(),  # type: ignore[union-attr]
        },
    )


def _every_problem_said(request: HttpRequest, user: User, form: ChangePasswordForm) -> bool:
    """Whether the change may be made; else every field's problem is on ``form``, in one answer.

    The current password is checked (and counted like a sign-in) whenever it
    was typed, and the new one against the password rules whenever it was:
    a user is not sent back three times for three problems.
    """
    valid = form.is_valid()
    typed = form.cleaned_data.get("current_password")
    correct = False
    if typed:
        try:
            # Throttled like sign-in, so that an open session cannot be used to guess the password.
            correct = check_reauthentication(user, typed, Origin.of(request), request)
        except SignInThrottled as throttled:
            form.add_error("current_password", throttled_message(throttled))
        if not correct and not form.has_error("current_password"):
            form.add_error("current_password", "That is not your current password.")
    new = form.cleaned_data.get("new_password")
    if new and not form.has_error("new_password"):
        try:
            services.check_password_rules(new, user)
        except ValidationError as exc:
            form.add_error("new_password", exc)
    return valid and correct and not form.errors


@signed_in
@require_http_methods(["GET", "POST"])
def change_password_view(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    forced = user.must_change_password
    form = ChangePasswordForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and _every_problem_said(request, user, form):
        try:
            ended = services.set_password(
                user,
                form.cleaned_data["new_password"],
                origin=Origin.of(request),
                actor=user,
                keep_session_key=request.session.session_key,
            )
        except ValidationError as exc:
            form.add_error("new_password", exc)
        else:
            # A new session id, and the session's password hash updated so it stays signed in.
            update_session_auth_hash(request, user)
            signed_out = f" Your {ended} other session{'s were' if ended != 1 else ' was'} signed out." if ended else ""
            messages.success(request, f"Your password is changed.{signed_out}")
            if not forced:
                return redirect(safe_next(request, None))
            # A change the sign-in asked for goes on to where the sign-in was going,
            # by way of the enrolment page when a second step is required.
            destination = safe_next(request, request.session.pop(NEXT_KEY, None))
            return enforcement.after_forced_password_change(request, user, destination)
    return render(request, "accounts/change_password.html", {"form": form, "forced": forced, "nav_limited": forced})


@signed_in
@require_http_methods(["GET", "POST"])
def reauthenticate_view(request: HttpRequest) -> HttpResponse:
    """Ask for the password again before a sensitive change."""
    form = PasswordForm(request.POST if request.method == "POST" else None)
    next_url = safe_next(request, request.POST.get("next") or request.GET.get("next"))
    status: int | None = 200
    if request.method == "POST":
        status = reauth.confirm(request, form)
        if status is None:
            return redirect(next_url)
    context = {"form": form, "next": next_url, "console": next_url.startswith("/admin/")}
    return render(request, "accounts/reauthenticate.html", context, status=status)
