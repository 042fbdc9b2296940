"""Host name lookups that give up at a deadline.

``socket.getaddrinfo`` takes no timeout and cannot be interrupted; a
resolver that does not answer holds it for as long as the system's resolver
settings say (with glibc's defaults, 5 seconds per try and per name server),
which no socket timeout covers.  Here the lookup runs in a daemon thread and
the caller waits only until its deadline; a lookup still running then is
left to finish on its own, its answer unused.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any, TypeVar

AddressInfo = tuple[Any, ...]
T = TypeVar("T")


class LookupTimeout(TimeoutError):
    """The resolver gave no answer in time (a ``TimeoutError``: the callers' timeouts cover it)."""


def addresses(host: str, port: int, timeout: float) -> list[AddressInfo]:
    """``getaddrinfo(host, port)`` for TCP, within ``timeout`` seconds.

    An address literal ("127.0.0.1", "::1") is answered at once, without a
    thread.

    Raises:
        LookupTimeout: no answer within ``timeout`` seconds.
        socket.gaierror: the name does not resolve.
    """
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        pass  # a name, not an address: ask the resolver
    return within(timeout, f"no answer for {host}", lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))


def within(timeout: float, what: str, look_up: Callable[[], T]) -> T:
    """``look_up()``'s answer (or exception), if it comes within ``timeout`` seconds.

    Raises:
        LookupTimeout: "``what`` within ``timeout`` seconds"; ``look_up`` goes
            on in its daemon thread, its answer unused.
    """
    outcome: list[T | BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            outcome.append(look_up())
        except BaseException as exc:
            outcome.append(exc)
        done.set()

    threading.Thread(target=run, name="lookup", daemon=True).start()
    if not done.wait(max(0.0, timeout)):
        raise LookupTimeout(f"{what} within {timeout:g} seconds")
    answer = outcome[0]
    if isinstance(answer, BaseException):
        raise answer
    return answer
