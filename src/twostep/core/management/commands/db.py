"""``twostep db upgrade|status``."""

from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError

from twostep.core.clockcheck import database_offset, offset_warning
from twostep.core.crypto import KeyFileError
from twostep.core.keycheck import describe, instance_key_problems, stored_check
from twostep.core.management.base import NounCommand
from twostep.core.migrations_state import pending_migrations, unknown_migrations, upgrade_lock
from twostep.core.wording import plural

NEWER_DATABASE = (
    "the database was upgraded by a newer version of twostep ({names}): this instance runs an older one "
    "and must not serve it. Install the version the other instances run."
)


class Command(NounCommand):
    help = "Database schema."
    verbs = {
        "upgrade": "Apply pending migrations (once, with every instance of the previous version stopped).",
        "status": "List pending migrations; check this instance's keys and clock against the database.",
    }

    def handle_upgrade(self, **options: Any) -> None:
        def waiting() -> None:
            self.stdout.write("Another `twostep db upgrade` is running on this database: waiting for it to finish.")
            self.stdout.flush()

        with upgrade_lock(on_wait=waiting):
            pending = pending_migrations()
            if pending:
                call_command("migrate", interactive=False, verbosity=max(0, options.get("verbosity", 1) - 1))
        if pending:
            self.stdout.write(
                f"Applied {plural(len(pending), 'migration')}. Database is up to date.\n"
                "Instances of the previous version must not run against it any more: stop them all, "
                "then start this version on each."
            )
        else:
            self.stdout.write("Database is up to date.")

    def handle_status(self, **_: Any) -> None:
        pending = pending_migrations()
        if not pending:
            self.stdout.write("Database is up to date.")
        for name in pending:
            self.stdout.write(f"pending: {name}")
        problems = []
        unknown = unknown_migrations()
        if unknown:
            problems.append(NEWER_DATABASE.format(names=", ".join(unknown)))
        try:
            key_problems = instance_key_problems()
            stored = stored_check() is not None
        except KeyFileError as exc:
            problems.append(str(exc))
        except DatabaseError:
            self.stdout.write("keys: not checked (the database is not initialised; run `twostep db upgrade`)")
        else:
            if key_problems:
                problems.append(describe(key_problems))
            elif stored:
                self.stdout.write("keys: secret.key and encryption.keys match the database")
            else:
                self.stdout.write("keys: no key check in the database yet (`twostep serve` stores one at start-up)")
        offset = database_offset()
        if offset is not None:
            self.stdout.write(f"clock: {offset.seconds:+.1f} s against the database server's")
            warning = offset_warning(offset)
            if warning:
                self.stderr.write(f"warning: {warning}")
        if problems:
            raise CommandError("\n".join(problems))
