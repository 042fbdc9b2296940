"""``twostep db upgrade|status``."""

from __future__ import annotations

from typing import Any

from django.core.management import call_command

from twostep.core.management.base import NounCommand
from twostep.core.migrations_state import pending_migrations


class Command(NounCommand):
    help = "Database schema."
    verbs = {"upgrade": "Apply pending migrations.", "status": "List pending migrations."}

    def handle_upgrade(self, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=max(0, options.get("verbosity", 1) - 1))
        self.stdout.write("Database is up to date.")

    def handle_status(self, **_: Any) -> None:
        pending = pending_migrations()
        if not pending:
            self.stdout.write("Database is up to date.")
        for name in pending:
            self.stdout.write(f"pending: {name}")
