"""``twostep sms test|status|providers|configure|remove``: the SMS provider from a shell."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser

from twostep.audit.services import CLI
from twostep.core.management.base import NounCommand, fail
from twostep.core.runtime import get_setting
from twostep.sms import registry, service
from twostep.sms.base import ConfigurationError
from twostep.sms.service import NotSent


def _pairs(items: list[str], source: str, *, secret: bool = False) -> dict[str, str]:
    """``KEY=VALUE`` items as a dict; a ``secret`` source's malformed line is not echoed (it may be the bare secret)."""
    pairs: dict[str, str] = {}
    for number, item in enumerate(items, start=1):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            got = f"line {number} has no '='" if secret else f"got {item!r}"
            raise fail(f"{source}: expected KEY=VALUE (e.g. api_secret=...), {got}")
        pairs[key.strip()] = value.strip()
    return pairs


class Command(NounCommand):
    help = "SMS codes: the provider, its limits, a test message."
    verbs = {
        "test": "Send a test SMS to a phone number through the configured provider.",
        "status": "Show the provider, whether it works, and the limits.",
        "providers": "List the installed SMS providers and their options.",
        "configure": "Set the SMS provider and its options (secret options are read from standard input).",
        "remove": "Remove the SMS provider (only while SMS is not an allowed method).",
    }

    def add_verb_arguments(self, verb: str, parser: CommandParser) -> None:
        if verb == "test":
            parser.add_argument("number", help="Phone number in international form, e.g. +15551234567.")
        elif verb == "configure":
            parser.add_argument("provider", help="Provider name (see `twostep sms providers`).")
            parser.add_argument(
                "--sender", default=None, help="Sender number (+15551234567) or name (up to 11 characters)."
            )
            parser.add_argument(
                "--option", action="append", default=[], metavar="KEY=VALUE", help="A non-secret option (repeatable)."
            )
            parser.add_argument(
                "--secrets-stdin",
                action="store_true",
                help="Read secret options as KEY=VALUE lines from standard input (never pass secrets as arguments).",
            )

    def handle_test(self, number: str, **_: Any) -> None:
        try:
            receipt = service.send_test(number, origin=CLI)
        except ValueError as exc:
            raise fail(str(exc)) from None
        except NotSent as exc:
            raise CommandError(service.explain_test_refusal(exc), returncode=1) from None
        message_id = f" (message id {receipt.message_id})" if receipt.message_id else ""
        self.stdout.write(f"Test SMS to {service.mask(number)} handed to {receipt.provider}{message_id}.")

    def handle_status(self, **_: Any) -> None:
        status = service.status()
        if status.ready:
            self.stdout.write(f"provider: {status.provider} (ready)")
        elif status.provider:
            self.stdout.write(f"provider: {status.provider} (NOT usable: {status.problem})")
        else:
            self.stdout.write("provider: none")
        limit, countries = service.limits()
        self.stdout.write(f"sender: {get_setting(service.SENDER) or '(provider default)'}")
        self.stdout.write(f"sent in the last 24 hours: {service.sent_in_window()} of {limit}")
        self.stdout.write(f"allowed country calling codes: {', '.join(countries) or 'any'}")
        self.stdout.write(f"sms allowed as a method: {'yes' if 'sms' in get_setting('two_factor.methods') else 'no'}")

    def handle_providers(self, **_: Any) -> None:
        found = registry.discover()
        for name, cls in sorted(found.providers.items()):
            self.stdout.write(f"{name}: {cls.label}")
            for option in cls.options:
                flags = ", ".join(f for f, on in (("required", option.required), ("secret", option.secret)) if on)
                self.stdout.write(f"    {option.name}{f' ({flags})' if flags else ''}: {option.label}")
        for name, why in sorted(found.broken.items()):
            self.stdout.write(f"{name}: cannot be loaded: {why}")

    def handle_configure(
        self, provider: str, sender: str | None, option: list[str], secrets_stdin: bool, **_: Any
    ) -> None:
        try:
            cls = registry.provider_class(provider)
        except ConfigurationError as exc:
            raise fail(str(exc)) from None
        values = _pairs(option, "--option")
        secret_names = {o.name for o in cls.options if o.secret}
        known = {o.name for o in cls.options}
        leaked = sorted(secret_names & set(values))
        if leaked:
            raise fail(f"{', '.join(leaked)} is secret: pass it on standard input with --secrets-stdin")
        if secrets_stdin:
            secrets = _pairs(
                [line for line in sys.stdin.read().splitlines() if line.strip()], "standard input", secret=True
            )
            values.update(secrets)
        unknown = sorted(set(values) - known)
        if unknown:
            raise fail(
                f"unknown option(s) for {provider}: {', '.join(unknown)}; known: {', '.join(sorted(known)) or 'none'}"
            )
        if sender is None:
            sender = str(get_setting(service.SENDER) or "")
        try:
            service.save_configuration(provider, values, sender, origin=CLI)
        except ConfigurationError as exc:
            raise fail(f"{exc.setting}: {exc}") from None
        self.stdout.write(f"SMS provider set to {provider}.")

    def handle_remove(self, **_: Any) -> None:
        try:
            service.clear_configuration(origin=CLI)
        except ConfigurationError as exc:
            raise fail(str(exc)) from None
        self.stdout.write("SMS provider removed.")
