"""The admin's compliance view: who has which methods, who must enrol, who is overdue.

``overview`` pages through users with a few queries per page whatever the
number of users: the status filter is one SQL condition (``_status_q``) that
mirrors ``enforcement.evaluate``, and the per-row details are fetched for
the page's users only.  A test keeps the SQL and the Python rules in step.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.core.paginator import Page, Paginator
from django.db.models import Count, Exists, IntegerField, Max, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from twostep.accounts.models import EmailAddress, Role, User
from twostep.core import clock
from twostep.mfa import enforcement
from twostep.mfa.choice import describe, order
from twostep.mfa.enforcement import Policy, Requirement
from twostep.mfa.models import Authenticator, EnrolmentGrace, RecoveryCode, TrustedBrowser

PAGE_SIZE = 50
#: Conditions that are always true / false, as plain SQL (an empty Q or ``pk__in=[]`` would not negate cleanly).
TRUE = Q(pk__isnull=False)
FALSE = Q(pk__isnull=True)
STATUSES = {
    "": "All users",
    "overdue": "Overdue: must enrol now",
    "grace": "In their grace period",
    "enrolled": "Enrolled",
    "not_enrolled": "No second factor",
}


@dataclass
class Row:
    user: User
    requirement: Requirement
    methods: list[tuple[str, str, bool]] = field(default_factory=list)  # (method, description, is default)
    recovery_left: int | None = None
    trusted: int = 0
    last_second_step: datetime | None = None

    @property
    def status(self) -> str:
        state = self.requirement
        if state.enrolled:
            return "enrolled"
        if state.must_enrol_now:
            return "overdue"
        if state.in_grace:
            return "grace"
        return "not_required"


@dataclass(frozen=True)
class Summary:
    users: int
    enrolled: int
    grace: int
    overdue: int


def _annotated(policy: Policy) -> QuerySet[User]:
    confirmed = Authenticator.objects.filter(user=OuterRef("pk"), confirmed_at__isnull=False)
    return User.objects.filter(is_active=True).annotate(
        has_any=Exists(confirmed),
        has_allowed=Exists(confirmed.filter(method__in=list(policy.methods))),
        grace_used=Coalesce(
            Subquery(EnrolmentGrace.objects.filter(user=OuterRef("pk")).values("sign_ins")[:1]),
            Value(0),
            output_field=IntegerField(),
        ),
    )


def _applies_q(policy: Policy) -> Q:
    if not policy.active or policy.mode == enforcement.NOBODY:
        return FALSE
    if policy.mode == enforcement.EVERYONE:
        return TRUE
    if policy.mode == enforcement.ADMINS:
        return Q(role=Role.ADMIN)
    return Q(role__in=list(policy.roles))


def _grace_over_q(policy: Policy) -> Q:
    if not policy.has_grace:
        return TRUE
    over = FALSE
    if policy.grace_until is not None and clock.now() >= policy.grace_until:
        over = TRUE
    if policy.grace_sign_ins > 0:
        over |= Q(grace_used__gt=policy.grace_sign_ins)
    return over


def _status_q(policy: Policy, status: str) -> Q:
    """The SQL twin of ``enforcement.evaluate`` for one status filter."""
    if status == "enrolled":
        return Q(has_allowed=True) if policy.active else FALSE
    if status == "not_enrolled":
        return Q(has_any=False)
    if not policy.active:
        return FALSE
    withdrawn = Q(has_any=True, has_allowed=False)
    unenrolled_required = Q(has_any=False) & _applies_q(policy)
    if status == "overdue":
        return withdrawn | (unenrolled_required & _grace_over_q(policy))
    if status == "grace":
        return unenrolled_required & ~_grace_over_q(policy) if policy.has_grace else FALSE
    return TRUE


def summary(policy: Policy | None = None) -> Summary:
    """Counts for the top of the page (one query)."""
    policy = policy or enforcement.current_policy()
    counts = _annotated(policy).aggregate(
        users=Count("pk"),
        enrolled=Count("pk", filter=_status_q(policy, "enrolled")),
        grace=Count("pk", filter=_status_q(policy, "grace")),
        overdue=Count("pk", filter=_status_q(policy, "overdue")),
    )
    return Summary(**{key: int(value) for key, value in counts.items()})


def cannot_prove_an_address(policy: Policy | None = None, *, limit: int = 5) -> tuple[int, list[str]]:
    """Users who must enrol, have no allowed second step and no email address, and how many there are.

    With ``two_factor.enrolment_email_check`` on, such a user cannot set up
    anything: the check sends its code to an address on the account.
    Returns the count and the first ``limit`` usernames, administrators first.
    """
    policy = policy or enforcement.current_policy()
    # Required and not enrolled, as ``email_check.asked_of``: in their grace, past it, or left
    # with only methods the administrator withdrew.
    must_enrol = _status_q(policy, "overdue") | _status_q(policy, "grace")
    stuck = _annotated(policy).filter(must_enrol).exclude(Exists(EmailAddress.objects.filter(user=OuterRef("pk"))))
    # "admin" sorts before "user": administrators first.
    names = list(stuck.order_by("role", "username").values_list("username", flat=True)[:limit])
    return (stuck.count() if len(names) == limit else len(names)), names


def overview(
    *, status: str = "", search: str = "", page: int = 1, policy: Policy | None = None
) -> tuple[Page[Row], Policy]:
    """One page of rows, filtered by ``status`` (a key of STATUSES) and a username/display-name search."""
    policy = policy or enforcement.current_policy()
    users = _annotated(policy).order_by("username")
    if status in STATUSES and status:
        users = users.filter(_status_q(policy, status))
    if search.strip():
        term = search.strip()[:100]
        users = users.filter(Q(username__icontains=term) | Q(display_name__icontains=term))
    paginator = Paginator(users, PAGE_SIZE)
    page_obj = paginator.get_page(page)
    page_users = list(page_obj.object_list)
    page_obj.object_list = _rows(page_users, policy)  # type: ignore[assignment]
    return page_obj, policy  # type: ignore[return-value]


def _rows(users: list[User], policy: Policy) -> list[Row]:
    ids = [u.pk for u in users]
    factors: dict[int, list[Authenticator]] = defaultdict(list)
    for factor in Authenticator.objects.filter(user_id__in=ids, confirmed_at__isnull=False).order_by("confirmed_at"):
        factors[factor.user_id].append(factor)
    recovery = {
        row["user_id"]: row
        for row in RecoveryCode.objects.filter(user_id__in=ids)
        .values("user_id")
        .annotate(left=Count("pk", filter=Q(used_at__isnull=True)), last_used=Max("used_at"))
    }
    trusted = dict(
        TrustedBrowser.objects.filter(user_id__in=ids, expires_at__gt=clock.now())
        .values("user_id")
        .annotate(n=Count("pk"))
        .values_list("user_id", "n")
    )
    rows = []
    for user in users:
        mine = order(factors[user.pk], user.pk) if len(factors[user.pk]) > 1 else factors[user.pk]
        codes = recovery.get(user.pk)
        uses = [f.last_used_at for f in mine if f.last_used_at] + (
            [codes["last_used"]] if codes and codes["last_used"] else []
        )
        rows.append(
            Row(
                user=user,
                requirement=enforcement.evaluate(
                    user, {f.method for f in mine}, policy, sign_ins_used=getattr(user, "grace_used", 0)
                ),
                methods=[(f.method, describe(f), i == 0 and len(mine) > 1) for i, f in enumerate(mine)],
                recovery_left=codes["left"] if codes else None,
                trusted=int(trusted.get(user.pk, 0)),
                last_second_step=max(uses) if uses else None,
            )
        )
    return rows
