"""Sign-in through the API: password, then (when required) a second step, then a token.

The same services as the pages decide everything: ``check_password_step``,
``login_authenticators`` and ``mfa.login``.  The login token an API client
holds between the two steps is what the browser keeps in its session.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NoReturn

from django.conf import settings
from django.http import HttpRequest
from ninja import Router, Status

from twostep.accounts.models import User
from twostep.accounts.signin import GENERIC_FAILURE, SignInThrottled, check_password_step, throttled_message
from twostep.api import tokens
from twostep.api.auth import ANY, current_token
from twostep.api.errors import ApiError, responses
from twostep.api.schemas import (
    LoginIn,
    LoginResendIn,
    LoginVerifyIn,
    MethodSwitchIn,
    RecoveryLoginIn,
    SecondStepOut,
    SignedInOut,
)
from twostep.api.sending import NOT_SENT, not_sent
from twostep.audit.services import Origin, Outcome, record
from twostep.mfa import choice, codes, enforcement, methods
from twostep.mfa import login as second_step
from twostep.mfa.email import flows as email_flows
from twostep.mfa.methods import SECRET_UNREADABLE, handler_for
from twostep.mfa.models import PendingLogin
from twostep.mfa.policy import login_authenticators, note_break_glass
from twostep.mfa.recovery_codes import services as recovery_codes
from twostep.sms.service import NotSent

router = Router(tags=["sign-in"])


def signed_in(user: User, origin: Origin, *, second_factor: bool = False) -> dict[str, Any]:
    """Finish a sign-in: a new access token, or 403 for a user who must change their password first."""
    if user.must_change_password:
        refuse_until_password_changed(user, origin)
    return issue_access(user, origin, second_factor=second_factor)


def refuse_until_password_changed(user: User, origin: Origin) -> NoReturn:
    """Raises ApiError(password_change_required), after logging the refused sign-in."""
    record("login", Outcome.FAILURE, origin=origin, user=user, reason="password_change_required")
    raise ApiError(
        "password_change_required",
        "Choose a new password on the web page (/account/password) before using the API.",
    )


def issue_access(user: User, origin: Origin, *, second_factor: bool = False) -> dict[str, Any]:
    """A new access token for ``user``, logged as a sign-in through the API (``second_factor``: after a code)."""
    issued = tokens.issue_sign_in_token(user, origin=origin, second_factor=second_factor)
    record("login", Outcome.SUCCESS, origin=origin, user=user, detail={"channel": "api"})
    return {
        "status": "signed_in",
        "access_token": issued.secret,
        "token_type": "Bearer",
        "expires_at": issued.token.expires_at,
        "idle_timeout": settings.CONFIG.security.session_idle_timeout,
        "scopes": issued.token.scopes,
    }


@router.post(
    "/login",
    auth=None,
    response={200: SignedInOut | SecondStepOut, **responses(401, 403, 409, 429, 503)},
    summary="Sign in with username and password",
)
def login(request: HttpRequest, payload: LoginIn) -> dict[str, Any]:
    """Check the password.  Without a second factor to pass, answer an access token;
    otherwise a login token to send with a code to `/auth/login/verify`.

    Unknown users, wrong passwords and disabled accounts all get the same
    401 `invalid_credentials`.  Too many failures for the name or the client
    address (30 in 15 minutes, shared by every user behind one address unless
    that address is in `server.trusted_proxies` and forwards theirs) get 429
    `rate_limited` with `Retry-After`, without checking the password.  Methods
    that send a code (email, SMS) send it now.
    When a second step is asked for, a `method` the user cannot use answers 409
    `method_unavailable` and starts nothing (a user with no second step is signed in).
    """
    origin = Origin.of(request)
    try:
        user = check_password_step(payload.username, payload.password, origin, request)
    except SignInThrottled as throttled:
        wait = max(1, math.ceil(throttled.retry_after.total_seconds()))
        raise ApiError("rate_limited", throttled_message(throttled), headers={"Retry-After": str(wait)}) from None
    if user is None:
        raise ApiError("invalid_credentials", GENERIC_FAILURE)
    authenticators = login_authenticators(user.pk)
    if not authenticators:
        note_break_glass(user, origin)
        answer = signed_in(user, origin)
        # Counts towards an enrolment grace period; once it is over, the token
        # reaches only the enrolment endpoints (403 enrolment_required).
        standing = enforcement.note_sign_in(user, origin)
        if standing.required and not standing.enrolled:
            answer["enrolment"] = {
                "now": standing.must_enrol_now,
                "deadline": standing.deadline,
                "sign_ins_left": standing.sign_ins_left,
            }
        return answer
    chosen = authenticators[0]
    if payload.method:
        # Only one of the user's usable, allowed factors (mfa.choice decides
        # which); another is refused rather than replaced, so that no code
        # goes out by a method nobody asked for.
        usable = choice.available(user.pk)
        asked = next((a for a in usable if a.method == payload.method), None)
        if asked is None:
            names = [a.method for a in usable]
            raise ApiError(
                "method_unavailable",
                f"{payload.method} is not one of your second-step methods ({', '.join(names) or 'none'}): "
                "sign in again with one of them, or without `method`.",
                methods=names,
            )
        chosen = asked
    try:
        pending, token = second_step.start(user, chosen, origin, holder=second_step.API_HOLDER)
    except second_step.SecondStepError:
        raise ApiError(
            "second_step_unavailable", "We could not start the second step. Try again in a moment."
        ) from None
    return second_step_answer(pending, token)


def second_step_answer(pending: PendingLogin, login_token: str) -> dict[str, Any]:
    """The "second step required" body for ``pending``: the method asked for and the others available."""
    return {"status": "second_step_required", "login_token": login_token, **pending_state(pending)}


def pending_state(pending: PendingLogin) -> dict[str, Any]:
    """Where a pending second step (a sign-in's or a step-up's) stands: the method asked for, the
    user's usable methods, what to tell the user, whether a code is out, and when it ends."""
    authenticator = second_step.authenticator_for(pending)
    available = [a.method for a in choice.available(pending.user_id)]
    handler = handler_for(pending.method)
    prompt, code_sent = "", None
    if authenticator is not None:
        prompt = handler.prompt(authenticator)
        delivery = handler.code_delivery(pending, authenticator)
        if delivery is not None:
            # Not "a code was sent to ..." when none was (a mail server down, a send cap).
            code_sent = delivery.sent
            prompt = delivery.problem or prompt
    return {
        "method": pending.method,
        "methods": available or [pending.method],
        "prompt": prompt,
        "code_sent": code_sent,
        "expires_at": pending.expires_at,
    }


def method_unavailable(pending: PendingLogin, message: str) -> ApiError:
    """409 ``method_unavailable`` for a pending sign-in, with the user's usable methods in ``methods``."""
    return ApiError("method_unavailable", message, methods=[a.method for a in choice.available(pending.user_id)])


NO_LONGER_AVAILABLE = (
    "This second-step method is no longer available: switch to another (/auth/login/method) "
    "or use a recovery code (/auth/login/recovery)."
)


def _login_over() -> ApiError:
    return ApiError("login_expired", "This sign-in has ended. Please sign in again.")


def _live_pending(login_token: str) -> PendingLogin:
    """Raises ApiError(login_expired), also for the token of a sign-in begun on the pages."""
    pending = second_step.resolve(login_token, holder=second_step.API_HOLDER)
    if pending is None:
        raise _login_over()
    return pending


def _failed(login_token: str) -> ApiError:
    """The answer to a failed second step: generic, or login_expired once the sign-in is used up."""
    if second_step.resolve(login_token, holder=second_step.API_HOLDER) is None:
        return ApiError("login_expired", "That code didn't work, and this sign-in has ended. Please sign in again.")
    return ApiError("second_step_failed", second_step.GENERIC_FAILURE)


@router.post(
    "/login/verify",
    auth=None,
    response={200: SignedInOut, **responses(401, 403, 409, 503)},
    summary="Complete a sign-in with a second-step code",
)
def login_verify(request: HttpRequest, payload: LoginVerifyIn) -> dict[str, Any]:
    """Check the code for the pending sign-in and answer an access token.

    Wrong, reused and malformed codes get 401 `second_step_failed`; once the
    pending sign-in is used up (5 wrong codes) or expired, 401 `login_expired`
    (sign in again).

    There is no 429 here, on purpose.  After several wrong codes in a row
    the account is held back (a growing delay, up to 15 minutes), then
    locked; meanwhile every code, **a right one too**, gets the same 401
    `second_step_failed`, with no `Retry-After`, so that a guesser learns
    nothing.  Tell the user that after several wrong codes even a right one
    is refused for a while: wait a few minutes and sign in again, or use a
    recovery code (`/auth/login/recovery`, which lifts a lock), or ask an
    administrator to unlock the account (`POST /admin/users/{username}/unlock`).
    Only waiting, a recovery code or the unlock helps; retrying does not.
    """
    origin = Origin.of(request)
    pending = _live_pending(payload.login_token)
    if second_step.authenticator_for(pending) is None:
        raise method_unavailable(pending, NO_LONGER_AVAILABLE)

    def complete(user: User) -> dict[str, Any] | None:
        # In the verification's transaction: the token, its log entry and the
        # code's consumption share one commit.  A user who must change their
        # password gets no token (their code is spent all the same).
        return None if user.must_change_password else issue_access(user, origin, second_factor=True)

    try:
        answer = second_step.verify(pending, payload.code, origin, then=complete)
    except second_step.SecondStepError as exc:
        if exc.reason == SECRET_UNREADABLE:
            # The service's fault (this instance's keys), not a wrong code.
            raise ApiError("second_step_unavailable", second_step.CANNOT_CHECK) from None
        raise _failed(payload.login_token) from None
    if answer is None:
        refuse_until_password_changed(pending.user, origin)
    return answer


@router.post(
    "/login/method",
    auth=None,
    response={200: SecondStepOut, **responses(401, 409, 503)},
    summary="Use another second-step method for a pending sign-in",
)
def login_method(request: HttpRequest, payload: MethodSwitchIn) -> dict[str, Any]:
    """Ask for another of the user's methods (one listed in `methods`); email and SMS send their code now.

    The login token, its expiry and its failure count stay the same.  A
    method the user has not set up, or the administrator does not allow,
    answers 409 `method_unavailable`.
    """
    pending = _live_pending(payload.login_token)
    switched = switch_method(pending, payload.method, Origin.of(request), ended=_login_over)
    return second_step_answer(switched, payload.login_token)


def switch_method(pending: PendingLogin, method: str, origin: Origin, *, ended: Callable[[], ApiError]) -> PendingLogin:
    """``choice.switch`` for a pending second step, its refusals as API errors.

    Raises:
        ApiError: ``ended()`` when ``pending`` is over; 409 method_unavailable;
            503 second_step_unavailable when the new method could not begin.
    """
    try:
        return choice.switch(pending, method, origin)
    except second_step.SecondStepError as exc:
        if exc.reason == "expired_login":
            raise ended() from None
        if exc.reason == "method_unavailable":
            raise method_unavailable(pending, "That method is not available for this account.") from None
        raise ApiError("second_step_unavailable", "We could not switch methods. Try again in a moment.") from None


@router.post(
    "/login/resend",
    auth=None,
    response={200: SecondStepOut, **responses(401, 409, 429, 503)},
    summary="Send a new code for a pending sign-in",
)
def login_resend(request: HttpRequest, payload: LoginResendIn) -> dict[str, Any]:
    """Send a new email or SMS code for the pending sign-in; the previous code stops working.

    Within the cooldown after the last code, or past a send cap, the answer
    is 429 `rate_limited` with `Retry-After`; a code that could not be sent,
    503 `delivery_failed` (nothing is used up).  An authenticator app has no
    code to send: 409 `method_unavailable`.  A sign-in that ended meanwhile
    (completed elsewhere, or the user's sessions were ended): 401
    `login_expired`, nothing sent.  The login token, its expiry and its
    failure count stay the same.
    """
    pending = _live_pending(payload.login_token)
    send_new_code(pending, Origin.of(request), no_longer_available=NO_LONGER_AVAILABLE, over=_login_over)
    return second_step_answer(pending, payload.login_token)


def send_new_code(
    pending: PendingLogin, origin: Origin, *, no_longer_available: str, over: Callable[[], ApiError]
) -> None:
    """Send a new email or SMS code for a pending second step (a sign-in's or a step-up's).

    Raises:
        ApiError: 409 method_unavailable (``no_longer_available`` when the
            factor or its address went; an authenticator app has nothing to
            send); 401 second_step_failed for a locked second step, as a code
            would get; 429 rate_limited or 503 delivery_failed (``sending.not_sent``);
            ``over()`` when the second step ended while its code was being made
            (e.g. the user's sessions were ended).
    """
    authenticator = second_step.authenticator_for(pending)
    if authenticator is None:
        raise method_unavailable(pending, no_longer_available)
    try:
        methods.resend(pending, authenticator, origin)
    except methods.NoCodeToResend:
        raise method_unavailable(pending, "This method has no code to resend: use the current code.") from None
    except codes.Ended:
        raise over() from None
    except (email_flows.EnrolmentError, NotSent) as exc:
        if exc.reason == "locked":
            # As /auth/login/verify: a locked second step gets the generic answer.
            raise ApiError("second_step_failed", second_step.GENERIC_FAILURE) from None
        if isinstance(exc, email_flows.EnrolmentError) or exc.reason == "destination_removed":
            # The address or number was removed from the account: nothing was sent anywhere.
            raise method_unavailable(pending, no_longer_available) from None
        raise not_sent(exc) from None
    except NOT_SENT as exc:
        raise not_sent(exc) from None


@router.post(
    "/login/recovery",
    auth=None,
    response={200: SignedInOut, **responses(401, 403)},
    summary="Complete a sign-in with a recovery code",
)
def login_recovery(request: HttpRequest, payload: RecoveryLoginIn) -> dict[str, Any]:
    """Use one of the user's recovery codes instead of the second factor; each code works once.

    A right code also lifts a second-step lock.  Failures answer like
    `/auth/login/verify`.  The answer says how many codes are left.
    """
    origin = Origin.of(request)
    pending = _live_pending(payload.login_token)
    try:
        user, left = recovery_codes.sign_in(pending, payload.code, origin)
    except second_step.SecondStepError:
        raise _failed(payload.login_token) from None
    return {**signed_in(user, origin, second_factor=True), "recovery_codes_left": left}


@router.post("/logout", auth=ANY, response={204: None, **responses(401)}, summary="Sign out (revoke this token)")
def logout(request: HttpRequest) -> Status[None]:
    """End the token this request is made with, sign-in or personal."""
    tokens.revoke(current_token(request), origin=Origin.of(request), reason="logout")
    return Status(204, None)
