"""Encryption of secrets at rest, with key rotation.

Secrets that must be read back (TOTP keys, SMTP and SMS provider passwords)
are encrypted with Fernet.  The keys live in a file outside the database,
one per line, newest first: the newest encrypts, all of them decrypt, so a
key can be added (``twostep keys rotate``) without losing anything.

A line ``next:KEY`` holds a *staged* key (``twostep keys add``): it decrypts
but does not encrypt yet.  Instances sharing a database copy the file with
the staged key first, so that every one of them can read what is encrypted
once ``twostep keys rotate`` makes it the newest key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class KeyFileError(Exception):
    """The encryption key file is missing or unreadable.  Fail closed."""


class DecryptionError(Exception):
    """A stored secret cannot be decrypted with any configured key."""


def new_key() -> str:
    """Return a fresh Fernet key (32 random bytes, URL-safe base64)."""
    return Fernet.generate_key().decode("ascii")


#: Marks the staged key's line in the key file.
STAGED_PREFIX = "next:"


@dataclass(frozen=True)
class KeyRing:
    """The key file's contents.

    ``active`` holds the keys in use, newest first: the first encrypts, all
    decrypt.  ``staged`` is the next key (``twostep keys add``), which only
    decrypts until ``twostep keys rotate`` promotes it.
    """

    active: tuple[str, ...]
    staged: str | None = None

    @property
    def encrypting(self) -> str:
        """The key new secrets are encrypted with."""
        return self.active[0]

    @property
    def decrypting(self) -> list[str]:
        """Every key, the encrypting one first (as ``SecretBox`` takes them)."""
        return [*self.active, *([self.staged] if self.staged else [])]


def read_key_file(path: Path) -> KeyRing:
    """Return the keys in ``path``.

    Raises:
        KeyFileError: the file is missing, holds no active key, holds a
            malformed key or more than one staged key.
    """
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise KeyFileError(f"cannot read the encryption key file {path}: {exc.strerror}") from None
    active: list[str] = []
    staged: list[str] = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(STAGED_PREFIX):
            staged.append(line.removeprefix(STAGED_PREFIX).strip())
        else:
            active.append(line)
    if not active:
        raise KeyFileError(f"the encryption key file {path} holds no key")
    if len(staged) > 1:
        raise KeyFileError(f"the encryption key file {path} holds more than one {STAGED_PREFIX} key")
    for key in [*active, *staged]:
        try:
            Fernet(key)
        except ValueError:
            raise KeyFileError(f"the encryption key file {path} holds a malformed key") from None
    return KeyRing(tuple(active), staged[0] if staged else None)


def read_keys(path: Path) -> list[str]:
    """Return every key in ``path``, the encrypting one first (see ``KeyRing.decrypting``).

    Raises:
        KeyFileError: see ``read_key_file``.
    """
    return read_key_file(path).decrypting


def write_key_file(path: Path, ring: KeyRing) -> None:
    """Write ``ring`` to ``path`` with mode 0600, atomically."""
    lines = ["# twostep encryption keys, newest first. Keep this file secret and backed up."]
    if ring.staged:
        lines.append(f"# {STAGED_PREFIX} marks the next key: it decrypts, and encrypts after `twostep keys rotate`.")
        lines.append(STAGED_PREFIX + ring.staged)
    lines.extend(ring.active)
    temporary = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def write_keys(path: Path, keys: list[str]) -> None:
    """Write ``keys`` (newest first, none staged) to ``path`` with mode 0600, atomically."""
    write_key_file(path, KeyRing(tuple(keys)))


def key_id(key: str) -> str:
    """A short fingerprint of ``key`` that tells keys apart without revealing them.

    An HMAC of a fixed label under the key: the same key gives the same id
    on every instance, so operators can compare key files by their ids.
    """
    return keyed_hash(key.encode("ascii"), "key-id", "twostep encryption key")[:16]


class SecretBox:
    """Encrypts and decrypts short strings with a list of keys."""

    def __init__(self, keys: list[str]) -> None:
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """Raises DecryptionError when no key opens ``token``."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise DecryptionError("a stored secret could not be decrypted with any configured key") from None

    def rotate(self, token: str) -> str:
        """Re-encrypt ``token`` under the newest key."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise DecryptionError("a stored secret could not be decrypted with any configured key") from None


@lru_cache(maxsize=4)
def _box_for(path: Path, mtime_ns: int) -> SecretBox:
    return SecretBox(read_keys(path))


def box_from_file(path: Path) -> SecretBox:
    """A SecretBox for the key file, reloaded when the file changes.

    Raises:
        KeyFileError: see ``read_keys``.
    """
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise KeyFileError(f"cannot read the encryption key file {path}: {exc.strerror}") from None
    return _box_for(path, mtime)


def keyed_hash(key: bytes, purpose: str, value: str) -> str:
    """HMAC-SHA256 of ``value`` under ``key`` for one ``purpose``, as hex."""
    return hmac.new(key, f"{purpose}\x00{value}".encode(), hashlib.sha256).hexdigest()


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    """Compare two secrets without leaking where they differ (length still leaks)."""
    left = a.encode() if isinstance(a, str) else a
    right = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(left, right)
