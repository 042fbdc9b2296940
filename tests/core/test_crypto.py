"""Encryption of secrets at rest and the key file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from twostep.core.crypto import (
    DecryptionError,
    KeyFileError,
    SecretBox,
    constant_time_equals,
    new_key,
    read_keys,
    write_keys,
)


def test_round_trip_and_no_plaintext() -> None:
    """Encrypted tokens decrypt to the input and do not contain it."""
    box = SecretBox([new_key()])
    token = box.encrypt("JBSWY3DPEHPK3PXP")
    assert "JBSWY3DPEHPK3PXP" not in token
    assert box.decrypt(token) == "JBSWY3DPEHPK3PXP"


def test_rotation_keeps_old_tokens_readable() -> None:
    """A new newest key decrypts old tokens; rotate() moves them to the new key."""
    old, fresh = new_key(), new_key()
    token = SecretBox([old]).encrypt("secret")
    both = SecretBox([fresh, old])
    assert both.decrypt(token) == "secret"
    rotated = both.rotate(token)
    assert SecretBox([fresh]).decrypt(rotated) == "secret"
    with pytest.raises(DecryptionError):
        SecretBox([old]).decrypt(rotated)


def test_wrong_key_fails_closed() -> None:
    """A token under an unknown key raises instead of returning anything."""
    with pytest.raises(DecryptionError):
        SecretBox([new_key()]).decrypt(SecretBox([new_key()]).encrypt("x"))


def test_key_file_is_private(tmp_path: Path) -> None:
    """The key file is written with mode 0600 and read back newest first."""
    path = tmp_path / "encryption.keys"
    keys = [new_key(), new_key()]
    write_keys(path, keys)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_keys(path) == keys


def test_missing_or_broken_key_file(tmp_path: Path) -> None:
    """A missing, empty or corrupt key file is an error, never a fresh key."""
    with pytest.raises(KeyFileError, match="cannot read"):
        read_keys(tmp_path / "absent")
    (tmp_path / "empty").write_text("# nothing\n")
    with pytest.raises(KeyFileError, match="no key"):
        read_keys(tmp_path / "empty")
    (tmp_path / "bad").write_text("not-a-key\n")
    with pytest.raises(KeyFileError, match="malformed"):
        read_keys(tmp_path / "bad")


def test_constant_time_equals() -> None:
    """The comparison helper compares values, for str and bytes."""
    assert constant_time_equals("123456", "123456")
    assert not constant_time_equals("123456", "123457")
    assert constant_time_equals(b"ab", "ab")
