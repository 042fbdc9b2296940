"""Keys shared by several instances: the database's key check and the two-phase rotation.

Two instances are two key files here: "A" is the one in settings (where the
commands run), "B" a copy standing for another instance's data directory.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings

from twostep.core import keyring
from twostep.core.crypto import DecryptionError, KeyRing, SecretBox, box_from_file, new_key, read_key_file, write_keys
from twostep.core.keycheck import (
    CHECK_SETTING,
    MIN_SECRET_KEY_LENGTH,
    KeyMismatch,
    compare,
    instance_key_problems,
    make_check,
    record_check,
    secret_key_problem,
    stored_check,
)
from twostep.core.keyring import drop_old_keys, rotate_keys, stage_key
from twostep.core.models import Setting

SECRET = "s" * 50
OTHER_SECRET = "o" * 50
#: A registered encrypted setting (the SMTP password), as any stored secret.
ENCRYPTED = "email.password"


def problems_of(stored: dict[str, str], secret: str, ring: KeyRing) -> list[str]:
    found = compare(stored, secret, ring, secret_source="data/secret.key", keys_path=Path("data/encryption.keys"))
    return [problem.file for problem in found]


def test_compare_names_the_file_that_differs() -> None:
    """Same keys: nothing; another secret.key or other encryption keys: that file, and what to do."""
    ring = KeyRing((new_key(),))
    stored = make_check(SECRET, ring)
    assert problems_of(stored, SECRET, ring) == []
    assert problems_of(stored, OTHER_SECRET, ring) == ["secret.key"]
    assert problems_of(stored, SECRET, KeyRing((new_key(),))) == ["encryption.keys"]
    assert problems_of(stored, OTHER_SECRET, KeyRing((new_key(),))) == ["secret.key", "encryption.keys"]
    [message] = compare(
        stored, SECRET, KeyRing((new_key(),)), secret_source="x", keys_path=Path("/srv/b/encryption.keys")
    )
    assert "/srv/b/encryption.keys" in message.message and "Copy encryption.keys" in message.message
    [message] = compare(stored, OTHER_SECRET, ring, secret_source="/srv/b/secret.key", keys_path=Path("k"))
    assert "/srv/b/secret.key" in message.message and "Copy secret.key" in message.message


def test_compare_spots_an_instance_left_behind_by_a_rotation() -> None:
    """B holds the added key (it can read) but still encrypts with the previous one: copy the rotated file."""
    old, new = new_key(), new_key()
    stored = make_check(SECRET, KeyRing((new, old)))  # rotated on A
    [problem] = compare(
        stored, SECRET, KeyRing((old,), staged=new), secret_source="x", keys_path=Path("b/encryption.keys")
    )
    assert problem.file == "encryption.keys" and "rotated on another instance" in problem.message
    # Without the added key it cannot even read.
    assert problems_of(stored, SECRET, KeyRing((old,))) == ["encryption.keys"]


def test_a_short_secret_key_is_refused() -> None:
    """`abc` is not a secret key; what init writes (67 characters) and 32 random characters are."""
    problem = secret_key_problem("abc", "data/secret.key")
    assert problem is not None and problem.file == "secret.key"
    assert (
        "data/secret.key has 3 characters" in problem.message and f"at least {MIN_SECRET_KEY_LENGTH}" in problem.message
    )
    assert secret_key_problem("x" * (MIN_SECRET_KEY_LENGTH - 1), "k") is not None
    assert secret_key_problem("x" * MIN_SECRET_KEY_LENGTH, "k") is None


@pytest.fixture
def keys_a(tmp_path: Path) -> Iterator[Path]:
    """Instance A's key file: a copy of the suite's, so that rotations here change nothing else."""
    path = tmp_path / "a" / "encryption.keys"
    path.parent.mkdir()
    shutil.copy(settings.ENCRYPTION_KEYS_PATH, path)
    with override_settings(ENCRYPTION_KEYS_PATH=path):
        yield path


def copy_to_b(keys_a: Path) -> Path:
    """What the operator does: copy A's key file to instance B."""
    path = keys_a.parent.parent / "b" / "encryption.keys"
    path.parent.mkdir(exist_ok=True)
    shutil.copy(keys_a, path)
    return path


def problems_on(path: Path) -> list[str]:
    with override_settings(ENCRYPTION_KEYS_PATH=path):
        return [problem.file for problem in instance_key_problems()]


def store_secret(plaintext: str, box: SecretBox) -> None:
    Setting.objects.update_or_create(key=ENCRYPTED, defaults={"value": box.encrypt(plaintext)})


def stored_secret() -> str:
    return str(Setting.objects.get(key=ENCRYPTED).value)


@pytest.mark.django_db
def test_first_start_records_the_check_and_later_starts_compare(keys_a: Path, tmp_path: Path) -> None:
    """The first start stores the check; an instance with another secret.key or key file is then named."""
    assert stored_check() is None
    assert instance_key_problems(record_if_missing=True) == []
    assert stored_check() is not None
    assert instance_key_problems(record_if_missing=True) == []
    with override_settings(SECRET_KEY=OTHER_SECRET):
        assert [problem.file for problem in instance_key_problems(record_if_missing=True)] == ["secret.key"]
    elsewhere = tmp_path / "elsewhere.keys"
    write_keys(elsewhere, [new_key()])
    assert problems_on(elsewhere) == ["encryption.keys"]
    with override_settings(SECRET_KEY="abc"):
        assert [problem.file for problem in instance_key_problems()] == ["secret.key"]


@pytest.mark.django_db
def test_first_start_with_keys_that_cannot_read_the_stored_secrets_records_nothing(keys_a: Path) -> None:
    """An installation from before key checks: keys that cannot decrypt what is stored are refused, not recorded."""
    store_secret("smtp password", SecretBox([new_key()]))
    [problem] = instance_key_problems(record_if_missing=True)
    assert problem.file == "encryption.keys" and ENCRYPTED in problem.message
    assert not Setting.objects.filter(key=CHECK_SETTING).exists()


@pytest.mark.django_db
def test_two_phase_rotation_keeps_every_instance_able_to_read(keys_a: Path) -> None:
    """keys add, copy, keys rotate: B reads the re-encrypted secrets at once; after the second copy it matches."""
    store_secret("smtp password", box_from_file(keys_a))
    record_check()
    staged, created = stage_key()
    assert created and stage_key() == (staged, False)  # a second `keys add` changes nothing
    assert read_key_file(keys_a).staged is not None  # it does not encrypt yet (tests/core/test_crypto.py)
    keys_b = copy_to_b(keys_a)
    assert problems_on(keys_b) == []
    assert rotate_keys() == 1
    assert read_key_file(keys_a).staged is None
    # B, with the copy from the first phase, reads what A re-encrypted.
    assert box_from_file(keys_b).decrypt(stored_secret()) == "smtp password"
    assert problems_on(keys_b) == ["encryption.keys"]  # until the rotated file is copied again
    keys_b = copy_to_b(keys_a)
    assert problems_on(keys_b) == [] and problems_on(keys_a) == []


@pytest.mark.django_db
def test_rotation_without_adding_first_locks_other_instances_out(keys_a: Path) -> None:
    """What the review saw: rotating at once leaves B unable to read until it gets the file, and says so."""
    store_secret("smtp password", box_from_file(keys_a))
    record_check()
    keys_b = copy_to_b(keys_a)
    rotate_keys()
    with pytest.raises(DecryptionError):
        box_from_file(keys_b).decrypt(stored_secret())
    assert problems_on(keys_b) == ["encryption.keys"]


@pytest.mark.django_db
def test_keys_are_not_changed_from_an_instance_whose_keys_do_not_match(keys_a: Path) -> None:
    """Its key file, copied to the others as the procedure says, would break them: refused, file untouched."""
    record_check()
    before = keys_a.read_text()
    with override_settings(SECRET_KEY=OTHER_SECRET):
        for change in (stage_key, rotate_keys, drop_old_keys):
            with pytest.raises(KeyMismatch, match="secret key"):
                change()
    assert keys_a.read_text() == before


@pytest.mark.django_db
def test_a_rotation_that_fails_keeps_the_new_key_as_the_added_one(
    keys_a: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing was re-encrypted, but the running server may have used the new key: it stays, decrypting only."""
    record_check()
    before, check = read_key_file(keys_a), stored_check()

    def broken(*args: object) -> int:
        raise RuntimeError("database gone")

    monkeypatch.setattr(keyring, "_reencrypt", broken)
    with pytest.raises(RuntimeError):
        rotate_keys()
    after = read_key_file(keys_a)
    assert after.active == before.active and after.staged is not None
    assert stored_check() == check
    monkeypatch.undo()
    rotate_keys()
    assert read_key_file(keys_a).encrypting == after.staged


@pytest.mark.django_db
def test_drop_old_also_moves_what_another_instance_wrote_with_the_previous_key(keys_a: Path) -> None:
    """Between rotate and the second copy, B encrypts with the previous key: drop-old re-encrypts that too."""
    record_check()
    stage_key()
    keys_b = copy_to_b(keys_a)
    rotate_keys()
    store_secret("written on B", box_from_file(keys_b))  # B has not got the rotated file yet
    assert drop_old_keys() == 1
    ring = read_key_file(keys_a)
    assert len(ring.active) == 1
    assert SecretBox([ring.encrypting]).decrypt(stored_secret()) == "written on B"
    assert problems_on(keys_a) == []
