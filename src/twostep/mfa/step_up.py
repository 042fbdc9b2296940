"""A second factor proven again before a change to the second step itself.

A password (and an open session or token) must not be enough to undo what
the second step protects: whoever had them could turn the factors off, add
their own phone, or print themselves new recovery codes.  So turning a
factor on, off or to a new address or number, and new recovery codes, need
a code of one of the user's factors (or a recovery code) as well as a fresh
password, whenever a factor is what signs the user in.

A step-up is a pending second step of the signed-in user's own, with purpose
``step_up``: the same codes, send limits, failure counts and locks as at
sign-in, under its own auth-log event (``reauthenticate.second_step``).  Only
the browser session or API client that began it holds its token, and it can
never complete a sign-in (``login.resolve`` keeps the purposes apart).

The pages keep the proof in the session, the API on the access token; both
for ``security.reauth_max_age`` seconds, as the password.
"""

from __future__ import annotations

from twostep.accounts.models import User
from twostep.audit.services import Origin
from twostep.mfa import login as second_step
from twostep.mfa.login import SecondStepError
from twostep.mfa.models import Authenticator, PendingLogin, Purpose
from twostep.mfa.policy import login_authenticators
from twostep.mfa.recovery_codes import services as recovery_codes

__all__ = [
    "SecondStepError",
    "begin",
    "confirm",
    "confirm_recovery_code",
    "ended_unproven",
    "factors",
    "needed",
    "resolve",
]


def factors(user: User) -> list[Authenticator]:
    """The factors that may confirm a change: those that sign ``user`` in now, the default first."""
    return login_authenticators(user.pk)


def needed(user: User) -> bool:
    """Whether a change to ``user``'s second step needs a code first.

    Only when a factor signs them in: with none (no factor yet, or 2FA
    off), the password is all that signs them in, and all that is asked.
    """
    return bool(factors(user))


def begin(user: User, origin: Origin, method: str | None = None, *, holder: str = "") -> tuple[PendingLogin, str]:
    """Open a step-up for ``user`` with ``method`` (default: their default factor); return it and its token.

    Email and SMS send their code now; a failed send leaves the step-up open
    (its state says why no code is out, and a new code may be asked for).
    ``holder``: the access token that alone may answer it, for the API (the
    pages keep the token in the session, which is bound to its browser).

    Raises:
        SecondStepError: ``method_unavailable`` (not one of ``factors(user)``).
    """
    usable = factors(user)
    factor = usable[0] if method is None and usable else next((f for f in usable if f.method == method), None)
    if factor is None:
        raise SecondStepError("method_unavailable")
    return second_step.start(user, factor, origin, purpose=Purpose.STEP_UP, holder=holder)


def resolve(token: str | None, user: User, *, holder: str = "") -> PendingLogin | None:
    """``user``'s live step-up for ``token`` begun by ``holder``, or None (unknown, over, or someone else's)."""
    pending = second_step.resolve(token, purpose=Purpose.STEP_UP)
    if pending is None or pending.user_id != user.pk or pending.holder != holder:
        return None
    return pending


def ended_unproven(token: str | None, user: User, *, holder: str = "") -> bool:
    """Whether ``token`` names a step-up of ``user`` begun by ``holder`` that ended without a right code.

    By time or by wrong codes: its guesses are spent, and a new step-up must
    need the password again.  Not an unknown token, another's, or one that
    succeeded: a client repeating a request that worked loses nothing.
    """
    pending = second_step.find(token, purpose=Purpose.STEP_UP)
    return (
        pending is not None
        and pending.user_id == user.pk
        and pending.holder == holder
        and pending.completed_at is None
        and not second_step.is_live(pending)
    )


def confirm(pending: PendingLogin, code: str, origin: Origin) -> None:
    """Check ``code`` for the step-up ``pending``; return when it was right.

    Raises:
        SecondStepError: as ``login.verify`` (a wrong, reused or stale code,
            an exhausted or expired step-up, a locked account).  Wrong codes
            count against the account as at sign-in.
    """
    second_step.verify(pending, code, origin)


def confirm_recovery_code(pending: PendingLogin, typed: str, origin: Origin) -> int:
    """Spend the recovery code ``typed`` on the step-up ``pending``; return how many codes are left.

    Raises:
        SecondStepError: as ``recovery_codes.sign_in``.
    """
    _, left = recovery_codes.sign_in(pending, typed, origin)
    return left
