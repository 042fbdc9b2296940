"""Email codes as a second factor: enrolment to one of the user's own addresses, and sign-in.

Codes go only to an address an administrator put on the account
(``accounts.EmailAddress``); users never type one.  The chosen address is
the authenticator's ``destination``; if an admin removes it from the
account, the factor stops working (``is_available``) and no code is sent
anywhere else.  Codes follow ``twostep.mfa.codes``: a failed delivery
consumes nothing and is not a wrong code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction

from twostep.accounts.locking import lock_account
from twostep.accounts.models import EmailAddress, User
from twostep.audit.services import Origin, Outcome, record
from twostep.core import clock
from twostep.core.wording import plural
from twostep.factors.totp import is_well_formed
from twostep.mail import MailDeliveryError, MailUnconfirmed, send_mail
from twostep.mfa import codes, guesses
from twostep.mfa.methods import CodeDelivery, SecurityPanel, register, register_panel
from twostep.mfa.models import Authenticator, EmailCheck, Method, OneTimeCode, PendingLogin, Purpose
from twostep.mfa.throttle import LOCKED_MESSAGE, is_locked
from twostep.usersessions.services import end_sessions

#: How long an address picked for enrolment waits for its confirmation code.
ENROLMENT_TTL = timedelta(minutes=10)
METHOD = Method.EMAIL.value

COULD_NOT_SEND = "We could not send the code. Try again in a moment."


class EnrolmentError(Exception):
    """Enrolment cannot go on; ``reason`` says why (for the log and the page).

    Reasons: ``not_your_address``, ``no_pending``, ``address_removed``,
    ``malformed_code``, ``wrong_code``, ``expired_code``, ``code_exhausted``,
    ``reused_code``; ``throttled`` or ``locked`` when the account's budget of
    wrong codes is spent (at sign-in: the second step is locked).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def refusal_message(refused: codes.SendRefused) -> str:
    """What a user is told when a send cap or the cooldown holds a code back."""
    seconds = max(1, int(refused.retry_after.total_seconds() + 0.999))
    if refused.reason == "cooldown":
        return f"You can ask for a new code in {plural(seconds, 'second')}."
    wait = f"Try again in {plural(max(1, (seconds + 59) // 60), 'minute')}."
    if refused.reason == "address_limit":
        return f"Too many codes were asked for from your network. {wait}"
    where = "this address" if refused.reason == "destination_limit" else "your account"
    return f"Too many codes were sent to {where}. {wait}"


def addresses_of(user: User) -> list[EmailAddress]:
    """The user's addresses, primary first."""
    return list(EmailAddress.objects.filter(user=user).order_by("-is_primary", "email"))


def address_to_offer(addresses: list[EmailAddress], tried: str, otherwise: EmailAddress | None) -> EmailAddress | None:
    """The address to preselect: ``tried`` (a send to it failed), else the first that is not the
    primary (recommended for codes), else ``otherwise``."""
    again = next((a for a in addresses if tried and a.email.lower() == tried.lower()), None)
    return again or next((a for a in addresses if not a.is_primary), otherwise)


def active_factor(user: User) -> Authenticator | None:
    """The user's confirmed email factor, if any."""
    return Authenticator.objects.filter(user=user, method=METHOD, confirmed_at__isnull=False).first()


def owns_address(user_id: int, address: str) -> bool:
    """True when ``address`` is (still) one of the user's addresses."""
    return bool(address) and EmailAddress.objects.filter(user_id=user_id, email__iexact=address).exists()


def is_available(authenticator: Authenticator) -> bool:
    """An email factor works only while its address is on the user's account."""
    return owns_address(authenticator.user_id, authenticator.destination)


def deliver_code(
    user: User,
    destination: str,
    template: str,
    *,
    kind: str,
    origin: Origin,
    pending: PendingLogin | None = None,
    authenticator: Authenticator | None = None,
    email_check: EmailCheck | None = None,
) -> None:
    """Issue a code for its binding, mail it, and make it live; on failure nothing is consumed.

    A message the server received without confirming it counts as sent.

    ``kind`` is the auth-log event of the send (success or failure).

    Raises:
        codes.SendRefused: cooldown or a send cap.
        codes.Ended: the set-up or check was deleted, or the sign-in ended,
            meanwhile (logged; nothing sent).
        MailDeliveryError: the mail server did not take the message (logged with its error).
    """
    try:
        row, code = codes.issue(
            user,
            METHOD,
            destination,
            pending=pending,
            authenticator=authenticator,
            email_check=email_check,
            ip=origin.ip,
        )
    except codes.SendRefused as refused:
        if refused.reason != "cooldown":
            record(kind, Outcome.FAILURE, origin=origin, user=user, method=METHOD, reason=refused.reason)
        raise
    except codes.Ended:
        record(kind, Outcome.FAILURE, origin=origin, user=user, method=METHOD, reason="ended")
        raise
    context: dict[str, Any] = {
        "code": code,
        "name": user.name,
        "username": user.username,
        "minutes": int(codes.CODE_TTL.total_seconds() // 60),
        "requested_at": clock.now().strftime("%Y-%m-%d %H:%M"),
        "ip": origin.ip or "",
    }
    try:
        send_mail(destination, template, context)
    except MailUnconfirmed as exc:
        # The server has the message and may deliver it: the code stays
        # usable and counts as sent, as for an SMS the provider did not
        # confirm.  Discarding it would refuse the code the user receives.
        codes.mark_sent(row)
        detail = {"destination": destination, "unconfirmed": exc.smtp_error}
        record(kind, Outcome.SUCCESS, origin=origin, user=user, method=METHOD, detail=detail)
        return
    except MailDeliveryError as exc:
        codes.discard(row)
        record(
            kind,
            Outcome.FAILURE,
            origin=origin,
            user=user,
            method=METHOD,
            reason="delivery_failed",
            detail={"destination": destination, "error": exc.smtp_error, "message": str(exc)},
        )
        raise
    codes.mark_sent(row)
    record(kind, Outcome.SUCCESS, origin=origin, user=user, method=METHOD, detail={"destination": destination})


# ---------------------------------------------------------------------------
# Enrolment


def pending_enrolment(user: User) -> Authenticator | None:
    """The address waiting for its confirmation code, if any (and not expired)."""
    return (
        Authenticator.objects.filter(user=user, method=METHOD, confirmed_at__isnull=True, pending_until__gt=clock.now())
        .order_by("-created_at")
        .first()
    )


def start_enrolment(user: User, address_id: int, origin: Origin) -> Authenticator:
    """Send a confirmation code to the user's address ``address_id``.

    Choosing another address than the pending one starts over: its codes stop
    working, but still count toward the send limits (see ``OneTimeCode``).
    The current email factor, if any, keeps working until the new address is
    confirmed.

    Raises:
        EnrolmentError: ``not_your_address``, or ``ended`` (the set-up was
            cancelled, reset or moved to another address meanwhile).
        codes.SendRefused: cooldown or a send cap.
        MailDeliveryError: the message could not be delivered.
    """
    address = EmailAddress.objects.filter(user=user, pk=address_id).first()
    if address is None:
        raise EnrolmentError("not_your_address")
    now = clock.now()
    with transaction.atomic():
        # Before the set-up's row: deleting it while another request issues
        # a code for it would leave that code's row pointing at nothing.
        lock_account(user.pk, no_key=True)
        Authenticator.objects.filter(
            user=user, method=METHOD, confirmed_at__isnull=True, pending_until__lte=now
        ).delete()
        pending = Authenticator.objects.filter(user=user, method=METHOD, confirmed_at__isnull=True).first()
        if pending is not None and pending.destination != address.email:
            pending.delete()
            pending = None
        if pending is None:
            pending = Authenticator.objects.create(
                user=user, method=METHOD, destination=address.email, pending_until=now + ENROLMENT_TTL
            )
        else:
            Authenticator.objects.filter(pk=pending.pk).update(pending_until=now + ENROLMENT_TTL)
    try:
        deliver_code(user, address.email, "enrol_code", kind="email.code_sent", origin=origin, authenticator=pending)
    except codes.Ended:
        raise EnrolmentError("ended") from None
    return pending


def resend_enrolment_code(user: User, origin: Origin) -> Authenticator:
    """Send a new confirmation code to the pending address.

    Raises:
        EnrolmentError: ``no_pending``, ``address_removed`` or ``ended``.
        codes.SendRefused: cooldown or a send cap.
        MailDeliveryError: the message could not be delivered.
    """
    pending = pending_enrolment(user)
    if pending is None:
        raise EnrolmentError("no_pending")
    address = EmailAddress.objects.filter(user=user, email__iexact=pending.destination).first()
    if address is None:
        raise EnrolmentError("address_removed")
    return start_enrolment(user, address.pk, origin)


def cancel_enrolment(user: User) -> None:
    """Forget the pending address (the active factor, if any, is untouched)."""
    with transaction.atomic():
        lock_account(user.pk, no_key=True)  # as start_enrolment
        Authenticator.objects.filter(user=user, method=METHOD, confirmed_at__isnull=True).delete()


def confirm_enrolment(user: User, code: str, origin: Origin, *, keep_session_key: str | None = None) -> Authenticator:
    """Turn email codes on for the pending address if ``code`` is the one sent to it.

    The confirmed address replaces any previous one in the same transaction,
    and the user's other sessions end.

    Raises:
        EnrolmentError: ``malformed_code``, ``no_pending``, ``address_removed``,
            ``throttled``, ``locked``, or the code's failure (``wrong_code``,
            ``expired_code``, ``code_exhausted``, ``reused_code``; counted
            against the account).
    """
    if not is_well_formed(code):
        raise EnrolmentError("malformed_code")
    now = clock.now()
    replaced = 0
    with transaction.atomic():
        lock_account(user.pk)  # before the set-up's row, as a 2FA reset
        pending = (
            Authenticator.objects.select_for_update()
            .filter(user=user, method=METHOD, confirmed_at__isnull=True, pending_until__gt=now)
            .first()
        )
        if pending is None:
            reason: str | None = "no_pending"
        elif not owns_address(user.pk, pending.destination):
            reason = "address_removed"
        else:
            # Wrong tries are counted by these UPDATEs and must survive: no
            # exception leaves this block, so nothing is rolled back.
            reason = guesses.check_code(user, origin, lambda: codes.verify(user.pk, code, authenticator=pending))
        if reason is None and pending is not None:
            replaced = Authenticator.objects.filter(user=user, method=METHOD, confirmed_at__isnull=False).delete()[0]
            pending.confirmed_at = now
            pending.pending_until = None
            pending.save(update_fields=["confirmed_at", "pending_until"])
            end_sessions(user, except_key=keep_session_key)
    if reason is not None or pending is None:
        reason = reason or "no_pending"
        record("email.enrol", Outcome.FAILURE, origin=origin, user=user, method=METHOD, reason=reason)
        raise EnrolmentError(reason)
    record(
        "email.enabled",
        Outcome.SUCCESS,
        origin=origin,
        user=user,
        method=METHOD,
        detail={"destination": pending.destination, "replaced_previous": bool(replaced)},
    )
    return pending


def remove(user: User, origin: Origin, *, keep_session_key: str | None = None) -> bool:
    """Turn email codes off; return whether they were on."""
    with transaction.atomic():
        # Before the factor's row: a code's check holding the account's row
        # updates it, and logging trusted browsers' revocation waits for the account's.
        lock_account(user.pk, no_key=True)
        active = Authenticator.objects.filter(user=user, method=METHOD, confirmed_at__isnull=False).exists()
        Authenticator.objects.filter(user=user, method=METHOD).delete()
        if active:
            end_sessions(user, except_key=keep_session_key)
    if active:
        record("email.disabled", Outcome.INFO, origin=origin, user=user, method=METHOD)
    return active


# ---------------------------------------------------------------------------
# Sign-in


def send_login_code(pending: PendingLogin, authenticator: Authenticator, origin: Origin) -> None:
    """Send a (new) code for the pending sign-in to the factor's address.

    A new code invalidates the previous one; the sign-in's failure count is untouched.

    Raises:
        EnrolmentError: ``address_removed`` or ``locked`` (nothing is sent anywhere).
        codes.SendRefused: cooldown or a send cap.
        codes.Ended: the sign-in ended meanwhile, e.g. its user's sessions were
            ended (logged; nothing sent).
        MailDeliveryError: the message could not be delivered (logged).
    """
    if not is_available(authenticator):
        raise EnrolmentError("address_removed")
    user = User.objects.get(pk=pending.user_id)
    if is_locked(user):
        # A locked second step cannot succeed: spend no message on it.
        record("login.code_sent", Outcome.FAILURE, origin=origin, user=user, method=METHOD, reason="locked")
        raise EnrolmentError("locked")
    template = "step_up_code" if pending.purpose == Purpose.STEP_UP else "login_code"
    deliver_code(user, authenticator.destination, template, kind="login.code_sent", origin=origin, pending=pending)


@dataclass(frozen=True)
class CodeStatus:
    """What the second-step page says about the email code of one sign-in."""

    #: A code was sent for this sign-in.
    sent: bool
    #: Seconds before "Send a new code" may be used.
    cooldown: int
    #: Seconds a send cap still holds new codes back (0: none does).
    blocked_for: int
    #: The text shown when no code could be sent, or "".
    problem: str


def code_status(pending: PendingLogin, authenticator: Authenticator) -> CodeStatus:
    """Cooldown and delivery state of ``pending``'s code, for the second-step page."""
    sent = OneTimeCode.objects.filter(pending_login=pending, sent_at__isnull=False).exists()
    cooldown = codes.cooldown_remaining(pending=pending)
    blocked_for, problem = 0, ""
    if is_locked(pending.user):
        return CodeStatus(sent=sent, cooldown=cooldown, blocked_for=0, problem=LOCKED_MESSAGE)
    try:
        codes.check_send_allowed(pending.user, authenticator.destination, pending=pending, ip=pending.ip)
    except codes.SendRefused as refused:
        if refused.reason != "cooldown":
            blocked_for = int(refused.retry_after.total_seconds() + 0.999)
        # Without a code out, even the cooldown is the problem: the user
        # switched back to email within a minute of its last code.
        problem = "" if sent else refusal_message(refused)
    if not sent and not problem:
        # begin() always tries to send; with no code and no cap in the way, the delivery failed.
        problem = COULD_NOT_SEND
    return CodeStatus(sent=sent, cooldown=cooldown, blocked_for=blocked_for, problem=problem)


class EmailHandler:
    """The second-step handler for email codes (see ``twostep.mfa.methods``)."""

    method = METHOD
    verify_template: str | None = "mfa/email/verify_resend.html"

    def prompt(self, authenticator: Authenticator) -> str:
        return f"Enter the code sent to {codes.mask_email(authenticator.destination)}."

    def is_usable(self, authenticator: Authenticator) -> bool:
        return is_available(authenticator)

    def verify_context(self, pending: PendingLogin, authenticator: Authenticator) -> dict[str, Any]:
        status = code_status(pending, authenticator)
        return {"email_code": status, "code_delivery": CodeDelivery(sent=status.sent, problem=status.problem)}

    def code_delivery(self, pending: PendingLogin, authenticator: Authenticator) -> CodeDelivery:
        delivery: CodeDelivery = self.verify_context(pending, authenticator)["code_delivery"]
        return delivery

    def begin(self, pending: PendingLogin, authenticator: Authenticator, origin: Origin) -> None:
        # Never raises: when the address was removed, nothing is sent and the
        # page says to contact an admin; when delivery fails or a cap holds,
        # the pending sign-in stays and the page says so and offers a retry
        # (see code_status).  A sign-in that ended meanwhile is found gone by
        # the next page.  The failure is in the auth log.
        try:
            send_login_code(pending, authenticator, origin)
        except (EnrolmentError, codes.SendRefused, codes.Ended, MailDeliveryError):
            return

    def verify(self, pending: PendingLogin, authenticator: Authenticator, code: str, now: datetime) -> str | None:
        reason = codes.verify(pending.user_id, code, pending=pending)
        if reason is None:
            Authenticator.objects.filter(pk=authenticator.pk).update(last_used_at=now)
        return reason

    def resend(self, pending: PendingLogin, authenticator: Authenticator, origin: Origin) -> None:
        """``methods.resend`` hook; raises as ``send_login_code``."""
        send_login_code(pending, authenticator, origin)


def panel_context(request: Any, user: User) -> dict[str, Any]:
    """What the Security page's email panel shows besides the factor itself."""
    addresses = addresses_of(user)
    factor = active_factor(user)
    return {
        "email_addresses": addresses,
        "email_address_removed": bool(factor and not is_available(factor)),
        "email_factor_is_primary": bool(
            factor and any(a.is_primary and a.email.lower() == factor.destination.lower() for a in addresses)
        ),
    }


register(EmailHandler())
# Registered here, not in views.py: the mfa app's ready() imports this module.
register_panel(SecurityPanel(METHOD, "mfa/email/panel.html", panel_context, order=20))
