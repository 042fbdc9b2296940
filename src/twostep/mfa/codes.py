"""One-time codes sent by email or SMS: issue, send limits, verification.

Shared by every method that delivers a code (email, SMS) and by the email
check before a first factor (``mfa.email_check``).  The flow is:
``issue`` (checks cooldown and caps, returns the code to deliver) →
deliver → ``mark_sent`` (the code becomes the live one, older codes of the
same binding die) or ``discard`` (delivery failed: nothing is consumed).
Codes are 6 digits from ``secrets``, stored as an HMAC keyed with the
server's secret key, and compared in constant time.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet

from twostep.accounts.locking import lock_account
from twostep.accounts.models import User
from twostep.core import clock
from twostep.core.client import address_group
from twostep.core.crypto import constant_time_equals, keyed_hash
from twostep.core.namedlocks import lock_names
from twostep.mfa.models import Authenticator, EmailCheck, OneTimeCode, PendingLogin

CODE_TTL = timedelta(minutes=10)
MAX_TRIES = 5
COOLDOWN = timedelta(seconds=60)
SEND_WINDOW = timedelta(minutes=15)
MAX_SENDS_PER_WINDOW = 5


class SendRefused(Exception):
    """No code may be sent now.

    Attributes:
        reason: ``cooldown``, ``account_limit``, ``destination_limit`` or
            ``address_limit``.
        retry_after: how long until a send may succeed.
    """

    def __init__(self, reason: str, retry_after: timedelta) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class Ended(Exception):
    """What the code was for ended before it could be issued.

    An enrolment or an email check is a row that another request may delete
    while this one sends: a 2FA reset, a cancelled set-up, or the same set-up
    started again on another address in a second tab.  A sign-in or step-up
    ends when it completes in another tab or its user's sessions are ended.
    The caller tells the user to start again; nothing was sent.
    """


def generate_code() -> str:
    """Six ASCII digits, every value from 000000 to 999999 equally likely."""
    return f"{secrets.randbelow(10**6):06d}"


def _hash(user_id: int, code: str) -> str:
    return keyed_hash(settings.SECRET_KEY.encode(), "one-time-code", f"{user_id}:{code}")


#: The columns that bind a code to what it was sent for; exactly one is set.
_BINDING_COLUMNS = ("pending_login_id", "authenticator_id", "email_check_id")


def _binding_of_ids(*ids: int | None) -> Q:
    """The filter for one binding, from the ids in ``_BINDING_COLUMNS`` order (one set, the others None)."""
    given = [Q(**{column: value}) for column, value in zip(_BINDING_COLUMNS, ids, strict=True) if value is not None]
    if len(given) != 1:
        raise ValueError("a code is bound to exactly one pending sign-in, enrolment or email check")
    return given[0]


def _binding(
    pending: PendingLogin | None, authenticator: Authenticator | None, email_check: EmailCheck | None = None
) -> Q:
    return _binding_of_ids(*(None if bound is None else bound.pk for bound in (pending, authenticator, email_check)))


def _binding_is_open(
    pending: PendingLogin | None, authenticator: Authenticator | None, email_check: EmailCheck | None
) -> bool:
    """Whether what a new code would be for is still there: a set-up or check row, a sign-in not over.

    A sign-in that ended is kept, not deleted (its codes still count against
    the send caps), so for it the row's state decides.
    """
    _binding(pending, authenticator, email_check)  # raises unless exactly one is given
    if pending is not None:
        return PendingLogin.objects.filter(
            pk=pending.pk, completed_at__isnull=True, expires_at__gt=clock.now()
        ).exists()
    bound = authenticator or email_check
    return bound is not None and type(bound).objects.filter(pk=bound.pk).exists()


def _cooldown_scope(
    pending: PendingLogin | None, authenticator: Authenticator | None, email_check: EmailCheck | None
) -> Q:
    """The codes whose sending holds back another for this binding.

    For a sign-in that is every code sent for the same method in the same
    sign-in: switching methods gives the sign-in a new row (``choice.switch``)
    that keeps its start time, and email, authenticator app, email again must
    not be a way around the wait.
    """
    if pending is None:
        return _binding(pending, authenticator, email_check)
    return Q(
        pending_login__user_id=pending.user_id,
        pending_login__created_at=pending.created_at,
        pending_login__method=pending.method,
    )


def _last_sent(scope: Q) -> datetime | None:
    return (
        OneTimeCode.objects.filter(scope, sent_at__isnull=False)
        .order_by("-sent_at")
        .values_list("sent_at", flat=True)
        .first()
    )


def _sent_since(queryset: QuerySet[OneTimeCode], since: datetime) -> list[datetime]:
    # Strictly after ``since``: a send exactly one window old has left it, so
    # waiting the ``retry_after`` that check_send_allowed reports is enough.
    return sorted(t for t in queryset.filter(sent_at__gt=since).values_list("sent_at", flat=True) if t is not None)


def check_send_allowed(
    user: User,
    destination: str,
    *,
    pending: PendingLogin | None = None,
    authenticator: Authenticator | None = None,
    email_check: EmailCheck | None = None,
    ip: str | None = None,
) -> None:
    """Raises SendRefused when the cooldown or a send cap forbids a code now.

    ``ip`` is the client asking (None: no client, e.g. the command line); the
    per-address cap (``security.codes_per_address``) counts what it asked
    for, across accounts.
    """
    now = clock.now()
    last = _last_sent(_cooldown_scope(pending, authenticator, email_check))
    if last is not None and now - last < COOLDOWN:
        raise SendRefused("cooldown", COOLDOWN - (now - last))
    caps = [
        ("account_limit", OneTimeCode.objects.filter(user=user), MAX_SENDS_PER_WINDOW),
        # Whatever its case: a shared mailbox may be on two accounts spelt two ways.
        ("destination_limit", OneTimeCode.objects.filter(destination__iexact=destination), MAX_SENDS_PER_WINDOW),
    ]
    per_address = settings.CONFIG.security.codes_per_address
    if ip and per_address:
        caps.append(("address_limit", OneTimeCode.objects.filter(requested_from=address_group(ip)), per_address))
    since = now - SEND_WINDOW
    for reason, queryset, cap in caps:
        times = _sent_since(queryset, since)
        if len(times) >= cap:
            raise SendRefused(reason, times[-cap] + SEND_WINDOW - now)


def never_sent_to(started: Authenticator | EmailCheck | None) -> str:
    """The destination of a set-up or check none of whose codes reached (or may have reached) the mail
    server or SMS provider, else "": its page must not ask for a code that never went out."""
    if started is None:
        return ""
    scope = _binding(None, started, None) if isinstance(started, Authenticator) else _binding(None, None, started)
    return "" if OneTimeCode.objects.filter(scope, sent_at__isnull=False).exists() else started.destination


def cooldown_remaining(
    *,
    pending: PendingLogin | None = None,
    authenticator: Authenticator | None = None,
    email_check: EmailCheck | None = None,
) -> int:
    """Whole seconds until a new code may be sent for this binding (0 when it may)."""
    last = _last_sent(_cooldown_scope(pending, authenticator, email_check))
    if last is None:
        return 0
    remaining = COOLDOWN - (clock.now() - last)
    return max(0, int(remaining.total_seconds() + 0.999))


def issue(
    user: User,
    method: str,
    destination: str,
    *,
    pending: PendingLogin | None = None,
    authenticator: Authenticator | None = None,
    email_check: EmailCheck | None = None,
    ip: str | None = None,
) -> tuple[OneTimeCode, str]:
    """Create a code for ``destination`` at the request of client ``ip``; return the row and the code to deliver.

    The row is not live until ``mark_sent``.  Checks and creation run under
    a lock on the user's row and locks on the destination and the client's
    address group, so that concurrent requests (for one account, or for
    several accounts sharing an address or asking from one network, on any
    instance) cannot together pass a cap.

    Raises:
        SendRefused: cooldown or a send cap (see ``check_send_allowed``).
        Ended: the enrolment or email check was deleted, or the sign-in
            ended, meanwhile.
    """
    with transaction.atomic():
        # Whoever deletes a set-up or a check holds this lock too, so the row
        # found here stays until the code's row refers to it.
        lock_account(user.pk)
        # The destination and address caps count other accounts' rows, which the
        # account's lock leaves free: queue with whoever sends there, or from there.
        group = address_group(ip) if ip else ""
        lock_names(f"codes to {destination.lower()}", *([f"codes from {group}"] if group else []))
        if not _binding_is_open(pending, authenticator, email_check):
            raise Ended
        check_send_allowed(
            user, destination, pending=pending, authenticator=authenticator, email_check=email_check, ip=ip
        )
        code = generate_code()
        now = clock.now()
        row = OneTimeCode.objects.create(
            user=user,
            method=method,
            destination=destination,
            pending_login=pending,
            authenticator=authenticator,
            email_check=email_check,
            code_hash=_hash(user.pk, code),
            created_at=now,
            # Counted against the caps from the start; cleared by discard().
            sent_at=now,
            expires_at=now + CODE_TTL,
            superseded_at=now,
            requested_from=group,
        )
    return row, code


def carry_over(pending: PendingLogin, destination: str) -> bool:
    """Give ``pending`` the code already sent to ``destination`` earlier in the same sign-in, if it still works.

    Switching methods gives a sign-in a new row (``choice.switch``); switching
    back (email, app, email again) leaves the code the user already holds the
    one to type, instead of sending another or making them wait for the
    resend cooldown.  True when a code was carried over.
    """
    live = (
        OneTimeCode.objects.filter(
            _cooldown_scope(pending, None, None),
            destination=destination,
            sent_at__isnull=False,
            superseded_at__isnull=True,
            consumed_at__isnull=True,
            expires_at__gt=clock.now(),
            failures__lt=MAX_TRIES,
        )
        .exclude(pending_login=pending)
        .order_by("-sent_at")
        .first()
    )
    if live is None:
        return False
    OneTimeCode.objects.filter(pk=live.pk).update(pending_login=pending)
    return True


def mark_sent(row: OneTimeCode) -> None:
    """Make ``row`` the live code of its binding; every older code of it dies."""
    now = clock.now()
    with transaction.atomic():
        binding = _binding_of_ids(row.pending_login_id, row.authenticator_id, row.email_check_id)
        OneTimeCode.objects.filter(binding, superseded_at__isnull=True).exclude(pk=row.pk).update(superseded_at=now)
        OneTimeCode.objects.filter(pk=row.pk).update(superseded_at=None, sent_at=now)


def discard(row: OneTimeCode) -> None:
    """Forget a code whose delivery failed: it was never usable and counts for nothing."""
    OneTimeCode.objects.filter(pk=row.pk).delete()


def verify(
    user_id: int,
    code: str,
    *,
    pending: PendingLogin | None = None,
    authenticator: Authenticator | None = None,
    email_check: EmailCheck | None = None,
) -> str | None:
    """Check and consume ``code`` for its binding; None on success, else the failure reason.

    Reasons: ``expired_code`` (none live, or past its lifetime),
    ``code_exhausted`` (five wrong tries already), ``wrong_code``,
    ``reused_code`` (consumed concurrently).  The fifth wrong try is a real
    try: a right code on it succeeds.  Call inside a transaction.
    """
    now = clock.now()
    live = (
        OneTimeCode.objects.filter(
            _binding(pending, authenticator, email_check),
            user_id=user_id,
            superseded_at__isnull=True,
            consumed_at__isnull=True,
        )
        .order_by("-sent_at")
        .first()
    )
    if live is None or live.expires_at <= now:
        return "expired_code"
    if live.failures >= MAX_TRIES:
        return "code_exhausted"
    if not constant_time_equals(live.code_hash, _hash(user_id, code)):
        OneTimeCode.objects.filter(pk=live.pk).update(failures=F("failures") + 1)
        return "wrong_code"
    used = OneTimeCode.objects.filter(
        pk=live.pk, consumed_at__isnull=True, superseded_at__isnull=True, failures__lt=MAX_TRIES
    ).update(consumed_at=now)
    return None if used else "reused_code"


def mask_email(address: str) -> str:
    """``jane.doe@example.com`` → ``ja•••e@example.com`` (``j•••@`` for a local part of three or fewer).

    Enough to tell two of one's own addresses at one domain apart (the
    recommended set-up: codes to a second address), too little to give a
    stranger the address.
    """
    local, _, domain = address.rpartition("@")
    if not local:
        return address
    if len(local) <= 3:
        return f"{local[:1]}•••@{domain}"
    return f"{local[:2]}•••{local[-1]}@{domain}"


def mask_phone(number: str) -> str:
    """``+15551234567`` → ``+1 ••• ••• 4567`` (country code and last four digits)."""
    import phonenumbers

    try:
        country = str(phonenumbers.parse(number, None).country_code)
    except phonenumbers.NumberParseException:
        country = number[1:2]
    return f"+{country} ••• ••• {number[-4:]}"
