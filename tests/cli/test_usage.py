"""`twostep --help`: the summary of each command lists every verb it has."""

from __future__ import annotations

import pytest
from django.core.management import get_commands, load_command_class

from twostep.cli import COMMANDS
from twostep.core.management.base import NounCommand


@pytest.mark.parametrize("noun", sorted(COMMANDS))
def test_each_summary_names_every_verb(noun: str) -> None:
    command = load_command_class(get_commands()[noun], noun)
    verbs = command.verbs if isinstance(command, NounCommand) else {}
    listed = {word.strip(".") for word in COMMANDS[noun].split(":", 1)[-1].replace(",", " ").split()}
    assert set(verbs) <= listed, f"twostep --help leaves out {sorted(set(verbs) - listed)} of {noun}"
