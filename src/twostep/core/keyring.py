"""The service's SecretBox, and key rotation across every encrypted column."""

from __future__ import annotations

from collections.abc import Callable

from django.apps import apps
from django.conf import settings
from django.db import transaction

from twostep.core.crypto import SecretBox, box_from_file, new_key, read_keys, write_keys

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


def rotate_keys(*, drop_old: bool = False, progress: Callable[[str], None] = lambda _: None) -> int:
    """Add a new newest key and re-encrypt every stored secret with it; return how many.

    The key file is written first (old keys kept), so a failure half-way
    leaves every secret readable.  ``drop_old`` removes the old keys once
    everything is re-encrypted.

    Raises:
        KeyFileError: the current key file cannot be read.
        DecryptionError: a stored secret cannot be read with the current keys.
    """
    path = settings.ENCRYPTION_KEYS_PATH
    old_keys = read_keys(path)
    fresh = new_key()
    write_keys(path, [fresh, *old_keys])
    box = SecretBox([fresh, *old_keys])
    count = 0
    with transaction.atomic():
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
    if drop_old:
        write_keys(path, [fresh])
    return count
