"""The console's SMS page and the rule "no SMS method without a provider" on the Authentication page."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.conftest import PASSWORD, focused_field, sign_in
from tests.sms.fakes import TWILIO_SID, TWILIO_TOKEN, WEBHOOK_SECRET, FakeSet
from tests.sms.helpers import configure
from twostep.accounts.models import User
from twostep.audit.models import AuthEvent
from twostep.core.runtime import get_setting
from twostep.sms import service

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(admin: User) -> Client:
    client = Client()
    assert sign_in(client, admin.username)["Location"] == "/account"
    return client


def test_only_admins_see_the_page(client: Client, user: User) -> None:
    """Signed-out visitors go to /login; signed-in users who are not admins get 403."""
    assert client.get("/admin/sms")["Location"].startswith("/login")
    sign_in(client, user.username)
    assert client.get("/admin/sms").status_code == 403
    assert client.post("/admin/sms", {"action": "test", "number": "+15551234567"}).status_code == 403


def test_save_twilio_then_secret_never_shown(admin_client: Client, fakes: FakeSet) -> None:
    """The admin saves Twilio settings; the token is stored, never echoed back in full, and the test SMS goes out."""
    fake = fakes.twilio()
    page = admin_client.get("/admin/sms?provider=twilio").content.decode()
    assert 'name="opt_auth_token"' in page and 'type="password"' in page
    response = admin_client.post(
        "/admin/sms",
        {
            "action": "save",
            "provider": "twilio",
            "opt_account_sid": TWILIO_SID,
            "opt_auth_token": TWILIO_TOKEN,
            "opt_base_url": fake.url,
            "opt_timeout": "5",
            "sender": "+15550001111",
        },
    )
    assert response.status_code == 302
    page = admin_client.get("/admin/sms").content.decode()
    assert TWILIO_TOKEN not in page
    assert "ending in …6789" in page
    assert "Ready" in page and TWILIO_SID in page
    response = admin_client.post("/admin/sms", {"action": "test", "number": "+15551234567"}, follow=True)
    assert "Test SMS handed to twilio for +1 ••• ••• 4567" in response.content.decode()
    assert [m.to for m in fake.received] == ["+15551234567"]
    assert AuthEvent.objects.get(kind="sms.configured").detail["secrets_changed"] == ["auth_token"]


def test_invalid_settings_are_shown_next_to_the_field(admin_client: Client) -> None:
    """A bad option is reported on its field and nothing is stored."""
    response = admin_client.post(
        "/admin/sms",
        {
            "action": "save",
            "provider": "twilio",
            "opt_account_sid": "AC12",
            "opt_auth_token": "x",
            "sender": "+15550001111",
        },
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="opt_account_sid-error"' in page and "32 hexadecimal digits" in page
    assert get_setting(service.PROVIDER) == ""


def test_new_address_asks_for_the_secret_again(admin_client: Client, fakes: FakeSet) -> None:
    """A new API base URL with the token left blank: the page asks for the token, keeps what was typed, sends nothing."""
    legit = fakes.twilio()
    configure(legit)
    elsewhere = fakes.twilio()
    response = admin_client.post(
        "/admin/sms",
        {
            "action": "save",
            "provider": "twilio",
            "opt_account_sid": TWILIO_SID,
            "opt_auth_token": "",
            "opt_base_url": elsewhere.url,
            "opt_timeout": "5",
            "sender": "+15550001111",
        },
    )
    page = response.content.decode()
    assert 'id="opt_auth_token-error"' in page and "Enter it again" in page
    assert focused_field(page) == "opt_auth_token"
    assert f'value="{elsewhere.url}"' in page
    assert get_setting(service.OPTIONS)["base_url"] == legit.url
    admin_client.post("/admin/sms", {"action": "test", "number": "+15551234567"})
    assert elsewhere.requests == []


def test_test_sms_failure_shows_the_provider_error(admin_client: Client, fakes: FakeSet) -> None:
    """When the test SMS fails, the admin sees the provider's answer."""
    fake = fakes.webhook()
    configure(fake)
    fake.fail(503, {"error": "gateway on fire"})
    response = admin_client.post("/admin/sms", {"action": "test", "number": "+15551234567"})
    page = response.content.decode()
    assert (
        "The test SMS was not sent, the provider refused the message or could not be reached (delivery_failed)" in page
    )
    assert "gateway on fire" in page
    bad = admin_client.post("/admin/sms", {"action": "test", "number": "5551234567"}).content.decode()
    assert "international form" in bad
    empty = admin_client.post("/admin/sms", {"action": "test", "number": ""}).content.decode()
    assert "Enter the phone number to send the test SMS to" in empty
    assert focused_field(empty) == "test-number"


def test_unconfirmed_test_sms_says_it_may_arrive(admin_client: Client, fakes: FakeSet) -> None:
    """A test SMS the provider did not confirm in time is reported as such, with the provider's error."""
    fake = fakes.webhook()
    configure(fake, timeout="1")
    fake.fail(delay=2.0, count=1)
    page = admin_client.post("/admin/sms", {"action": "test", "number": "+15551234567"}).content.decode()
    assert "The provider did not confirm the test SMS; it may still arrive" in page
    assert "no answer within 1 second after the request was sent" in page


def test_limits_form(admin_client: Client) -> None:
    """The daily limit and allowed countries are saved; invalid input is explained and not stored."""
    response = admin_client.post("/admin/sms", {"action": "limits", "daily_limit": "40", "countries": "44, 1"})
    assert response.status_code == 302
    assert service.limits() == (40, ["1", "44"])
    response = admin_client.post("/admin/sms", {"action": "limits", "daily_limit": "-1", "countries": "999"})
    page = response.content.decode()
    assert "whole number from 1" in page and "not a country calling code" in page
    assert focused_field(page) == "daily_limit", "the first refused field takes the focus"
    assert service.limits() == (40, ["1", "44"])
    page = admin_client.post("/admin/sms", {"action": "limits", "daily_limit": "40", "countries": "x"}).content.decode()
    assert focused_field(page) == "countries"


def test_webhook_signing_secret_can_be_removed(admin_client: Client, fakes: FakeSet) -> None:
    """An optional stored secret has a Remove box; ticking it drops the secret."""
    fake = fakes.webhook()
    configure(fake)
    page = admin_client.get("/admin/sms").content.decode()
    assert 'name="clear_signing_secret"' in page and WEBHOOK_SECRET not in page
    admin_client.post(
        "/admin/sms",
        {"action": "save", "provider": "webhook", "opt_url": fake.hook_url, "clear_signing_secret": "on", "sender": ""},
    )
    assert service.read_configuration().secrets == {}


def test_authentication_page_refuses_sms_without_provider(admin_client: Client, fakes: FakeSet) -> None:
    """Allowing SMS without a provider is refused on the Authentication page, which says why."""
    page = admin_client.get("/admin/authentication").content.decode()
    assert 'id="sms-method-problem"' in page and "/admin/sms" in page
    # Not to be ticked until it can be allowed (a forged form is still refused, below).
    assert '<input type="checkbox" name="methods" value="sms"' in page
    assert 'sms-method-problem" disabled>' in page
    response = admin_client.post("/admin/authentication", {"enabled": "on", "methods": ["totp", "sms"]})
    assert response.status_code == 200
    assert "SMS codes need an SMS provider" in response.content.decode()
    assert get_setting("two_factor.methods") == ["totp"]
    configure(fakes.webhook())
    ready = admin_client.get("/admin/authentication").content.decode()
    assert 'id="sms-method-problem"' not in ready
    assert "disabled" not in ready.split('value="sms"')[1].split("</label>")[0]
    response = admin_client.post("/admin/authentication", {"enabled": "on", "methods": ["totp", "sms"]})
    assert response.status_code == 302
    assert get_setting("two_factor.methods") == ["totp", "sms"]


def test_provider_removal_refused_while_sms_allowed(admin_client: Client, fakes: FakeSet) -> None:
    """The Remove button explains that SMS must first be disallowed."""
    configure(fakes.webhook())
    admin_client.post("/admin/authentication", {"enabled": "on", "methods": ["totp", "sms"]})
    response = admin_client.post("/admin/sms", {"action": "remove"}, follow=True)
    assert "remove SMS from the allowed methods" in response.content.decode()
    assert get_setting(service.PROVIDER) == "webhook"


def test_nav_links_to_the_sms_page(admin_client: Client) -> None:
    """The console navigation has the SMS page."""
    assert 'href="/admin/sms"' in admin_client.get("/admin/users").content.decode()


def test_provider_choice_lists_every_installed_provider(admin_client: Client) -> None:
    """The provider menu offers each installed provider by name and label."""
    page = admin_client.get("/admin/sms").content.decode()
    for name, label in (("twilio", "Twilio"), ("vonage", "Vonage (SMS API)"), ("webhook", "Webhook")):
        assert f'<option value="{name}">{label}' in page


def test_a_stale_session_carries_provider_secrets_sealed(admin_client: Client, frozen_clock) -> None:  # type: ignore[no-untyped-def]
    """Options of any name (a webhook's Authorization header) go through the password prompt sealed,
    not written into the page, and are saved as typed once the password is given."""
    frozen_clock.advance(6 * 60)
    form = {
        "action": "save",
        "provider": "webhook",
        "opt_url": "https://sms.example.net/send",
        "opt_authorization": "Bearer s3cret-webhook",
        "sender": "twostep",
    }
    prompt = admin_client.post("/admin/sms", form).content.decode()
    assert 'name="reauth-password"' in prompt and "s3cret-webhook" not in prompt
    carried = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', prompt))
    assert carried["opt_authorization"].startswith("sealed:")
    done = admin_client.post("/admin/sms", {**carried, "reauth-password": PASSWORD})
    assert done.status_code == 302
    assert service.read_configuration().secrets["authorization"] == "Bearer s3cret-webhook"
