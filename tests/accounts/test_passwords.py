"""The production password hashing profile (SEC-01, SEC-02)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import argon2
import pytest
from django.contrib.auth.hashers import check_password, identify_hasher, make_password

from twostep.accounts.hashers import Argon2idPasswordHasher

# RFC 9106 / OWASP minimum for argon2id.
MINIMUM = {"time_cost": 2, "memory_cost": 19456, "parallelism": 1}


def test_production_settings_use_argon2id_first(tmp_path: Path) -> None:
    """The production settings (not the test ones) hash with our argon2id hasher."""
    code = "import django;from django.conf import settings as s;django.setup();print(s.PASSWORD_HASHERS[0])"
    env = {"TWOSTEP_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "twostep.settings", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "twostep.accounts.hashers.Argon2idPasswordHasher"


def test_production_profile_meets_the_minimum() -> None:
    """The parameters are argon2-cffi's defaults and at least the RFC 9106 / OWASP minimum."""
    hasher = Argon2idPasswordHasher()
    assert (hasher.time_cost, hasher.memory_cost, hasher.parallelism) == (3, 65536, 4)
    for name, minimum in MINIMUM.items():
        assert getattr(hasher, name) >= minimum
    encoded = hasher.encode("a long enough password", hasher.salt())
    assert encoded.startswith("argon2$argon2id$v=19$m=65536,t=3,p=4$")
    parameters = argon2.extract_parameters(encoded.removeprefix("argon2"))
    assert parameters.type is argon2.Type.ID and parameters.salt_len >= 16


@pytest.mark.django_db
def test_whole_password_is_verified() -> None:
    """Long passwords are not truncated: changing the last of 200 characters fails verification."""
    password = "p" * 199 + "a"
    encoded = make_password(password)
    assert check_password(password, encoded)
    assert not check_password("p" * 199 + "b", encoded)
    assert check_password("pässwörd ünicode ✓ long", make_password("pässwörd ünicode ✓ long"))


@pytest.mark.django_db
def test_weaker_hashes_are_upgraded_at_sign_in() -> None:
    """A hash with other parameters verifies and is marked for rehashing (done by Django at sign-in)."""
    from tests.hashers import FastArgon2PasswordHasher

    old = FastArgon2PasswordHasher().encode("a long enough password", "somesaltsomesalt")
    assert identify_hasher(old).algorithm == "argon2"
    assert Argon2idPasswordHasher().must_update(old)
