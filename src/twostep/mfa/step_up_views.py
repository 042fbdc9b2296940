"""The code asked, after the password, before a change to the user's second step (``mfa.step_up``).

A change asked for without a recent proof of a factor is not refused
outright: the answer is the code prompt, carrying the posted fields as the
password prompt does (``accounts.reauth``), and the change runs once a code
(or a recovery code) is right.  A page asked for (GET) comes back as asked.
The proof then lasts ``security.reauth_max_age`` seconds in this session.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from twostep.accounts.models import User
from twostep.accounts.reauth import carried, without_prompt
from twostep.audit.services import Origin
from twostep.core.decorators import (
    REAUTH_KEY,
    SECOND_FACTOR_KEY,
    mark_second_factor_proven,
    page_posted_from,
    stamped_recently,
)
from twostep.mail import MailDeliveryError
from twostep.mfa import choice, codes, step_up
from twostep.mfa import login as second_step
from twostep.mfa.email import flows as email_flows
from twostep.mfa.forms import WRONG_RECOVERY_CODE, CodeForm, recovery_code_problem
from twostep.mfa.methods import SECRET_UNREADABLE, NoCodeToResend, handler_for, resend, verify_context
from twostep.mfa.models import Authenticator, Method, PendingLogin
from twostep.mfa.recovery_codes.services import remaining
from twostep.sms.service import NotSent

View = Callable[..., HttpResponse]

#: The session's step-up token while a code is awaited.
SESSION_KEY = "twostep_step_up"

#: The prompt's own fields start with this: none of them is carried on to the change.
PREFIX = "stepup"
#: Set on the prompt when the page was asked for with GET: after the code, it is asked for again.
_WAS_GET = f"{PREFIX}-get"

SECURITY_URL = "/account/security"
ENDED = "That code didn't work, and this confirmation has ended. Enter your password again to start over."
EXPIRED = "This confirmation expired. Enter your password again to start over."
CONFIRMED_ELSEWHERE = "This change was confirmed in another window. Make it again if it is not done yet."


def recently_proven(request: HttpRequest) -> bool:
    """True when this session proved a second factor within ``security.reauth_max_age`` seconds."""
    return stamped_recently(request, SECOND_FACTOR_KEY)


def fresh_second_factor(view: View) -> View:
    """A change to the second step needs a code of a factor, after the (fresh) password.

    Put under ``fresh_password`` (or ``admin_only``, which asks the password
    too): the password is asked first, then the code.  Users whose sign-in
    asks for no factor are asked for none.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return code_first(request, view, *args, **kwargs) or view(request, *args, **kwargs)

    return wrapper


def code_first(request: HttpRequest, view: View, *args: Any, **kwargs: Any) -> HttpResponse | None:
    """None when this request may go on; else the code prompt, which runs ``view`` again once a code is right.

    For a view that needs the code only for some of its changes (the
    Authentication page, when a change stops asking users for their code).
    """
    user: User = request.user  # type: ignore[assignment]
    if recently_proven(request) or not step_up.needed(user):
        if request.method == "POST" and request.POST.get(f"{PREFIX}-action") == "begin":
            # A chooser left open while a code was confirmed in another tab: the page, not an empty form.
            return redirect(request.get_full_path())
        return None
    return _code_then(request, view, *args, **kwargs)


def _code_then(request: HttpRequest, view: View, *args: Any, **kwargs: Any) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    origin = Origin.of(request)
    action = request.POST.get(f"{PREFIX}-action") if request.method == "POST" else None
    pending = step_up.resolve(request.session.get(SESSION_KEY), user)
    if action not in {None, "begin"} and pending is None:
        return _start_over(request, EXPIRED)
    if pending is None and request.method != "POST":
        factors = step_up.factors(user)
        if _sends_a_code(factors[0]):
            # A page followed from a link (any site's), or fetched with HEAD, must not send a text or
            # an email: ask first, and send on the button's POST.
            return _choose_first(request, factors)
    error = notice = ""
    try:
        if pending is None:
            method = request.POST.get(f"{PREFIX}-method") if action == "begin" else None
            pending, request.session[SESSION_KEY] = step_up.begin(user, origin, _one_of_users(user, method))
        elif action == "begin":
            # Sent twice (a double click): the step-up it began goes on; another method chosen
            # (a second chooser): as "Use another method".
            method = _one_of_users(user, request.POST.get(f"{PREFIX}-method"))
            if method is not None and method != pending.method:
                pending = choice.switch(pending, method, origin)
        elif action == "switch":
            # As at sign-in: the failure count and expiry stay, a code goes out for email and SMS.
            pending = choice.switch(pending, request.POST.get(f"{PREFIX}-method", ""), origin)
        elif action == "resend":
            error, notice = _resend(pending, origin)
        elif action in {"code", "recovery"}:
            error = _typing_problem(request, action)
            if not error:
                _confirm(request, pending, action, origin)
                return _proven(request, view, *args, **kwargs)
    except codes.Ended:  # a new code was asked for just as the confirmation ended
        if step_up.ended_unproven(request.session.get(SESSION_KEY), user):
            return _start_over(request, EXPIRED)
        # Confirmed in another tab of this browser: nothing was guessed, nothing is lost.
        request.session.pop(SESSION_KEY, None)
        messages.info(request, CONFIRMED_ELSEWHERE)
        return redirect(SECURITY_URL)
    except second_step.SecondStepError as exc:
        if step_up.resolve(request.session.get(SESSION_KEY), user) is None:
            return _start_over(request, ENDED)
        error = second_step.GENERIC_FAILURE if action != "recovery" else WRONG_RECOVERY_CODE
        if exc.reason == SECRET_UNREADABLE:
            error = second_step.CANNOT_CHECK
    if pending is None:  # no factor could start one (method_unavailable), nor ever confirm
        return _start_over(request, EXPIRED)
    context = _prompt_context(request, pending, error, notice)
    return render(request, "mfa/step_up.html", context, status=503 if error == second_step.CANNOT_CHECK else 200)


def _sends_a_code(factor: Authenticator) -> bool:
    return factor.method in {Method.EMAIL, Method.SMS}


def _one_of_users(user: User, method: str | None) -> str | None:
    """``method`` when it is one of ``user``'s factors that may confirm a change; else None (their default)."""
    return method if any(factor.method == method for factor in step_up.factors(user)) else None


def _choose_first(request: HttpRequest, factors: list[Authenticator]) -> HttpResponse:
    """The step-up asked for by a page (GET) whose default factor sends a code: a button per factor
    sends it (POST), so that no link can make twostep send one."""
    fields = carried(request, PREFIX)
    fields.append((_WAS_GET, "1"))
    return render(
        request,
        "mfa/step_up/begin.html",
        {
            "action": request.get_full_path(),
            "carried": fields,
            "choices": [choice.Alternative(factor.method, choice.action_label(factor)) for factor in factors],
            "for_console": request.path.startswith("/admin/"),
            "back": SECURITY_URL,
        },
    )


def _start_over(request: HttpRequest, message: str) -> HttpResponse:
    """The step-up is over (expired, or too many wrong codes): the password again, as at sign-in."""
    request.session.pop(SESSION_KEY, None)
    request.session.pop(REAUTH_KEY, None)
    messages.error(request, message)
    return redirect(SECURITY_URL)


def _typing_problem(request: HttpRequest, action: str) -> str:
    """What makes the typed code or recovery code impossible, or "": said before any check, no try spent."""
    if action == "recovery":
        return recovery_code_problem(request.POST.get(f"{PREFIX}-recovery_code", ""))
    form = CodeForm(request.POST, prefix=PREFIX)
    return "" if form.is_valid() else str(form.errors["code"][0])


def _confirm(request: HttpRequest, pending: PendingLogin, action: str, origin: Origin) -> None:
    """Check the typed code or recovery code; raises ``SecondStepError`` as ``step_up.confirm``."""
    if action == "recovery":
        left = step_up.confirm_recovery_code(pending, request.POST.get(f"{PREFIX}-recovery_code", ""), origin)
        messages.warning(request, f"That recovery code cannot be used again. You have {left} left.")
    else:
        step_up.confirm(pending, request.POST.get(f"{PREFIX}-code", ""), origin)


def _resend(pending: PendingLogin, origin: Origin) -> tuple[str, str]:
    """Send a new code; (why none went out, what was done), one of them empty."""
    authenticator = second_step.authenticator_for(pending)
    if authenticator is None:
        return "This method cannot be used now. Choose another one.", ""
    try:
        resend(pending, authenticator, origin)
    except NoCodeToResend:
        return "", ""
    except codes.SendRefused as refused:
        return email_flows.refusal_message(refused), ""
    except NotSent as exc:
        return exc.user_message, ""
    except (email_flows.EnrolmentError, MailDeliveryError):
        return email_flows.COULD_NOT_SEND, ""
    return "", "We sent a new code. Earlier codes no longer work."


def _proven(request: HttpRequest, view: View, *args: Any, **kwargs: Any) -> HttpResponse:
    request.session.pop(SESSION_KEY, None)
    mark_second_factor_proven(request)
    # A raised privilege, as at sign-in: a new session id.
    request.session.cycle_key()
    if request.POST.get(_WAS_GET):
        return redirect(request.get_full_path())
    request.POST = without_prompt(request, PREFIX)  # type: ignore[assignment]  # immutable, as Django's
    return view(request, *args, **kwargs)


def _prompt_context(request: HttpRequest, pending: PendingLogin, error: str, notice: str) -> dict[str, Any]:
    authenticator = second_step.authenticator_for(pending)
    fields = carried(request, PREFIX)
    if request.method == "GET" or request.POST.get(_WAS_GET):
        # Kept through every answer of the prompt (a wrong code, a new code, another method).
        fields.append((_WAS_GET, "1"))
    extra = {} if authenticator is None else verify_context(pending, authenticator)
    delivery = extra.get("code_delivery")
    return {
        "action": request.get_full_path(),
        "carried": fields,
        "error": error,
        # Not under "We could not check your code": that one is the service's fault.
        "wrong_code_hint": error in {second_step.GENERIC_FAILURE, WRONG_RECOVERY_CODE},
        "notice": notice,
        "prompt": handler_for(pending.method).prompt(authenticator) if authenticator else "",
        "sends_codes": delivery is not None,
        "delivery_problem": "" if delivery is None or error else delivery.problem,
        "alternatives": choice.alternatives(pending),
        "recovery_codes": remaining(pending.user_id),
        # The console asks before every change an administrator makes, not only changes to their own sign-in.
        "for_console": request.path.startswith("/admin/"),
        # Cancel leads back to the page the change was asked from (the Security page, a console page).
        "back": page_posted_from(request, ("/admin/", "/account/"), SECURITY_URL),
    }
