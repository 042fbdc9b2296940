"""The name of this instance where several share a database: its host name and port."""

from __future__ import annotations

import socket

from django.conf import settings


def instance_name(port: int | None = None) -> str:
    """E.g. ``login-2.internal:8000`` (``port`` by default the configured one): told in the auth log
    where one instance's configuration matters."""
    return f"{socket.gethostname()}:{port or settings.CONFIG.server.port}"
