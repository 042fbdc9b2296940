"""Shared pieces of twostep's ``noun verb`` commands."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class NounCommand(BaseCommand):
    """A command whose first argument is a verb, dispatched to ``handle_<verb>``."""

    verbs: dict[str, str] = {}
    requires_system_checks: list[str] = []  # type: ignore[assignment]

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
        for verb, help_text in self.verbs.items():
            self.add_verb_arguments(verb, sub.add_parser(verb, help=help_text, description=help_text))

    def add_verb_arguments(self, verb: str, parser: CommandParser) -> None:
        """Override to declare each verb's arguments."""

    def handle(self, *args: Any, **options: Any) -> None:
        verb = options.pop("verb")
        getattr(self, "handle_" + verb.replace("-", "_"))(**options)


def read_password_stdin() -> str:
    """The first line of standard input, without its line ending.

    Raises:
        CommandError: standard input is empty.
    """
    line = sys.stdin.readline()
    password = line.rstrip("\r\n")
    if not password:
        raise CommandError("no password on standard input", returncode=2)
    return password


def fail(message: str) -> CommandError:
    """A CommandError for bad input: exit code 2."""
    return CommandError(message, returncode=2)
