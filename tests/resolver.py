"""A DNS server that does not answer, for the tests of lookups held to a deadline."""

from __future__ import annotations

import socket
import time

import pytest


def silence(monkeypatch: pytest.MonkeyPatch, host: str, seconds: float = 5.0) -> None:
    """Make looking up ``host`` (by name, not as an address literal) hang ``seconds`` before answering."""
    real = socket.getaddrinfo

    def silent(name: str, *args: object, **kwargs: object) -> object:
        if name == host and not int(kwargs.get("flags", 0)) & socket.AI_NUMERICHOST:
            time.sleep(seconds)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", silent)
