"""SMS codes as a second factor: enrolment on one of the user's numbers, sign-in codes.

Enrolment: the user picks one of the phone numbers an administrator put on
their account (they never type one), a code goes to it, and the correct code
turns SMS on **for that number**: ``Authenticator.destination`` holds it and
every sign-in code goes there.  If an administrator later removes the number
from the account, the factor stops working (``is_usable``) and the user is
told at sign-in to contact an administrator.

Every code goes out through ``_send_code``: the service's checks (provider,
allowed countries, global daily limit), then ``codes.issue`` (cooldown and
per-account and per-number caps) under a lock, then the provider.  A
delivery that certainly failed discards the code, so nothing is consumed.
One the provider did not confirm (the request went out, the answer did not
come) keeps the code as sent: it works if the message arrives, and it counts
against the cooldown and every cap; the user is told so (``unconfirmed_problem``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models.functions import Coalesce

from twostep.accounts.locking import lock_account
from twostep.accounts.models import PhoneNumber, User
from twostep.audit.models import AuthEvent
from twostep.audit.services import Origin, Outcome, record
from twostep.core import clock
from twostep.factors.totp import is_well_formed
from twostep.mfa import codes, guesses, throttle
from twostep.mfa.methods import CodeDelivery, register
from twostep.mfa.models import Authenticator, Method, OneTimeCode, PendingLogin, Purpose
from twostep.sms import service
from twostep.sms.service import NotSent
from twostep.usersessions.services import end_sessions

#: How long a chosen-but-unconfirmed number waits for its code.
ENROLMENT_TTL = timedelta(minutes=10)


class EnrolmentError(Exception):
    """Enrolment cannot go on; ``reason`` is for the auth log and picks the user's message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


ENROLMENT_MESSAGES = {
    "unknown_number": "Choose one of the phone numbers on your account.",
    "no_pending": "That code has expired. Send a new code.",
    "number_removed": "That phone number is no longer on your account. Choose another one.",
    "ended": "Your SMS set-up ended while the code was being sent (it was turned off or reset): nothing was sent. Choose a number to start again.",
    **guesses.REFUSALS,
}


def enrolment_message(reason: str) -> str:
    """What the user is told when a confirmation code is refused."""
    return ENROLMENT_MESSAGES.get(reason, "That code didn't work. Check it and try again, or send a new code.")


# ---------------------------------------------------------------------------
# Messages


def _webotp_line(code: str) -> str:
    # The origin-bound one-time-code line (WebOTP): browsers offer the code
    # only on this site, which blunts phishing pages that ask for it.
    public = settings.CONFIG.server.public_url
    if not public.startswith("https://"):
        return ""
    host = public.removeprefix("https://").split("/", 1)[0]
    return f"\n\n@{host} #{code}"


def sign_in_body(code: str) -> str:
    issuer = settings.CONFIG.two_factor.issuer
    return f"{issuer}: your sign-in code is {code}. It expires in 10 minutes. Never share it.{_webotp_line(code)}"


def step_up_body(code: str) -> str:
    issuer = settings.CONFIG.two_factor.issuer
    return (
        f"{issuer}: your code to confirm a change to your sign-in security is {code}. "
        f"It expires in 10 minutes. Never share it.{_webotp_line(code)}"
    )


def enrolment_body(code: str) -> str:
    issuer = settings.CONFIG.two_factor.issuer
    return f"{issuer}: your code to turn on SMS sign-in is {code}. It expires in 10 minutes.{_webotp_line(code)}"


# ---------------------------------------------------------------------------
# Sending


def _refused(user: User, number: str, purpose: str, origin: Origin, exc: NotSent) -> None:
    detail: dict[str, Any] = {"to": service.mask(number), "purpose": purpose}
    if exc.retry_after is not None:
        detail["retry_after"] = int(exc.retry_after.total_seconds() + 0.999)
    record(
        "sms.not_sent", Outcome.FAILURE, origin=origin, user=user, method=Method.SMS, reason=exc.reason, detail=detail
    )


def _seconds_it_works(row: OneTimeCode, pending: PendingLogin | None) -> int:
    """How long the code of ``row`` works from now: its own lifetime, or its sign-in's if that ends first."""
    ends = min(row.expires_at, pending.expires_at) if pending is not None else row.expires_at
    return max(1, math.ceil((ends - clock.now()).total_seconds()))


def _send_code(
    user: User,
    number: str,
    body: Any,
    *,
    purpose: str,
    origin: Origin,
    pending: PendingLogin | None = None,
    authenticator: Authenticator | None = None,
) -> None:
    """Create a code bound to ``pending`` or ``authenticator`` and send ``body(code)`` to ``number``.

    Returns normally when the provider accepted the message, and also when
    it did not confirm it (``unconfirmed_problem`` then says so).

    Raises:
        NotSent: a limit refused it (nothing sent) or the provider certainly
            did not send it (the code is discarded); the auth log says which.
        codes.Ended: the enrolment was deleted meanwhile (logged; nothing sent).
    """
    try:
        service.preflight(number)
        with transaction.atomic():
            service.lock_for_sending()
            service.check_daily_limit()
            row, code = codes.issue(
                user, Method.SMS, number, pending=pending, authenticator=authenticator, ip=origin.ip
            )
    except codes.SendRefused as refused:
        exc = NotSent(refused.reason, refused.retry_after)
        _refused(user, number, purpose, origin, exc)
        raise exc from None
    except NotSent as exc:
        _refused(user, number, purpose, origin, exc)
        raise
    except codes.Ended:
        _refused(user, number, purpose, origin, NotSent("ended"))
        raise
    try:
        service.deliver(
            number,
            body(code),
            purpose=purpose,
            origin=origin,
            user=user,
            secret=code,
            code_id=row.pk,
            valid_for=_seconds_it_works(row, pending),
        )
    except service.Unconfirmed:
        # It may have gone out: the code stays usable and counts like a sent
        # one.  Discarding it would waste the code the user may receive and
        # would let anyone with the password send message after message, past
        # the cooldown and every cap, for as long as the provider is slow.
        codes.mark_sent(row)
    except NotSent:
        codes.discard(row)
        raise
    else:
        codes.mark_sent(row)


def _retire_codes(authenticator: Authenticator) -> None:
    """Unbind an authenticator's codes before it is deleted or re-pointed.

    The rows stay (dead) so that they still count against the send caps and
    the daily limit: deleting them would hand out fresh allowances.
    """
    OneTimeCode.objects.filter(authenticator=authenticator).update(
        authenticator=None, superseded_at=Coalesce("superseded_at", clock.now())
    )


def _live_code(
    *, pending: PendingLogin | None = None, authenticator: Authenticator | None = None
) -> OneTimeCode | None:
    bound = {"pending_login": pending} if pending is not None else {"authenticator": authenticator}
    return (
        OneTimeCode.objects.filter(
            **bound, superseded_at__isnull=True, consumed_at__isnull=True, expires_at__gt=clock.now()
        )
        .order_by("-sent_at")
        .first()
    )


def _is_unconfirmed(code: OneTimeCode) -> bool:
    # The auth log is where the outcome of a delivery is kept (``deliver``
    # records the code's row id with it); the code row has no column for it.
    return AuthEvent.objects.filter(
        user_id=code.user_id, kind="sms.unconfirmed", created_at__gte=code.created_at, detail__code_id=code.pk
    ).exists()


def unconfirmed_problem(*, pending: PendingLogin | None = None, authenticator: Authenticator | None = None) -> str:
    """The user's message when the live code went to a provider that did not confirm it; "" otherwise.

    The code is the live one of the sign-in ``pending`` or of the enrolment
    ``authenticator``; the message says when a new one may be asked for.
    """
    live = _live_code(pending=pending, authenticator=authenticator)
    if live is None or not _is_unconfirmed(live):
        return ""
    return service.unconfirmed_message(codes.cooldown_remaining(pending=pending, authenticator=authenticator))


def has_number(user_id: int, number: str) -> bool:
    """True while ``number`` is one of the user's phone numbers."""
    return PhoneNumber.objects.filter(user_id=user_id, number=number).exists()


# ---------------------------------------------------------------------------
# Enrolment


def phone_numbers(user: User) -> list[PhoneNumber]:
    """The numbers an administrator put on the account, primary first."""
    return list(user.phone_numbers.order_by("-is_primary", "number"))


def pending_enrolment(user: User) -> Authenticator | None:
    """The number being confirmed, if its enrolment has not expired."""
    return Authenticator.objects.filter(
        user=user, method=Method.SMS, confirmed_at__isnull=True, pending_until__gt=clock.now()
    ).first()


def active_factor(user: User) -> Authenticator | None:
    return Authenticator.objects.filter(user=user, method=Method.SMS, confirmed_at__isnull=False).first()


def start_enrolment(user: User, phone_id: int, origin: Origin) -> Authenticator:
    """Point the user's SMS enrolment at their phone number ``phone_id`` and send it a code.

    The enrolment is kept even when sending fails, so the page can offer to
    send again.  An earlier code for another number stops working.  A
    message the provider did not confirm counts as sent (see ``_send_code``).

    Raises:
        EnrolmentError: ``unknown_number`` (not one of the user's numbers),
            ``ended`` (a 2FA reset or turning SMS off removed the set-up meanwhile).
        NotSent: the code was not sent (limits, provider).
    """
    phone = PhoneNumber.objects.filter(user=user, pk=phone_id).first()
    if phone is None:
        raise EnrolmentError("unknown_number")
    now = clock.now()
    with transaction.atomic():
        # Before the set-up's row and its codes': a 2FA reset detaches the codes,
        # then deletes the set-up, holding the account's row.
        lock_account(user.pk, no_key=True)
        pending = (
            Authenticator.objects.select_for_update()
            .filter(user=user, method=Method.SMS, confirmed_at__isnull=True)
            .first()
        )
        if pending is None:
            pending = Authenticator.objects.create(
                user=user, method=Method.SMS, destination=phone.number, pending_until=now + ENROLMENT_TTL
            )
        else:
            if pending.destination != phone.number:
                # A code sent to the previous number must not confirm this one.
                OneTimeCode.objects.filter(authenticator=pending, superseded_at__isnull=True).update(superseded_at=now)
            pending.destination = phone.number
            pending.pending_until = now + ENROLMENT_TTL
            pending.save(update_fields=["destination", "pending_until"])
    _send_enrolment_code(user, pending, origin)
    return pending


def resend_enrolment_code(user: User, origin: Origin) -> Authenticator:
    """Send a new code to the number being confirmed.

    Raises:
        EnrolmentError: ``no_pending``, ``number_removed`` or ``ended``.
        NotSent: see ``start_enrolment``.
    """
    pending = pending_enrolment(user)
    if pending is None:
        raise EnrolmentError("no_pending")
    if not has_number(user.pk, pending.destination):
        raise EnrolmentError("number_removed")
    Authenticator.objects.filter(pk=pending.pk).update(pending_until=clock.now() + ENROLMENT_TTL)
    _send_enrolment_code(user, pending, origin)
    return pending


def _send_enrolment_code(user: User, pending: Authenticator, origin: Origin) -> None:
    try:
        _send_code(user, pending.destination, enrolment_body, purpose="enrol", origin=origin, authenticator=pending)
    except codes.Ended:
        raise EnrolmentError("ended") from None


def cancel_enrolment(user: User) -> None:
    """Drop the number being confirmed (its codes stop working; the row stays for the caps)."""
    now = clock.now()
    for pending in Authenticator.objects.filter(user=user, method=Method.SMS, confirmed_at__isnull=True):
        OneTimeCode.objects.filter(authenticator=pending, superseded_at__isnull=True).update(superseded_at=now)
        Authenticator.objects.filter(pk=pending.pk).update(pending_until=now)


def confirm(user: User, code: str, origin: Origin, *, keep_session_key: str | None = None) -> Authenticator:
    """Turn SMS on for the number being confirmed if ``code`` is the one sent to it.

    It replaces any earlier SMS number in the same transaction; the user's
    other sessions end.

    Raises:
        EnrolmentError: ``no_pending``, ``number_removed``, ``throttled``,
            ``locked``, or a code failure (``malformed_code``, ``wrong_code``,
            ``expired_code``, ``code_exhausted``; counted against the account).
    """
    now = clock.now()
    reason: str | None = None
    replaced: list[Authenticator] = []
    with transaction.atomic():
        lock_account(user.pk)  # before the set-up's row, as a 2FA reset
        pending = (
            Authenticator.objects.select_for_update()
            .filter(user=user, method=Method.SMS, confirmed_at__isnull=True, pending_until__gt=now)
            .first()
        )
        if pending is None:
            reason = "no_pending"
        elif not has_number(user.pk, pending.destination):
            reason = "number_removed"
        elif not is_well_formed(code):
            reason = "malformed_code"
        else:
            # Failures counted here must survive: decide inside, raise outside.
            reason = guesses.check_code(user, origin, lambda: codes.verify(user.pk, code, authenticator=pending))
        if reason is None and pending is not None:
            replaced = list(Authenticator.objects.filter(user=user, method=Method.SMS, confirmed_at__isnull=False))
            for old in replaced:
                _retire_codes(old)
                old.delete()
            pending.confirmed_at = now
            pending.pending_until = None
            pending.save(update_fields=["confirmed_at", "pending_until"])
            end_sessions(user, except_key=keep_session_key)
    if reason is not None or pending is None:
        record("sms.enrol", Outcome.FAILURE, origin=origin, user=user, method=Method.SMS, reason=reason or "no_pending")
        raise EnrolmentError(reason or "no_pending")
    record(
        "sms.enabled",
        Outcome.SUCCESS,
        origin=origin,
        user=user,
        method=Method.SMS,
        detail={"to": service.mask(pending.destination), "replaced_previous": bool(replaced)},
    )
    return pending


def remove(user: User, origin: Origin, *, keep_session_key: str | None = None) -> bool:
    """Turn SMS codes off for the user; return whether they were on."""
    with transaction.atomic():
        lock_account(user.pk, no_key=True)  # before the factor's row and its codes', as a code's check
        factors = list(Authenticator.objects.filter(user=user, method=Method.SMS))
        active = any(factor.confirmed_at is not None for factor in factors)
        for factor in factors:
            _retire_codes(factor)
            factor.delete()
        if active:
            end_sessions(user, except_key=keep_session_key)
    if active:
        record("sms.disabled", Outcome.INFO, origin=origin, user=user, method=Method.SMS)
    return active


# ---------------------------------------------------------------------------
# Sign-in


def send_sign_in_code(pending: PendingLogin, authenticator: Authenticator, origin: Origin) -> None:
    """Send a (new) sign-in code for ``pending`` to the factor's number.

    A message the provider did not confirm counts as sent (see ``_send_code``).

    Raises:
        NotSent: ``destination_removed``, ``locked``, a limit, or a provider failure.
        codes.Ended: the sign-in ended meanwhile, e.g. its user's sessions were
            ended (logged; nothing sent).
    """
    user = User.objects.get(pk=pending.user_id)
    number = authenticator.destination
    try:
        if not has_number(user.pk, number):
            raise NotSent("destination_removed")
        if throttle.is_locked(user):
            # A locked second step cannot succeed: spend no message on it.
            raise NotSent("locked")
    except NotSent as exc:
        _refused(user, number, pending.purpose, origin, exc)
        raise
    body = step_up_body if pending.purpose == Purpose.STEP_UP else sign_in_body
    _send_code(user, number, body, purpose=pending.purpose, origin=origin, pending=pending)


def has_live_code(pending: PendingLogin) -> bool:
    return _live_code(pending=pending) is not None


@dataclass(frozen=True)
class SignInState:
    """What the second-step page shows about the SMS code of one pending sign-in."""

    sent_to: str
    code_sent: bool
    cooldown: int
    problem: str


def _why_no_code(pending: PendingLogin, number: str) -> NotSent:
    user = User.objects.get(pk=pending.user_id)
    if throttle.is_locked(user):
        return NotSent("locked")
    try:
        service.preflight(number)
        codes.check_send_allowed(user, number, pending=pending, ip=pending.ip)
    except NotSent as exc:
        return exc
    except codes.SendRefused as refused:
        return NotSent(refused.reason, refused.retry_after)
    # Everything would allow a send now, so the last one failed at the provider.
    return NotSent("delivery_failed")


def sign_in_state(pending: PendingLogin, authenticator: Authenticator) -> SignInState:
    """Whether a code is out for ``pending``, how long until another may be sent, and any problem.

    A code the provider did not confirm counts as out (it may arrive), with
    the problem saying so.
    """
    live = _live_code(pending=pending)
    cooldown = codes.cooldown_remaining(pending=pending)
    if live is None:
        problem = _why_no_code(pending, authenticator.destination).user_message
    elif _is_unconfirmed(live):
        problem = service.unconfirmed_message(cooldown)
    else:
        problem = ""
    return SignInState(
        sent_to=service.mask(authenticator.destination),
        code_sent=live is not None,
        cooldown=cooldown,
        problem=problem,
    )


class SMSHandler:
    method = Method.SMS.value
    verify_template: str | None = "mfa/sms/verify_resend.html"

    def prompt(self, authenticator: Authenticator) -> str:
        return f"Enter the code sent to {service.mask(authenticator.destination)}"

    def begin(self, pending: PendingLogin, authenticator: Authenticator, origin: Origin) -> None:
        # A failed send does not end the sign-in: the second-step page says
        # what went wrong and offers to send again (see sign_in_state).  A
        # sign-in that ended meanwhile is found gone by the next page.
        try:
            send_sign_in_code(pending, authenticator, origin)
        except (NotSent, codes.Ended):
            return None

    def verify(self, pending: PendingLogin, authenticator: Authenticator, code: str, now: datetime) -> str | None:
        if not has_number(authenticator.user_id, authenticator.destination):
            return "method_unavailable"
        reason = codes.verify(pending.user_id, code, pending=pending)
        if reason is None:
            Authenticator.objects.filter(pk=authenticator.pk).update(last_used_at=now)
        return reason

    def is_usable(self, authenticator: Authenticator) -> bool:
        """False once the factor's number is no longer on the account."""
        return has_number(authenticator.user_id, authenticator.destination)

    def verify_context(self, pending: PendingLogin, authenticator: Authenticator) -> dict[str, Any]:
        state = sign_in_state(pending, authenticator)
        return {"sms": state, "code_delivery": CodeDelivery(sent=state.code_sent, problem=state.problem)}

    def code_delivery(self, pending: PendingLogin, authenticator: Authenticator) -> CodeDelivery:
        delivery: CodeDelivery = self.verify_context(pending, authenticator)["code_delivery"]
        return delivery

    def resend(self, pending: PendingLogin, authenticator: Authenticator, origin: Origin) -> None:
        """``methods.resend`` hook; raises as ``send_sign_in_code``."""
        send_sign_in_code(pending, authenticator, origin)


register(SMSHandler())
