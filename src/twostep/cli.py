"""The ``twostep`` command: ``twostep <noun> <verb> ...``.

Each noun is one of twostep's Django management commands, so the same code
runs from this entry point, from ``django-admin`` and from the test runner.
"""

from __future__ import annotations

import os
import sys

COMMANDS = {
    "init": "Create ./data: configuration, keys, database and the first administrator.",
    "serve": "Run the web server (granian by default, or gunicorn).",
    "db": "Database: upgrade, status.",
    "users": "Users: add, list, show, set-password, reset-2fa, unlock, sign-out, disable, enable, add-email, remove-email, "
    "add-phone, remove-phone.",
    "settings": "Runtime settings: show, set.",
    "keys": "Encryption keys: status, add, rotate, drop-old.",
    "email": "Outgoing mail: test, show, set-password, clear-password.",
    "sms": "SMS codes: test, status, providers, configure, remove.",
    "audit": "The auth log: tail, prune.",
}

USAGE = "usage: twostep <command> [<args>]\n\ncommands:\n" + "\n".join(
    f"  {name:<10}{summary}" for name, summary in COMMANDS.items()
)


def main(argv: list[str] | None = None) -> int:
    """Run one twostep command; return the exit code.

    0 on success; 2 for bad input or configuration; 1 when the database cannot
    be reached or a key or data file cannot be read, said in one line (the
    traceback only with Django's ``--traceback``, given before the verb).
    Output cut short by its reader (``twostep audit tail | head -2``) ends
    quietly with 0.
    """
    try:
        code = _run(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()  # here, not at exit, where a closed pipe would be reported again
    except BrokenPipeError:
        # The reader took what it wanted and left.  Python flushes stdout once
        # more at exit: point it at /dev/null so that this says nothing either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return code


def _run(args: list[str]) -> int:
    """Run the command ``args``; return its exit code (see ``main``)."""
    if not args or args[0] in {"-h", "--help", "help"}:
        print(USAGE)
        return 0
    if args[0] in {"--version", "version"}:
        from twostep import __version__

        print(f"twostep {__version__}")
        return 0
    if args[0] not in COMMANDS:
        # Django's own commands (runserver, flush, dumpdata, changepassword...) would
        # pass round serve's checks and twostep's services: not offered here.
        print(f"twostep: unknown command {args[0]!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "twostep.settings")
    from django.db import InterfaceError, OperationalError

    from twostep.config import ConfigError

    try:
        if args[0] != "init" and not {"-h", "--help"} & set(args):
            problem = _not_initialised()
            if problem:
                print(f"twostep: {problem}", file=sys.stderr)
                return 2
        from django.core.management import execute_from_command_line

        execute_from_command_line(["twostep", *args])
    except ConfigError as exc:
        print(f"twostep: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except (OperationalError, InterfaceError) as exc:
        # Django's own --traceback (given before the verb: `twostep db --traceback status`) keeps the details.
        if "--traceback" in args:
            raise
        from twostep.core.middleware import database_error_text

        print(
            f"twostep: cannot reach the database ({_database_location()}): {database_error_text(exc)}", file=sys.stderr
        )
        return 1
    except OSError as exc:
        # A key or data file that cannot be read or written: a directory in
        # its place, wrong permissions, a full disk.  (A closed standard
        # output has no file name: main() ends quietly.)
        if "--traceback" in args or exc.filename is None:
            raise
        print(f"twostep: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def _database_location() -> str:
    """Which database failed, e.g. ``PostgreSQL 127.0.0.1:5432/twostep`` (no password)."""
    from django.conf import settings

    location: str = settings.CONFIG.database_location()
    return location


def _not_initialised() -> str | None:
    """Why the data directory cannot serve a command yet (no directory, no signing key, no database), or None.

    Nothing is created: a SQLite connection would create an empty database
    (and its writer-lock file), which is how an instance whose PostgreSQL URL
    did not reach the shell used to end up with a second, empty installation.

    Raises:
        ConfigError: the configuration itself is invalid.
    """
    from django.conf import settings

    config = settings.CONFIG  # the whole configuration is checked first: its errors say more
    if not config.data_dir.is_dir():
        return (
            f"there is no data directory at {config.data_dir.resolve()}: run `twostep init` first, "
            "or point TWOSTEP_DATA_DIR at an existing one"
        )
    key_file = config.path(config.secret_key_file)
    if not os.environ.get("TWOSTEP_SECRET_KEY") and not key_file.is_file():
        return (
            f"{key_file} is missing: run `twostep init` on a new instance, copy secret.key and "
            "encryption.keys from the first instance, or set TWOSTEP_SECRET_KEY if this installation "
            "takes its secret key from the environment"
        )
    database_file = config.path(config.database.sqlite_path)
    if not config.database.url and not database_file.exists():
        return (
            f"no database at {database_file}: run `twostep init`, or set database.url "
            "(TWOSTEP_DATABASE__URL) if this installation uses PostgreSQL"
        )
    return None


if __name__ == "__main__":
    raise SystemExit(main())
