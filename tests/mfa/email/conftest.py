"""Fixtures for the email-code method: a real SMTP server, email allowed, an enrolled user."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import sign_in
from tests.mail.smtp_server import (
    SmtpServer,
    certificates,
    closed_port,
    hanging_port,
    mail_server,
    smtp_server,
)
from twostep.accounts.models import User
from twostep.audit.services import CLI
from twostep.core.runtime import get_setting, set_setting
from twostep.mfa.email import flows
from twostep.mfa.models import Authenticator

__all__ = ["certificates", "closed_port", "email_on", "enrolled", "hanging_port", "mail_server", "smtp_server"]

#: Alice's non-primary address (the `user` fixture has alice@example.com as primary).
BACKUP = "alice.backup@example.org"


@pytest.fixture
def email_on(db: None) -> None:
    """2FA on, with email codes among the allowed methods."""
    set_setting("two_factor.enabled", True)
    if not get_setting("email.host"):
        # Email codes can only be allowed once outgoing mail is set up.
        set_setting("email.host", "mail.invalid")
    set_setting("two_factor.methods", ["totp", "email"])


@pytest.fixture
def enrolled(user: User, mail_server: SmtpServer, email_on: None) -> Authenticator:
    """Alice enrolled email codes to her backup address (through real mail); the outbox is emptied after."""
    address = user.email_addresses.get(email=BACKUP)
    flows.start_enrolment(user, address.pk, CLI)
    factor = flows.confirm_enrolment(user, mail_server.last_code(BACKUP), CLI)
    mail_server.received.clear()
    return factor


def sign_in_with_email_code(client: Client, user: User, server: SmtpServer) -> None:
    """Both steps through the pages, reading the code from the mail server."""
    response = sign_in(client, user.username)
    assert response.status_code == 302 and response["Location"] == "/login/verify", response
    response = client.post("/login/verify", {"code": server.last_code()})
    assert response.status_code == 302 and response["Location"] == "/account", response
