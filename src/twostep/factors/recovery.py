"""Recovery codes: generation, formatting for reading aloud, and parsing what people type.

Plain Python, no Django.  A code is 16 characters of Crockford's Base32
(digits and upper-case letters without I, L, O and U), i.e. 80 random bits
from ``secrets``, shown in four groups of four: ``K7QM-3XPD-9WTR-H2BF``.
Crockford's alphabet is made for being read aloud and typed back: there is
no I/1, L/1 or O/0 confusion, and ``normalise`` accepts lower case, spaces,
dashes and the look-alike letters a person may type instead.
"""

from __future__ import annotations

import secrets

#: Crockford's Base32 alphabet (32 symbols, 5 bits each).
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: Characters per code; 16 * 5 = 80 bits, above the 64-bit floor of NIST SP 800-63B look-up secrets.
LENGTH = 16
GROUP = 4
#: Codes in one set.
COUNT = 10
BITS = LENGTH * 5

# What people type for the symbols that are not in the alphabet.
_LOOKALIKES = str.maketrans({"I": "1", "L": "1", "O": "0"})
_SEPARATORS = str.maketrans("", "", " -\t")


def generate_code() -> str:
    """One code, unformatted: ``LENGTH`` symbols, each uniformly random."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def generate_set(count: int = COUNT) -> list[str]:
    """``count`` distinct codes (a collision at 80 bits is only theoretical, but costs nothing to exclude)."""
    codes: list[str] = []
    while len(codes) < count:
        code = generate_code()
        if code not in codes:
            codes.append(code)
    return codes


def format_code(code: str) -> str:
    """``K7QM3XPD9WTRH2BF`` → ``K7QM-3XPD-9WTR-H2BF`` (groups of four for reading aloud)."""
    return "-".join(code[i : i + GROUP] for i in range(0, len(code), GROUP))


def normalise(typed: str) -> str | None:
    """The code a person meant, or None when ``typed`` cannot be a code.

    Case, spaces and dashes are ignored and I, L, O are read as 1, 1, 0.
    Anything else outside the alphabet, or the wrong length, is refused
    before any lookup.
    """
    if not isinstance(typed, str) or len(typed) > 64:
        return None
    text = typed.upper().translate(_SEPARATORS).translate(_LOOKALIKES)
    if len(text) != LENGTH or any(char not in ALPHABET for char in text):
        return None
    return text


def as_text(codes: list[str], *, account: str, issuer: str, created: str) -> str:
    """The plain-text file a user downloads: a short explanation and one formatted code a line."""
    lines = [
        f"{issuer} recovery codes for {account}",
        f"Created {created}",
        "",
        "Each code signs you in once when you cannot use your usual second step.",
        "Keep them somewhere safe, away from your password.",
        "",
        *(format_code(code) for code in codes),
        "",
    ]
    return "\n".join(lines)
