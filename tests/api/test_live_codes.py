"""API sign-in with email and SMS codes through the production server (`twostep serve`), with httpx.

The factors are set up on the web pages (their API enrolment is covered in
test_code_factors.py); then the sign-in runs through the API, reading the code
from a real SMTP server or a fake SMS provider speaking Twilio's API.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD
from tests.mail.smtp_server import Certificates, SmtpServer, certificates, smtp_server
from tests.mfa.email.live_helpers import CODES_ADDRESS, prepare, smtp_env
from tests.sms.conftest import fakes
from tests.sms.fakes import FakeProviderServer, FakeSet, provider_options

__all__ = ["certificates", "fakes", "smtp_server"]

pytestmark = pytest.mark.live

SECOND_PHONE = "+15557654321"


def submit(client: httpx.Client, url: str, data: dict[str, str]) -> httpx.Response:
    """GET the page for its CSRF token, then POST the form."""
    page = client.get(url).text
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match is not None, page
    return client.post(url, data={**data, "csrfmiddlewaretoken": match.group(1)})


def api_sign_in(server: Any, username: str, read_code: Callable[[], str]) -> httpx.Response:
    """Password, then the code ``read_code`` finds, through the API; returns the verify response."""
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=30) as http:
        step = http.post("/auth/login", json={"username": username, "password": PASSWORD})
        assert step.status_code == 200, step.text
        body = step.json()
        assert body["status"] == "second_step_required", body
        verified = http.post("/auth/login/verify", json={"login_token": body["login_token"], "code": read_code()})
        if verified.status_code == 200:
            me = http.get("/me", headers={"Authorization": f"Bearer {verified.json()['access_token']}"})
            assert me.status_code == 200 and me.json()["username"] == username
        return verified


def test_email_code_sign_in(
    live_server_factory: Callable[..., Any], smtp_server: SmtpServer, certificates: Certificates
) -> None:
    """Bob enrols email codes on the page, then signs in through the API with the code mailed to him."""
    server = live_server_factory(smtp_env(certificates, smtp_server.port))
    prepare(server)
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        assert submit(browser, "/login", {"username": "bob", "password": PASSWORD}).status_code == 302
        setup = browser.get("/account/security/email").text
        match = re.search(r'value="(\d+)"[^>]*>\s*' + re.escape(CODES_ADDRESS), setup)
        assert match is not None, setup
        submit(browser, "/account/security/email", {"action": "send", "address": match.group(1)})
        code = smtp_server.wait_for_match(subject="Confirm this address").code()
        assert submit(browser, "/account/security/email", {"action": "confirm", "code": code}).status_code == 302
    sent = len(smtp_server.messages())

    def mailed_code() -> str:
        smtp_server.wait_for(sent + 1)
        return smtp_server.last_code(CODES_ADDRESS)

    response = api_sign_in(server, "bob", mailed_code)
    assert response.status_code == 200, response.text


def configure_sms(server: Any, fake: FakeProviderServer) -> None:
    name, options, secrets = provider_options(fake)
    args = ["sms", "configure", name, "--sender", "+15550001111"]
    for key, value in options.items():
        args += ["--option", f"{key}={value}"]
    server.cli(*args, "--secrets-stdin", input="".join(f"{k}={v}\n" for k, v in secrets.items()))
    server.cli("settings", "set", "two_factor.enabled", "true")
    server.cli("settings", "set", "two_factor.methods", "totp,sms")


def test_sms_code_sign_in(live_server_factory: Callable[..., Any], fakes: FakeSet) -> None:
    """Dana enrols her second number on the page, then signs in through the API with the code texted there."""
    fake = fakes.twilio()
    server = live_server_factory()
    configure_sms(server, fake)
    server.cli(
        "users", "add", "dana", "--phone", "+15551234567", "--phone", SECOND_PHONE, "--password-stdin",
        input=PASSWORD + "\n",
    )  # fmt: skip
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        assert submit(browser, "/login", {"username": "dana", "password": PASSWORD}).status_code == 302
        page = browser.get("/account/security/sms").text
        ids = re.findall(r'name="phone" value="(\d+)"', page)
        assert len(ids) == 2, page
        # Numbers are listed primary first: the second radio is the second number.
        submit(browser, "/account/security/sms", {"action": "send", "phone": ids[1]})
        code = fake.last_code(SECOND_PHONE)
        assert submit(browser, "/account/security/sms", {"action": "confirm", "code": code}).status_code == 302
    before = len(fake.received)

    def texted_code() -> str:
        fake.wait_for(before + 1)
        return fake.last_code(SECOND_PHONE)

    response = api_sign_in(server, "dana", texted_code)
    assert response.status_code == 200, response.text
    assert [message.to for message in fake.received[before:]] == [SECOND_PHONE]
