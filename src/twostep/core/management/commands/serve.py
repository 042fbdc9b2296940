"""``twostep serve``: run the production WSGI server after checking the deployment."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import OperationalError

from twostep.config.loader import ServerConfig
from twostep.core.clockcheck import clock_warning
from twostep.core.crypto import KeyFileError, read_keys
from twostep.core.instance import instance_name
from twostep.core.keycheck import describe, instance_key_problems, secret_key_problem, secret_key_source
from twostep.core.management.commands.db import NEWER_DATABASE
from twostep.core.migrations_state import pending_migrations, unknown_migrations
from twostep.core.wording import plural
from twostep.mfa.policy import note_break_glass_start

logger = logging.getLogger("twostep.serve")


def _as_in_config(name: str) -> Callable[[str], int]:
    """An argparse type for the option that overrides ``server.<name>``: a whole number within that
    setting's own bounds (``ServerConfig``), else a usage error (exit 2) that says so."""
    bounds = ServerConfig.model_json_schema()["properties"][name]
    low, high = int(bounds["minimum"]), int(bounds["maximum"])

    def whole_number(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            number = low - 1
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from {low} to {high}")
        return number

    return whole_number


class Command(BaseCommand):
    help = "Run twostep's web server (granian, or gunicorn with gthread workers; see server.engine)."
    requires_system_checks: list[str] = []  # type: ignore[assignment]

    def add_arguments(self, parser: CommandParser) -> None:
        server = settings.CONFIG.server
        parser.add_argument("--host", default=server.host)
        parser.add_argument("--port", type=_as_in_config("port"), default=server.port)
        parser.add_argument("--engine", choices=("granian", "gunicorn"), default=server.engine)
        parser.add_argument("--workers", type=_as_in_config("workers"), default=server.workers)
        parser.add_argument("--threads", type=_as_in_config("threads"), default=server.threads)
        parser.add_argument("--dev", action="store_true", help="Allow debug mode (never in production).")

    def handle(
        self, *args: Any, host: str, port: int, engine: str, workers: int, threads: int, dev: bool, **_: Any
    ) -> None:
        self.check_deployment(dev)
        refuse_taken_address(host, port)
        # Only once it will serve: a refused start lets nobody in by password alone.
        note_break_glass_start(instance_name(port))
        build = granian_command if engine == "granian" else gunicorn_command
        command = [sys.executable, "-m", *build(host, port, workers, threads)]
        self.stdout.write(f"twostep serving on http://{host}:{port} ({engine}, {workers} x {threads})")
        self.stdout.flush()
        # The workers read the configuration again: they must see this run's
        # address, which the default server.public_url (in links of mails,
        # redirects of forward-auth, the API's description) is made from.
        os.environ["TWOSTEP_SERVER__HOST"] = host
        os.environ["TWOSTEP_SERVER__PORT"] = str(port)
        os.execv(sys.executable, command)

    def check_deployment(self, dev: bool) -> None:
        """Refuse to start a server that would be unsafe or broken.

        Also warns (server log) when this instance's clock is off from the
        database server's, and when the break-glass switch is on (``handle``
        records it in the auth log once the address is known to be free).

        Raises:
            CommandError: debug without --dev, missing or too short keys, an
                un-migrated database or one upgraded by a newer version, or
                keys that differ from the other instances' (the database's
                key check, stored at the first start when there is none).
        """
        if settings.DEBUG and not dev:
            raise CommandError("debug is on: refusing to serve in production; set debug = false (or pass --dev).")
        if not settings.SECRET_KEY:
            raise CommandError(
                f"no secret key in {settings.CONFIG.path(settings.CONFIG.secret_key_file)}; run `twostep init`."
            )
        short = secret_key_problem(settings.SECRET_KEY, secret_key_source())
        if short is not None:
            raise CommandError(short.message)
        try:
            read_keys(settings.ENCRYPTION_KEYS_PATH)
        except KeyFileError as exc:
            raise CommandError(
                f"{exc}; restore it from a backup (or run `twostep init` on a new installation)."
            ) from None
        try:
            pending = pending_migrations()
        except OperationalError as exc:
            raise CommandError(f"cannot reach the database: {exc}") from None
        if pending:
            raise CommandError(
                f"the database is not up to date ({plural(len(pending), 'migration')} pending); run `twostep db upgrade`."
            )
        unknown = unknown_migrations()
        if unknown:
            raise CommandError(NEWER_DATABASE.format(names=", ".join(unknown)))
        problems = instance_key_problems(record_if_missing=True)
        if problems:
            raise CommandError(f"refusing to serve: {describe(problems)}")
        warning = clock_warning()
        if warning:
            logger.warning(warning)
        if not settings.CONFIG.two_factor.enabled:
            logger.warning(
                "two-factor authentication is forced off by this instance's configuration: "
                "every sign-in here is password-only until it is removed"
            )


def refuse_taken_address(host: str, port: int) -> None:
    """Refuse to start where something already listens.

    granian binds its port for sharing (SO_REUSEPORT), so a second server
    on the same address would start without a word and take part of the
    traffic: an old version left running during an upgrade, or one
    restarted without the break-glass switch, answering every other request.

    Raises:
        CommandError: the address is taken, or cannot be bound at all.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            # Not SO_REUSEPORT: a listening socket then refuses the bind.  SO_REUSEADDR
            # lets connections of a server just stopped (TIME_WAIT) not count.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise CommandError(
                f"{host}:{port} is already in use, perhaps by another twostep server: stop it first, "
                "or choose another port (--port, server.port)."
            ) from None
        raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def granian_command(host: str, port: int, workers: int, threads: int) -> list[str]:
    """granian's arguments: ``workers`` processes, each running the WSGI app in ``threads`` threads."""
    return [
        "granian",
        "--interface",
        "wsgi",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--blocking-threads",
        str(threads),
        # One thread for the server's own I/O: the application's threads need the cores.
        "--runtime-threads",
        "1",
        "--no-ws",
        "--access-log",
        "--respawn-failed-workers",
        "--workers-kill-timeout",
        "10",
        APPLICATION,
    ]


def gunicorn_command(host: str, port: int, workers: int, threads: int) -> list[str]:
    """gunicorn's arguments: ``workers`` processes with ``threads`` gthread threads each."""
    return [
        "gunicorn",
        APPLICATION,
        "--bind",
        f"{host}:{port}" if ":" not in host else f"[{host}]:{port}",
        "--worker-class",
        "gthread",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--access-logfile",
        "-",
        "--forwarded-allow-ips",
        ",".join(settings.CONFIG.server.trusted_proxies) or "127.0.0.1",
        "--graceful-timeout",
        "10",
        "--timeout",
        "30",
    ]


APPLICATION = "twostep.wsgi:application"
