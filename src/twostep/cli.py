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
    "db": "Database: upgrade.",
    "users": "Users: add, list, show, set-password, reset-2fa, unlock, disable, enable.",
    "settings": "Runtime settings: show, set.",
    "keys": "Encryption keys: rotate.",
    "email": "Outgoing mail: test, show, set-password, clear-password.",
    "sms": "SMS codes: test, status, providers, configure, remove.",
    "audit": "The auth log: tail, prune.",
}

USAGE = "usage: twostep <command> [<args>]\n\ncommands:\n" + "\n".join(
    f"  {name:<10}{summary}" for name, summary in COMMANDS.items()
)


def main(argv: list[str] | None = None) -> int:
    """Run one twostep command; return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(USAGE)
        return 0
    if args[0] in {"--version", "version"}:
        from twostep import __version__

        print(f"twostep {__version__}")
        return 0
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "twostep.settings")
    from twostep.config import ConfigError

    try:
        from django.core.management import execute_from_command_line

        execute_from_command_line(["twostep", *args])
    except ConfigError as exc:
        print(f"twostep: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
