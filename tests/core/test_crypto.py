"""Encryption of secrets at rest and the key file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from twostep.core.crypto import (
    DecryptionError,
    KeyFileError,
    KeyRing,
    SecretBox,
    box_from_file,
    constant_time_equals,
    key_id,
    new_key,
    read_key_file,
    read_keys,
    write_key_file,
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
    """A missing, empty or corrupt key file is an error, never a fresh key (FLT-11)."""
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


def test_a_staged_key_decrypts_but_does_not_encrypt(tmp_path: Path) -> None:
    """`keys add` writes a `next:` line: read back as staged, it opens tokens but new ones use the current key."""
    path = tmp_path / "encryption.keys"
    current, older, staged = new_key(), new_key(), new_key()
    write_key_file(path, KeyRing((current, older), staged))
    assert f"next:{staged}" in path.read_text()
    ring = read_key_file(path)
    assert ring == KeyRing((current, older), staged) and ring.encrypting == current
    assert read_keys(path) == [current, older, staged]
    box = box_from_file(path)
    assert box.decrypt(SecretBox([staged]).encrypt("from the rotated instance")) == "from the rotated instance"
    assert SecretBox([current]).decrypt(box.encrypt("new")) == "new"
    with pytest.raises(DecryptionError):
        SecretBox([staged]).decrypt(box.encrypt("new"))


def test_key_file_with_only_a_staged_key_or_two_is_refused(tmp_path: Path) -> None:
    """A staged key alone encrypts nothing; two staged keys are ambiguous: both are errors."""
    path = tmp_path / "encryption.keys"
    path.write_text(f"next:{new_key()}\n")
    with pytest.raises(KeyFileError, match="no key"):
        read_key_file(path)
    path.write_text(f"next:{new_key()}\nnext:{new_key()}\n{new_key()}\n")
    with pytest.raises(KeyFileError, match="more than one"):
        read_key_file(path)
    path.write_text(f"next:not-a-key\n{new_key()}\n")
    with pytest.raises(KeyFileError, match="malformed"):
        read_key_file(path)


def test_key_ids_tell_keys_apart_without_showing_them() -> None:
    """The same key gives the same id anywhere; another key another id; the id is not part of the key."""
    key = new_key()
    assert key_id(key) == key_id(key) and key_id(key) != key_id(new_key())
    assert len(key_id(key)) == 16 and key_id(key) not in key
