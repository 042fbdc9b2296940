"""Who must enrol a second factor before doing anything else, decided in one place.

An administrator can require two-factor authentication of nobody, everyone,
administrators only or chosen roles, with a grace period: until a date, for
a number of sign-ins, or both (the grace ends when the first runs out).
``requirement(user)`` answers for one user and ``enrolment_required(user)``
is the yes/no every gate asks:

* the sign-in pages (``after_password_only_sign_in`` sends the user to the
  enrolment page right after the password),
* every other page (``EnrolmentMiddleware``: only the enrolment pages pass),
* the JSON API (its bearer-token check refuses with ``enrolment_required``
  except for the endpoints that enrol, see ``api_path_allowed``),
* the forward-auth endpoint (the proxy is sent to the enrolment page).

A user whose only factors use methods the administrator no longer allows
must enrol an allowed one at once, whatever the policy: they chose
two-factor authentication, and a change of methods must not silently leave
them with a password alone.

When two-factor authentication is off (in the console, or forced off by
the configuration file: the break-glass switch), nobody is required.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from twostep.accounts.models import Role, User
from twostep.audit.services import Origin, Outcome, record
from twostep.core import clock
from twostep.core.runtime import Definition, SettingError, get_settings, register_setting
from twostep.mfa.models import Authenticator, EnrolmentGrace
from twostep.mfa.policy import forced_off_by_config

REQUIRED_KEY = "two_factor.required"
ROLES_KEY = "two_factor.required_roles"
GRACE_UNTIL_KEY = "two_factor.grace_until"
GRACE_SIGN_INS_KEY = "two_factor.grace_sign_ins"
KEYS = ("two_factor.enabled", "two_factor.methods", REQUIRED_KEY, ROLES_KEY, GRACE_UNTIL_KEY, GRACE_SIGN_INS_KEY)

#: Who the policy applies to.
NOBODY, EVERYONE, ADMINS, ROLES = "nobody", "everyone", "admins", "roles"
MODES = (NOBODY, EVERYONE, ADMINS, ROLES)
MAX_GRACE_SIGN_INS = 1000

#: The page a user who must enrol is sent to.
ENROL_URL = "/account/security/enrol"
#: Where each method is set up (the enrolment page links to them; they stay reachable).
SETUP_URLS = {
    "totp": "/account/security/totp",
    "email": "/account/security/email",
    "sms": "/account/security/sms",
}
#: Session key: where the user was going when they were sent to enrol.
AFTER_ENROL_KEY = "twostep_after_enrol"

#: Pages a user who must enrol may still reach: enrolling needs the setup
#: pages, the password prompt before them, the forced password change, and
#: signing out.  /api/ and the forward-auth endpoints answer for themselves.
_PAGES_ALLOWED = (
    ENROL_URL,
    *SETUP_URLS.values(),
    "/account/reauthenticate",
    "/account/password",
    "/login",
    "/logout",
    "/healthz",
)
_OWN_GATES = ("/api/", "/auth/request", "/auth/forward")
#: API operations a user who must enrol may call: signing in and out,
#: re-entering the password, and setting up a factor.
_API_ALLOWED = ("/api/v1/auth/", "/api/v1/me/reauthenticate", "/api/v1/me/factors")


# ---------------------------------------------------------------------------
# Settings


def _parse_mode(text: str) -> str:
    return text.strip().lower()


def _check_mode(value: Any) -> str:
    if value not in MODES:
        raise SettingError(f"must be one of {', '.join(MODES)}")
    return str(value)


def _parse_roles(text: str) -> list[str]:
    return [item.strip().lower() for item in text.split(",") if item.strip()]


def _check_roles(value: Any) -> list[str]:
    known = [role.value for role in Role]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SettingError("must be a list of role names")
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise SettingError(f"unknown role(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    return [role for role in known if role in value]


def _parse_date(text: str) -> str:
    return text.strip()


def _check_date(value: Any) -> str:
    if value == "":
        return ""
    if not isinstance(value, str):
        raise SettingError("must be a date as YYYY-MM-DD, or empty for none")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise SettingError(f"{value!r} is not a date as YYYY-MM-DD") from None
    if len(value) != 10:
        raise SettingError(f"{value!r} is not a date as YYYY-MM-DD")
    return value


def _parse_count(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise SettingError(f"{text!r} is not a whole number") from None


def _check_count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_GRACE_SIGN_INS:
        raise SettingError(f"must be a whole number from 0 to {MAX_GRACE_SIGN_INS}")
    return value


def register_settings() -> None:
    """Declare the policy's runtime settings (called from the mfa app's ``ready``)."""
    for definition in (
        Definition(
            REQUIRED_KEY,
            NOBODY,
            _parse_mode,
            _check_mode,
            "Who must enrol a second factor: nobody, everyone, admins, or roles (see two_factor.required_roles).",
        ),
        Definition(
            ROLES_KEY,
            [],
            _parse_roles,
            _check_roles,
            "The roles that must enrol when two_factor.required is 'roles' (comma-separated: admin, user).",
        ),
        Definition(
            GRACE_UNTIL_KEY,
            "",
            _parse_date,
            _check_date,
            "Users may put off enrolling until this date (YYYY-MM-DD, 00:00 UTC); empty for no date.",
        ),
        Definition(
            GRACE_SIGN_INS_KEY,
            0,
            _parse_count,
            _check_count,
            "Users may put off enrolling for this many sign-ins; 0 for no such grace.",
        ),
    ):
        register_setting(definition)


# ---------------------------------------------------------------------------
# The decision


@dataclass(frozen=True)
class Policy:
    """The admin's settings as one value (read in one query)."""

    active: bool
    methods: tuple[str, ...]
    mode: str
    roles: tuple[str, ...]
    grace_until: datetime | None
    grace_sign_ins: int

    def applies_to(self, user: User) -> bool:
        """Whether the policy asks ``user``'s role for a second factor."""
        if not self.active or self.mode == NOBODY:
            return False
        if self.mode == EVERYONE:
            return True
        if self.mode == ADMINS:
            return user.role == Role.ADMIN
        return user.role in self.roles

    @property
    def has_grace(self) -> bool:
        return self.grace_until is not None or self.grace_sign_ins > 0


def grace_ends(day: date) -> datetime:
    """When a grace period "until ``day``" ends: as that day begins, 00:00 UTC."""
    return datetime.combine(day, datetime.min.time(), UTC)


def sends_to_enrol(user: User, **changes: Any) -> bool:
    """Whether the current policy with ``changes`` (``Policy`` fields: ``active``, ``methods``, ``mode``...)
    would send ``user`` to set up a second step before anything else: to ask an administrator before a
    change that would do that to them."""
    return requirement(user, dataclasses.replace(current_policy(), **changes)).must_enrol_now


def current_policy() -> Policy:
    values = get_settings(*KEYS)
    grace_day = values[GRACE_UNTIL_KEY]
    return Policy(
        active=bool(values["two_factor.enabled"]) and not forced_off_by_config(),
        methods=tuple(values["two_factor.methods"]),
        mode=str(values[REQUIRED_KEY]),
        roles=tuple(values[ROLES_KEY]),
        grace_until=grace_ends(date.fromisoformat(grace_day)) if grace_day else None,
        grace_sign_ins=int(values[GRACE_SIGN_INS_KEY]),
    )


@dataclass(frozen=True)
class Requirement:
    """Where one user stands with the policy."""

    #: Something requires a second factor of this user: the policy, or a withdrawn method.
    required: bool
    #: The user has a confirmed factor of an allowed method.
    enrolled: bool
    #: The user must enrol before anything else, now.
    must_enrol_now: bool
    #: ``policy`` or ``method_withdrawn`` when required, else "".
    reason: str = ""
    #: When the grace period ends (a date was set), while it lasts.
    deadline: datetime | None = None
    #: Sign-ins left without enrolling (a number was set), while the grace lasts.
    sign_ins_left: int | None = None

    @property
    def in_grace(self) -> bool:
        return self.required and not self.enrolled and not self.must_enrol_now


NOT_REQUIRED = Requirement(required=False, enrolled=False, must_enrol_now=False)


def requirement(user: User, policy: Policy | None = None, *, sign_ins_used: int | None = None) -> Requirement:
    """Where ``user`` stands: required or not, enrolled or not, and whether the grace still lasts."""
    policy = policy or current_policy()
    if not policy.active or not user.is_active:
        return NOT_REQUIRED
    methods = set(
        Authenticator.objects.filter(user_id=user.pk, confirmed_at__isnull=False).values_list("method", flat=True)
    )
    return evaluate(user, methods, policy, sign_ins_used=sign_ins_used)


def evaluate(user: User, methods: set[str], policy: Policy, *, sign_ins_used: int | None = None) -> Requirement:
    """``requirement`` for a user whose confirmed factors' ``methods`` are already known.

    ``sign_ins_used`` is the user's grace count; None reads it when needed.
    """
    if not policy.active or not user.is_active:
        return NOT_REQUIRED
    if methods & set(policy.methods):
        return Requirement(required=policy.applies_to(user), enrolled=True, must_enrol_now=False)
    if methods:
        # Enrolled, but only in methods the admin has since withdrawn.
        return Requirement(required=True, enrolled=False, must_enrol_now=True, reason="method_withdrawn")
    if not policy.applies_to(user):
        return NOT_REQUIRED
    return _with_grace(user, policy, sign_ins_used)


def _with_grace(user: User, policy: Policy, sign_ins_used: int | None) -> Requirement:
    if not policy.has_grace:
        return Requirement(required=True, enrolled=False, must_enrol_now=True, reason="policy")
    now = clock.now()
    over = policy.grace_until is not None and now >= policy.grace_until
    left = None
    if policy.grace_sign_ins > 0:
        if sign_ins_used is None:
            sign_ins_used = (
                EnrolmentGrace.objects.filter(user_id=user.pk).values_list("sign_ins", flat=True).first() or 0
            )
        # The grace covers sign-ins 1..N: after the Nth, the next one must enrol.
        over = over or sign_ins_used > policy.grace_sign_ins
        left = max(0, policy.grace_sign_ins - sign_ins_used)
    if over:
        return Requirement(required=True, enrolled=False, must_enrol_now=True, reason="policy")
    return Requirement(
        required=True,
        enrolled=False,
        must_enrol_now=False,
        reason="policy",
        deadline=policy.grace_until,
        sign_ins_left=left,
    )


def enrolment_required(user: Any) -> bool:
    """True when ``user`` must enrol a second factor before reaching anything else."""
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    return requirement(user).must_enrol_now


def note_sign_in(user: User, origin: Origin) -> Requirement:
    """Count a sign-in without a second step towards the user's grace; return where they stand after it.

    Called by the sign-in page and the API after a password-only sign-in.
    """
    policy = current_policy()
    before = requirement(user, policy, sign_ins_used=0)
    if not before.required or before.enrolled:
        return before
    if before.reason == "method_withdrawn":
        used = None
    else:
        with transaction.atomic():
            EnrolmentGrace.objects.get_or_create(user_id=user.pk, defaults={"first_required_at": clock.now()})
            EnrolmentGrace.objects.filter(user_id=user.pk).update(sign_ins=F("sign_ins") + 1)
        used = EnrolmentGrace.objects.filter(user_id=user.pk).values_list("sign_ins", flat=True).first()
    after = requirement(user, policy, sign_ins_used=used)
    record(
        "two_factor.enrolment_required",
        Outcome.INFO,
        origin=origin,
        user=user,
        reason=after.reason,
        detail={
            "now": after.must_enrol_now,
            "sign_ins_left": after.sign_ins_left,
            "deadline": after.deadline.date().isoformat() if after.deadline else None,
        },
    )
    return after


def after_password_only_sign_in(request: HttpRequest, user: User, response: HttpResponse) -> HttpResponse:
    """After a sign-in without a second step: send a user who must (or should soon) enrol to the enrolment page.

    ``response`` is where the sign-in would go otherwise; it is kept for
    "Not now" (during the grace) and for after enrolling.  A forced password
    change comes first: the enrolment gate catches the user right after it.
    """
    state = note_sign_in(user, Origin.of(request))
    if not state.required or state.enrolled:
        return response
    location = response.get("Location", "")
    if location == "/account/password":
        return response
    request.session[AFTER_ENROL_KEY] = location or "/account"
    return redirect(ENROL_URL)


def after_forced_password_change(request: HttpRequest, user: User, destination: str) -> HttpResponse:
    """Where a sign-in goes on after the password change it asked for: the enrolment page first when
    ``user`` must (or should soon) set up a second step, as ``after_password_only_sign_in`` would have
    sent them there; else ``destination``.  The sign-in was counted towards the grace already."""
    state = requirement(user)
    if not state.required or state.enrolled:
        return redirect(destination)
    request.session[AFTER_ENROL_KEY] = destination
    return redirect(ENROL_URL)


def grace_reminder(user: User) -> Requirement | None:
    """The user's requirement while their grace lasts (for a reminder on the Security page), else None."""
    state = requirement(user)
    return state if state.in_grace else None


# ---------------------------------------------------------------------------
# The gates


def _matches(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == prefix or path.startswith(prefix.rstrip("/") + "/") for prefix in prefixes)


def page_allowed(path: str) -> bool:
    """Whether a user who must enrol may still load the page at ``path``."""
    from django.conf import settings

    return path.startswith(settings.STATIC_URL) or _matches(path, _PAGES_ALLOWED)


def api_path_allowed(path: str) -> bool:
    """Whether a user who must enrol may still call the API operation at ``path``."""
    return _matches(path, _API_ALLOWED)


class EnrolmentMiddleware:
    """Sends a signed-in user who must enrol to the enrolment page from every other page.

    Sits after the authentication middleware.  The API and the forward-auth
    endpoints are left to their own checks, which answer in their protocols.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        if _matches(path, _OWN_GATES) or page_allowed(path):
            return self.get_response(request)
        user = getattr(request, "user", None)
        if enrolment_required(user):
            return redirect(ENROL_URL)
        return self.get_response(request)


def days_left(deadline: datetime | None) -> int | None:
    """Whole days until ``deadline`` (rounded up), for messages."""
    if deadline is None:
        return None
    remaining = deadline - clock.now()
    return max(0, (remaining + timedelta(days=1) - timedelta(microseconds=1)).days)
