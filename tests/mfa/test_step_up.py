"""A code of a factor, after the password, before the second step changes (AZ-01, AZ-02).

Turning a factor off, adding or replacing one and new recovery codes need
a fresh password and then a code of a factor the user has (or a recovery
code): a session alone, a password alone, an empty form or a code already
used leaves everything as it was.
"""

from __future__ import annotations

import html
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from tests.authenticator_app import AuthenticatorApp
from tests.conftest import PASSWORD, asked_for_password, forget_second_factor_proof, sign_in
from tests.console.test_fresh_password import CHANGES as CONSOLE_CHANGES
from tests.mfa.test_totp_enrolment import enrol_via_pages
from twostep.accounts.models import User
from twostep.accounts.views import PENDING_KEY
from twostep.api.models import AccessToken
from twostep.audit.models import AuthEvent
from twostep.audit.services import CLI
from twostep.core import clock
from twostep.core.decorators import SECOND_FACTOR_KEY
from twostep.core.runtime import get_settings, set_setting
from twostep.factors import totp
from twostep.mfa import login as second_step
from twostep.mfa import step_up
from twostep.mfa.models import Authenticator, Method
from twostep.mfa.recovery_codes import services as recovery_codes
from twostep.mfa.step_up_views import SESSION_KEY

pytestmark = pytest.mark.django_db

REMOVE_TOTP = "/account/security/totp/remove"
PROMPT = "mfa/step_up.html"


def asked_for_code(response: Any) -> bool:
    """True when ``response`` is the step-up prompt standing in for the change."""
    return response.status_code == 200 and PROMPT in [t.name for t in response.templates]


def has_totp(user: User) -> bool:
    return Authenticator.objects.filter(user=user, method=Method.TOTP, confirmed_at__isnull=False).exists()


def set_up_app(client: Client) -> AuthenticatorApp:
    """An authenticator app set up through ``client``'s pages; it offers only steps after the one set-up used."""
    app = AuthenticatorApp(enrol_via_pages(client))
    app.last_step = totp.time_step(clock.timestamp()) - 1
    return app


@pytest.fixture
def with_app(user: User, two_factor_on: None) -> tuple[Client, AuthenticatorApp]:
    """Alice signed in (fresh password) with an authenticator app she just set up, and that app."""
    client = Client()
    sign_in(client, user.username)
    return client, set_up_app(client)


def test_turning_off_with_password_alone_is_refused(with_app: tuple[Client, AuthenticatorApp], user: User) -> None:
    """AZ-01: a fresh password and "yes, turn it off" get the code prompt, not the change."""
    client, _ = with_app
    response = client.post(REMOVE_TOTP, {"confirm": "yes"})
    assert asked_for_code(response)
    assert has_totp(user)
    # The prompt carries the change on, and the page says what to type.
    page = response.content.decode()
    assert '<input type="hidden" name="confirm" value="yes">' in page
    assert "Enter the 6-digit code from your authenticator app." in page


def test_empty_or_wrong_code_changes_nothing_and_counts(with_app: tuple[Client, AuthenticatorApp], user: User) -> None:
    """AZ-01: an empty code, a malformed one and a wrong one are refused; only the wrong one counts, as at
    sign-in, and the others are told what a code looks like."""
    client, app = with_app
    client.post(REMOVE_TOTP, {"confirm": "yes"})
    for typed, said in (("", "Enter the code."), ("053 243", "Enter the 6-digit code (digits only).")):
        answer = client.post(REMOVE_TOTP, {"confirm": "yes", "stepup-action": "code", "stepup-code": typed})
        assert asked_for_code(answer) and said in html.unescape(answer.content.decode())
        assert 'id="code-error-hint"' not in answer.content.decode()
    user.refresh_from_db()
    assert user.second_step_failures == 0
    right = app.code()
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    refused = client.post(REMOVE_TOTP, {"confirm": "yes", "stepup-action": "code", "stepup-code": wrong})
    assert asked_for_code(refused) and 'id="code-error-hint"' in refused.content.decode()
    assert has_totp(user)
    user.refresh_from_db()
    assert user.second_step_failures >= 1
    assert AuthEvent.objects.filter(kind="reauthenticate.second_step", user=user, outcome="failure").exists()


def test_impossible_codes_spend_none_of_the_step_ups_tries(
    with_app: tuple[Client, AuthenticatorApp], user: User
) -> None:
    """Empty or malformed codes and recovery codes, more times than a step-up has tries, are each told what a
    code looks like and spend nothing: the change is still carried and the right code then makes it."""
    client, app = with_app
    recovery_codes.regenerate(user, CLI)
    client.post(REMOVE_TOTP, {"confirm": "yes"})
    typings = [
        ("code", "code", "", "Enter the code."),
        ("code", "code", "\uff10" * 6, "digits only"),
        ("recovery", "recovery_code", "", "Enter one of your recovery codes."),
        ("recovery", "recovery_code", "ABC", "A recovery code has 16 letters and digits"),
    ]
    for action, field, typed, said in typings * 2:
        answer = client.post(REMOVE_TOTP, {"confirm": "yes", "stepup-action": action, f"stepup-{field}": typed})
        assert asked_for_code(answer) and said in html.unescape(answer.content.decode()), (action, typed)
        assert '<input type="hidden" name="confirm" value="yes">' in answer.content.decode()
    user.refresh_from_db()
    assert user.second_step_failures == 0
    assert not AuthEvent.objects.filter(kind="reauthenticate.second_step", outcome="failure").exists()
    assert (
        client.post(REMOVE_TOTP, {"confirm": "yes", "stepup-action": "code", "stepup-code": app.code()}).status_code
        == 302
    )
    assert not has_totp(user)


def test_right_code_carries_the_change_through(with_app: tuple[Client, AuthenticatorApp], user: User) -> None:
    client, app = with_app
    client.post(REMOVE_TOTP, {"confirm": "yes"})
    done = client.post(REMOVE_TOTP, {"confirm": "yes", "stepup-action": "code", "stepup-code": app.code()})
    assert done.status_code == 302 and done["Location"] == "/account/security"
    assert not has_totp(user)
    assert AuthEvent.objects.filter(kind="reauthenticate.second_step", user=user, outcome="success").exists()


def test_a_code_already_used_is_refused(user: User, two_factor_on: None) -> None:
    """AZ-01: the code that signed in (a stale code) does not confirm a change."""
    setup = Client()
    sign_in(setup, user.username)
    app = set_up_app(setup)
    client = Client()
    sign_in(client, user.username)
    used = app.code()
    assert client.post("/login/verify", {"code": used})["Location"] == "/account"
    forget_second_factor_proof(client)  # the sign-in's code proved the factor just now
    client.post(REMOVE_TOTP, {"confirm": "yes"})
    replayed = client.post(REMOVE_TOTP, {"confirm": "yes", "stepup-action": "code", "stepup-code": used})
    assert asked_for_code(replayed)
    assert has_totp(user)


def test_stale_password_asks_the_password_then_the_code(with_app: tuple[Client, AuthenticatorApp], user: User) -> None:
    """AZ-01: a session alone gets the password prompt; the password alone, the code prompt."""
    client, app = with_app
    session = client.session
    session["twostep_reauth_at"] = clock.timestamp() - settings.CONFIG.security.reauth_max_age - 1
    session.save()
    assert asked_for_password(client.post(REMOVE_TOTP, {"confirm": "yes"}))
    assert has_totp(user)
    after_password = client.post(REMOVE_TOTP, {"confirm": "yes", "reauth-password": PASSWORD})
    assert asked_for_code(after_password)
    assert has_totp(user)
    done = client.post(REMOVE_TOTP, {"confirm": "yes", "stepup-action": "code", "stepup-code": app.code()})
    assert done.status_code == 302
    assert not has_totp(user)


def test_too_many_wrong_codes_end_it_and_ask_the_password_again(
    with_app: tuple[Client, AuthenticatorApp], user: User
) -> None:
    """As at sign-in, a step-up has a few tries; then it is over and the password is asked again."""
    client, app = with_app
    client.post(REMOVE_TOTP, {"confirm": "yes"})
    wrong = f"{(int(totp.totp(app.key, clock.timestamp())) + 500_000) % 10**6:06d}"
    response = None
    for _ in range(settings.CONFIG.security.attempts_per_login):
        response = client.post(REMOVE_TOTP, {"confirm": "yes", "stepup-action": "code", "stepup-code": wrong})
    assert response is not None and response.status_code == 302 and response["Location"] == "/account/security"
    assert SESSION_KEY not in client.session
    assert has_totp(user)
    # Even the right code now needs the password first.
    assert asked_for_password(
        client.post(REMOVE_TOTP, {"confirm": "yes", "stepup-action": "code", "stepup-code": app.code()})
    )
    assert has_totp(user)


def test_proof_lasts_a_few_minutes(with_app: tuple[Client, AuthenticatorApp], user: User) -> None:
    client, app = with_app
    client.post("/account/security/recovery-codes", {})
    proven = client.post("/account/security/recovery-codes", {"stepup-action": "code", "stepup-code": app.code()})
    assert proven.status_code == 200 and "mfa/recovery_codes/new.html" in [t.name for t in proven.templates]
    # Within the window, the next change asks nothing more.
    again = client.post("/account/security/recovery-codes", {})
    assert "mfa/recovery_codes/new.html" in [t.name for t in again.templates]
    session = client.session
    session[SECOND_FACTOR_KEY] = clock.timestamp() - settings.CONFIG.security.reauth_max_age - 1
    session.save()
    assert asked_for_code(client.post("/account/security/recovery-codes", {}))


def test_new_recovery_codes_need_a_code(with_app: tuple[Client, AuthenticatorApp], user: User) -> None:
    """AZ-01: new recovery codes are a second factor: a password alone does not print them."""
    client, _ = with_app
    before = recovery_codes.remaining(user.pk)
    response = client.post("/account/security/recovery-codes", {})
    assert asked_for_code(response)
    assert "mfa/recovery_codes/new.html" not in [t.name for t in response.templates]
    assert recovery_codes.remaining(user.pk) == before


def test_adding_or_replacing_a_factor_needs_a_code(with_app: tuple[Client, AuthenticatorApp], user: User) -> None:
    """AZ-02: a new factor (SMS, email, a new app) is not bound on the password alone."""
    client, app = with_app
    for page in ("/account/security/totp", "/account/security/sms", "/account/security/email"):
        assert asked_for_code(client.get(page)), page
    # A wrong code keeps the prompt's memory of the GET; once proven, the page comes back as asked.
    right = app.code()
    wrong = client.post(
        "/account/security/totp",
        {"stepup-get": "1", "stepup-action": "code", "stepup-code": f"{(int(right) + 1) % 10**6:06d}"},
    )
    assert asked_for_code(wrong) and 'name="stepup-get" value="1"' in wrong.content.decode()
    proven = client.post("/account/security/totp", {"stepup-get": "1", "stepup-action": "code", "stepup-code": right})
    assert proven.status_code == 302 and proven["Location"] == "/account/security/totp"
    assert client.get("/account/security/totp").templates[0].name == "mfa/totp_setup.html"


def test_a_recovery_code_confirms_and_is_spent(with_app: tuple[Client, AuthenticatorApp], user: User) -> None:
    """Who lost the device can still turn it off with a recovery code."""
    client, _ = with_app
    codes = recovery_codes.regenerate(user, CLI).formatted
    client.post(REMOVE_TOTP, {"confirm": "yes"})
    form = {"confirm": "yes", "stepup-action": "recovery", "stepup-recovery_code": codes[0]}
    assert client.post(REMOVE_TOTP, form).status_code == 302
    assert not has_totp(user)
    assert recovery_codes.consume(user.pk, codes[0], clock.now()) is not None


def test_a_step_up_cannot_sign_in(with_app: tuple[Client, AuthenticatorApp], user: User, admin: User) -> None:
    """A step-up's token completes no sign-in, a sign-in's token confirms no change, nor does another's step-up."""
    _, app = with_app
    _, token = step_up.begin(user, CLI)
    stranger = Client()
    session = stranger.session
    session[PENDING_KEY] = token
    session.save()
    stranger.post("/login/verify", {"code": app.code()})
    assert "_auth_user_id" not in stranger.session
    sign_in(stranger, user.username)
    login_token = stranger.session[PENDING_KEY]
    assert step_up.resolve(login_token, user) is None
    assert step_up.resolve(token, user) is not None
    assert step_up.resolve(token, admin) is None


def test_no_factor_no_code(user: User, two_factor_on: None) -> None:
    """The first factor needs no code: none signs the user in yet."""
    client = Client()
    sign_in(client, user.username)
    assert client.get("/account/security/totp").templates[0].name == "mfa/totp_setup.html"


def test_an_admin_with_a_factor_confirms_a_reset(
    with_app: tuple[Client, AuthenticatorApp], user: User, admin: User
) -> None:
    """An administrator's reset of 2FA (theirs included) asks the administrator's own code first."""
    console = Client()
    sign_in(console, admin.username)
    admin_app = set_up_app(console)
    for target in (user, admin):
        url = f"/admin/users/{target.username}/reset-2fa"
        asked = console.post(url, HTTP_REFERER=f"http://testserver/admin/users/{target.username}")
        assert asked_for_code(asked)
        assert f'<a href="/admin/users/{target.username}">Cancel</a>' in asked.content.decode()
        assert has_totp(target)
    done = console.post(
        f"/admin/users/{user.username}/reset-2fa",
        {"stepup-action": "code", "stepup-code": admin_app.code(), "confirm": "yes"},
    )
    assert done.status_code == 302
    assert not has_totp(user)
    assert has_totp(admin)


def test_a_personal_token_needs_a_code(with_app: tuple[Client, AuthenticatorApp], user: User) -> None:
    """A personal API token skips the second step: the page makes one only after a code."""
    client, app = with_app
    form = {"name": "backup script", "scopes": ["read"], "days": "30"}
    assert asked_for_code(client.post("/account/tokens", form))
    assert not AccessToken.objects.filter(user=user, name="backup script").exists()
    made = client.post("/account/tokens", {**form, "stepup-action": "code", "stepup-code": app.code()})
    assert made.status_code == 200
    assert AccessToken.objects.filter(user=user, name="backup script").exists()


def test_switching_method_keeps_it_a_step_up(
    with_app: tuple[Client, AuthenticatorApp], user: User, admin: User
) -> None:
    """Switching method on the prompt keeps it a confirmation: its token still completes no sign-in."""
    client, _ = with_app
    set_setting("email.host", "mail.invalid")  # email is allowed once mail is set up; nothing is delivered
    set_setting("two_factor.methods", ["totp", "email"])
    Authenticator.objects.create(
        user=user, method=Method.EMAIL, destination="alice@example.com", confirmed_at=clock.now()
    )
    client.post(REMOVE_TOTP, {"confirm": "yes"})
    switched = client.post(REMOVE_TOTP, {"confirm": "yes", "stepup-action": "switch", "stepup-method": "email"})
    assert asked_for_code(switched)
    token = client.session[SESSION_KEY]
    pending = step_up.resolve(token, user)
    assert pending is not None and pending.method == Method.EMAIL
    assert second_step.resolve(token) is None


def test_turning_2fa_off_in_the_console_needs_the_admins_code(admin: User, two_factor_on: None) -> None:
    """Switching 2FA off (or the methods in use) is turning second steps off, the administrator's own too:
    the administrator's code first, then the confirmation of who is affected (AZ-01)."""
    from twostep.core.runtime import get_setting

    console = Client()
    sign_in(console, admin.username)
    app = set_up_app(console)
    forget_second_factor_proof(console)
    off = {"methods": ["totp"]}  # "enabled" unticked
    asked = console.post("/admin/authentication", off)
    assert asked_for_code(asked)
    affected = console.post("/admin/authentication", {**off, "stepup-action": "code", "stepup-code": app.code()})
    assert get_setting("two_factor.enabled") is True
    done = console.post("/admin/authentication", {**off, "confirm": str(affected.context["affected"])})
    assert done.status_code == 302
    assert get_setting("two_factor.enabled") is False


@pytest.mark.parametrize("path", CONSOLE_CHANGES)
def test_every_console_change_needs_the_admins_code(admin: User, user: User, two_factor_on: None, path: str) -> None:
    """Not only resets and 2FA off: a new administrator (who has no code to give) or a mail server of one's
    own reaches everyone's second step too, so every change in the console needs the administrator's code."""
    console = Client()
    sign_in(console, admin.username)
    set_up_app(console)
    forget_second_factor_proof(console)
    change = {
        "username": "helper",
        "password": "a new admin's passphrase 9",
        "role": "admin",
        "host": "mail.evil.example",
    }
    before = (User.objects.count(), get_settings("email.host"))
    asked = console.post(path, change)
    assert asked_for_code(asked)
    assert (User.objects.count(), get_settings("email.host")) == before
    # The prompt carries the change, its password encrypted rather than written back into the page.
    page = asked.content.decode()
    assert 'name="password"' in page and change["password"] not in page and 'value="helper"' in page


def test_a_sign_in_with_a_code_is_a_fresh_proof(with_app: tuple[Client, AuthenticatorApp], user: User) -> None:
    """Right after a sign-in that asked for a code, a change asks for no second one (the code still showing
    in the app was just used, and would be refused as a replay); a trusted browser's sign-in is no proof."""
    _, app = with_app
    client = Client()
    sign_in(client, user.username)
    assert client.post("/login/verify", {"code": app.code()})["Location"] == "/account"
    assert not asked_for_code(client.get("/account/security/totp"))

    trusted = Client()
    sign_in(trusted, user.username)
    assert trusted.post("/login/verify", {"code": app.code(), "trust": "1"})["Location"] == "/account"
    trusted.post("/logout")
    assert sign_in(trusted, user.username)["Location"] == "/account"
    assert asked_for_code(trusted.get("/account/security/totp"))
