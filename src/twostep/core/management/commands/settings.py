"""``twostep settings show|set``: the runtime settings admins change in the console."""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core.management.base import CommandParser

from twostep.audit.services import CLI, Outcome, record
from twostep.core.management.base import NounCommand, fail
from twostep.core.runtime import DEFINITIONS, SettingError, get_setting, render_value, set_setting_from_text


class Command(NounCommand):
    help = "Runtime settings stored in the database."
    verbs = {"show": "Show every runtime setting.", "set": "Change one runtime setting."}

    def add_verb_arguments(self, verb: str, parser: CommandParser) -> None:
        if verb == "set":
            parser.add_argument("key", help=f"One of: {', '.join(sorted(DEFINITIONS))}.")
            parser.add_argument("value")

    def handle_show(self, **_: Any) -> None:
        for key, definition in sorted(DEFINITIONS.items()):
            self.stdout.write(f"{key} = {render_value(get_setting(key))}    # {definition.help}")
        if not django_settings.CONFIG.two_factor.enabled:
            self.stdout.write("note: two-factor authentication is forced off by the configuration file or environment.")

    def handle_set(self, key: str, value: str, **_: Any) -> None:
        try:
            stored = set_setting_from_text(key, value)
        except SettingError as exc:
            raise fail(f"{key}: {exc}") from None
        record("settings.changed", Outcome.INFO, origin=CLI, detail={"key": key, "value": stored})
        self.stdout.write(f"{key} = {render_value(stored)}")
        if key == "two_factor.methods":
            # The mfa app builds on core: imported when needed.
            from twostep.mfa.policy import methods_warning

            warning = methods_warning(list(stored))
            if warning:
                self.stderr.write(f"warning: {warning}")
