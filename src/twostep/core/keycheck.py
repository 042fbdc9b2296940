"""Does this instance hold the same keys as the others sharing its database?

Every instance must have the same ``secret.key`` (it signs sessions and keys
the hashes of one-time and recovery codes) and the same ``encryption.keys``
(they decrypt TOTP secrets, the SMTP password, the SMS provider's secrets).
An instance with another ``secret.key`` loses its users' sign-ins when a load
balancer sends them elsewhere; one with other encryption keys fails every
TOTP sign-in.  Neither shows at start-up unless something compares.

So the database holds a *key check* (one ``Setting`` row, never a runtime
setting: no definition, not shown by ``settings show``), written when the
keys are created (``init``), rotated (``keys rotate``, ``keys drop-old``), or
on the first start of an installation that has none:

- ``signing``: an HMAC of a fixed label under ``secret.key``;
- ``encryption``: a fixed label encrypted with the encrypting key;
- ``encrypting_key``: that key's id (``crypto.key_id``).

None of them reveals a key.  ``serve``, ``init`` and ``db status`` compare
this instance's keys with it and name the file that differs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from twostep.core.crypto import (
    DecryptionError,
    KeyRing,
    SecretBox,
    key_id,
    keyed_hash,
    read_key_file,
)

#: The ``Setting`` row that holds the check.
CHECK_SETTING = "keys.check"

#: ``twostep init`` writes 67 characters (``secrets.token_urlsafe(50)``) and
#: Django's own deployment check asks for 50.  Below 32 a key is likely typed
#: by hand (``abc``): the HMACs and signatures made with it can be forged by
#: anyone who guesses it, and the stored signing check could be brute-forced.
MIN_SECRET_KEY_LENGTH = 32

ENCRYPTION_LABEL = "twostep key check"

COPY_KEYS = (
    "Copy encryption.keys from the instance where the keys were last created or rotated (mode 0600) and "
    "start again; `twostep keys status` on each instance shows its keys' ids."
)


@dataclass(frozen=True)
class KeyProblem:
    """This instance's keys cannot be used with the database; ``file`` names the one to fix."""

    file: str
    message: str

    def __str__(self) -> str:
        return self.message


def secret_key_source() -> str:
    """Where this instance's secret key comes from, as shown to operators."""
    if os.environ.get("TWOSTEP_SECRET_KEY"):
        return "the TWOSTEP_SECRET_KEY environment variable"
    return str(settings.CONFIG.path(settings.CONFIG.secret_key_file))


def secret_key_problem(secret_key: str, source: str) -> KeyProblem | None:
    """Why ``secret_key`` (read from ``source``) must not be used, or None."""
    if len(secret_key) < MIN_SECRET_KEY_LENGTH:
        return KeyProblem(
            "secret.key",
            f"the secret key in {source} has {len(secret_key)} characters; at least {MIN_SECRET_KEY_LENGTH} "
            "random characters are needed. On a new installation, delete it and run `twostep init` to write "
            "a new one; on an installation in use, changing it signs everybody out and stops recovery codes "
            'from working (docs/recovery.md, "Keys and several instances").',
        )
    return None


def signing_check(secret_key: str) -> str:
    return keyed_hash(secret_key.encode(), "key-check", "secret.key")


def make_check(secret_key: str, ring: KeyRing) -> dict[str, str]:
    """The key check for ``secret_key`` and ``ring``, to store in the database."""
    return {
        "signing": signing_check(secret_key),
        "encryption": SecretBox([ring.encrypting]).encrypt(ENCRYPTION_LABEL),
        "encrypting_key": key_id(ring.encrypting),
    }


def compare(
    stored: Mapping[str, Any], secret_key: str, ring: KeyRing, *, secret_source: str, keys_path: Path
) -> list[KeyProblem]:
    """What differs between this instance's keys and the ``stored`` check; [] when they match."""
    problems = []
    if stored.get("signing") != signing_check(secret_key):
        problems.append(
            KeyProblem(
                "secret.key",
                f"the secret key in {secret_source} is not the one the other instances sharing this database "
                "use: sessions and pending sign-ins started elsewhere would be lost here. "
                + (
                    "Set it to the other instances' secret key and start again."
                    if secret_source.startswith("the TWOSTEP_SECRET_KEY")
                    else "Copy secret.key from another instance's data directory (mode 0600) and start again."
                ),
            )
        )
    try:
        readable = SecretBox(ring.decrypting).decrypt(str(stored.get("encryption", ""))) == ENCRYPTION_LABEL
    except (DecryptionError, ValueError):
        readable = False
    if not readable:
        problems.append(
            KeyProblem(
                "encryption.keys",
                f"{keys_path} does not hold the key that encrypted the secrets in the database (the keys were "
                f"created or rotated on another instance): TOTP sign-ins, mail and SMS would fail here. {COPY_KEYS}",
            )
        )
    elif stored.get("encrypting_key") != key_id(ring.encrypting):
        older = stored.get("encrypting_key") in {key_id(key) for key in ring.decrypting}
        why = (
            "the keys were rotated on another instance and this one would still encrypt with the previous key"
            if older
            else "this instance would encrypt new secrets with a key the other instances may not have"
        )
        problems.append(
            KeyProblem(
                "encryption.keys",
                f"{keys_path} is not the key file in use ({why}). {COPY_KEYS}",
            )
        )
    return problems


def stored_check() -> dict[str, Any] | None:
    """The key check in the database, or None when there is none yet."""
    from twostep.core.models import Setting

    value = Setting.objects.filter(key=CHECK_SETTING).values_list("value", flat=True).first()
    return value if isinstance(value, dict) else None


def record_check(ring: KeyRing | None = None) -> None:
    """Store the check for this instance's keys (after creating or rotating them).

    Raises:
        KeyFileError: ``ring`` is None and the key file cannot be read.
    """
    from twostep.core.models import Setting

    ring = ring or read_key_file(settings.ENCRYPTION_KEYS_PATH)
    Setting.objects.update_or_create(key=CHECK_SETTING, defaults={"value": make_check(settings.SECRET_KEY, ring)})


def unreadable_secrets(ring: KeyRing, sample: int = 50) -> list[str]:
    """Which kinds of stored secrets ``ring`` cannot decrypt (up to ``sample`` of each are tried)."""
    from django.apps import apps

    from twostep.core.keyring import ENCRYPTED_FIELDS, ENCRYPTED_SETTINGS
    from twostep.core.models import Setting

    box = SecretBox(ring.decrypting)
    failed = []
    for model_label, field in sorted(ENCRYPTED_FIELDS):
        model = apps.get_model(model_label)
        tokens = model.objects.exclude(**{field: ""}).values_list(field, flat=True)[:sample]
        if not _all_readable(box, tokens):
            failed.append(f"{model_label}.{field}")
    for setting in Setting.objects.filter(key__in=sorted(ENCRYPTED_SETTINGS)):
        if isinstance(setting.value, str) and setting.value and not _all_readable(box, [setting.value]):
            failed.append(setting.key)
    return failed


def _all_readable(box: SecretBox, tokens: Any) -> bool:
    try:
        for token in tokens:
            box.decrypt(str(token))
    except DecryptionError:
        return False
    return True


def instance_key_problems(*, record_if_missing: bool = False) -> list[KeyProblem]:
    """What is wrong with this instance's keys for the shared database; [] when nothing is.

    Without a stored check (an installation from before checks existed) and
    with ``record_if_missing``, this instance's keys are first tried on the
    secrets already stored, then recorded as the check: the first instance
    to start after the upgrade sets what the others must match.

    Raises:
        KeyFileError: the encryption key file is missing or broken.
        django.db.Error: the database cannot be read.
    """
    from twostep.core.models import Setting

    source = secret_key_source()
    short = secret_key_problem(settings.SECRET_KEY, source)
    if short is not None:
        return [short]
    keys_path = Path(settings.ENCRYPTION_KEYS_PATH)
    ring = read_key_file(keys_path)
    stored = stored_check()
    if stored is None:
        if not record_if_missing:
            return []
        failed = unreadable_secrets(ring)
        if failed:
            return [
                KeyProblem(
                    "encryption.keys",
                    f"{keys_path} cannot decrypt the secrets stored in the database ({', '.join(failed)}): "
                    f"they were encrypted with other keys. {COPY_KEYS}",
                )
            ]
        # get_or_create: of two instances starting at once, the first one's check is kept.
        row, created = Setting.objects.get_or_create(
            key=CHECK_SETTING, defaults={"value": make_check(settings.SECRET_KEY, ring)}
        )
        if created:
            return []
        stored = row.value if isinstance(row.value, dict) else {}
    return compare(stored, settings.SECRET_KEY, ring, secret_source=source, keys_path=keys_path)


def describe(problems: list[KeyProblem]) -> str:
    """One message for ``problems``, for an error or a status line."""
    if len(problems) == 1:
        return problems[0].message
    return "\n".join(f"- {problem.message}" for problem in problems)


class KeyMismatch(Exception):
    """This instance's keys do not match the database's check; ``problems`` says which file and why."""

    def __init__(self, problems: list[KeyProblem]) -> None:
        super().__init__(describe(problems))
        self.problems = problems


def require_matching_keys() -> None:
    """Refuse to change keys from an instance whose keys are not the ones in use.

    Its key file, once copied to the other instances as the procedure says,
    would replace theirs with keys that cannot read the database.

    Raises:
        KeyMismatch: see ``instance_key_problems``.
        KeyFileError: the key file is missing or broken.
    """
    problems = instance_key_problems()
    if problems:
        raise KeyMismatch(problems)
