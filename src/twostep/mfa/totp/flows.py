"""Authenticator-app (TOTP) enrolment, removal and sign-in verification."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

import segno
from django.conf import settings
from django.db import transaction

from twostep.accounts.locking import lock_account
from twostep.accounts.models import User
from twostep.audit.services import Origin, Outcome, record
from twostep.core import clock, rawsql
from twostep.core.crypto import DecryptionError, KeyFileError
from twostep.core.keyring import secret_box
from twostep.core.wording import plural
from twostep.factors import totp
from twostep.mfa.methods import CLOCK_BEHIND, SECRET_UNREADABLE, register
from twostep.mfa.models import Authenticator, Method, PendingLogin
from twostep.usersessions.services import end_sessions

logger = logging.getLogger(__name__)

#: How long a scanned-but-unconfirmed secret stays usable for confirmation.
ENROLMENT_TTL = timedelta(minutes=10)


class EnrolmentError(Exception):
    """The confirmation code did not match the pending secret, or there is none.

    ``device_clock_offset``: for a ``wrong_code`` that the app would show with
    its clock that many seconds off (``totp.device_clock_offset``), else None.
    """

    def __init__(self, reason: str, *, device_clock_offset: int | None = None) -> None:
        super().__init__(reason)
        self.device_clock_offset = device_clock_offset


#: A refused set-up code that fits no clock nearby (``EnrolmentError.device_clock_offset`` is None).
WRONG_CODE = "That code didn't match. Check the time on your phone and enter the current code."


def wrong_code_message(offset: int | None) -> str:
    """What a user whose set-up code was wrong is told: how far off their phone's clock seems, when the code
    fits a clock ``offset`` seconds off (``EnrolmentError.device_clock_offset``), else ``WRONG_CODE``."""
    if offset is None:
        return WRONG_CODE
    size = abs(offset)
    amount = plural((size + 1800) // 3600, "hour") if size >= 3600 else plural(max(1, (size + 30) // 60), "minute")
    when, direction = (f"is due in about {amount}", "fast") if offset > 0 else (f"was due about {amount} ago", "slow")
    return (
        f"That code didn't match now: it {when}, so your phone's clock seems about {amount} {direction}. "
        "Turn on automatic date and time in your phone's settings, then enter the code your app shows."
    )


@dataclass(frozen=True)
class Provisioning:
    """What the user needs to add the account to an authenticator app (shown once)."""

    secret: str
    uri: str
    qr_svg: str
    expires_at: datetime

    @property
    def secret_for_typing(self) -> str:
        """The key in groups of four, as people copy it by hand (apps ignore the spaces)."""
        return " ".join(self.secret[i : i + 4] for i in range(0, len(self.secret), 4))


def _issuer() -> str:
    return settings.CONFIG.two_factor.issuer


def _skew() -> int:
    return settings.CONFIG.two_factor.totp_skew


def provisioning_for(user: User) -> Provisioning:
    """Return the pending secret for ``user``, creating one if none is live.

    The same secret is returned until it is confirmed or expires, so a wrong
    confirmation code never silently replaces what the user scanned.
    """
    now = clock.now()
    box = secret_box()
    with transaction.atomic():
        # Two tabs opening the set-up at once would each find no secret and
        # make one: the second breaks the one-set-up-per-method rule (a server
        # error on PostgreSQL).  Holding the account's row, they take turns
        # and show the same secret.
        lock_account(user.pk, no_key=True)
        Authenticator.objects.filter(
            user=user, method=Method.TOTP, confirmed_at__isnull=True, pending_until__lte=now
        ).delete()
        pending = Authenticator.objects.filter(user=user, method=Method.TOTP, confirmed_at__isnull=True).first()
        if pending is None:
            pending = Authenticator.objects.create(
                user=user,
                method=Method.TOTP,
                secret=box.encrypt(totp.encode_secret(totp.generate_secret())),
                pending_until=now + ENROLMENT_TTL,
            )
    key = totp.decode_secret(box.decrypt(pending.secret))
    uri = totp.key_uri(key, user.username, _issuer())
    svg = segno.make(uri, error="m").svg_inline(
        scale=5, border=4, omitsize=True, title="QR code for your authenticator app"
    )
    expires_at = pending.pending_until or clock.now()
    return Provisioning(totp.encode_secret(key), uri, svg, expires_at)


def confirm(user: User, code: str, origin: Origin, *, keep_session_key: str | None = None) -> Authenticator:
    """Activate the pending secret if ``code`` is current for it.

    The new secret replaces any previous authenticator app in the same
    transaction, so the old one stops working the moment this returns.  The
    confirming code's step is recorded: it cannot be used again to sign in.
    The user's other sessions end.

    Raises:
        EnrolmentError: ``malformed_code`` (not six digits), ``no_pending_secret``
            or ``wrong_code``.
    """
    if not totp.is_well_formed(code):
        raise EnrolmentError("malformed_code")
    now = clock.now()
    with transaction.atomic():
        # Before the new app's row and the old one's: a code's check or a 2FA
        # reset holding the account's row would otherwise wait for them.
        lock_account(user.pk, no_key=True)
        pending = (
            Authenticator.objects.select_for_update()
            .filter(user=user, method=Method.TOTP, confirmed_at__isnull=True, pending_until__gt=now)
            .first()
        )
        if pending is None:
            raise EnrolmentError("no_pending_secret")
        key = totp.decode_secret(secret_box().decrypt(pending.secret))
        at = clock.timestamp()
        step = totp.match_step(key, code, at, skew=_skew())
        offset = None if step is not None else totp.device_clock_offset(key, code, at, skew=_skew())
        if step is not None:
            previous = Authenticator.objects.filter(user=user, method=Method.TOTP, confirmed_at__isnull=False)
            replaced = previous.delete()[0]
            pending.confirmed_at = now
            pending.pending_until = None
            pending.last_step = step
            pending.save(update_fields=["confirmed_at", "pending_until", "last_step"])
            end_sessions(user, except_key=keep_session_key)
    if step is None:
        # Recorded after the block: inside it, the rollback that the raised
        # error causes would take the auth-log entry with it.
        detail = {} if offset is None else {"device_clock_offset": offset}
        record(
            "totp.enrol",
            Outcome.FAILURE,
            origin=origin,
            user=user,
            method=Method.TOTP,
            reason="wrong_code",
            detail=detail,
        )
        raise EnrolmentError("wrong_code", device_clock_offset=offset)
    record(
        "totp.enabled",
        Outcome.SUCCESS,
        origin=origin,
        user=user,
        method=Method.TOTP,
        detail={"replaced_previous": bool(replaced)},
    )
    return pending


def remove(user: User, origin: Origin, *, keep_session_key: str | None = None) -> bool:
    """Turn the user's authenticator app off; return whether one was active.

    A set-up never confirmed goes too, without a word: it never signed
    anyone in, so nothing was turned off (no sessions end, no notice).
    """
    with transaction.atomic():
        lock_account(user.pk, no_key=True)  # before the factor's row, as a code's check
        active = Authenticator.objects.filter(user=user, method=Method.TOTP, confirmed_at__isnull=False).exists()
        Authenticator.objects.filter(user=user, method=Method.TOTP).delete()
        if active:
            end_sessions(user, except_key=keep_session_key)
    if active:
        record("totp.disabled", Outcome.INFO, origin=origin, user=user, method=Method.TOTP)
    return active


class TOTPHandler:
    method = Method.TOTP.value
    verify_template: str | None = None

    def prompt(self, authenticator: Authenticator) -> str:
        return "Enter the 6-digit code from your authenticator app."

    def begin(self, pending: PendingLogin, authenticator: Authenticator, origin: Origin) -> None:
        return None

    def code_delivery(self, pending: PendingLogin, authenticator: Authenticator) -> None:
        return None  # the app makes its own codes

    def verify(self, pending: PendingLogin, authenticator: Authenticator, code: str, now: datetime) -> str | None:
        try:
            key = totp.decode_secret(secret_box().decrypt(authenticator.secret))
        except (DecryptionError, KeyFileError) as exc:
            logger.error(
                "TOTP secret of user %s cannot be decrypted: the encryption keys of this instance (%s) do not "
                "match the ones that encrypted it (%s). Copy encryption.keys from the instance where keys were "
                "last created or rotated; `twostep keys status` on each instance shows its keys.",
                authenticator.user_id,
                settings.ENCRYPTION_KEYS_PATH,
                exc,
            )
            return SECRET_UNREADABLE
        step = totp.match_step(key, code, now.timestamp(), skew=_skew())
        if step is None:
            return "wrong_code"
        # The replay guard: only a step later than the last accepted one
        # passes, decided by one conditional UPDATE so that of concurrent
        # submissions of the same code exactly one wins.
        won = rawsql.execute(
            _replay_guard_statement(), [step, rawsql.prep(Authenticator, "last_used_at", now), authenticator.pk, step]
        )
        if won:
            return None
        last, current = authenticator.last_step or 0, totp.time_step(now.timestamp())
        if step < last and last > current:
            # A right code, older than the last accepted one, which lies in
            # this clock's future: the clock that accepted it was ahead (this
            # one went back, or another instance runs fast).  Refused until
            # the clock passes that step, but not a guess, nor the replay of
            # the accepted code: not counted towards the lock.
            if last > current + _skew():
                logger.warning(
                    "TOTP of user %s last accepted step %s, ahead of the clock (step %s): did the server clock go "
                    "back, or does another instance's clock run fast?",
                    authenticator.user_id,
                    last,
                    current,
                )
            return CLOCK_BEHIND
        return "reused_code"


@cache
def _replay_guard_statement() -> str:
    """Accept ``step`` only when it is later than the last accepted one (hand-written: it runs on every sign-in)."""
    c = rawsql.column
    last_step = c(Authenticator, "last_step")
    return (
        f"UPDATE {rawsql.table(Authenticator)} SET {last_step} = %s, {c(Authenticator, 'last_used_at')} = %s "  # noqa: S608
        f"WHERE {c(Authenticator, 'id')} = %s AND ({last_step} IS NULL OR {last_step} < %s)"
    )


register(TOTPHandler())
