"""``twostep email test|show|set-password|clear-password``: outgoing mail (see twostep.mail)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser

from twostep.audit.services import CLI, Outcome, record
from twostep.core.management.base import NounCommand, fail, read_password_stdin
from twostep.core.runtime import SettingError, get_settings
from twostep.mail import MailDeliveryError, send_test_email
from twostep.mail import config as mail_config
from twostep.mail.smtp import unencrypted_to_another_machine


class Command(NounCommand):
    help = "Outgoing mail (SMTP)."
    verbs = {
        "test": "Send a test email with the current settings and report the SMTP error, if any.",
        "show": "Show the effective SMTP settings (the password is never shown).",
        "set-password": "Store the SMTP password (encrypted), read from standard input.",
        "clear-password": "Forget the stored SMTP password (config.toml's, if any, applies again).",
    }

    def add_verb_arguments(self, verb: str, parser: CommandParser) -> None:
        if verb == "test":
            parser.add_argument("address", help="Where to send the test email.")

    def handle_test(self, address: str, **_: Any) -> None:
        try:
            send_test_email(address, origin=CLI)
        except ValidationError as exc:
            raise fail(exc.messages[0]) from None
        except MailDeliveryError as exc:
            said = f"\nDetails: {exc.smtp_error}" if exc.smtp_error and exc.smtp_error not in str(exc) else ""
            raise CommandError(f"The test email was not sent. {exc}{said}") from None
        self.stdout.write(f"Test email sent to {address.strip()}. Check that it arrived.")

    def handle_show(self, **_: Any) -> None:
        values = get_settings(*mail_config.KEYS)
        for key in mail_config.KEYS:
            self.stdout.write(f"{key} = {values[key]}")
        if not values[mail_config.FROM_ADDRESS]:
            self.stdout.write(f"  (messages are sent from {mail_config.default_from_address()})")
        source = {"console": "stored, encrypted", "config": "from config.toml or the environment", "": "none"}
        self.stdout.write(f"email.password: {source[mail_config.password_source()]}")
        elsewhere = mail_config.current_password_elsewhere()
        if elsewhere:
            self.stdout.write(f"  {elsewhere} (`twostep email set-password`)")
        from django.conf import settings

        file = settings.CONFIG.email
        self.stdout.write(f"timeout = {file.timeout:g} s; verify_certificate = {str(file.verify_certificate).lower()}")
        if file.ca_file:
            self.stdout.write(f"ca_file = {file.ca_file}")

    def handle_set_password(self, **_: Any) -> None:
        values = get_settings(mail_config.HOST, mail_config.SECURITY)
        if unencrypted_to_another_machine(values[mail_config.HOST], values[mail_config.SECURITY]):
            # As the console's page: every send would refuse it.
            raise fail(
                "twostep never sends a password to another machine without encryption: "
                "set email.security to starttls or tls first (twostep settings set email.security starttls)"
            )
        try:
            mail_config.set_password(read_password_stdin())
        except SettingError as exc:
            raise fail(str(exc)) from None
        record("settings.email", Outcome.INFO, origin=CLI, detail={"password": "changed"})
        self.stdout.write(f"SMTP password stored (encrypted), to be sent only to {mail_config.current_server()}.")

    def handle_clear_password(self, **_: Any) -> None:
        removed = mail_config.clear_password()
        if removed:
            record("settings.email", Outcome.INFO, origin=CLI, detail={"password": "removed"})
        self.stdout.write("Stored SMTP password removed." if removed else "No SMTP password was stored.")
