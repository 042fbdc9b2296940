"""``twostep keys rotate``: a new encryption key, every secret re-encrypted."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from twostep.audit.services import CLI, Outcome, record
from twostep.core.crypto import DecryptionError, KeyFileError
from twostep.core.keyring import rotate_keys
from twostep.core.management.base import NounCommand


class Command(NounCommand):
    help = "Encryption keys for secrets at rest."
    verbs = {"rotate": "Add a new key and re-encrypt every stored secret with it."}

    def add_verb_arguments(self, verb: str, parser: CommandParser) -> None:
        parser.add_argument(
            "--drop-old", action="store_true", help="Remove the old keys once every secret is re-encrypted."
        )

    def handle_rotate(self, drop_old: bool, **_: Any) -> None:
        try:
            count = rotate_keys(drop_old=drop_old)
        except (KeyFileError, DecryptionError) as exc:
            raise CommandError(str(exc)) from None
        record("keys.rotated", Outcome.INFO, origin=CLI, detail={"secrets": count, "dropped_old": drop_old})
        self.stdout.write(f"New key added; {count} secret(s) re-encrypted.")
        if drop_old:
            self.stdout.write("Old keys were removed: backups encrypted with them can no longer be read.")
        else:
            self.stdout.write("Old keys are kept for decryption; remove them with --drop-old once backups are updated.")
