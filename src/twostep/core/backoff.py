"""The growing wait of the throttles: 1, 2, 4, 8 ... seconds, up to a ceiling."""

from __future__ import annotations

from datetime import timedelta


def doubling_wait(step: int, longest: timedelta) -> timedelta:
    """``2 ** step`` seconds (one second for ``step`` <= 0), never more than ``longest``.

    The power is compared with the ceiling before it becomes a ``timedelta``:
    a counter that keeps growing (a patient attacker, or a generous lock
    setting) must keep yielding ``longest``, not an overflow that fails the
    request and rolls back the very count that throttles it.
    """
    seconds = 2 ** min(max(step, 0), 64)
    return longest if seconds >= longest.total_seconds() else timedelta(seconds=seconds)
