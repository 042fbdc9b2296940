"""The text of a search box, made safe to hand to the database."""

from __future__ import annotations

#: Longer searches find nothing more; SQLite refuses LIKE patterns of ~50 000 bytes.
MAX_SEARCH_LENGTH = 100


def search_term(raw: str) -> str:
    """``raw`` trimmed, without characters that cannot be typed, and cut to ``MAX_SEARCH_LENGTH``."""
    return "".join(char for char in raw.strip()[:MAX_SEARCH_LENGTH] if char.isprintable())
