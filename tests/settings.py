"""Settings for the test suite: a throw-away data directory, SQLite or PostgreSQL.

``TWOSTEP_TEST_DB=postgres`` runs the suite against the PostgreSQL server at
127.0.0.1:5432 (database ``test``; pytest-django creates its own test database).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_data = Path(os.environ.get("TWOSTEP_TEST_DATA_DIR") or tempfile.mkdtemp(prefix="twostep-test-"))
os.environ.setdefault("TWOSTEP_TEST_DATA_DIR", str(_data))
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Parallel workers must not share keys: some tests rotate them.
    _data = _data / os.environ["PYTEST_XDIST_WORKER"]
_data.mkdir(parents=True, exist_ok=True)
os.environ["TWOSTEP_DATA_DIR"] = str(_data)
if os.environ.get("TWOSTEP_TEST_DB") == "postgres":
    os.environ["TWOSTEP_DATABASE__URL"] = os.environ.get(
        "TWOSTEP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
    )

_keys = _data / "encryption.keys"
if not _keys.exists():
    from twostep.core.crypto import new_key, write_keys

    write_keys(_keys, [new_key()])
_secret = _data / "secret.key"
if not _secret.exists():
    _secret.write_text("test-secret-key-" + "x" * 40)

from twostep.settings import *  # noqa: E402,F403

# Real argon2id, but with the cheapest parameters: the production profile is
# asserted separately (tests/accounts/test_passwords.py).
PASSWORD_HASHERS = ["tests.hashers.FastArgon2PasswordHasher"]

if "sqlite" in str(DATABASES["default"]["ENGINE"]):  # noqa: F405
    # A file, not memory: concurrency tests need real locking (WAL) across threads.
    DATABASES["default"]["TEST"] = {"NAME": str(_data / "test.db")}  # noqa: F405
