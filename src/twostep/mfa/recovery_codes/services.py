"""Recovery codes: creating a set, counting what is left, and signing in with one.

A set of ten codes is created with the user's first factor (shown once on
the Security page, see ``views``) and replaced as a whole when the user asks
for new codes.  Each code works once: it is spent by one conditional
``UPDATE``, so of concurrent submissions of the same code exactly one wins.
A wrong code counts against the same per-account failure policy as a wrong
TOTP, email or SMS code (``mfa.throttle``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Q

from twostep.accounts.locking import lock_account
from twostep.accounts.models import User
from twostep.audit.services import Origin, Outcome, record
from twostep.core import clock
from twostep.core.crypto import keyed_hash
from twostep.factors import recovery
from twostep.mfa import throttle
from twostep.mfa.login import SecondStepError, count_failure, event_of, is_live, spend_a_try
from twostep.mfa.models import Authenticator, PendingLogin, RecoveryCode

#: The ``method`` recorded in the auth log for recovery-code attempts.
METHOD = "recovery_code"
#: At or below this many unused codes the Security page suggests new ones.
LOW = 3


@dataclass(frozen=True)
class NewCodes:
    """A freshly created set, in the only form that ever holds the codes in clear."""

    codes: list[str]
    created_at: datetime

    @property
    def formatted(self) -> list[str]:
        return [recovery.format_code(code) for code in self.codes]

    def as_text(self, user: User) -> str:
        return recovery.as_text(
            self.codes,
            account=user.username,
            issuer=settings.CONFIG.two_factor.issuer,
            created=self.created_at.strftime("%Y-%m-%d %H:%M UTC"),
        )


@dataclass(frozen=True)
class Status:
    """What the Security page and the API say about a user's codes."""

    #: The user has a set (possibly used up).
    exists: bool
    remaining: int
    total: int
    created_at: datetime | None
    last_used_at: datetime | None

    @property
    def low(self) -> bool:
        return self.exists and self.remaining <= LOW


def _hash(user_id: int, code: str) -> str:
    # A fast keyed hash is enough here, unlike for passwords: each code has
    # 80 random bits (not a human choice), so even with the database *and*
    # the server's secret key an attacker faces ~2^77 HMACs per user, far
    # beyond reach; without the key (the key file is not in the database)
    # a stolen table is useless.  The user id in the message acts as a salt,
    # so equal codes of two users never share a hash.
    return keyed_hash(settings.SECRET_KEY.encode(), "recovery-code", f"{user_id}:{code}")


def status(user: User) -> Status:
    """Counts for ``user``'s current set, in one query."""
    row = RecoveryCode.objects.filter(user_id=user.pk).aggregate(
        total=Count("pk"),
        remaining=Count("pk", filter=Q(used_at__isnull=True)),
        created_at=Max("created_at"),
        last_used_at=Max("used_at"),
    )
    return Status(
        exists=bool(row["total"]),
        remaining=int(row["remaining"]),
        total=int(row["total"]),
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
    )


def remaining(user_id: int) -> int:
    """How many of the user's codes are still unused."""
    return RecoveryCode.objects.filter(user_id=user_id, used_at__isnull=True).count()


def _has_factor(user_id: int) -> bool:
    return Authenticator.objects.filter(user_id=user_id, confirmed_at__isnull=False).exists()


def _replace(user: User, now: datetime) -> list[str]:
    codes = recovery.generate_set()
    RecoveryCode.objects.filter(user_id=user.pk).delete()
    RecoveryCode.objects.bulk_create(
        RecoveryCode(user_id=user.pk, code_hash=_hash(user.pk, code), created_at=now) for code in codes
    )
    return codes


def regenerate(user: User, origin: Origin) -> NewCodes:
    """Replace the user's codes with a new set; every earlier code stops working at once.

    Callers check the fresh password first.  The user is notified by email
    (the ``recovery_codes.generated`` event).

    Raises:
        ValueError: the user has no second factor, so codes would protect nothing.
    """
    now = clock.now()
    with transaction.atomic():
        # One set per user even when two requests race: they queue on the user row.
        lock_account(user.pk)
        if not _has_factor(user.pk):
            raise ValueError("no second factor")
        codes = _replace(user, now)
    record("recovery_codes.generated", Outcome.SUCCESS, origin=origin, user=user, detail={"count": len(codes)})
    return NewCodes(codes, now)


def create_first_set(user: User, origin: Origin) -> NewCodes | None:
    """Create the user's codes if they have a factor and no codes yet; None otherwise.

    This is how codes come "with the first factor": the Security page (and
    the API's factor confirmation) call it right after enrolment, so the
    codes are created and shown once in the same response.  Calling it again
    returns None: codes are never shown twice.
    """
    now = clock.now()
    with transaction.atomic():
        lock_account(user.pk)
        if RecoveryCode.objects.filter(user_id=user.pk).exists() or not _has_factor(user.pk):
            return None
        codes = _replace(user, now)
    record("recovery_codes.created", Outcome.SUCCESS, origin=origin, user=user, detail={"count": len(codes)})
    return NewCodes(codes, now)


def discard(user_id: int) -> int:
    """Delete all the user's codes (their last factor went, or an admin reset 2FA); return how many."""
    deleted, _ = RecoveryCode.objects.filter(user_id=user_id).delete()
    return int(deleted)


def consume(user_id: int, typed: str, now: datetime) -> str | None:
    """Spend the code ``typed`` of ``user_id``; None on success, else why not.

    Reasons: ``malformed_code`` (cannot be a code), ``wrong_code`` (not one
    of the user's), ``reused_code`` (already spent, possibly a moment ago by
    a concurrent request).
    """
    code = recovery.normalise(typed)
    if code is None:
        return "malformed_code"
    code_hash = _hash(user_id, code)
    # The single-use guard: one conditional UPDATE, so of concurrent
    # submissions of the same code exactly one changes the row.
    spent = RecoveryCode.objects.filter(user_id=user_id, code_hash=code_hash, used_at__isnull=True).update(used_at=now)
    if spent:
        return None
    return "reused_code" if RecoveryCode.objects.filter(user_id=user_id, code_hash=code_hash).exists() else "wrong_code"


def sign_in(pending: PendingLogin, typed: str, origin: Origin) -> tuple[User, int]:
    """Complete ``pending`` with a recovery code; return the user and how many codes are left.

    The code and the pending sign-in are spent in one transaction.  A right
    code also lifts a second-step lock: that is how a user recovers without
    an administrator.  While the account is locked, each wrong code makes it
    wait the longest delay before the next try; otherwise wrong codes count
    like any wrong second-step code (the growing delay, then the lock).  Text
    that cannot be a recovery code spends one of the sign-in's tries only.

    Raises:
        SecondStepError: ``throttled``, ``expired_login``, ``malformed_code``,
            ``wrong_code`` or ``reused_code``.
    """
    now = clock.now()
    with transaction.atomic():
        # The account's row is locked for the whole check, as for other
        # codes: parallel guesses queue, and each sees the wait the previous
        # one set.
        user = User.objects.select_for_update().get(pk=pending.user_id)
        locked = user.second_step_locked_at is not None
        reason = _spend(user, pending, typed, now)
        if reason == "malformed_code":
            # No guess at a code, so not the account's (nor a wait under a lock);
            # but the sign-in's own tries, as for other codes (login._attempt).
            spend_a_try(pending)
        elif reason not in (None, "throttled", "expired_login"):
            _count_failure(user, pending, origin, locked, now)
    if reason is None:
        if locked:
            throttle.unlock(user)
            record("second_step.unlocked", Outcome.INFO, origin=origin, user=user, reason="recovery_code")
        else:
            throttle.register_success(user.pk)
        left = remaining(user.pk)
        record(
            "recovery_codes.used", Outcome.SUCCESS, origin=origin, user=user, method=METHOD, detail={"remaining": left}
        )
        return user, left
    _record_failure(user, pending, origin, reason)
    raise SecondStepError(reason)


def _spend(user: User, pending: PendingLogin, typed: str, now: datetime) -> str | None:
    """Check and spend the code and the pending sign-in (inside ``sign_in``'s transaction); None or the reason."""
    if user.second_step_blocked_until is not None and user.second_step_blocked_until > now:
        return "throttled"
    # Gone when the user's sessions were ended meanwhile (mfa.services.end_pending_sign_ins).
    fresh = PendingLogin.objects.select_related("user").filter(pk=pending.pk).first()
    with transaction.atomic():
        reason = "expired_login" if fresh is None or not is_live(fresh) else consume(user.pk, typed, now)
        if reason is None:
            completed = PendingLogin.objects.filter(pk=pending.pk, completed_at__isnull=True).update(completed_at=now)
            if not completed:
                # Another request finished this sign-in first: keep the code unspent.
                transaction.set_rollback(True)
                reason = "expired_login"
    return reason


def _count_failure(user: User, pending: PendingLogin, origin: Origin, locked: bool, now: datetime) -> None:
    count_failure(user, pending, origin, now)
    if locked:
        # The lock stays, and recovery codes are the way out of it; but
        # one guess per longest delay keeps them from being a guessing channel.
        User.objects.filter(pk=user.pk).update(second_step_blocked_until=now + throttle.MAX_DELAY)


def _record_failure(user: User, pending: PendingLogin, origin: Origin, reason: str) -> None:
    record(event_of(pending), Outcome.FAILURE, origin=origin, user=user, method=METHOD, reason=reason)


def on_sessions_ended(sender: object, user: object, **kwargs: object) -> None:
    """Receiver of ``usersessions.services.sessions_ended``: when the user's last factor went
    (removed, or an admin reset 2FA), their recovery codes go too; a new first factor brings a new set."""
    user_id = getattr(user, "pk", None)
    if user_id is not None and not _has_factor(user_id):
        discard(user_id)
