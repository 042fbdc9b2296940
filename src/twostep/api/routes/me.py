"""The caller's own account: profile, re-authentication, step-up, second factors and tokens.

Sensitive changes (every step of setting up a factor, the email check
included, removing one, new recovery codes, a new personal token) need a
password entered within the last few minutes, as on the pages: a sign-in
counts, and so does POST /me/reauthenticate.  Each such operation calls
``require_reauthentication`` first and says so in its description
(tests/api/test_reauthentication.py holds docs/api.md's list to the code).

A change to the second step itself (setting up, replacing or removing a
factor, new recovery codes) also needs, once a factor signs the user in, a
code of one of their factors proved on this token within as many minutes
(``mfa.step_up``, POST /me/step-up): those operations call
``require_second_factor`` next and say so too (tests/api/test_reauthentication.py
holds docs/api.md's list of them to the code as well).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

from django.http import HttpRequest
from ninja import P, PathEx, Router, Status

from twostep.accounts.models import User
from twostep.accounts.signin import SignInThrottled, check_reauthentication
from twostep.api import tokens
from twostep.api.auth import (
    READ,
    SECURITY,
    current_token,
    current_user,
    require_reauthentication,
    require_second_factor,
)
from twostep.api.errors import ApiError, responses
from twostep.api.models import AccessToken, TokenKind
from twostep.api.presenters import emails_of, factor, factors_of, phones_of, token_out
from twostep.api.routes.auth import method_unavailable, pending_state, send_new_code, switch_method
from twostep.api.schemas import (
    TOKEN_ID_PATTERN,
    CodeIn,
    CodeSentOut,
    EmailCheckPassedOut,
    EmailCheckSentOut,
    EmailFactorIn,
    FactorConfirmedOut,
    FactorOut,
    FactorSetupOut,
    MeOut,
    PhoneFactorIn,
    ReauthenticatedOut,
    ReauthenticateIn,
    RecoveryCodesOut,
    RecoveryStatusOut,
    SecondFactorProvedOut,
    StepUpIn,
    StepUpMethodIn,
    StepUpOut,
    StepUpTokenIn,
    StepUpVerifyIn,
    TokenCreatedOut,
    TokenCreateIn,
    TokenOut,
    TotpProvisioningOut,
)
from twostep.api.sending import NOT_SENT, ended, not_sent, rate_limited
from twostep.audit.services import Origin
from twostep.core import clock
from twostep.mfa import choice, codes, email_check, guesses, step_up
from twostep.mfa import login as second_step
from twostep.mfa.email import flows as email_flows
from twostep.mfa.methods import SECRET_UNREADABLE
from twostep.mfa.models import Authenticator, Method, PendingLogin
from twostep.mfa.policy import forced_off_by_config, two_factor_state
from twostep.mfa.recovery_codes import services as recovery_codes
from twostep.mfa.sms import flows as sms_flows
from twostep.mfa.totp import flows as totp_flows

router = Router(tags=["me"])

TokenIdPath = PathEx[str, P(pattern=TOKEN_ID_PATTERN, description="A token's id, as listed.")]


@router.get("", auth=READ, response={200: MeOut, **responses(401, 403)}, summary="Who am I")
def me(request: HttpRequest) -> dict[str, Any]:
    """The signed-in user, their addresses, factors, the 2FA state and the token in use."""
    token = current_token(request)
    user = token.user
    active, methods = two_factor_state()
    return {
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "emails": emails_of(user),
        "phones": phones_of(user),
        "factors": factors_of(user),
        "two_factor": {"active": active, "allowed_methods": methods, "forced_off_by_config": forced_off_by_config()},
        "token": token_out(token, current=token),
        "reauthenticated_until": tokens.reauthenticated_until(token),
        "second_factor_until": tokens.second_factor_until(token),
    }


@router.post(
    "/reauthenticate",
    auth=SECURITY,
    response={200: ReauthenticatedOut, **responses(401, 403, 429)},
    summary="Enter the password again",
)
def reauthenticate(request: HttpRequest, payload: ReauthenticateIn) -> dict[str, Any]:
    """Allow sensitive changes with this token for the next few minutes."""
    token = current_token(request)
    user = token.user
    origin = Origin.of(request)
    try:
        correct = check_reauthentication(user, payload.password, origin)
    except SignInThrottled as exc:
        raise ApiError(
            "rate_limited",
            "Too many wrong passwords; wait and retry.",
            headers={"Retry-After": str(max(1, math.ceil(exc.retry_after.total_seconds())))},
        ) from None
    if not correct:
        raise ApiError("invalid_password", "That password is incorrect.")
    until = tokens.mark_reauthenticated(token)
    return {"reauthenticated_until": until}


STEP_UP_OVER = (
    "This confirmation has ended. Start over (POST /api/v1/me/step-up), after entering your password "
    "again (POST /api/v1/me/reauthenticate) if that asks for it."
)
STEP_UP_METHOD_GONE = (
    "This method can no longer be used: switch to another (/me/step-up/method) or use a recovery code "
    "(/me/step-up/verify with `recovery_code`)."
)


@router.post(
    "/step-up",
    auth=SECURITY,
    response={200: StepUpOut, **responses(401, 403, 409, 503)},
    summary="Confirm a change to the second step: ask for a code",
)
def step_up_begin(request: HttpRequest, payload: StepUpIn) -> dict[str, Any]:
    """Begin a step-up: the code of one of your factors that a change to your second step (setting
    up, replacing or removing a factor, new recovery codes) needs besides the password, answered
    with 403 `second_factor_required` until this token has it.

    Send `{}` for your default method, or `{"method": ...}` for another of yours.  Email and SMS
    send their code now (`code_sent` says whether one is on its way).  Send it, or a
    recovery code, with `step_up_token` to `/me/step-up/verify`; the step-up lives 10 minutes.
    409 `conflict` when no factor signs you in (the password is then all those changes need); 409
    `method_unavailable` for a `method` that is not one of yours (`methods` lists them).
    Needs a recent re-authentication.
    """
    token = require_reauthentication(request)
    user = token.user
    if not step_up.needed(user):
        raise ApiError("conflict", "No second factor signs you in: a change needs only your password.")
    try:
        pending, step_up_token = step_up.begin(
            user, Origin.of(request), payload.method, holder=email_check.token_holder(token.pk)
        )
    except step_up.SecondStepError as exc:
        if exc.reason == "method_unavailable":
            usable = [a.method for a in choice.available(user.pk)]
            raise ApiError(
                "method_unavailable",
                f"{payload.method} is not one of your second-step methods ({', '.join(usable) or 'none'}).",
                methods=usable,
            ) from None
        raise ApiError("second_step_unavailable", "We could not start the step-up. Try again in a moment.") from None
    return {"step_up_token": step_up_token, **pending_state(pending)}


@router.post(
    "/step-up/verify",
    auth=SECURITY,
    response={200: SecondFactorProvedOut, **responses(401, 403, 409, 503)},
    summary="Confirm a change to the second step with the code",
)
def step_up_verify(request: HttpRequest, payload: StepUpVerifyIn) -> dict[str, Any]:
    """Check `code` (or `recovery_code`) for the step-up: this token may then change the second step
    until `second_factor_until` (5 minutes, as the password).

    Failures answer as at `/auth/login/verify`: a wrong, reused or malformed code, and every code
    (a right one too) while the account is held back or locked, 401 `second_step_failed`; wrong
    codes count against the account as at sign-in, up to the lock.  Once the step-up is used up
    (5 wrong codes) or expired, and for a token that is not a step-up of this token's user, 401
    `step_up_expired`: as on the web page, the password is asked again before a new step-up.
    Needs a recent re-authentication.
    """
    token = require_reauthentication(request)
    pending = _live_step_up(token, payload.step_up_token)
    origin = Origin.of(request)
    left = None
    try:
        if payload.recovery_code is not None:
            left = step_up.confirm_recovery_code(pending, payload.recovery_code, origin)
        else:  # the schema asks for one of the two: never neither
            step_up.confirm(pending, payload.code or "", origin)
    except step_up.SecondStepError as exc:
        raise _step_up_failed(token, pending, payload.step_up_token, exc) from None
    return {"second_factor_until": tokens.mark_second_factor(token), "recovery_codes_left": left}


@router.post(
    "/step-up/resend",
    auth=SECURITY,
    response={200: StepUpOut, **responses(401, 403, 409, 429, 503)},
    summary="Send a new code for a step-up",
)
def step_up_resend(request: HttpRequest, payload: StepUpTokenIn) -> dict[str, Any]:
    """Send a new email or SMS code for the step-up; the previous code stops working.

    As `/auth/login/resend`: within the cooldown or past a send cap, 429 `rate_limited` with
    `Retry-After`; a code that could not be sent, 503 `delivery_failed`; an authenticator app has no
    code to send, 409 `method_unavailable`.  An ended step-up: 401 `step_up_expired`.
    Needs a recent re-authentication.
    """
    token = require_reauthentication(request)
    pending = _live_step_up(token, payload.step_up_token)
    send_new_code(
        pending,
        Origin.of(request),
        no_longer_available=STEP_UP_METHOD_GONE,
        over=partial(_step_up_over, token, payload.step_up_token),
    )
    return {"step_up_token": payload.step_up_token, **pending_state(pending)}


@router.post(
    "/step-up/method",
    auth=SECURITY,
    response={200: StepUpOut, **responses(401, 403, 409, 503)},
    summary="Use another method for a step-up",
)
def step_up_method(request: HttpRequest, payload: StepUpMethodIn) -> dict[str, Any]:
    """Ask for another of your methods (one listed in `methods`); email and SMS send their code now.

    The step-up token, its expiry and its failure count stay the same; a method you cannot use
    answers 409 `method_unavailable`, an ended step-up 401 `step_up_expired`.
    Needs a recent re-authentication.
    """
    token = require_reauthentication(request)
    pending = _live_step_up(token, payload.step_up_token)
    switched = switch_method(
        pending, payload.method, Origin.of(request), ended=lambda: _step_up_over(token, payload.step_up_token)
    )
    return {"step_up_token": payload.step_up_token, **pending_state(switched)}


def _live_step_up(token: AccessToken, step_up_token: str) -> PendingLogin:
    """The live step-up of ``token``'s user named by ``step_up_token``.

    Another user's step-up, a sign-in's login token or an unknown one are
    all just not this user's step-up (``step_up.resolve``).

    Raises:
        ApiError: step_up_expired (see ``_step_up_over``).
    """
    pending = step_up.resolve(step_up_token, token.user, holder=email_check.token_holder(token.pk))
    if pending is None:
        raise _step_up_over(token, step_up_token)
    return pending


def _step_up_over(token: AccessToken, step_up_token: str) -> ApiError:
    """The error for a step-up that is over, or not this token's.

    As on the pages (``step_up_views._start_over``): once a step-up of this
    token ended by time or by too many wrong codes, its password entry is
    forgotten, so that a new step-up needs the password again and its
    guesses are not free for whoever holds the token.  An unknown step-up
    token, or one that succeeded (a client repeating its request), costs
    nothing.
    """
    if step_up.ended_unproven(step_up_token, token.user, holder=email_check.token_holder(token.pk)):
        tokens.forget_reauthentication(token)
    return ApiError("step_up_expired", STEP_UP_OVER)


def _step_up_failed(
    token: AccessToken, pending: PendingLogin, step_up_token: str, exc: step_up.SecondStepError
) -> ApiError:
    """The answer to a code refused for a step-up, as ``/auth/login/verify`` words it."""
    if exc.reason == SECRET_UNREADABLE:
        # The service's fault (this instance's keys), not a wrong code.
        return ApiError("second_step_unavailable", second_step.CANNOT_CHECK)
    if exc.reason == "method_unavailable":
        return method_unavailable(pending, STEP_UP_METHOD_GONE)
    if step_up.resolve(step_up_token, token.user, holder=email_check.token_holder(token.pk)) is None:
        return _step_up_over(token, step_up_token)
    return ApiError("second_step_failed", second_step.GENERIC_FAILURE)


@router.get("/factors", auth=READ, response={200: list[FactorOut], **responses(401, 403)}, summary="My second factors")
def list_factors(request: HttpRequest) -> list[dict[str, Any]]:
    """Confirmed second factors; secrets are never returned."""
    return factors_of(current_user(request))


@router.get(
    "/factors/setup",
    auth=READ,
    response={200: FactorSetupOut, **responses(401, 403)},
    summary="What I can set up, and where codes may go",
)
def factor_setup(request: HttpRequest) -> dict[str, Any]:
    """The allowed methods, the addresses and numbers an administrator put on the account (their ids
    are the `email_id` and `phone_id` of the set-up calls), and whether the email check comes first.

    Reachable by a user who must enrol, like every `/me/factors` operation (`GET /me` is not).
    """
    token = current_token(request)
    user = token.user
    _, methods = two_factor_state()
    return {
        "allowed_methods": methods,
        "emails": emails_of(user),
        "phones": phones_of(user),
        "email_check_required": email_check.asked_of(user)
        and not email_check.passed(user, email_check.token_holder(token.pk)),
    }


@router.post(
    "/factors/totp",
    auth=SECURITY,
    response={200: TotpProvisioningOut, **responses(401, 403, 409)},
    summary="Start setting up an authenticator app",
)
def totp_start(request: HttpRequest) -> dict[str, Any]:
    """A new secret to scan (URI and QR code as SVG), valid until confirmed or `expires_at`.

    Until then the same secret is returned, so a mistyped confirmation never
    replaces what the user scanned.  A confirmed app keeps working until the
    new one is confirmed.  Needs a recent re-authentication and, once a factor
    signs you in, a second-factor proof (POST /me/step-up).
    """
    token = require_reauthentication(request)
    require_second_factor(request)
    _require_allowed(Method.TOTP, NO_TOTP)
    _require_email_check(token, Method.TOTP)
    provisioning = totp_flows.provisioning_for(current_user(request))
    return {
        "secret": provisioning.secret,
        "uri": provisioning.uri,
        "qr_svg": provisioning.qr_svg,
        "expires_at": provisioning.expires_at,
    }


@router.post(
    "/factors/totp/confirm",
    auth=SECURITY,
    response={201: FactorConfirmedOut, **responses(401, 403, 409, 422)},
    summary="Confirm the authenticator app with a current code",
)
def totp_confirm(request: HttpRequest, payload: CodeIn) -> Status[dict[str, Any]]:
    """Activate the pending secret.  The user's other sessions and tokens end;
    this token stays.  The confirming code cannot be used again to sign in.

    With the user's first factor the answer carries their recovery codes,
    shown this once (as on the Security page).  A wrong code that the app would show with its clock
    minutes or whole hours off gets a message saying how far off the phone's clock seems.  Needs a
    recent re-authentication and, once a factor signs you in, a second-factor proof (POST /me/step-up).
    """
    token = require_reauthentication(request)
    require_second_factor(request)
    _require_allowed(Method.TOTP, NO_TOTP)
    _require_email_check(token, Method.TOTP)
    with tokens.sparing(token):
        try:
            authenticator = totp_flows.confirm(token.user, payload.code, Origin.of(request))
        except totp_flows.EnrolmentError as exc:
            if str(exc) == "no_pending_secret":
                raise ApiError("invalid_code", "There is no set-up in progress (or it expired): start again.") from None
            if str(exc) == "malformed_code":
                raise ApiError("invalid_code", "A code is exactly 6 digits, from your authenticator app.") from None
            raise ApiError("invalid_code", totp_flows.wrong_code_message(exc.device_clock_offset)) from None
    created = recovery_codes.create_first_set(token.user, Origin.of(request))
    return Status(201, {**factor(authenticator), "recovery_codes": created.formatted if created else None})


@router.delete(
    "/factors/totp",
    auth=SECURITY,
    response={204: None, **responses(401, 403, 404)},
    summary="Remove the authenticator app",
)
def totp_remove(request: HttpRequest) -> Status[None]:
    """Turn the authenticator app off.  The user's other sessions and tokens end; this token stays.

    Needs a recent re-authentication and, once a factor signs you in, a second-factor proof
    (POST /me/step-up).
    """
    token = require_reauthentication(request)
    require_second_factor(request)
    with tokens.sparing(token):
        removed = totp_flows.remove(token.user, Origin.of(request))
    if not removed:
        raise ApiError("not_found", "You have no authenticator app set up.")
    return Status(204, None)


def _require_email_check(token: AccessToken, method: Method) -> None:
    """Raises ApiError(email_check_required) while the user must first confirm an email address."""
    if not email_check.may_set_up(token.user, method, email_check.token_holder(token.pk)):
        raise ApiError(
            "email_check_required",
            "Confirm one of your email addresses first: POST /api/v1/me/factors/email-check, "
            "then /api/v1/me/factors/email-check/confirm with the code.",
        )


def _not_allowed(refusal: str) -> ApiError:
    """409 ``method_unavailable``, with the methods the administrator allows in ``methods``."""
    _, methods = two_factor_state()
    return ApiError("method_unavailable", refusal, methods=list(methods))


def _require_allowed(method: Method, refusal: str) -> None:
    """Raises ApiError(method_unavailable) when the administrator does not allow ``method``."""
    _, methods = two_factor_state()
    if method not in methods:
        raise ApiError("method_unavailable", refusal, methods=list(methods))


def _code_sent(pending: Authenticator, what: str) -> dict[str, Any]:
    # The services move pending_until with a queryset update: read it back.
    # The set-up may be gone by now (a reset, a removal or another start
    # while the code was on its way): its code then confirms nothing.
    expires_at = (
        Authenticator.objects.filter(pk=pending.pk, confirmed_at__isnull=True)
        .values_list("pending_until", flat=True)
        .first()
    )
    if expires_at is None:
        raise ended(what)
    return {
        "method": pending.method,
        "destination": pending.destination,
        "expires_at": expires_at,
        "resend_after": codes.cooldown_remaining(authenticator=pending),
        "problem": sms_flows.unconfirmed_problem(authenticator=pending) if pending.method == Method.SMS else "",
    }


NO_TOTP = "Your administrator does not allow authenticator apps."
NO_EMAIL = "Your administrator does not allow email codes."
NO_SMS = "Your administrator does not allow SMS codes."
EMAIL_SET_UP = "email set-up"
SMS_SET_UP = "SMS set-up"
SEND_ERRORS = (429, 503)


@router.post(
    "/factors/email",
    auth=SECURITY,
    response={200: CodeSentOut, **responses(401, 403, 404, 409, *SEND_ERRORS)},
    summary="Start setting up email codes: send a code to one of my addresses",
)
def email_start(request: HttpRequest, payload: EmailFactorIn) -> dict[str, Any]:
    """Send a confirmation code to the address `email_id` (one an administrator put on the account).

    Calling it again sends a new code (after the cooldown: 429 `rate_limited`
    with `Retry-After`); another address starts over.  A confirmed email
    factor keeps working until the new address is confirmed.  A code that
    could not be sent answers 503 `delivery_failed` and uses up nothing.
    Needs a recent re-authentication and, once a factor signs you in, a second-factor proof
    (POST /me/step-up).
    """
    token = require_reauthentication(request)
    require_second_factor(request)
    _require_allowed(Method.EMAIL, NO_EMAIL)
    try:
        pending = email_flows.start_enrolment(token.user, payload.email_id, Origin.of(request))
    except email_flows.EnrolmentError as exc:
        if exc.reason == "ended":
            raise ended(EMAIL_SET_UP) from None
        raise ApiError("not_found", "No such address on your account.") from None
    except NOT_SENT as exc:
        raise not_sent(exc) from None
    return _code_sent(pending, EMAIL_SET_UP)


EMAIL_CONFIRM_MESSAGES = {
    "no_pending": "There is no set-up in progress (or it expired): start again.",
    "address_removed": "That address is no longer on your account: choose another one.",
}


def code_refused(user: User, reason: str, message: str) -> ApiError:
    """The answer to a set-up code that was not accepted.

    422 ``invalid_code`` with ``message``; but 429 ``rate_limited`` while the
    account's wrong codes must wait, and 403 ``second_step_locked`` once they
    locked it (``twostep.mfa.guesses``).
    """
    if reason == "throttled":
        blocked_until = User.objects.values_list("second_step_blocked_until", flat=True).get(pk=user.pk)
        now = clock.now()
        return rate_limited(guesses.REFUSALS["throttled"], (blocked_until or now) - now)
    if reason == "locked":
        return ApiError("second_step_locked", guesses.REFUSALS["locked"])
    return ApiError("invalid_code", message)


@router.post(
    "/factors/email/confirm",
    auth=SECURITY,
    response={201: FactorConfirmedOut, **responses(401, 403, 409, 422, 429)},
    summary="Confirm email codes with the code sent",
)
def email_confirm(request: HttpRequest, payload: CodeIn) -> Status[dict[str, Any]]:
    """Turn email codes on for the address being set up; it replaces an earlier one.

    The user's other sessions and tokens end; this token stays.  With the
    user's first factor the answer carries their recovery codes, shown this once.
    Needs a recent re-authentication and, once a factor signs you in, a second-factor proof
    (POST /me/step-up).
    """
    token = require_reauthentication(request)
    require_second_factor(request)
    _require_allowed(Method.EMAIL, NO_EMAIL)
    with tokens.sparing(token):
        try:
            authenticator = email_flows.confirm_enrolment(token.user, payload.code, Origin.of(request))
        except email_flows.EnrolmentError as exc:
            message = EMAIL_CONFIRM_MESSAGES.get(
                exc.reason, "That code didn't work. Check it and try again, or ask for a new code."
            )
            raise code_refused(token.user, exc.reason, message) from None
    created = recovery_codes.create_first_set(token.user, Origin.of(request))
    return Status(201, {**factor(authenticator), "recovery_codes": created.formatted if created else None})


@router.delete(
    "/factors/email",
    auth=SECURITY,
    response={204: None, **responses(401, 403, 404)},
    summary="Turn email codes off",
)
def email_remove(request: HttpRequest) -> Status[None]:
    """Turn email codes off (and drop a set-up in progress).  The user's other sessions and tokens end; this token stays.

    Needs a recent re-authentication and, once a factor signs you in, a second-factor proof
    (POST /me/step-up).
    """
    token = require_reauthentication(request)
    require_second_factor(request)
    with tokens.sparing(token):
        removed = email_flows.remove(token.user, Origin.of(request))
    if not removed:
        raise ApiError("not_found", "You have no email codes set up.")
    return Status(204, None)


@router.post(
    "/factors/email-check",
    auth=SECURITY,
    response={200: EmailCheckSentOut, **responses(401, 403, 404, 409, *SEND_ERRORS)},
    summary="Confirm it's me: send a code to one of my addresses before setting up a first factor",
)
def email_check_start(request: HttpRequest, payload: EmailFactorIn) -> dict[str, Any]:
    """Send a code to the address `email_id` (one an administrator put on the account).

    Asked of a user who must enrol and has no factor yet, when the
    administrator turned on `two_factor.enrolment_email_check`: setting up an
    authenticator app or SMS codes answers 403 `email_check_required` until
    this token passed the check.  Calling it again sends a new code (after the
    cooldown: 429 `rate_limited` with `Retry-After`).  A code that could not be
    sent answers 503 `delivery_failed`.  409 `method_unavailable` when no
    check is asked of this user.  Needs a recent re-authentication.
    """
    token = require_reauthentication(request)
    if not email_check.asked_of(token.user):
        raise _not_allowed("No email check is needed: set up a factor directly.")
    try:
        check = email_check.start(token.user, payload.email_id, email_check.token_holder(token.pk), Origin.of(request))
    except email_check.CheckError as exc:
        if exc.reason == "ended":
            raise ended("email check") from None
        raise ApiError("not_found", "No such address on your account.") from None
    except NOT_SENT as exc:
        raise not_sent(exc) from None
    return {"destination": check.destination, "resend_after": email_check.cooldown(check)}


@router.post(
    "/factors/email-check/confirm",
    auth=SECURITY,
    response={200: EmailCheckPassedOut, **responses(401, 403, 422, 429)},
    summary="Confirm it's me with the code sent",
)
def email_check_confirm(request: HttpRequest, payload: CodeIn) -> dict[str, Any]:
    """Pass the check with the code sent to the address; this token may then set up a factor until `passed_until`.

    Needs a recent re-authentication."""
    token = require_reauthentication(request)
    try:
        until = email_check.confirm(token.user, payload.code, email_check.token_holder(token.pk), Origin.of(request))
    except email_check.CheckError as exc:
        if exc.reason == "no_check":
            raise ApiError(
                "invalid_code", "No check is waiting for a code: send one first (POST /api/v1/me/factors/email-check)."
            ) from None
        raise code_refused(
            token.user, exc.reason, "That code didn't work. Check it and try again, or ask for a new code."
        ) from None
    return {"passed_until": until}


@router.post(
    "/factors/sms",
    auth=SECURITY,
    response={200: CodeSentOut, **responses(401, 403, 404, 409, *SEND_ERRORS)},
    summary="Start setting up SMS codes: send a code to one of my phone numbers",
)
def sms_start(request: HttpRequest, payload: PhoneFactorIn) -> dict[str, Any]:
    """Send a confirmation code to the number `phone_id` (one an administrator put on the account).

    Calling it again sends a new code (after the cooldown: 429 `rate_limited`
    with `Retry-After`); another number starts over.  A confirmed SMS factor
    keeps working until the new number is confirmed.  A code that could not be
    sent answers 503 `delivery_failed` and uses up nothing.
    Needs a recent re-authentication and, once a factor signs you in, a second-factor proof
    (POST /me/step-up).
    """
    token = require_reauthentication(request)
    require_second_factor(request)
    _require_allowed(Method.SMS, NO_SMS)
    _require_email_check(token, Method.SMS)
    try:
        pending = sms_flows.start_enrolment(token.user, payload.phone_id, Origin.of(request))
    except sms_flows.EnrolmentError as exc:
        if exc.reason == "ended":
            raise ended(SMS_SET_UP) from None
        raise ApiError("not_found", "No such phone number on your account.") from None
    except NOT_SENT as exc:
        raise not_sent(exc) from None
    return _code_sent(pending, SMS_SET_UP)


@router.post(
    "/factors/sms/confirm",
    auth=SECURITY,
    response={201: FactorConfirmedOut, **responses(401, 403, 409, 422, 429)},
    summary="Confirm SMS codes with the code sent",
)
def sms_confirm(request: HttpRequest, payload: CodeIn) -> Status[dict[str, Any]]:
    """Turn SMS codes on for the number being set up; it replaces an earlier one.

    The user's other sessions and tokens end; this token stays.  With the
    user's first factor the answer carries their recovery codes, shown this once.
    Needs a recent re-authentication and, once a factor signs you in, a second-factor proof
    (POST /me/step-up).
    """
    token = require_reauthentication(request)
    require_second_factor(request)
    _require_allowed(Method.SMS, NO_SMS)
    _require_email_check(token, Method.SMS)
    with tokens.sparing(token):
        try:
            authenticator = sms_flows.confirm(token.user, payload.code, Origin.of(request))
        except sms_flows.EnrolmentError as exc:
            raise code_refused(token.user, exc.reason, sms_flows.enrolment_message(exc.reason)) from None
    created = recovery_codes.create_first_set(token.user, Origin.of(request))
    return Status(201, {**factor(authenticator), "recovery_codes": created.formatted if created else None})


@router.delete(
    "/factors/sms",
    auth=SECURITY,
    response={204: None, **responses(401, 403, 404)},
    summary="Turn SMS codes off",
)
def sms_remove(request: HttpRequest) -> Status[None]:
    """Turn SMS codes off (and drop a set-up in progress).  The user's other sessions and tokens end; this token stays.

    Needs a recent re-authentication and, once a factor signs you in, a second-factor proof
    (POST /me/step-up).
    """
    token = require_reauthentication(request)
    require_second_factor(request)
    with tokens.sparing(token):
        removed = sms_flows.remove(token.user, Origin.of(request))
    if not removed:
        raise ApiError("not_found", "You have no SMS codes set up.")
    return Status(204, None)


@router.get(
    "/recovery-codes",
    auth=READ,
    response={200: RecoveryStatusOut, **responses(401, 403)},
    summary="How many recovery codes are left",
)
def recovery_status(request: HttpRequest) -> dict[str, Any]:
    """Counts only: codes are shown once, when created."""
    state = recovery_codes.status(current_user(request))
    return {
        "exists": state.exists,
        "remaining": state.remaining,
        "total": state.total,
        "created_at": state.created_at,
        "last_used_at": state.last_used_at,
    }


@router.post(
    "/recovery-codes",
    auth=SECURITY,
    response={201: RecoveryCodesOut, **responses(401, 403, 409)},
    summary="Create a new set of recovery codes",
)
def recovery_regenerate(request: HttpRequest) -> Status[dict[str, Any]]:
    """Replace the recovery codes; every earlier code stops working.  Shown once.

    409 `conflict` without a second factor.  Needs a recent re-authentication and, once a factor
    signs you in, a second-factor proof (POST /me/step-up).
    """
    token = require_reauthentication(request)
    require_second_factor(request)
    try:
        created = recovery_codes.regenerate(token.user, Origin.of(request))
    except ValueError:
        raise ApiError("conflict", "Set up a second factor first: recovery codes stand in for one.") from None
    return Status(201, {"codes": created.formatted, "created_at": created.created_at})


@router.get("/tokens", auth=READ, response={200: list[TokenOut], **responses(401, 403)}, summary="My access tokens")
def list_tokens(request: HttpRequest) -> list[dict[str, Any]]:
    """Live sign-in and personal tokens of the caller (never their secrets)."""
    token = current_token(request)
    return [token_out(t, current=token) for t in tokens.live_tokens(token.user)]


@router.post(
    "/tokens",
    auth=SECURITY,
    response={201: TokenCreatedOut, **responses(401, 403, 422)},
    summary="Create a personal access token",
)
def create_token(request: HttpRequest, payload: TokenCreateIn) -> Status[dict[str, Any]]:
    """A token for automation, with the scopes and expiry asked for; the secret is shown once.

    It cannot carry a scope the calling token lacks, nor, when the calling
    token is a personal one, outlive it (422 `invalid_value`).  Needs a
    recent re-authentication and, once a factor signs you in, a second-factor
    proof (POST /me/step-up): a token reaches the API without a second step.
    """
    require_reauthentication(request)
    token = require_second_factor(request)
    issued = tokens.create_personal_token(
        token.user,
        name=payload.name,
        scopes=payload.scopes,
        days=payload.expires_in_days,
        origin=Origin.of(request),
        allowed_scopes=token.scopes,
        # A sign-in token stands for a browser-like session, which may create
        # tokens as the web page does; a personal token may not outlive itself.
        allowed_until=token.expires_at if token.kind == TokenKind.PERSONAL else None,
    )
    return Status(201, {**token_out(issued.token, current=token), "token": issued.secret})


@router.delete(
    "/tokens/{token_id}",
    auth=SECURITY,
    response={204: None, **responses(400, 401, 403, 404)},
    summary="Revoke one of my tokens",
)
def revoke_token(request: HttpRequest, token_id: TokenIdPath) -> Status[None]:
    """End a token of the caller now (this one too, if named)."""
    user: User = current_user(request)
    target: AccessToken | None = tokens.find_live(user, token_id)
    if target is None:
        raise ApiError("not_found", "No such token.")
    tokens.revoke(target, origin=Origin.of(request), actor=user)
    return Status(204, None)
