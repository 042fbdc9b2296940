"""The one clock the service reads, so that tests can move time.

Nothing in twostep calls ``time.time()`` or ``timezone.now()`` for a security
decision directly: it asks ``now()`` here.  Tests swap the source with
``use_clock()``; production reads the system clock in UTC.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

_source: Callable[[], float] = time.time


def timestamp() -> float:
    """Seconds since the Unix epoch, from the current clock source."""
    return _source()


def now() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.fromtimestamp(_source(), tz=UTC)


@contextmanager
def use_clock(source: Callable[[], float]) -> Iterator[None]:
    """Read time from ``source`` inside the block (for tests and benchmarks)."""
    global _source
    previous = _source
    _source = source
    try:
        yield
    finally:
        _source = previous


class FrozenClock:
    """A clock that moves only when told to; call it to read the time."""

    def __init__(self, start: float) -> None:
        self.value = float(start)

    def __call__(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds
