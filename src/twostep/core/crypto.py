"""Encryption of secrets at rest, with key rotation.

Secrets that must be read back (TOTP keys, SMTP and SMS provider passwords)
are encrypted with Fernet.  The keys live in a file outside the database,
one per line, newest first: the newest encrypts, all of them decrypt, so a
key can be added (``twostep keys rotate``) without losing anything.
"""

from __future__ import annotations

import hashlib
import hmac
import os
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


def read_keys(path: Path) -> list[str]:
    """Return the keys in ``path``, newest first.

    Raises:
        KeyFileError: the file is missing, empty or holds a malformed key.
    """
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise KeyFileError(f"cannot read the encryption key file {path}: {exc.strerror}") from None
    keys = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not keys:
        raise KeyFileError(f"the encryption key file {path} holds no key")
    for key in keys:
        try:
            Fernet(key)
        except ValueError:
            raise KeyFileError(f"the encryption key file {path} holds a malformed key") from None
    return keys


def write_keys(path: Path, keys: list[str]) -> None:
    """Write ``keys`` (newest first) to ``path`` with mode 0600, atomically."""
    temporary = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("# twostep encryption keys, newest first. Keep this file secret and backed up.\n")
        handle.write("\n".join(keys) + "\n")
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


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
