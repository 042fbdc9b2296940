"""Counts in messages, for people to read: the number with its noun in the right number."""

from __future__ import annotations


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """``count`` followed by the noun in the right number: ``1 user``, ``3 users``, ``0 users``."""
    return f"{count} {singular if count == 1 else (plural_form or singular + 's')}"


def duration(seconds: int) -> str:
    """``seconds`` in the largest unit that divides it: ``24 hours``, ``90 minutes``, ``45 seconds``."""
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            return plural(seconds // size, unit)
    return plural(seconds, "second")


def seconds(value: float) -> str:
    """A timeout as people read it: ``1 second``, ``2.5 seconds``, ``10 seconds``."""
    return f"{value:g} second{'' if value == 1 else 's'}"
