"""The admin surface: users, addresses, phones, 2FA reset, unlock, tokens, settings and the auth log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from django.test import Client

from tests.api.conftest import Api, enrol_totp, error_code
from tests.concurrency import at_once
from tests.conftest import PASSWORD
from twostep.accounts.models import Role, User
from twostep.api import tokens
from twostep.api.models import AccessToken
from twostep.audit.models import AuthEvent
from twostep.audit.services import CLI, Origin, Outcome, record
from twostep.core import clock
from twostep.core.runtime import get_setting, set_setting
from twostep.mfa.models import Authenticator

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(admin: User, token_for) -> str:  # type: ignore[no-untyped-def]
    return str(token_for(admin))


def test_user_lifecycle(api: Api, root: str, admin: User) -> None:
    """Create with addresses, read, update, deactivate and delete a user; each step is audited with the actor."""
    created = api.post(
        "/admin/users",
        {
            "username": "Carol",
            "password": "a perfectly fine passphrase",
            "display_name": "Carol C",
            "emails": ["carol@example.com", "c@example.org"],
            "phones": ["+44 20 7946 0958"],
        },
        token=root,
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["username"] == "carol" and body["must_change_password"] is True
    assert [(e["email"], e["primary"]) for e in body["emails"]] == [
        ("carol@example.com", True),
        ("c@example.org", False),
    ]
    assert body["phones"][0]["number"] == "+442079460958"
    assert api.get("/admin/users/carol", token=root).json()["display_name"] == "Carol C"
    listing = api.get("/admin/users?q=car", token=root).json()
    assert [u["username"] for u in listing["items"]] == ["carol"] and listing["total"] == 1
    updated = api.patch("/admin/users/carol", {"display_name": "Carol", "is_active": False}, token=root)
    assert updated.status_code == 200 and updated.json()["is_active"] is False
    assert api.delete("/admin/users/carol", token=root).status_code == 204
    assert api.get("/admin/users/carol", token=root).status_code == 404
    kinds = list(AuthEvent.objects.filter(actor=admin).values_list("kind", flat=True))
    assert {"user.created", "user.updated", "user.deleted"} <= set(kinds)


def test_create_conflicts_and_rule_violations(api: Api, root: str, user: User) -> None:
    """A taken username is 409 conflict; a weak password or bad phone is 422 invalid_value."""
    taken = api.post("/admin/users", {"username": "alice"}, token=root)
    assert taken.status_code == 409 and error_code(taken) == "conflict"
    weak = api.post("/admin/users", {"username": "dave", "password": "password"}, token=root)
    assert weak.status_code == 422 and error_code(weak) == "invalid_value"
    phone = api.post("/admin/users", {"username": "dave", "phones": ["+1 555"]}, token=root)
    assert phone.status_code == 422 and error_code(phone) == "invalid_value"
    assert not User.objects.filter(username="dave").exists()


def test_last_admin_is_protected(api: Api, root: str, admin: User) -> None:
    """The last active administrator cannot be demoted, deactivated or deleted (422)."""
    for response in (
        api.patch(f"/admin/users/{admin.username}", {"role": "user"}, token=root),
        api.patch(f"/admin/users/{admin.username}", {"is_active": False}, token=root),
        api.delete(f"/admin/users/{admin.username}", token=root),
    ):
        assert response.status_code == 422 and error_code(response) == "invalid_value"
    admin.refresh_from_db()
    assert admin.is_admin and admin.is_active


def test_an_admin_cannot_demote_deactivate_or_delete_themselves(
    api: Api, root: str, admin: User, make_user: Callable[..., User]
) -> None:
    """With another administrator there, acting on one's own account is still refused (422): another can."""
    make_user("second-admin", role=Role.ADMIN)
    for response, words in (
        (api.patch(f"/admin/users/{admin.username}", {"role": "user"}, token=root), "your own role"),
        (api.patch(f"/admin/users/{admin.username}", {"is_active": False}, token=root), "deactivate your own"),
        (api.delete(f"/admin/users/{admin.username}", token=root), "delete your own"),
    ):
        assert response.status_code == 422 and error_code(response) == "invalid_value"
        assert words in response.json()["error"]["message"]
    admin.refresh_from_db()
    assert admin.is_admin and admin.is_active


def test_a_new_users_addresses_are_kept_once_whatever_their_case(api: Api, root: str) -> None:
    """As adding an address later refuses a case variant, creating a user keeps only the first spelling."""
    created = api.post(
        "/admin/users",
        {"username": "eve", "password": "a perfectly fine passphrase", "emails": ["d@example.test", "D@EXAMPLE.test"]},
        token=root,
    )
    assert created.status_code == 201, created.content
    assert list(User.objects.get(username="eve").email_addresses.values_list("email", flat=True)) == ["d@example.test"]


def test_emails_and_phones(api: Api, root: str, user: User) -> None:
    """Add, make primary and remove addresses and numbers; duplicates are 409; foreign ids are 404."""
    added = api.post("/admin/users/alice/emails", {"email": "new@example.net", "primary": True}, token=root)
    assert added.status_code == 201 and added.json()["primary"] is True
    duplicate = api.post("/admin/users/alice/emails", {"email": "new@example.net"}, token=root)
    assert duplicate.status_code == 409 and error_code(duplicate) == "conflict"
    old = user.email_addresses.get(email="alice@example.com")
    assert api.post(f"/admin/users/alice/emails/{old.pk}/primary", token=root).status_code == 204
    assert user.primary_email() == "alice@example.com"
    assert api.delete(f"/admin/users/alice/emails/{added.json()['id']}", token=root).status_code == 204
    missing = api.delete("/admin/users/alice/emails/999999", token=root)
    assert missing.status_code == 404 and error_code(missing) == "not_found"
    phone = api.post("/admin/users/alice/phones", {"phone": "+1 202 555 0143"}, token=root)
    assert phone.status_code == 201 and phone.json()["number"] == "+12025550143"
    assert api.post(f"/admin/users/alice/phones/{phone.json()['id']}/primary", token=root).status_code == 204
    assert api.delete(f"/admin/users/alice/phones/{phone.json()['id']}", token=root).status_code == 204
    assert list(user.phone_numbers.values_list("number", "is_primary")) == [("+15551234567", True)]


def test_reset_two_factor_and_unlock(api: Api, root: str, user: User, two_factor_on: None) -> None:
    """Reset removes the user's factors and ends their tokens; unlock clears a second-step lock."""
    enrol_totp(user)
    users_token = tokens.issue_sign_in_token(user, origin=CLI).secret
    User.objects.filter(pk=user.pk).update(second_step_failures=20, second_step_locked_at=clock.now())
    assert api.get("/admin/users/alice", token=root).json()["locked"] is True
    assert api.post("/admin/users/alice/unlock", token=root).status_code == 204
    user.refresh_from_db()
    assert user.second_step_locked_at is None and user.second_step_failures == 0
    reset = api.post("/admin/users/alice/reset-2fa", token=root)
    assert reset.status_code == 200 and reset.json() == {"removed": 1}
    assert not Authenticator.objects.filter(user=user).exists()
    assert api.get("/me", token=users_token).status_code == 401


def test_set_password(api: Api, root: str, user: User) -> None:
    """An admin-set password must be changed at next sign-in and ends the user's tokens."""
    users_token = tokens.issue_sign_in_token(user, origin=CLI).secret
    response = api.post("/admin/users/alice/password", {"password": "an admin chosen phrase"}, token=root)
    assert response.status_code == 204
    user.refresh_from_db()
    assert user.must_change_password and user.check_password("an admin chosen phrase")
    assert api.get("/me", token=users_token).status_code == 401


def test_admin_token_management(api: Api, root: str, user: User) -> None:
    """Admins list a user's tokens (no secrets), revoke one, then all."""
    first = tokens.issue_sign_in_token(user, origin=CLI)
    second = tokens.create_personal_token(user, name="ci", scopes=["read"], origin=CLI)
    listing = api.get("/admin/users/alice/tokens", token=root)
    assert {t["id"] for t in listing.json()} == {first.token.public_id, second.token.public_id}
    assert first.secret not in listing.content.decode()
    assert api.delete(f"/admin/users/alice/tokens/{first.token.public_id}", token=root).status_code == 204
    assert api.get("/me", token=first.secret).status_code == 401
    assert api.delete("/admin/users/alice/tokens", token=root).json() == {"revoked": 1}
    assert api.get("/me", token=second.secret).status_code == 401
    assert AccessToken.objects.filter(user__username="root").count() == 1


def test_revoking_all_of_a_users_tokens_ends_sign_in_tokens_too(api: Api, root: str, user: User) -> None:
    """An administrator's "revoke all" ends the user's API sign-ins as well as their personal tokens."""
    signed_in = tokens.issue_sign_in_token(user, origin=CLI).secret
    script = tokens.create_personal_token(user, name="ci", scopes=["read"], origin=CLI).secret
    assert api.delete("/admin/users/alice/tokens", token=root).json() == {"revoked": 2}
    assert api.get("/me", token=signed_in).status_code == 401
    assert api.get("/me", token=script).status_code == 401
    assert not AccessToken.objects.filter(user=user).exists()


def test_settings(api: Api, root: str, user: User) -> None:
    """Settings are listed with help and defaults; bad values are 422 and store nothing."""
    listing = api.get("/admin/settings", token=root).json()
    keys = {s["key"]: s for s in listing["settings"]}
    assert keys["two_factor.enabled"]["value"] is False and keys["two_factor.methods"]["value"] == ["totp"]
    changed = api.patch(
        "/admin/settings", {"values": {"two_factor.enabled": True, "two_factor.grace_sign_ins": 3}}, token=root
    )
    assert changed.status_code == 200, changed.content
    assert get_setting("two_factor.enabled") is True and get_setting("two_factor.grace_sign_ins") == 3
    bad = api.patch(
        "/admin/settings", {"values": {"two_factor.enabled": False, "two_factor.methods": ["fax"]}}, token=root
    )
    assert bad.status_code == 422 and error_code(bad) == "invalid_value"
    assert get_setting("two_factor.enabled") is True
    unknown = api.patch("/admin/settings", {"values": {"no.such": 1}}, token=root)
    assert unknown.status_code == 422 and "unknown setting 'no.such'" in unknown.json()["error"]["message"]
    # Secrets are not runtime settings: the SMTP password is set where it is never shown.
    password = api.patch("/admin/settings", {"values": {"email.password": "hunter2"}}, token=root)
    assert password.status_code == 422 and "twostep email set-password" in password.json()["error"]["message"]
    # The SMS provider is configured as a whole (its secrets checked with its URL), elsewhere.
    sms_part = api.patch("/admin/settings", {"values": {"sms.provider": "webhook"}}, token=root)
    assert sms_part.status_code == 422 and "twostep sms configure" in sms_part.json()["error"]["message"]
    assert get_setting("sms.provider") == ""
    assert AuthEvent.objects.filter(kind="settings.changed").count() == 2


def test_settings_errors_name_their_key(api: Api, root: str, user: User) -> None:
    """Each refusal of PATCH /admin/settings starts with the key (and names it in fields); text where
    the setting holds a list or a switch, as typed for `twostep settings set`, is shown as JSON."""

    def refused(values: dict[str, object]) -> dict[str, Any]:
        response = api.patch("/admin/settings", {"values": values}, token=root)
        assert response.status_code == 422 and error_code(response) == "invalid_value", response.content
        return response.json()["error"]  # type: ignore[no-any-return]

    listed = refused({"two_factor.methods": "totp,email"})
    assert listed["message"] == 'two_factor.methods: must be a list of method names, e.g. ["totp", "email"]'
    assert listed["fields"] == [
        {"field": "values.two_factor.methods", "message": 'must be a list of method names, e.g. ["totp", "email"]'}
    ]
    assert refused({"two_factor.enabled": "yes"})["message"].startswith("two_factor.enabled: 'yes' is not true")
    assert refused({"two_factor.enabled": "yes"})["message"].endswith("e.g. true")
    assert refused({"two_factor.methods": ["fax"]})["message"].startswith("two_factor.methods: unknown method(s) fax")
    second = refused({"two_factor.enabled": True, "two_factor.grace_sign_ins": -1})
    assert second["message"].startswith("two_factor.grace_sign_ins: ")
    assert refused({"no.such": 1})["message"].startswith("no.such: unknown setting")
    assert refused({"email.password": "hunter2"})["message"].startswith("email.password: set email.password with")
    assert get_setting("two_factor.enabled") is False


def test_email_codes_need_the_mail_server_which_the_api_sets(api: Api, root: str, user: User) -> None:
    """Allowing email codes (or the email check) without a mail server says that PATCH sets one; in the
    same request, the server first, it goes through."""
    for values in [{"two_factor.methods": ["totp", "email"]}, {"two_factor.enrolment_email_check": True}]:
        response = api.patch("/admin/settings", {"values": values}, token=root)
        assert response.status_code == 422, values
        message = response.json()["error"]["message"]
        assert message.startswith(f"{next(iter(values))}: ") and "PATCH /api/v1/admin/settings" in message
        assert "email.host" in message and "twostep email set-password" in message
    both = {
        "email.host": "smtp.example.com",
        "email.port": 465,
        "email.security": "tls",
        "two_factor.methods": ["totp", "email"],
    }
    response = api.patch("/admin/settings", {"values": both}, token=root)
    assert response.status_code == 200, response.content
    assert get_setting("two_factor.methods") == ["totp", "email"] and get_setting("email.host") == "smtp.example.com"


def test_settings_change_that_drops_protection_needs_confirmation(
    api: Api, root: str, user: User, two_factor_on: None
) -> None:
    """Switching 2FA off while users rely on it answers 409 with the count, until confirmed with it."""
    enrol_totp(user)
    first = api.patch("/admin/settings", {"values": {"two_factor.enabled": False}}, token=root)
    assert first.status_code == 409 and error_code(first) == "confirmation_required"
    assert "confirm_affected=1" in first.json()["error"]["message"] and first.json()["error"]["affected"] == 1
    assert get_setting("two_factor.enabled") is True
    wrong = api.patch("/admin/settings", {"values": {"two_factor.enabled": False}, "confirm_affected": 2}, token=root)
    assert wrong.status_code == 409 and get_setting("two_factor.enabled") is True
    ok = api.patch("/admin/settings", {"values": {"two_factor.enabled": False}, "confirm_affected": 1}, token=root)
    assert ok.status_code == 200 and get_setting("two_factor.enabled") is False


def test_audit_log_query(api: Api, root: str, user: User, admin: User, frozen_clock: clock.FrozenClock) -> None:
    """The auth log filters by user, outcome, kind, IP and time range, newest first, paginated."""
    AuthEvent.objects.all().delete()
    start = clock.now()
    web = Origin("203.0.113.9", "test")
    for _ in range(5):
        record("login.password", Outcome.FAILURE, origin=web, user=user, reason="credentials")
        frozen_clock.advance(60)
    record("login.password", Outcome.SUCCESS, origin=Origin("2001:db8::1"), user=admin)
    everything = api.get("/admin/audit?page_size=4", token=root).json()
    assert everything["total"] >= 6 and len(everything["items"]) == 4
    times = [item["created_at"] for item in everything["items"]]
    assert times == sorted(times, reverse=True)
    alice = api.get("/admin/audit?user=alice&outcome=failure", token=root).json()
    assert alice["total"] == 5 and {i["reason"] for i in alice["items"]} == {"credentials"}
    by_ip = api.get("/admin/audit?ip=2001:db8:0::1", token=root).json()
    assert [i["username"] for i in by_ip["items"]] == ["root"]
    since = (start + timedelta(seconds=120)).isoformat()
    until = (start + timedelta(seconds=240)).isoformat()
    window = api.get(
        "/admin/audit",
        token=root,
        QUERY_STRING=f"kind=login.password&since={since.replace('+', '%2B')}&until={until.replace('+', '%2B')}",
    )
    assert window.json()["total"] == 2
    page_two = api.get("/admin/audit?user=alice&page_size=2&page=2", token=root).json()
    assert page_two["page"] == 2 and len(page_two["items"]) == 2
    naive = api.get("/admin/audit?since=2027-01-01T00:00:00", token=root)
    assert naive.status_code == 400 and error_code(naive) == "invalid_request"


def test_a_page_past_the_end_is_empty(api: Api, root: str, user: User, make_user: Callable[..., User]) -> None:
    """Every paginated list answers a page past the end with no items, the page asked for and the
    real total (never the last page again), so a client reading until a page is empty stops."""
    make_user("bob")
    make_user("carol")
    users = api.get("/admin/users?page_size=2&page=2", token=root).json()
    assert [u["username"] for u in users["items"]] == ["carol", "root"] and users["total"] == 4
    past = api.get("/admin/users?page_size=2&page=99", token=root)
    assert past.status_code == 200
    assert past.json() == {"items": [], "total": 4, "page": 99, "page_size": 2}
    AuthEvent.objects.all().delete()
    for _ in range(3):
        record("login.password", Outcome.FAILURE, origin=CLI, user=user, reason="credentials")
    audit = api.get("/admin/audit?page=999", token=root)
    assert audit.status_code == 200
    assert audit.json() == {"items": [], "total": 3, "page": 999, "page_size": 50}
    last = api.get("/admin/audit?page_size=2&page=2", token=root).json()
    assert len(last["items"]) == 1 and last["page"] == 2


def test_admin_surface_refuses_users(api: Api, user: User, token_for) -> None:  # type: ignore[no-untyped-def]
    """A regular user's token gets 403 forbidden on admin operations and changes nothing."""
    token = token_for(user)
    response = api.post("/admin/users", {"username": "mallory"}, token=token)
    assert response.status_code == 403 and error_code(response) == "forbidden"
    assert not User.objects.filter(username="mallory").exists()
    assert api.patch("/admin/settings", {"values": {"two_factor.enabled": True}}, token=token).status_code == 403
    assert get_setting("two_factor.enabled") is False


def test_changes_need_a_recent_password_with_a_sign_in_token(
    api: Api, root: str, admin: User, user: User, frozen_clock: clock.FrozenClock
) -> None:
    """Six minutes after signing in, an admin's change answers 403 reauthentication_required; reading does not.

    After POST /me/reauthenticate the change goes through.  A personal admin
    token (for automation; making it needed the password) is not asked.
    """
    personal = tokens.create_personal_token(admin, name="ops script", scopes=["admin"], origin=CLI).secret
    frozen_clock.advance(6 * 60)
    stale = api.post("/admin/users/alice/unlock", token=root)
    assert stale.status_code == 403 and error_code(stale) == "reauthentication_required"
    assert api.get("/admin/users/alice", token=root).status_code == 200
    assert api.post("/me/reauthenticate", {"password": PASSWORD}, token=root).status_code == 200
    assert api.post("/admin/users/alice/unlock", token=root).status_code == 204
    assert api.post("/admin/users/alice/unlock", token=personal).status_code == 204


def test_settings_change_that_strands_its_author_is_refused(api: Api, root: str, admin: User) -> None:
    """An administrator with no factor and no address cannot turn on an email check they could not pass:
    409 conflict, and none of the values sent is stored."""
    from twostep.accounts import services
    from twostep.core.runtime import set_setting

    set_setting("email.host", "mail.example.com")
    change = {"two_factor.enabled": True, "two_factor.required": "admins", "two_factor.enrolment_email_check": True}
    refused = api.patch("/admin/settings", {"values": change}, token=root)
    assert refused.status_code == 409 and error_code(refused) == "conflict", refused.content
    assert "no second step and no email address" in refused.json()["error"]["message"]
    assert [get_setting(key) for key in change] == [False, "nobody", False]
    services.add_email(admin, "root@example.com", origin=CLI)
    assert api.patch("/admin/settings", {"values": change}, token=root).status_code == 200
    assert [get_setting(key) for key in change] == [True, "admins", True]


def test_admins_never_see_a_users_secrets(api: Api, root: str, admin: User, user: User, two_factor_on: None) -> None:
    """Neither the admin API nor the console shows a user's TOTP key, recovery codes or a pending code (AZ-08)."""
    from django.test import Client

    from tests.conftest import sign_in
    from twostep.factors import totp
    from twostep.mfa.recovery_codes import services as recovery

    key = enrol_totp(user)
    new = recovery.regenerate(user, CLI)
    pending_code = totp.totp(key, clock.timestamp())
    console = Client()
    sign_in(console, admin.username)
    answers = [
        api.get("/admin/users/alice", token=root).content.decode(),
        api.get("/admin/users?q=alice", token=root).content.decode(),
        api.get("/admin/audit", token=root).content.decode(),
        console.get("/admin/users/alice").content.decode(),
        console.get("/admin/users").content.decode(),
    ]
    secrets = [totp.encode_secret(key), key.hex(), *new.codes, *new.formatted]
    for page in answers:
        assert "alice" in page
        assert not [secret for secret in secrets if secret in page]
    assert pending_code not in answers[0]
    reset = api.post("/admin/users/alice/reset-2fa", token=root)
    assert reset.json() == {"removed": 1}  # a count, nothing of what was removed


@pytest.mark.parametrize(
    "field",
    [
        {"totp_secret": "JBSWY3DPEHPK3PXP"},
        {"mfa_enabled": False},
        {"phone_verified": True},
        {"is_admin": True},
        {"is_superuser": True},
        {"allowed_methods": ["email"]},
        {"second_step_failures": 0},
        {"password": "a perfectly fine passphrase"},
        {"username": "mallory"},
    ],
)
def test_user_update_takes_only_its_own_fields(api: Api, root: str, user: User, field: dict[str, object]) -> None:
    """PATCH /admin/users refuses any field beyond name, role and active, and changes nothing (AZ-12)."""
    before = User.objects.filter(pk=user.pk).values().get()
    response = api.patch("/admin/users/alice", {"display_name": "Mallory", **field}, token=root)
    assert response.status_code == 400 and error_code(response) == "invalid_request"
    assert User.objects.filter(pk=user.pk).values().get() == before


def test_an_address_or_number_of_another_account_is_added_and_named(
    api: Api, root: str, user: User, make_user: Callable[..., User]
) -> None:
    """As in the console: added all the same, with the other accounts in `also_on`."""
    make_user("bob", emails=["shared@example.org"], phones=["+12025550143"])
    phone = api.post("/admin/users/alice/phones", {"phone": "+1 202 555 0143"}, token=root)
    assert phone.status_code == 201 and phone.json()["also_on"] == ["bob"]
    email = api.post("/admin/users/alice/emails", {"email": "Shared@Example.org"}, token=root)
    assert email.status_code == 201 and email.json()["also_on"] == ["bob"]
    alone = api.post("/admin/users/alice/phones", {"phone": "+1 202 555 0199"}, token=root)
    assert alone.json()["also_on"] == []


def test_a_new_user_with_another_accounts_address_is_created_and_named(api: Api, root: str, user: User) -> None:
    """Creating a user answers `also_on` for each address and number, as adding one does."""
    created = api.post(
        "/admin/users",
        {"username": "frank", "emails": ["frank@example.org", "ALICE@example.com"], "phones": ["+1 555 123 4567"]},
        token=root,
    )
    assert created.status_code == 201, created.content
    assert [(e["email"], e["also_on"]) for e in created.json()["emails"]] == [
        ("frank@example.org", []),
        ("ALICE@example.com", ["alice"]),
    ]
    assert [(p["number"], p["also_on"]) for p in created.json()["phones"]] == [("+15551234567", ["alice"])]
    assert "also_on" not in api.get("/admin/users/frank", token=root).json()["emails"][0]


@pytest.mark.django_db(transaction=True)
def test_two_settings_changes_at_once_do_not_deadlock(
    admin: User, make_user: Callable[..., User], token_for: Callable[[User], str]
) -> None:
    """Two administrators change the same settings at the same moment, naming them in different orders.

    Each change locks the rows of its settings: in the payload's order, two
    changes deadlocked on PostgreSQL and one was answered 503.
    """
    other = make_user("root2", role=Role.ADMIN)
    set_setting("two_factor.grace_sign_ins", 1)
    set_setting("sms.daily_limit", 100)

    def change(token: str, values: dict[str, int]) -> str:
        response = Api(Client()).patch("/admin/settings", {"values": values}, token=token)
        return str(response.status_code)

    for round_ in range(50):
        one = partial(change, token_for(admin), {"two_factor.grace_sign_ins": round_, "sms.daily_limit": 200 + round_})
        two = partial(change, token_for(other), {"sms.daily_limit": 300 + round_, "two_factor.grace_sign_ins": round_})
        assert at_once([one, two]) == ["200", "200"]
