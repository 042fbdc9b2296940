"""Setting up a production server (``live_server_factory``) for the email-code tests."""

from __future__ import annotations

from typing import Any

from tests.conftest import PASSWORD
from tests.mail.smtp_server import Certificates

CODES_ADDRESS = "bob.codes@example.org"


def smtp_env(certificates: Certificates, port: int, timeout: float = 3) -> dict[str, str]:
    """How the server finds the test's SMTP server: the [email] section through the environment."""
    return {
        "TWOSTEP_EMAIL__HOST": "127.0.0.1",
        "TWOSTEP_EMAIL__PORT": str(port),
        "TWOSTEP_EMAIL__SECURITY": "starttls",
        "TWOSTEP_EMAIL__CA_FILE": str(certificates.ca_file),
        "TWOSTEP_EMAIL__TIMEOUT": str(timeout),
        "TWOSTEP_EMAIL__FROM_ADDRESS": "twostep@example.test",
    }


def prepare(server: Any) -> None:
    """Email codes allowed, and Bob with a primary and a second address."""
    server.cli("settings", "set", "two_factor.enabled", "true")
    server.cli("settings", "set", "two_factor.methods", "totp,email")
    server.cli(
        "users", "add", "bob", "--email", "bob@example.com", "--email", CODES_ADDRESS, "--password-stdin",
        input=PASSWORD + "\n",
    )  # fmt: skip
