"""Counts in messages, for people to read: the number with its noun in the right number."""

from __future__ import annotations


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """``count`` followed by the noun in the right number: ``1 user``, ``3 users``, ``0 users``."""
    return f"{count} {singular if count == 1 else (plural_form or singular + 's')}"
