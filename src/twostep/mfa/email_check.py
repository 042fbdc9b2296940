"""Proof of an email address before a first factor is set up under a 2FA requirement.

When an administrator requires two-factor authentication, a user who has not
enrolled yet signs in with a password alone and is sent to set up a factor.
Whoever holds a stolen password could do the same and bind *their*
authenticator app or phone to the account, which would then be theirs.  With
``two_factor.enrolment_email_check`` on, such a user must first enter a code
sent to one of the addresses an administrator put on the account; only then
may they set up an authenticator app or SMS codes.  Setting up email codes
needs no separate check: confirming that factor is already such a proof.

A passed check belongs to the browser session or access token that passed it
(its *holder*: ``session_holder`` / ``token_holder``) and lasts
``PASSED_FOR``.  Codes follow ``twostep.mfa.codes`` (hashed, five tries,
cooldown and send caps shared with every other code); a failed delivery
consumes nothing and lets nobody through.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction

from twostep.accounts.locking import lock_account
from twostep.accounts.models import EmailAddress, User
from twostep.audit.services import Origin, Outcome, record
from twostep.core import clock
from twostep.core.runtime import (
    METHOD_REQUIREMENTS,
    Definition,
    SettingError,
    check_bool,
    get_settings,
    parse_bool,
    register_setting,
)
from twostep.factors.totp import is_well_formed
from twostep.mail.config import register_mail_dependent
from twostep.mfa import codes, enforcement, guesses
from twostep.mfa.email.flows import deliver_code
from twostep.mfa.models import EmailCheck, Method

KEY = "two_factor.enrolment_email_check"
#: How long a passed check lets its holder set up a factor.
PASSED_FOR = timedelta(minutes=30)
#: The methods whose set-up waits for the check (email codes prove an address themselves).
CHECKED_METHODS = (Method.TOTP.value, Method.SMS.value)
#: Session key of the browser's random holder name.
SESSION_KEY = "twostep_email_check_holder"


class CheckError(Exception):
    """The check cannot go on; ``reason`` says why (for the log and the page).

    Reasons: ``not_your_address``, ``no_check`` (none started, or its address
    was removed), ``ended`` (started again on another address while a code
    was being sent for it), ``malformed_code``, ``wrong_code``, ``expired_code``,
    ``code_exhausted``, ``reused_code``; ``throttled`` or ``locked`` when the
    account's budget of wrong codes is spent (``twostep.mfa.guesses``).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def unavailable_reason() -> str | None:
    """Why the check cannot be turned on now (no outgoing mail), or None."""
    email_problem = METHOD_REQUIREMENTS.get(Method.EMAIL.value)
    if email_problem is None or email_problem() is None:
        return None
    return "The email check needs outgoing mail: set up an SMTP server on the Outgoing mail page (/admin/email) first."


def _check_setting(value: Any) -> bool:
    enabled = check_bool(value)
    problem = unavailable_reason() if enabled else None
    if problem:
        raise SettingError(problem)
    return enabled


def register_settings() -> None:
    """Declare the runtime setting (called from the mfa app's ``ready``)."""
    register_setting(
        Definition(
            KEY,
            False,
            parse_bool,
            _check_setting,
            "Users who must enrol confirm one of their email addresses with a code before setting up "
            "an authenticator app or SMS codes (needs SMTP).",
        )
    )
    register_mail_dependent("email check", _mail_in_use)


def _mail_in_use() -> str | None:
    if not is_enabled():
        return None
    return (
        "The email check before enrolment is on: turn it off on the Two-step policy page "
        "(/admin/two-factor) before removing the SMTP server."
    )


def is_enabled() -> bool:
    return bool(get_settings(KEY)[KEY])


def session_holder(session: Any) -> str:
    """The holder name of a browser session (a random value kept in the session's server-side data)."""
    nonce = session.get(SESSION_KEY)
    if not isinstance(nonce, str) or not nonce:
        nonce = secrets.token_urlsafe(24)
        session[SESSION_KEY] = nonce
    return f"session:{nonce}"


def token_holder(token_id: int) -> str:
    """The holder name of an API access token."""
    return f"token:{token_id}"


def asked_of(user: User) -> bool:
    """Whether the check is asked of ``user`` at all.

    Only of users whom something requires to enrol (the policy, or a method
    the administrator withdrew) and who have no allowed factor yet, and only
    while the setting is on.
    """
    if not is_enabled():
        return False
    state = enforcement.requirement(user)
    return state.required and not state.enrolled


#: Why a change of the policy was refused: it would leave its own author unable to enrol.
LOCKS_OUT_ITS_AUTHOR = (
    "You have no second step and no email address: with the email check on you could not set up a "
    "second step yourself, and would be kept out until another administrator adds an address. Add an "
    "address to your account first (Users, your name), or set up a second step, or leave the check off."
)


def strands(user: User) -> bool:
    """Whether the check is asked of ``user`` (see ``asked_of``), who has no address to pass it with."""
    return asked_of(user) and not user.email_addresses.exists()


@contextmanager
def sparing(author: User) -> Iterator[None]:
    """Run a change of settings in one transaction that is undone if it strands ``author``.

    An administrator who turns the check on, requires enrolment of their own
    role, or turns 2FA on, while having neither a factor nor an address, could
    not pass the check and would be kept out of the console.

    Raises:
        SettingError: ``LOCKS_OUT_ITS_AUTHOR``; nothing was changed.
    """
    with transaction.atomic():
        stranded_before = strands(author)
        yield
        if strands(author) and not stranded_before:
            raise SettingError(LOCKS_OUT_ITS_AUTHOR)


def needed(user: User, method: str) -> bool:
    """Whether ``user`` must pass a check before setting up ``method`` (see ``asked_of``)."""
    return method in CHECKED_METHODS and asked_of(user)


def passed(user: User, holder: str) -> bool:
    """Whether ``holder`` passed a check for ``user`` within ``PASSED_FOR``."""
    since = clock.now() - PASSED_FOR
    return EmailCheck.objects.filter(user=user, holder=holder, passed_at__gt=since).exists()


def may_set_up(user: User, method: str, holder: str) -> bool:
    """True unless ``user`` must still pass a check before setting up ``method``."""
    return not needed(user, method) or passed(user, holder)


def in_progress(user: User, holder: str) -> EmailCheck | None:
    """The check waiting for its code, if any."""
    return EmailCheck.objects.filter(user=user, holder=holder, passed_at__isnull=True).order_by("-created_at").first()


def start(user: User, address_id: int, holder: str, origin: Origin) -> EmailCheck:
    """Send a code to the user's address ``address_id``; an earlier check of the holder not passed yet ends.

    Choosing the same address again keeps the check and sends a new code
    (the cooldown and send caps apply).

    Raises:
        CheckError: ``not_your_address`` or ``ended``.
        codes.SendRefused: cooldown or a send cap.
        MailDeliveryError: the message could not be delivered (logged).
    """
    address = EmailAddress.objects.filter(user=user, pk=address_id).first()
    if address is None:
        raise CheckError("not_your_address")
    with transaction.atomic():
        # Before the check's row, as codes.issue: see email.flows.start_enrolment.
        lock_account(user.pk, no_key=True)
        check = in_progress(user, holder)
        if check is not None and check.destination.lower() != address.email.lower():
            EmailCheck.objects.filter(user=user, holder=holder, passed_at__isnull=True).delete()
            check = None
        if check is None:
            check = EmailCheck.objects.create(
                user=user, holder=holder, destination=address.email, created_at=clock.now()
            )
    try:
        deliver_code(
            user, address.email, "email_check_code", kind="email_check.code_sent", origin=origin, email_check=check
        )
    except codes.Ended:
        raise CheckError("ended") from None
    return check


def resend(user: User, holder: str, origin: Origin) -> EmailCheck:
    """Send a new code to the address of the holder's check in progress.

    Raises:
        CheckError: ``no_check`` (none in progress, or its address was removed) or ``ended``.
        codes.SendRefused: cooldown or a send cap.
        MailDeliveryError: the message could not be delivered (logged).
    """
    check = in_progress(user, holder)
    address = None if check is None else EmailAddress.objects.filter(user=user, email__iexact=check.destination).first()
    if address is None:
        raise CheckError("no_check")
    return start(user, address.pk, holder, origin)


def confirm(user: User, code: str, holder: str, origin: Origin) -> datetime:
    """Pass the holder's check if ``code`` is the one sent for it; return when the pass ends.

    Raises:
        CheckError: ``malformed_code``, ``no_check``, ``throttled``,
            ``locked``, or the code's failure (``wrong_code``, ``expired_code``,
            ``code_exhausted``, ``reused_code``; counted against the account).
    """
    passed_at = clock.now()
    if not is_well_formed(code):
        reason: str | None = "malformed_code"
        check = None
    else:
        with transaction.atomic():
            lock_account(user.pk)  # before the check's row, as start (which deletes it)
            check = (
                EmailCheck.objects.select_for_update()
                .filter(user=user, holder=holder, passed_at__isnull=True)
                .order_by("-created_at")
                .first()
            )
            if check is None or not EmailAddress.objects.filter(user=user, email__iexact=check.destination).exists():
                reason = "no_check"
            else:
                # Wrong tries are counted by these UPDATEs and must be kept:
                # nothing raises inside this block, so nothing is rolled back.
                reason = guesses.check_code(user, origin, lambda: codes.verify(user.pk, code, email_check=check))
            if reason is None and check is not None:
                EmailCheck.objects.filter(pk=check.pk).update(passed_at=passed_at)
    if reason is not None or check is None:
        reason = reason or "no_check"
        record("email_check", Outcome.FAILURE, origin=origin, user=user, method=Method.EMAIL, reason=reason)
        raise CheckError(reason)
    record("email_check", Outcome.SUCCESS, origin=origin, user=user, detail={"destination": check.destination})
    return passed_at + PASSED_FOR


def cooldown(check: EmailCheck) -> int:
    """Seconds before another code may be sent for ``check``."""
    return codes.cooldown_remaining(email_check=check)
