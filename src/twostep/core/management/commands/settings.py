"""``twostep settings show|set``: the runtime settings admins change in the console."""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core.management.base import CommandParser

from twostep.audit.services import CLI, Outcome, record
from twostep.core.management.base import NounCommand, fail
from twostep.core.runtime import (
    DEFINITIONS,
    SettingError,
    get_setting,
    get_settings,
    render_value,
    set_setting_from_text,
)
from twostep.core.wording import plural


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
        from twostep.mfa.policy import SWITCH_KEYS  # the mfa app builds on core: imported when needed

        before = get_settings(*SWITCH_KEYS)
        try:
            stored = set_setting_from_text(key, value)
        except SettingError as exc:
            raise fail(f"{key}: {exc}") from None
        record("settings.changed", Outcome.INFO, origin=CLI, detail={"key": key, "value": stored})
        self.stdout.write(f"{key} = {render_value(stored)}")
        if key == "two_factor.enabled" and stored and not django_settings.CONFIG.two_factor.enabled:
            self.stderr.write(
                "warning: two-factor authentication stays off on this instance: its configuration file or "
                "environment forces it off ([two_factor] enabled = false, TWOSTEP_TWO_FACTOR__ENABLED)."
            )
        after = get_settings(*SWITCH_KEYS)
        if after != before:
            self._warn_affected(before, after)
        if key == "two_factor.methods":
            # The mfa app builds on core: imported when needed.
            from twostep.mfa.policy import methods_warning

            warning = methods_warning(list(stored))
            if warning:
                self.stderr.write(f"warning: {warning}")
        if key.startswith("email."):
            # As the console's page says: a password given for the server named before is not sent here.
            from twostep.mail import config as mail_config  # the mail app builds on core: imported when needed

            elsewhere = mail_config.current_password_elsewhere()
            if elsewhere:
                self.stderr.write(f"warning: {elsewhere} (twostep email set-password)")

    def _warn_affected(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        """Say how many users with a second factor are not asked for it under ``after``.

        A warning, not a refusal as in the console and the API: the CLI is the
        break-glass path, used when the console cannot be reached.
        """
        from twostep.mfa.services import affected_under  # the mfa app builds on core: imported when needed

        now = affected_under(after)
        if not now:
            return
        earlier = affected_under(before)
        reason = (
            "two-factor authentication is off"
            if not after["two_factor.enabled"]
            else "none of their methods is allowed"
        )
        self.stderr.write(
            f"warning: {plural(now, 'user')} who set up a second factor {'is' if now == 1 else 'are'} not asked for "
            f"a code with these settings ({earlier} before this change): {reason}."
        )
