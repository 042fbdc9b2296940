"""The one decision "must this user enrol now?" (mfa.enforcement.requirement), rule by rule."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.conf import settings

from tests.mfa.recovery_codes.helpers import enrol_totp
from twostep.accounts.models import Role, User
from twostep.audit.services import CLI
from twostep.core import clock
from twostep.core.runtime import SettingError, get_setting, set_setting, set_setting_from_text
from twostep.mfa import enforcement
from twostep.mfa.models import Authenticator, EnrolmentGrace

pytestmark = pytest.mark.django_db


def require(mode: str, *, roles: list[str] | None = None, until: str = "", sign_ins: int = 0) -> None:
    set_setting("two_factor.required", mode)
    set_setting("two_factor.required_roles", roles or [])
    set_setting("two_factor.grace_until", until)
    set_setting("two_factor.grace_sign_ins", sign_ins)


def day(offset: int) -> str:
    return (clock.now() + timedelta(days=offset)).date().isoformat()


@pytest.fixture
def people(make_user: Callable[..., User], two_factor_on: None) -> dict[str, User]:
    return {"user": make_user("plain"), "admin": make_user("boss", role=Role.ADMIN)}


def test_nobody_by_default(people: dict[str, User]) -> None:
    """Out of the box nobody must enrol."""
    assert get_setting("two_factor.required") == "nobody"
    assert not any(enforcement.enrolment_required(u) for u in people.values())


@pytest.mark.parametrize(
    ("mode", "roles", "user_must", "admin_must"),
    [
        ("everyone", [], True, True),
        ("admins", [], False, True),
        ("roles", ["user"], True, False),
        ("roles", ["admin", "user"], True, True),
        ("nobody", ["admin"], False, False),
    ],
)
def test_who_the_policy_applies_to(
    people: dict[str, User], mode: str, roles: list[str], user_must: bool, admin_must: bool
) -> None:
    """Everyone, admins only, or chosen roles; without a grace period the requirement is immediate."""
    require(mode, roles=roles)
    assert enforcement.enrolment_required(people["user"]) is user_must
    assert enforcement.enrolment_required(people["admin"]) is admin_must


def test_enrolled_users_are_free(people: dict[str, User]) -> None:
    """A confirmed factor of an allowed method satisfies the policy."""
    require("everyone")
    enrol_totp(people["user"])
    state = enforcement.requirement(people["user"])
    assert state.required and state.enrolled and not state.must_enrol_now


def test_an_unconfirmed_factor_does_not_count(people: dict[str, User]) -> None:
    """A set-up in progress (not confirmed) does not satisfy the policy."""
    require("everyone")
    Authenticator.objects.create(user=people["user"], method="totp", secret="x", pending_until=clock.now())
    assert enforcement.enrolment_required(people["user"])


def test_grace_until_a_date(people: dict[str, User], frozen_clock: clock.FrozenClock) -> None:
    """Before the date the user may put it off; from 00:00 UTC that day they must enrol."""
    require("everyone", until=day(2))
    state = enforcement.requirement(people["user"])
    assert state.in_grace and state.deadline is not None and state.deadline.isoformat().endswith("00:00:00+00:00")
    assert enforcement.days_left(state.deadline) in (1, 2)
    frozen_clock.advance(2 * 86400 + 1)
    assert enforcement.enrolment_required(people["user"])


def test_grace_for_a_number_of_sign_ins(people: dict[str, User]) -> None:
    """With 2 grace sign-ins, sign-ins 1 and 2 may skip enrolment and the third may not."""
    require("everyone", sign_ins=2)
    user = people["user"]
    assert enforcement.requirement(user).sign_ins_left == 2
    first = enforcement.note_sign_in(user, CLI)
    assert first.in_grace and first.sign_ins_left == 1
    second = enforcement.note_sign_in(user, CLI)
    assert second.in_grace and second.sign_ins_left == 0
    third = enforcement.note_sign_in(user, CLI)
    assert third.must_enrol_now
    assert EnrolmentGrace.objects.get(user=user).sign_ins == 3


def test_date_and_count_end_at_whichever_comes_first(people: dict[str, User], frozen_clock: clock.FrozenClock) -> None:
    """With both a date and a number of sign-ins, running out of either ends the grace."""
    require("everyone", until=day(10), sign_ins=1)
    user = people["user"]
    enforcement.note_sign_in(user, CLI)
    assert not enforcement.enrolment_required(user)
    assert enforcement.note_sign_in(user, CLI).must_enrol_now
    other = people["admin"]
    frozen_clock.advance(11 * 86400)
    assert enforcement.enrolment_required(other)


def test_sign_ins_of_users_not_required_are_not_counted(people: dict[str, User]) -> None:
    """Sign-ins count only while the policy requires the user and they have no factor."""
    require("admins", sign_ins=3)
    enforcement.note_sign_in(people["user"], CLI)
    enrol_totp(people["admin"])
    enforcement.note_sign_in(people["admin"], CLI)
    assert not EnrolmentGrace.objects.exists()


def test_withdrawn_method_means_enrol_now(people: dict[str, User], mail_allowed: None) -> None:
    """A user whose only factor's method the admin withdrew must enrol an allowed one at once, whatever the policy (FB-11)."""
    user = people["user"]
    Authenticator.objects.create(user=user, method="email", destination="plain@example.com", confirmed_at=clock.now())
    assert not enforcement.enrolment_required(user)
    set_setting("two_factor.methods", ["totp"])
    state = enforcement.requirement(user)
    assert state.must_enrol_now and state.reason == "method_withdrawn"


def test_two_factor_off_requires_nobody(people: dict[str, User], monkeypatch: pytest.MonkeyPatch) -> None:
    """With 2FA off in the console, or forced off by the config file (break-glass), nobody must enrol."""
    require("everyone")
    set_setting("two_factor.enabled", False)
    assert not enforcement.enrolment_required(people["admin"])
    set_setting("two_factor.enabled", True)
    assert enforcement.enrolment_required(people["admin"])
    monkeypatch.setattr(settings.CONFIG.two_factor, "enabled", False)
    assert not enforcement.enrolment_required(people["admin"])


def test_inactive_and_anonymous_are_never_required(people: dict[str, User]) -> None:
    """The gate answers no for nobody signed in and for disabled accounts (they cannot sign in anyway)."""
    from django.contrib.auth.models import AnonymousUser

    require("everyone")
    assert not enforcement.enrolment_required(AnonymousUser())
    assert not enforcement.enrolment_required(None)
    User.objects.filter(pk=people["user"].pk).update(is_active=False)
    people["user"].refresh_from_db()
    assert not enforcement.enrolment_required(people["user"])


@pytest.mark.parametrize(
    ("key", "text", "stored"),
    [
        ("two_factor.required", "Admins", "admins"),
        ("two_factor.required_roles", "admin, user", ["user", "admin"]),
        ("two_factor.grace_until", "2031-02-03", "2031-02-03"),
        ("two_factor.grace_until", "", ""),
        ("two_factor.grace_sign_ins", "5", 5),
        ("trusted_browsers.enabled", "off", False),
        ("trusted_browsers.days", "14", 14),
    ],
)
def test_settings_from_the_command_line(db: None, key: str, text: str, stored: object) -> None:
    """`twostep settings set` parses each policy setting."""
    assert set_setting_from_text(key, text) == stored
    assert get_setting(key) == stored


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("two_factor.required", "somebody"),
        ("two_factor.required_roles", ["root"]),
        ("two_factor.required_roles", "admin"),
        ("two_factor.grace_until", "2031-02-30"),
        ("two_factor.grace_until", "next week"),
        ("two_factor.grace_until", "20310203"),
        ("two_factor.grace_sign_ins", -1),
        ("two_factor.grace_sign_ins", True),
        ("two_factor.grace_sign_ins", 10_001),
        ("trusted_browsers.enabled", "yes"),
        ("trusted_browsers.days", 0),
        ("trusted_browsers.days", 366),
    ],
)
def test_bad_settings_are_refused(db: None, key: str, value: object) -> None:
    """Invalid values are refused with a message, and nothing is stored."""
    with pytest.raises(SettingError):
        set_setting(key, value)
    from twostep.core.models import Setting

    assert not Setting.objects.filter(key=key).exists()


def test_page_and_api_allow_lists() -> None:
    """While enrolment is required: set-up pages, password prompts and sign-out pass; nothing else does."""
    for path in ["/account/security/enrol", "/account/security/totp", "/account/security/email", "/account/reauthenticate",
                 "/account/password", "/logout", "/static/twostep/twostep.css"]:  # fmt: skip
        assert enforcement.page_allowed(path), path
    for path in ["/account", "/account/security", "/account/tokens", "/admin/users", "/account/security/totpx",
                 "/account/sessions/end-others", "/"]:  # fmt: skip
        assert not enforcement.page_allowed(path), path
    for path in ["/api/v1/auth/logout", "/api/v1/me/reauthenticate", "/api/v1/me/factors/totp/confirm"]:
        assert enforcement.api_path_allowed(path), path
    for path in ["/api/v1/me", "/api/v1/me/tokens", "/api/v1/admin/users", "/api/v1/me/recovery-codes"]:
        assert not enforcement.api_path_allowed(path), path


@pytest.fixture
def mail_allowed(monkeypatch: pytest.MonkeyPatch, people: dict[str, User]) -> None:
    """Email codes allowed (their outgoing-mail precondition waived: no mail is sent here)."""
    from twostep.core import runtime

    monkeypatch.setitem(runtime.METHOD_REQUIREMENTS, "email", lambda: None)
    set_setting("two_factor.methods", ["totp", "email"])
