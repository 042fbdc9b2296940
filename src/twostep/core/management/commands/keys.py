"""``twostep keys status|add|rotate|drop-old``: the encryption keys of secrets at rest."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from twostep.audit.services import CLI, Outcome, record
from twostep.core.crypto import DecryptionError, KeyFileError, key_id, read_key_file
from twostep.core.keycheck import KeyMismatch, describe, instance_key_problems, stored_check
from twostep.core.keyring import drop_old_keys, rotate_keys, stage_key
from twostep.core.management.base import NounCommand
from twostep.core.wording import plural

#: Printed by ``keys add`` and ``keys rotate``: the steps for instances sharing a database.
SEVERAL_INSTANCES = """\
With several instances sharing the database, rotate in two phases:
  1. twostep keys add          on one instance (a new key that decrypts, not yet encrypts)
  2. copy {path} to every other instance (mode 0600); `twostep keys status` shows the same ids everywhere
  3. twostep keys rotate       on the same instance (the new key encrypts; every secret re-encrypted)
  4. copy {path} to every other instance again
  5. later, optionally: twostep keys drop-old on that instance, then copy the file once more
See docs/recovery.md, "Rotating the encryption keys"."""


class Command(NounCommand):
    help = "Encryption keys for secrets at rest."
    verbs = {
        "status": "Show the ids of this instance's keys and whether they match the database.",
        "add": "Add the next key to the key file without encrypting with it yet (first step with several instances).",
        "rotate": "Make the added key (or a new one) the encrypting key and re-encrypt every stored secret.",
        "drop-old": "Re-encrypt every stored secret with the current key, then remove the older keys.",
    }

    def add_verb_arguments(self, verb: str, parser: CommandParser) -> None:
        if verb == "rotate":
            parser.add_argument(
                "--drop-old",
                action="store_true",
                help="Remove the old keys once every secret is re-encrypted (one instance only: "
                "with several, use `keys drop-old` after copying the rotated file everywhere).",
            )

    def handle_status(self, **_: Any) -> None:
        path = settings.ENCRYPTION_KEYS_PATH
        try:
            ring = read_key_file(path)
        except KeyFileError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"key file: {path}")
        self.stdout.write(f"encrypting key: {key_id(ring.encrypting)}")
        for key in ring.active[1:]:
            self.stdout.write(f"older key:      {key_id(key)}  (decrypts only)")
        if ring.staged:
            self.stdout.write(
                f"added key:      {key_id(ring.staged)}  (decrypts; encrypts after `twostep keys rotate`)"
            )
        stored = stored_check()
        if stored is None:
            self.stdout.write("database: no key check stored yet (`twostep serve` stores one at its first start)")
            return
        self.stdout.write(f"database: secrets are encrypted with key {stored.get('encrypting_key', '?')}")
        problems = instance_key_problems()
        if problems:
            raise CommandError(describe(problems))
        self.stdout.write("This instance's keys match the database.")

    def handle_add(self, **_: Any) -> None:
        try:
            staged, created = stage_key()
        except (KeyFileError, KeyMismatch) as exc:
            raise CommandError(str(exc)) from None
        if created:
            record("keys.added", Outcome.INFO, origin=CLI, detail={"key": staged})
            self.stdout.write(f"Key {staged} added to {settings.ENCRYPTION_KEYS_PATH}; it does not encrypt yet.")
        else:
            self.stdout.write(f"Key {staged} was already added and does not encrypt yet; nothing changed.")
        self.stdout.write(SEVERAL_INSTANCES.format(path=settings.ENCRYPTION_KEYS_PATH))

    def handle_rotate(self, drop_old: bool, **_: Any) -> None:
        try:
            staged = read_key_file(settings.ENCRYPTION_KEYS_PATH).staged
            count = rotate_keys(drop_old=drop_old)
        except (KeyFileError, KeyMismatch, DecryptionError) as exc:
            raise CommandError(str(exc)) from None
        current = key_id(read_key_file(settings.ENCRYPTION_KEYS_PATH).encrypting)
        record(
            "keys.rotated",
            Outcome.INFO,
            origin=CLI,
            detail={"secrets": count, "dropped_old": drop_old, "key": current, "was_added": bool(staged)},
        )
        if staged:
            self.stdout.write(f"The added key {current} now encrypts; {plural(count, 'secret')} re-encrypted.")
        else:
            self.stdout.write(f"New key {current} added; {plural(count, 'secret')} re-encrypted.")
        if drop_old:
            self.stdout.write("Old keys were removed: backups encrypted with them can no longer be read.")
        else:
            self.stdout.write("Old keys are kept for decryption; remove them with `twostep keys drop-old` later.")
        path = settings.ENCRYPTION_KEYS_PATH
        if staged:
            self.stdout.write(f"Now copy {path} to every other instance sharing this database.")
        else:
            # No added key: any other instance cannot read the re-encrypted secrets until it has this file.
            self.stdout.write(
                f"Other instances sharing this database cannot read the re-encrypted secrets until {path} is "
                "copied to them: do that now.\n" + SEVERAL_INSTANCES.format(path=path)
            )

    def handle_drop_old(self, **_: Any) -> None:
        try:
            count = drop_old_keys()
        except (KeyFileError, KeyMismatch, DecryptionError) as exc:
            raise CommandError(str(exc)) from None
        record("keys.dropped_old", Outcome.INFO, origin=CLI, detail={"secrets": count})
        self.stdout.write(
            f"{plural(count, 'secret')} re-encrypted with the current key; older keys removed from "
            f"{settings.ENCRYPTION_KEYS_PATH}. Backups encrypted with them can no longer be read. "
            "Copy the file to every other instance sharing this database."
        )
