"""``twostep users add|list|show|set-password|reset-2fa|unlock|sign-out|disable|enable|add-email|remove-email|add-phone|remove-phone``."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandParser

from twostep.accounts import services
from twostep.accounts.models import Role, User
from twostep.accounts.validators import normalize_phone
from twostep.audit.services import CLI
from twostep.core.management.base import NounCommand, fail, read_password_stdin
from twostep.core.wording import plural
from twostep.mfa import services as mfa_services
from twostep.mfa.models import Authenticator


@contextmanager
def _bad_input() -> Iterator[None]:
    """A service's ValidationError becomes the command's bad-input error (exit 2), its messages joined."""
    try:
        yield
    except ValidationError as exc:
        raise fail("; ".join(exc.messages)) from None


def _generated_password() -> str:
    return secrets.token_urlsafe(12)


class Command(NounCommand):
    help = "Manage users."
    verbs = {
        "add": "Create a user.",
        "list": "List users.",
        "show": "Show one user.",
        "set-password": "Set a user's password (without --password-stdin, they must change it at next sign-in).",
        "reset-2fa": "Remove all of a user's second factors (lost device) and end their sessions.",
        "unlock": "Lift a second-step lock after too many wrong codes.",
        "sign-out": "End a user's (or, with --everyone, every user's) sessions, API tokens and trusted browsers.",
        "disable": "Stop a user from signing in and end their sessions.",
        "enable": "Allow a disabled user to sign in again.",
        "add-email": "Give a user an email address (for email codes and security notices).",
        "remove-email": "Take an email address from a user.",
        "add-phone": "Give a user a phone number (E.164, for SMS codes).",
        "remove-phone": "Take a phone number from a user.",
    }

    def add_verb_arguments(self, verb: str, parser: CommandParser) -> None:
        if verb == "list":
            parser.add_argument("--json", action="store_true", help="Print JSON.")
            return
        if verb == "sign-out":
            parser.add_argument("name", nargs="?", help="Username.")
            parser.add_argument(
                "--everyone", action="store_true", help="Every user, e.g. after the break-glass switch is off again."
            )
            return
        parser.add_argument("name", help="Username.")
        if verb == "add":
            parser.add_argument(
                "--email", action="append", default=[], help="Email address (repeatable; first is primary)."
            )
            parser.add_argument("--phone", action="append", default=[], help="Phone number, E.164 (repeatable).")
            parser.add_argument("--display-name", default="", help="Name shown in the pages.")
            parser.add_argument("--admin", action="store_true", help="Make the user an administrator.")
            parser.add_argument("--password-stdin", action="store_true", help="Read the password from standard input.")
        elif verb == "show":
            parser.add_argument("--json", action="store_true", help="Print JSON.")
        elif verb == "set-password":
            parser.add_argument("--password-stdin", action="store_true", help="Read the password from standard input.")
        elif verb in {"add-email", "remove-email"}:
            parser.add_argument("address", help="Email address.")
        elif verb in {"add-phone", "remove-phone"}:
            parser.add_argument("number", help="Phone number, E.164 (+15551234567).")
        if verb in {"add-email", "add-phone"}:
            parser.add_argument("--primary", action="store_true", help="Make it the primary one.")

    def _user(self, name: str) -> User:
        try:
            return services.find_user(name)
        except services.UserNotFoundError as exc:
            raise fail(str(exc)) from None

    def handle_add(
        self,
        name: str,
        email: list[str],
        phone: list[str],
        display_name: str,
        admin: bool,
        password_stdin: bool,
        **_: Any,
    ) -> None:
        password = read_password_stdin() if password_stdin else _generated_password()
        with _bad_input():
            user = services.create_user(
                name,
                password=password,
                display_name=display_name,
                role=Role.ADMIN if admin else Role.USER,
                emails=email,
                phones=phone,
                must_change_password=not password_stdin,
                origin=CLI,
            )
        self.stdout.write(f"Created {user.role} {user.username}.")
        for address in user.email_addresses.all():
            self._warn_if_shared(address.email, services.also_on(address))
        for number in user.phone_numbers.all():
            self._warn_if_shared(number.number, services.also_on(number))
        if not password_stdin:
            self.stdout.write(f"One-time password (shown once; must be changed at first sign-in): {password}")

    def handle_list(self, json: bool = False, **_: Any) -> None:
        users = User.objects.order_by("username")
        enrolled = set(Authenticator.objects.filter(confirmed_at__isnull=False).values_list("user_id", flat=True))
        rows = [
            {
                "username": u.username,
                "display_name": u.display_name,
                "role": u.role,
                "active": u.is_active,
                "two_factor": u.pk in enrolled,
                "locked": u.second_step_locked_at is not None,
            }
            for u in users
        ]
        if json:
            self.stdout.write(_dumps(rows))
            return
        self.stdout.write(f"{'USERNAME':<24}{'ROLE':<8}{'ACTIVE':<8}{'2FA':<5}NAME")
        for row in rows:
            flag = "yes" if row["two_factor"] else "no"
            active = "yes" if row["active"] else "no"
            self.stdout.write(f"{row['username']:<24}{row['role']:<8}{active:<8}{flag:<5}{row['display_name']}")

    def handle_show(self, name: str, json: bool = False, **_: Any) -> None:
        user = self._user(name)
        data = {
            "username": user.username,
            "display_name": user.display_name,
            "role": user.role,
            "active": user.is_active,
            "created_at": user.created_at.isoformat(),
            "emails": [{"email": e.email, "primary": e.is_primary} for e in user.email_addresses.all()],
            "phones": [{"number": p.number, "primary": p.is_primary} for p in user.phone_numbers.all()],
            "factors": [
                {"method": a.method, "since": a.confirmed_at.isoformat() if a.confirmed_at else None}
                for a in Authenticator.objects.filter(user=user, confirmed_at__isnull=False)
            ],
            "second_step_failures": user.second_step_failures,
            "second_step_locked": user.second_step_locked_at is not None,
        }
        if json:
            self.stdout.write(_dumps(data))
            return
        for key, value in data.items():
            if isinstance(value, list):
                value = (
                    ", ".join(
                        " ".join(f"{v}" for v in item.values() if v not in (True, False, None))
                        + (" (primary)" if item.get("primary") else "")
                        for item in value
                    )
                    or "-"
                )
            self.stdout.write(f"{key.replace('_', ' '):<22}{value}")

    def handle_set_password(self, name: str, password_stdin: bool, **_: Any) -> None:
        user = self._user(name)
        password = read_password_stdin() if password_stdin else _generated_password()
        with _bad_input():
            services.set_password(user, password, must_change=not password_stdin, origin=CLI)
        self.stdout.write(f"Password of {user.username} set; their sessions ended.")
        if not password_stdin:
            self.stdout.write(f"One-time password (shown once; must be changed at next sign-in): {password}")

    def handle_reset_2fa(self, name: str, **_: Any) -> None:
        user = self._user(name)
        removed = mfa_services.reset_two_factor(user, origin=CLI)
        self.stdout.write(
            f"Two-factor authentication of {user.username} reset: {plural(removed, 'factor')} removed, sessions ended."
        )

    def handle_unlock(self, name: str, **_: Any) -> None:
        user = self._user(name)
        if user.second_step_locked_at is None and not user.second_step_failures:
            self.stdout.write(f"The second step of {user.username} was not locked; nothing changed.")
            return
        mfa_services.unlock_second_step(user, origin=CLI)
        self.stdout.write(f"Second step of {user.username} unlocked; sign-ins waiting for a code have ended.")

    def handle_sign_out(self, name: str | None, everyone: bool, **_: Any) -> None:
        if everyone == (name is not None):
            raise fail("name one user, or pass --everyone")
        users = User.objects.order_by("pk") if everyone else [self._user(str(name))]
        ended = sum(services.sign_out(user, origin=CLI) for user in users)
        whose = "every user" if everyone else users[0].username
        self.stdout.write(
            f"Signed out {whose}: {plural(ended, 'session')} ended, with their API tokens, trusted browsers "
            "and sign-ins waiting for a code."
        )

    def handle_disable(self, name: str, **_: Any) -> None:
        self._set_active(name, False)

    def handle_enable(self, name: str, **_: Any) -> None:
        self._set_active(name, True)

    def handle_add_email(self, name: str, address: str, primary: bool, **_: Any) -> None:
        user = self._user(name)
        with _bad_input():
            added = services.add_email(user, address, origin=CLI, primary=primary)
        self.stdout.write(f"{added.email} added to {user.username}{' as primary' if added.is_primary else ''}.")
        self._warn_if_shared(added.email, services.also_on(added))

    def handle_remove_email(self, name: str, address: str, **_: Any) -> None:
        user = self._user(name)
        found = user.email_addresses.filter(email__iexact=address.strip()).first()
        if found is None:
            raise fail(f"{address} is not an address of {user.username}.")
        services.remove_email(user, found.pk, origin=CLI)
        self.stdout.write(f"{found.email} removed from {user.username}.{_in_use_note(user, 'email', found.email)}")

    def handle_add_phone(self, name: str, number: str, primary: bool, **_: Any) -> None:
        user = self._user(name)
        with _bad_input():
            added = services.add_phone(user, number, origin=CLI, primary=primary)
        self.stdout.write(f"{added.number} added to {user.username}{' as primary' if added.is_primary else ''}.")
        self._warn_if_shared(added.number, services.also_on(added))

    def _warn_if_shared(self, value: str, others: list[str]) -> None:
        if others:
            self.stderr.write(
                f"warning: {value} is also on the account of {', '.join(others)}; codes sent there reach whoever reads it."
            )

    def handle_remove_phone(self, name: str, number: str, **_: Any) -> None:
        user = self._user(name)
        with _bad_input():
            normalized = normalize_phone(number)
        found = user.phone_numbers.filter(number=normalized).first()
        if found is None:
            raise fail(f"{normalized} is not a number of {user.username}.")
        services.remove_phone(user, found.pk, origin=CLI)
        self.stdout.write(f"{found.number} removed from {user.username}.{_in_use_note(user, 'sms', found.number)}")

    def _set_active(self, name: str, active: bool) -> None:
        user = self._user(name)
        with _bad_input():
            services.set_active(user, active, origin=CLI)
        self.stdout.write(f"{user.username} {'enabled' if active else 'disabled'}.")


def _in_use_note(user: User, method: str, destination: str) -> str:
    """A warning when the removed address or number is where the user's codes go."""
    if not mfa_services.sends_codes_to(user, method, destination):
        return ""
    return f" Their {'email' if method == 'email' else 'SMS'} codes went there: that method stops working until they set it up again."


def _dumps(value: object) -> str:
    return json.dumps(value, indent=2)
