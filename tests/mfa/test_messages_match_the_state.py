"""What the pages say after a change matches what signing in will ask: the policy, other methods, the switch.

Each case was a sentence that contradicted the page around it: "Sign-in now
needs only your password" beside "set one up now to continue", "now required
when you sign in" under the banner of the configuration's break-glass switch.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client, override_settings

from tests.conftest import forget_second_factor_proof, prove_second_factor, sign_in
from tests.mfa.enforcement.test_gates import fresh, require
from tests.mfa.recovery_codes.helpers import enrol_totp, signed_in_with_totp
from twostep.accounts import services
from twostep.accounts.models import User
from twostep.audit.services import CLI
from twostep.config.loader import load_config
from twostep.core import clock
from twostep.core.runtime import set_setting
from twostep.factors import totp
from twostep.mfa.models import Authenticator
from twostep.mfa.totp import flows as totp_flows

pytestmark = pytest.mark.django_db

BACKUP = "alice.backup@example.org"


def ready_for_changes(user: User, key: bytes) -> Client:
    """Signed in with the app's code, the password just re-entered: a change goes through at once."""
    client = Client()
    assert signed_in_with_totp(client, user, key).status_code == 302
    fresh(client)
    prove_second_factor(client)
    return client


def email_factor(user: User) -> Authenticator:
    """Email codes to the backup address, as if confirmed (no mail needed to test the words)."""
    return Authenticator.objects.create(user=user, method="email", destination=BACKUP, confirmed_at=clock.now())


def message_after(client: Client, path: str) -> str:
    response = client.post(path, {"confirm": "yes"}, follow=True)
    assert response.status_code == 200
    return " ".join(str(message) for message in response.context["messages"])


def test_removing_one_of_two_methods_says_the_other_still_signs_in(user: User, two_factor_on: None) -> None:
    set_setting("email.host", "mail.invalid")
    set_setting("two_factor.methods", ["totp", "email"])
    client = ready_for_changes(user, enrol_totp(user))
    email_factor(user)
    said = message_after(client, "/account/security/totp/remove")
    assert "Your other methods still sign you in." in said and "only your password" not in said


def test_removing_the_last_method_under_a_requirement_says_another_is_needed(user: User, two_factor_on: None) -> None:
    client = ready_for_changes(user, enrol_totp(user))
    require()
    asked = client.post("/account/security/totp/remove").content.decode()
    assert "your administrator requires one" in asked and "your password alone signs in" not in asked
    said = message_after(client, "/account/security/totp/remove")
    assert "Your administrator requires a second step" in said and "only your password" not in said


def test_removing_the_last_method_without_a_requirement_says_the_password_alone_signs_in(
    user: User, two_factor_on: None
) -> None:
    client = ready_for_changes(user, enrol_totp(user))
    assert "your password alone signs in" in client.post("/account/security/totp/remove").content.decode()
    assert "Sign-in now needs only your password." in message_after(client, "/account/security/totp/remove")


def test_an_app_set_up_during_break_glass_is_not_said_to_be_required(user: User, two_factor_on: None) -> None:
    client = Client()
    assert sign_in(client, user.username).status_code == 302
    fresh(client)
    key = totp.decode_secret(totp_flows.provisioning_for(user).secret)
    forced_off = load_config(settings.DATA_DIR, {"TWOSTEP_TWO_FACTOR__ENABLED": "false"})
    with override_settings(CONFIG=forced_off):
        response = client.post("/account/security/totp", {"code": totp.totp(key, clock.timestamp())}, follow=True)
    said = " ".join(str(message) for message in response.context["messages"])
    assert "once two-factor authentication is back on" in said and "now required" not in said


def test_an_app_set_up_while_the_console_switch_is_off_is_not_said_to_be_required(user: User) -> None:
    set_setting("two_factor.enabled", False)
    set_setting("two_factor.methods", ["totp"])
    client = Client()
    assert sign_in(client, user.username).status_code == 302
    fresh(client)
    key = totp.decode_secret(totp_flows.provisioning_for(user).secret)
    response = client.post("/account/security/totp", {"code": totp.totp(key, clock.timestamp())}, follow=True)
    said = " ".join(str(message) for message in response.context["messages"])
    assert "once two-factor authentication is back on" in said and "now required" not in said


def test_the_console_says_why_it_asks_an_administrator_for_a_code(admin: User, user: User, two_factor_on: None) -> None:
    """A display name is no change to how the administrator signs in: the prompt says what the code is for."""
    key = enrol_totp(admin)
    client = Client()
    assert signed_in_with_totp(client, admin, key).status_code == 302
    fresh(client)
    forget_second_factor_proof(client)
    form = {"display_name": "Alice L.", "role": "user", "is_active": "on"}
    asked = client.post(f"/admin/users/{user.username}", form).content.decode()
    assert "Changes in the admin console need a code" in asked
    assert "Changes to how you sign in" not in asked


def test_a_removed_address_is_not_shown_as_working(user: User, two_factor_on: None) -> None:
    set_setting("email.host", "mail.invalid")
    set_setting("two_factor.methods", ["totp", "email"])
    client = Client()
    assert sign_in(client, user.username).status_code == 302
    email_factor(user)
    services.remove_email(user, user.email_addresses.get(email=BACKUP).pk, origin=CLI)
    page = client.get("/account/security").content.decode()
    assert "Not working" in page and "is no longer on your account" in page
    assert '<span class="tag ok">On</span> Codes go to' not in page
