"""The admin's "Two-step policy" page: the policy form and the compliance view."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.test import Client

from tests.conftest import sign_in
from tests.mfa.recovery_codes.helpers import enrol_totp, events, signed_in_with_totp
from twostep.accounts.models import Role, User
from twostep.audit.services import CLI
from twostep.core import clock
from twostep.core.runtime import get_setting, set_setting
from twostep.mfa import compliance, enforcement
from twostep.mfa.models import Authenticator, EnrolmentGrace
from twostep.mfa.recovery_codes import services as recovery

pytestmark = pytest.mark.django_db

PAGE = "/admin/two-factor"


@pytest.fixture
def console(client: Client, admin: User, two_factor_on: None) -> Client:
    """The admin, enrolled (so no policy locks them out here) and signed in with both steps."""
    key = enrol_totp(admin)
    assert signed_in_with_totp(client, admin, key).status_code == 302
    return client


@pytest.fixture
def population(make_user: Callable[..., User], two_factor_on: None) -> dict[str, User]:
    """One user in each state the compliance view tells apart."""
    enrolled = make_user("enrolled")
    enrol_totp(enrolled)
    recovery.create_first_set(enrolled, CLI)
    withdrawn = make_user("withdrawn")
    Authenticator.objects.create(user=withdrawn, method="sms", destination="+15550000000", confirmed_at=clock.now())
    graced = make_user("graced")
    EnrolmentGrace.objects.create(user=graced, first_required_at=clock.now(), sign_ins=1)
    overdue = make_user("overdue")
    EnrolmentGrace.objects.create(user=overdue, first_required_at=clock.now(), sign_ins=5)
    admin_free = make_user("bossy", role=Role.ADMIN)
    return {"enrolled": enrolled, "withdrawn": withdrawn, "graced": graced, "overdue": overdue, "admin": admin_free}


def names(status: str) -> set[str]:
    page, _ = compliance.overview(status=status)
    return {row.user.username for row in page.object_list}


def test_statuses_follow_the_policy(population: dict[str, User]) -> None:
    """Enrolled, in grace (2 sign-ins allowed, 1 used), overdue (5 used), and a withdrawn method (FB-11) is overdue."""
    set_setting("two_factor.required", "roles")
    set_setting("two_factor.required_roles", ["user"])
    set_setting("two_factor.grace_sign_ins", 2)
    assert names("enrolled") == {"enrolled"}
    assert names("grace") == {"graced"}
    assert names("overdue") == {"overdue", "withdrawn"}
    assert "bossy" in names("not_enrolled") and "bossy" not in names("overdue") | names("grace")
    summary = compliance.summary()
    assert (summary.enrolled, summary.grace, summary.overdue) == (1, 1, 2)


def test_sql_filter_agrees_with_the_gate(population: dict[str, User], frozen_clock: clock.FrozenClock) -> None:
    """For several policies, the SQL status filter and enforcement.requirement put every user in the same place."""
    tomorrow = (clock.now() + timedelta(days=1)).date().isoformat()
    for mode, roles, until, count in [
        ("everyone", [], "", 0),
        ("everyone", [], tomorrow, 0),
        ("everyone", [], tomorrow, 3),
        ("admins", [], "", 2),
        ("roles", ["user"], "2000-01-01", 10),
        ("nobody", [], "", 0),
    ]:
        set_setting("two_factor.required", mode)
        set_setting("two_factor.required_roles", roles)
        set_setting("two_factor.grace_until", until)
        set_setting("two_factor.grace_sign_ins", count)
        for user in User.objects.filter(is_active=True):
            state = enforcement.requirement(user)
            expected = (
                "enrolled"
                if state.enrolled
                else "overdue"
                if state.must_enrol_now
                else "grace"
                if state.in_grace
                else ""
            )
            for status in ("enrolled", "overdue", "grace"):
                assert (user.username in names(status)) == (expected == status), (mode, until, count, user, status)


def test_rows_show_methods_codes_and_last_use(population: dict[str, User]) -> None:
    """A row lists the methods, the recovery codes left and the last second-step use."""
    Authenticator.objects.filter(user=population["enrolled"]).update(last_used_at=clock.now())
    page, _ = compliance.overview(search="enrolled")
    (row,) = [r for r in page.object_list if r.user.username == "enrolled"]
    assert [m[0] for m in row.methods] == ["totp"] and row.recovery_left == 10 and row.last_second_step is not None


def test_only_admins_see_the_page(client: Client, user: User, two_factor_on: None) -> None:
    """A normal user gets 403."""
    sign_in(client, user.username)
    assert client.get(PAGE).status_code == 403
    assert client.post(PAGE, {"required": "nobody", "trusted_days": 30}).status_code == 403
    assert get_setting("two_factor.required") == "nobody"


def test_admin_sets_the_policy(console: Client, population: dict[str, User]) -> None:
    """The form stores mode, roles, grace and trusted-browser settings, logs the change, and the table shows states."""
    response = console.post(
        PAGE,
        {"required": "roles", "roles": ["user"], "grace_until": "", "grace_sign_ins": "2",
         "trusted_enabled": "on", "trusted_days": "14"},
    )  # fmt: skip
    assert response.status_code == 302
    assert get_setting("two_factor.required") == "roles" and get_setting("two_factor.required_roles") == ["user"]
    assert get_setting("two_factor.grace_sign_ins") == 2 and get_setting("trusted_browsers.days") == 14
    assert len(events("settings.two_factor_policy")) == 1
    html = console.get(PAGE + "?status=overdue").content.decode()
    assert ">overdue</a>" in html and ">withdrawn</a>" in html and ">graced</a>" not in html
    assert "method no longer allowed" in html


def test_bad_policy_input_is_explained(console: Client) -> None:
    """Chosen roles without a role, a negative count, a bad date: the form says so and stores nothing."""
    response = console.post(
        PAGE, {"required": "roles", "grace_sign_ins": "-1", "grace_until": "soon", "trusted_days": "0"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "Choose at least one role" in html and "Enter a valid date" in html
    assert get_setting("two_factor.required") == "nobody"


def test_page_survives_odd_query_strings(console: Client) -> None:
    """Unknown status, a non-number page and a long search give a normal page, not an error; a NUL a 400."""
    response = console.get(PAGE + "?status=%01&page=abc&q=" + "x" * 500)
    assert response.status_code == 200
    assert console.get(PAGE + "?q=ro%01ot&page=-3").status_code == 200
    assert console.get(PAGE + "?q=ro%00ot").status_code == 400


def test_a_grace_by_date_and_count_reads_as_two_facts(console: Client, population: dict[str, User]) -> None:
    """The grace cell says when it ends and how many sign-ins are left, apart."""
    deadline = (clock.now() + timedelta(days=3)).date()
    set_setting("two_factor.required", "everyone")
    set_setting("two_factor.grace_until", deadline.isoformat())
    set_setting("two_factor.grace_sign_ins", 2)
    page = console.get(f"{PAGE}?status=grace").content.decode()
    assert f"until {deadline.isoformat()}; 1 sign-in left" in page


def test_a_policy_that_would_lock_out_the_admin_saving_it_asks_first(
    client: Client, admin: User, two_factor_on: None
) -> None:
    """An administrator without a second step who requires one of everyone at once is told it applies to
    them, and nothing is saved until they say so; with a grace period, no question."""
    assert sign_in(client, admin.username).status_code == 302
    form = {"required": "everyone", "grace_until": "", "grace_sign_ins": "0", "trusted_days": "30"}
    asked = client.post(PAGE, form)
    assert asked.status_code == 200 and 'id="applies-to-you"' in asked.content.decode()
    assert get_setting("two_factor.required") == "nobody"
    saved = client.post(PAGE, {**form, "confirm_self": "yes"})
    assert saved.status_code == 302 and get_setting("two_factor.required") == "everyone"
    assert client.get("/admin/users")["Location"] == "/account/security/enrol"


def test_a_grace_period_needs_no_question(client: Client, admin: User, two_factor_on: None) -> None:
    assert sign_in(client, admin.username).status_code == 302
    form = {"required": "everyone", "grace_until": "", "grace_sign_ins": "3", "trusted_days": "30"}
    assert client.post(PAGE, form).status_code == 302
    assert get_setting("two_factor.required") == "everyone"


def test_turning_2fa_on_under_such_a_policy_asks_too(client: Client, admin: User) -> None:
    """The policy saved while 2FA was off; switching 2FA on is what would send the administrator to enrol:
    the Authentication page asks first."""
    set_setting("two_factor.required", "everyone")
    assert sign_in(client, admin.username).status_code == 302
    asked = client.post("/admin/authentication", {"enabled": "on", "methods": ["totp"]})
    assert asked.status_code == 200 and 'id="applies-to-you"' in asked.content.decode()
    assert get_setting("two_factor.enabled") is False
    saved = client.post("/admin/authentication", {"enabled": "on", "methods": ["totp"], "confirm_self": "yes"})
    assert saved.status_code == 302 and get_setting("two_factor.enabled") is True
    assert client.get("/admin/users")["Location"] == "/account/security/enrol"


def test_withdrawing_the_admins_own_method_asks_too(client: Client, admin: User, two_factor_on: None) -> None:
    """An administrator whose only method is email codes, withdrawing them: asked first, as that sends them
    to enrol."""
    Authenticator.objects.create(user=admin, method="email", destination="boss@example.com", confirmed_at=clock.now())
    set_setting("email.host", "mail.invalid")
    set_setting("two_factor.methods", ["totp", "email"])
    client.force_login(admin)
    session = client.session
    from twostep.core.decorators import REAUTH_KEY, SECOND_FACTOR_KEY

    session[REAUTH_KEY] = session[SECOND_FACTOR_KEY] = clock.timestamp()
    session.save()
    asked = client.post("/admin/authentication", {"enabled": "on", "methods": ["totp"]})
    assert 'id="applies-to-you"' in asked.content.decode()
    assert get_setting("two_factor.methods") == ["totp", "email"]
