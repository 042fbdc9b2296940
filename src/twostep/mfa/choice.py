"""Several methods per user: names, the default method, and "Use another method" at sign-in.

At sign-in the default method is asked for first (``order``, used by
``policy.login_authenticators``).  The second-step page offers the user's
other enrolled, allowed and usable methods; choosing one switches the
pending sign-in to it (``switch``), and only then does an email or SMS
method send a code.  The client only ever names a method: which factor,
address or number it means is looked up on the server among the user's
own, so a request can neither pick a method the user has not enrolled or
the administrator disallows, nor redirect a code elsewhere.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction

from twostep.accounts.locking import lock_account
from twostep.accounts.models import User
from twostep.audit.services import Origin, Outcome, record
from twostep.core import clock
from twostep.mfa import codes
from twostep.mfa.codes import mask_email, mask_phone
from twostep.mfa.login import SecondStepError, is_live
from twostep.mfa.methods import handler_for, is_usable
from twostep.mfa.models import Authenticator, DefaultMethod, Method, PendingLogin

MAX_NAME_LENGTH = 64


def method_label(method: str) -> str:
    """The method's own name: "Authenticator app", "Email code", "SMS code"."""
    try:
        return str(Method(method).label)
    except ValueError:
        return method


def describe(authenticator: Authenticator, *, masked: bool = True) -> str:
    """What the user calls this factor: their name for it, else the method and where codes go
    (masked, unless ``masked`` is False: on the user's own pages, once signed in)."""
    if authenticator.name:
        return authenticator.name
    if authenticator.method == Method.EMAIL:
        return f"Email to {mask_email(authenticator.destination) if masked else authenticator.destination}"
    if authenticator.method == Method.SMS:
        return f"SMS to {mask_phone(authenticator.destination) if masked else authenticator.destination}"
    return method_label(authenticator.method)


def action_label(authenticator: Authenticator) -> str:
    """The "Use another method" button text for this factor."""
    named = f" ({authenticator.name})" if authenticator.name else ""
    if authenticator.method == Method.EMAIL:
        return f"Email a code to {mask_email(authenticator.destination)}{named}"
    if authenticator.method == Method.SMS:
        return f"Text a code to {mask_phone(authenticator.destination)}{named}"
    return f"Use your authenticator app{named}"


def default_method(user_id: int) -> str | None:
    """The method the user picked as default, if any."""
    return DefaultMethod.objects.filter(user_id=user_id).values_list("method", flat=True).first()


def order(authenticators: list[Authenticator], user_id: int) -> list[Authenticator]:
    """Sign-in order: usable factors first, the default among them first, then by enrolment time."""
    if len(authenticators) < 2:
        return authenticators  # nothing to choose (and no queries on the common path)
    preferred = default_method(user_id)

    def key(authenticator: Authenticator) -> tuple[bool, bool, float]:
        enrolled = authenticator.confirmed_at.timestamp() if authenticator.confirmed_at else 0.0
        return (not _usable(authenticator), authenticator.method != preferred, enrolled)

    return sorted(authenticators, key=key)


def _usable(authenticator: Authenticator) -> bool:
    try:
        return is_usable(authenticator)
    except KeyError:  # no handler installed for the method
        return False


def set_default(user: User, method: str, origin: Origin) -> Authenticator:
    """Make ``method`` the user's default; it must be one of their confirmed factors.

    Raises:
        ValidationError: code ``not_enrolled``.
    """
    factor = Authenticator.objects.filter(user=user, method=method, confirmed_at__isnull=False).first()
    if factor is None:
        raise ValidationError("You have not set up that method.", code="not_enrolled")
    DefaultMethod.objects.update_or_create(user_id=user.pk, defaults={"method": factor.method})
    record("two_factor.default_changed", Outcome.INFO, origin=origin, user=user, method=factor.method)
    return factor


def rename(user: User, method: str, name: str, origin: Origin) -> Authenticator:
    """Give the user's factor of ``method`` a name (empty: back to the method's description).

    Raises:
        ValidationError: ``not_enrolled``, ``name_too_long`` or ``invalid_name``.
    """
    cleaned = " ".join(name.split())
    if len(cleaned) > MAX_NAME_LENGTH:
        raise ValidationError(f"Use at most {MAX_NAME_LENGTH} characters.", code="name_too_long")
    if not cleaned.isprintable():
        raise ValidationError("Use letters, digits and punctuation only.", code="invalid_name")
    with transaction.atomic():
        # Read and written under the account's lock: a removal or a reset
        # (which take it too) cannot slip between, leaving nothing to return.
        lock_account(user.pk, no_key=True)
        factor = (
            Authenticator.objects.select_for_update()
            .filter(user=user, method=method, confirmed_at__isnull=False)
            .first()
        )
        if factor is None:
            raise ValidationError("You have not set up that method.", code="not_enrolled")
        factor.name = cleaned
        factor.save(update_fields=["name"])
    record("two_factor.renamed", Outcome.INFO, origin=origin, user=user, method=method)
    return factor


def available(user_id: int) -> list[Authenticator]:
    """The user's factors that can be used to sign in now: confirmed, allowed and usable, in sign-in order."""
    from twostep.mfa.policy import login_authenticators

    return [a for a in login_authenticators(user_id) if _usable(a)]


@dataclass(frozen=True)
class Alternative:
    """One entry of "Use another method"."""

    method: str
    label: str


def alternatives(pending: PendingLogin) -> list[Alternative]:
    """The other methods the pending sign-in may switch to."""
    return [Alternative(a.method, action_label(a)) for a in available(pending.user_id) if a.method != pending.method]


def switch(pending: PendingLogin, method: str, origin: Origin) -> PendingLogin:
    """Ask for ``method`` instead in this pending sign-in; email and SMS send their code now.

    The sign-in keeps its token, its expiry and its failure count; what was
    sent for the previous method dies with the previous row (a code is bound
    to one pending row), so a code sent by email cannot complete an SMS step.
    Switching back finds the code already sent still valid (``codes.carry_over``);
    the resend cooldown of one method does not hold back the other, and
    switching back does not restart it.

    Raises:
        SecondStepError: ``expired_login`` (the sign-in is over) or
            ``method_unavailable`` (not one of the user's usable, allowed factors).
    """
    factor = next((a for a in available(pending.user_id) if a.method == method), None)
    if factor is None:
        # Only a known method name goes to the log: the request's text may be anything (even NUL bytes).
        named = method if method in Method.values else ""
        record(
            "login.method_chosen",
            Outcome.FAILURE,
            origin=origin,
            user=pending.user,
            method=named,
            reason="method_unavailable",
        )
        raise SecondStepError("method_unavailable")
    now = clock.now()
    with transaction.atomic():
        # The joined query below locks the pending row before the account's.
        lock_account(pending.user_id)
        # By token, not by row: a switch that committed meanwhile (a double
        # click, two tabs) moved the token to a new row, which is the sign-in now.
        current = (
            PendingLogin.objects.select_for_update()
            .select_related("user")
            .filter(token_hash=pending.token_hash)
            .first()
        )
        if current is None or not is_live(current):
            raise SecondStepError("expired_login")
        if current.method == factor.method:
            return current
        token_hash = current.token_hash
        # The old row gives up the token and ends; a new row takes it over.
        retired_hash = hashlib.sha256(secrets.token_bytes(32)).hexdigest()
        PendingLogin.objects.filter(pk=current.pk).update(token_hash=retired_hash, expires_at=now)
        switched = PendingLogin.objects.create(
            token_hash=token_hash,
            user_id=current.user_id,
            method=factor.method,
            created_at=current.created_at,
            expires_at=current.expires_at,
            failures=current.failures,
            ip=current.ip,
            # A step-up stays one: its token must never become a sign-in's (``login.resolve``),
            # nor another access token's.
            purpose=current.purpose,
            holder=current.holder,
        )
    record("login.method_chosen", Outcome.INFO, origin=origin, user=current.user, method=factor.method)
    if not codes.carry_over(switched, factor.destination):
        handler_for(factor.method).begin(switched, factor, origin)
    fresh = PendingLogin.objects.select_related("user").filter(pk=switched.pk).first()
    if fresh is None:  # the user's sessions were ended meanwhile (mfa.services.end_pending_sign_ins)
        raise SecondStepError("expired_login")
    return fresh
