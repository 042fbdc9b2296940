"""Who must pass a second step, and with which methods.

The config file's ``[two_factor] enabled = false`` wins over everything: it
is the break-glass switch for a locked-out administrator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser

from twostep.audit.models import AuthEvent
from twostep.audit.services import SYSTEM, Origin, Outcome, record
from twostep.core import clock
from twostep.core.instance import instance_name
from twostep.core.runtime import get_settings
from twostep.mfa.models import Authenticator

#: The auth log's reason on what the break-glass switch did (an instance
#: started with it, a sign-in it let through); an index covers these events.
FORCED_OFF = "forced_off_by_config"
#: How far back the console looks for them, on any instance sharing the database.
BREAK_GLASS_WINDOW = timedelta(days=1)
#: How often an instance with the switch says again that it runs with it (``note_break_glass``).
BREAK_GLASS_HEARTBEAT = timedelta(hours=1)


def forced_off_by_config() -> bool:
    """True when the config file or environment switched 2FA off for everyone."""
    return not settings.CONFIG.two_factor.enabled


#: The runtime settings that decide who is asked for a second step: the switch and the allowed methods.
SWITCH_KEYS = ("two_factor.enabled", "two_factor.methods")


def two_factor_state() -> tuple[bool, list[str]]:
    """(is 2FA in force, allowed methods), in one query."""
    values = get_settings(*SWITCH_KEYS)
    active = bool(values["two_factor.enabled"]) and not forced_off_by_config()
    return active, list(values["two_factor.methods"])


#: The methods NIST SP 800-63B does not restrict (SMS is "restricted"; an
#: emailed code is no second factor there at all).
UNRESTRICTED_METHODS = frozenset({"totp"})


def methods_warning(methods: list[str]) -> str | None:
    """What to tell an administrator whose allowed ``methods`` leave users no unrestricted method; None when fine.

    Such a policy is allowed (a deployment may have no smartphones), but
    flagged wherever it is set: the console, the API and the CLI.
    """
    if not methods or UNRESTRICTED_METHODS & set(methods):
        return None
    return (
        "Only SMS or email codes are allowed: texts can be redirected (SIM swap) or intercepted, and an "
        "emailed code is only as safe as the mailbox, so NIST SP 800-63B restricts SMS and does not count "
        "email as a second factor. Allow authenticator apps too, so that every user can choose a method "
        "without those weaknesses."
    )


def login_authenticators(user_id: int) -> list[Authenticator]:
    """The confirmed, allowed factors a user must use at sign-in; empty when none apply.

    The first is the one to ask for: the user's default method when it is
    usable, else the first usable factor they enrolled (``mfa.choice.order``).
    """
    from twostep.mfa.choice import order

    active, methods = two_factor_state()
    if not active:
        return []
    return order(
        list(
            Authenticator.objects.filter(user_id=user_id, confirmed_at__isnull=False, method__in=methods).order_by(
                "confirmed_at"
            )
        ),
        user_id,
    )


def note_break_glass(user: AbstractBaseUser, origin: Origin) -> None:
    """Log a sign-in that skipped its second step only because the config file switched 2FA off.

    The break-glass switch lets an account with factors in by its password
    alone; the auth log says so at each such sign-in, so that its use (and
    a switch left off by mistake) shows.  A sign-in of a user without
    factors says, at most once an hour, that the instance still runs with
    the switch: a quiet instance's start is a day old soon enough, and the
    other consoles would stop showing it.
    """
    if not forced_off_by_config():
        return
    instance = instance_name()
    if Authenticator.objects.filter(user_id=user.pk, confirmed_at__isnull=False).exists():
        record(
            "login.second_step",
            Outcome.INFO,
            origin=origin,
            user=user,
            reason=FORCED_OFF,
            detail={"instance": instance},
        )
        return
    recently = AuthEvent.objects.filter(
        reason=FORCED_OFF, created_at__gte=clock.now() - BREAK_GLASS_HEARTBEAT, detail__instance=instance
    )
    if not recently.exists():
        note_break_glass_start(instance)


def note_break_glass_start(instance: str) -> None:
    """Log that ``instance`` (``core.instance.instance_name``) runs with the break-glass switch on: at its
    start (``twostep serve``), and again now and then (``note_break_glass``).

    With several instances sharing a database, the switch is in one
    instance's configuration only; this event (and each sign-in it lets
    through) is how the others' consoles learn of it (``recent_break_glass``).
    """
    if forced_off_by_config():
        record(
            "server.two_factor_forced_off",
            Outcome.INFO,
            origin=SYSTEM,
            reason=FORCED_OFF,
            detail={"instance": instance},
        )


@dataclass(frozen=True)
class BreakGlassSighting:
    """The break-glass switch at work on some instance sharing the database, as the auth log tells it."""

    last_seen: datetime
    #: Where it was last seen (``core.instance.instance_name``); "" for events written before it was told.
    instance: str
    #: Sign-ins it let through by their password alone within the window.
    sign_ins: int


def recent_break_glass() -> BreakGlassSighting | None:
    """The last ``BREAK_GLASS_WINDOW`` of break-glass events on any instance, or None when there were none.

    Two indexed queries (the auth log's partial index on these events).
    """
    events = AuthEvent.objects.filter(reason=FORCED_OFF, created_at__gte=clock.now() - BREAK_GLASS_WINDOW)
    last = events.order_by("-created_at", "-id").values("created_at", "detail").first()
    if last is None:
        return None
    detail = last["detail"] if isinstance(last["detail"], dict) else {}
    return BreakGlassSighting(
        last_seen=last["created_at"],
        instance=str(detail.get("instance", "")),
        sign_ins=events.filter(kind="login.second_step").count(),
    )
