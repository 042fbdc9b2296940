"""The service's SecretBox, and key rotation across every encrypted column.

Several instances sharing a database rotate in two phases (docs/recovery.md,
"Several instances"): ``stage_key`` adds the next key to the file without
encrypting with it; once that file is on every instance, ``rotate_keys``
makes it the encrypting key and re-encrypts, and every instance can read the
result.  ``drop_old_keys`` later removes the previous keys.
"""

from __future__ import annotations

from collections.abc import Callable

from django.apps import apps
from django.conf import settings
from django.db import transaction

from twostep.core.crypto import KeyRing, SecretBox, box_from_file, key_id, new_key, read_key_file, write_key_file
from twostep.core.keycheck import record_check, require_matching_keys

#: (app_label.Model, field) pairs whose values are SecretBox tokens.  Apps
#: register theirs in AppConfig.ready() so that `twostep keys rotate` finds them.
ENCRYPTED_FIELDS: set[tuple[str, str]] = set()


#: Runtime setting keys (twostep.core.runtime) whose values are SecretBox tokens.
ENCRYPTED_SETTINGS: set[str] = set()


def register_encrypted_field(model_label: str, field: str) -> None:
    ENCRYPTED_FIELDS.add((model_label, field))


def register_encrypted_setting(key: str) -> None:
    ENCRYPTED_SETTINGS.add(key)


def secret_box() -> SecretBox:
    """Raises twostep.core.crypto.KeyFileError when the key file is missing or broken."""
    return box_from_file(settings.ENCRYPTION_KEYS_PATH)


def stage_key() -> tuple[str, bool]:
    """Add a staged key (decrypts, does not encrypt yet) unless one is there; return its id and whether it is new.

    Raises:
        KeyFileError: the key file cannot be read.
        KeyMismatch: this instance's keys are not the ones in use.
    """
    require_matching_keys()
    path = settings.ENCRYPTION_KEYS_PATH
    ring = read_key_file(path)
    if ring.staged:
        return key_id(ring.staged), False
    staged = new_key()
    write_key_file(path, KeyRing(ring.active, staged))
    return key_id(staged), True


def rotate_keys(*, drop_old: bool = False, progress: Callable[[str], None] = lambda _: None) -> int:
    """Make a new key the encrypting one and re-encrypt every stored secret with it; return how many.

    The new key is the staged one (``stage_key``) if there is one, else a
    fresh key.  The key file is written first (old keys kept), so a failure
    half-way leaves every secret readable; the database's key check is
    updated with the secrets.  ``drop_old`` removes the old keys once
    everything is re-encrypted.

    Raises:
        KeyFileError: the current key file cannot be read.
        KeyMismatch: this instance's keys are not the ones in use.
        DecryptionError: a stored secret cannot be read with the current keys.
    """
    require_matching_keys()
    path = settings.ENCRYPTION_KEYS_PATH
    ring = read_key_file(path)
    fresh = ring.staged or new_key()
    rotated = KeyRing((fresh, *ring.active))
    write_key_file(path, rotated)
    try:
        with transaction.atomic():
            count = _reencrypt(SecretBox(rotated.decrypting), progress)
            record_check(rotated)
    except BaseException:
        # Nothing was re-encrypted.  This instance's running server may have
        # encrypted a new secret with the new key meanwhile (it reloads the
        # file): keep the key, staged, so that it stays readable; the next
        # rotation promotes it.
        write_key_file(path, KeyRing(ring.active, fresh))
        raise
    if drop_old:
        write_key_file(path, KeyRing((fresh,)))
    return count


def drop_old_keys(*, progress: Callable[[str], None] = lambda _: None) -> int:
    """Re-encrypt every stored secret with the encrypting key, then remove the older keys; return how many.

    Re-encrypting first also moves what other instances encrypted with the
    previous key before they got the rotated key file.  A staged key stays.

    Raises:
        KeyFileError: the current key file cannot be read.
        KeyMismatch: this instance's keys are not the ones in use.
        DecryptionError: a stored secret cannot be read with the current keys.
    """
    require_matching_keys()
    path = settings.ENCRYPTION_KEYS_PATH
    ring = read_key_file(path)
    with transaction.atomic():
        count = _reencrypt(SecretBox(ring.decrypting), progress)
        record_check(ring)
    write_key_file(path, KeyRing((ring.encrypting,), ring.staged))
    return count


def _reencrypt(box: SecretBox, progress: Callable[[str], None]) -> int:
    """Re-encrypt every registered secret under ``box``'s first key, inside the caller's transaction."""
    count = 0
    for model_label, field in sorted(ENCRYPTED_FIELDS):
        model = apps.get_model(model_label)
        for pk, token in model.objects.exclude(**{field: ""}).values_list("pk", field):
            model.objects.filter(pk=pk).update(**{field: box.rotate(token)})
            count += 1
        progress(f"{model_label}.{field}: re-encrypted")
    from twostep.core.models import Setting

    for setting in Setting.objects.filter(key__in=sorted(ENCRYPTED_SETTINGS)):
        if isinstance(setting.value, str) and setting.value:
            setting.value = box.rotate(setting.value)
            setting.save(update_fields=["value"])
            count += 1
    return count
