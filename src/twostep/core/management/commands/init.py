"""``twostep init``: create the data directory, keys, database and first administrator."""

from __future__ import annotations

import json
import os
import secrets
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from twostep.accounts import services
from twostep.accounts.models import Role, User
from twostep.accounts.validators import normalize_username
from twostep.audit.services import CLI
from twostep.config.loader import CONFIG_FILE_NAME
from twostep.core.crypto import new_key, write_keys
from twostep.core.keycheck import describe, instance_key_problems
from twostep.core.management.base import fail
from twostep.core.migrations_state import upgrade_lock


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def _config_text(database_url: str) -> str:
    """The configuration file's template, with ``database_url`` as ``[database] url`` when one is given.

    A URL given in this shell's environment is kept in the file too, or every
    later command run without the variable would look for SQLite instead.

    Raises:
        CommandError: the URL could not be written so that it reads back the same.
    """
    template = files("twostep.config").joinpath("template.toml").read_text()
    if not database_url:
        return template
    # A TOML basic string: JSON's escapes, and DEL, which TOML refuses raw.
    quoted = json.dumps(database_url, ensure_ascii=False).replace("\x7f", "\\u007f")
    text = template.replace('\nurl = ""\n', f"\nurl = {quoted}\n", 1)
    try:
        text.encode("utf-8")  # bytes of the environment that were not UTF-8 cannot be written back
        written = tomllib.loads(text)["database"]["url"]
    except (UnicodeEncodeError, tomllib.TOMLDecodeError, KeyError):
        written = None
    if written != database_url:
        raise CommandError("could not write database.url into the configuration file; write it there yourself")
    return text


def _database_in_use() -> bool:
    """True when the configured database already has twostep's accounts in it."""
    if User._meta.db_table not in connection.introspection.table_names():
        return False
    return User.objects.exists()


class Command(BaseCommand):
    help = "Initialise the data directory (idempotent: an existing one is left as it is)."
    requires_system_checks: list[str] = []  # type: ignore[assignment]

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--admin-username", default="admin", help="Name of the first administrator.")

    def handle(self, *args: Any, admin_username: str, **options: Any) -> None:
        data_dir = Path(settings.DATA_DIR)
        config_file = data_dir / CONFIG_FILE_NAME
        # With TWOSTEP_SECRET_KEY set the key file would never be read: none is written.
        key_from_environment = bool(os.environ.get("TWOSTEP_SECRET_KEY"))
        key_file = settings.CONFIG.path(settings.CONFIG.secret_key_file)
        keys_file = settings.ENCRYPTION_KEYS_PATH
        wanted = [keys_file] if key_from_environment else [key_file, keys_file]
        missing = [path for path in wanted if not path.exists()]
        # Every refusal comes before anything is written: a refused init
        # leaves the data directory as it found it.
        try:
            admin_username = normalize_username(admin_username)
        except ValidationError as exc:
            raise fail(f"--admin-username: {exc.messages[0]}") from None
        self._refuse_a_second_installation(data_dir, config_file, [key_file, keys_file], missing)
        # Only the service's own user: the database holds sessions and password hashes.
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not config_file.exists():
            url = settings.CONFIG.database.url
            # Private like the keys: it may hold the database's password (and the SMTP one).
            _write_private(config_file, _config_text(url))
            self.stdout.write(f"Wrote {config_file}" + (" (with this database.url)" if url else ""))
        if key_file in missing:
            key = secrets.token_urlsafe(50)
            _write_private(key_file, key + "\n")
            settings.SECRET_KEY = key
            self.stdout.write(f"Wrote {key_file}")
        if not keys_file.exists():
            write_keys(keys_file, [new_key()])
            self.stdout.write(f"Wrote {keys_file}")
        with upgrade_lock(on_wait=lambda: self.stdout.write("Waiting for another upgrade of the database to finish.")):
            call_command("migrate", interactive=False, verbosity=0)
        # Records the key check on a new database; on another instance's
        # init, says which copied key file does not match the first one's.
        problems = instance_key_problems(record_if_missing=True)
        if problems:
            raise CommandError(describe(problems))
        if User.objects.filter(role=Role.ADMIN).exists():
            self.stdout.write(f"twostep is initialised in {data_dir}.")
            return
        password = secrets.token_urlsafe(12)
        services.create_user(admin_username, password=password, role=Role.ADMIN, must_change_password=True, origin=CLI)
        self.stdout.write(
            f"Created the administrator {admin_username!r}.\n"
            f"One-time password (shown only now; you choose a new one at first sign-in): {password}"
        )

    def _refuse_a_second_installation(
        self, data_dir: Path, config_file: Path, key_files: list[Path], missing: list[Path]
    ) -> None:
        """Stop when initialising here would start an installation beside an existing one.

        Raises:
            CommandError: the data directory has key files but the SQLite
                database it names does not exist (an instance of a PostgreSQL
                installation whose database URL did not reach this shell, or a
                lost database); or key files are missing while the database
                already holds accounts (new keys could not read its secrets).
            OperationalError: the PostgreSQL database cannot be reached.
        """
        config = settings.CONFIG
        if not config.database.url:
            database_file = config.path(config.database.sqlite_path)
            present = [path.name for path in key_files if path.exists()]
            if present and not database_file.exists():
                # Keys and a database are created together; keys alone mean the
                # database is elsewhere, and a new SQLite one would quietly be
                # a second installation with its own administrator.
                raise CommandError(
                    f"{data_dir} has {' and '.join(present)} but no database at {database_file}. "
                    f"If this installation uses PostgreSQL, set url under [database] in {config_file} "
                    "(or TWOSTEP_DATABASE__URL); if its SQLite database was lost, restore it from a backup "
                    '(docs/recovery.md, "Backups"). To start a new installation here instead, move the key '
                    "files away first. Nothing was written."
                )
            if not database_file.exists():
                return  # a new SQLite installation: connecting would create the file
        if missing and _database_in_use():
            # New keys could not read the secrets already stored (TOTP keys,
            # SMTP and SMS credentials) nor accept the sessions signed with the
            # old ones: the instance would half work.  Ask for the real ones.
            names = " and ".join(path.name for path in missing)
            raise CommandError(
                f"The database already holds an installation of twostep, but {data_dir} has no {names}. "
                "For another instance sharing this database, copy them from the first instance's data "
                "directory (with the same modes, 0600); after a loss, restore them from a backup. "
                "New keys could not read what the database holds, so nothing was written."
            )
